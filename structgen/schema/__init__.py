"""JSON Schema -> Grammar compiler (exact or loudly refused; see compiler.py for documented choices)."""
from .compiler import grammar_from_json_schema, json_object_grammar, load_remotes

__all__ = ["grammar_from_json_schema", "json_object_grammar", "load_remotes"]
