"""structgen: exact token masks for JSON Schema, regex and context-free grammars.

Main entry points (see README.md for runnable examples):

* ``generate`` / ``stream``: structured generation with a bundled or any transformers model
* ``compile_grammar`` + ``Matcher``: the mask engine (accept, mask, rollback, fork, jump-forward)
* ``grammar_from_json_schema`` / ``grammar_from_regex`` / ``grammar_from_lark`` /
  ``grammar_from_gbnf`` / ``grammar_from_choices``: front-ends to the grammar IR
* ``StructgenLogitsProcessor``: the same masks inside ``model.generate``
* ``speculative_decode``: lossless speculative decoding under a grammar
"""
from __future__ import annotations

from .errors import (CompileLimitError, GenerationError, GrammarError, ModelLoadError, RegexError,
                     SchemaError, StructgenError, UnsupportedKeywordError)

__version__ = "0.1.0"

_LAZY = {
    # engine
    "compile_grammar": "structgen.engine", "CompiledGrammar": "structgen.engine", "Matcher": "structgen.engine",
    "allocate_token_bitmask": "structgen.engine", "apply_token_bitmask_inplace": "structgen.engine",
    "accepts_text": "structgen.engine",
    # front-ends
    "Grammar": "structgen.grammar", "GrammarBuilder": "structgen.grammar", "Terminal": "structgen.grammar",
    "grammar_from_regex": "structgen.grammar", "grammar_from_lark": "structgen.grammar",
    "grammar_from_gbnf": "structgen.grammar", "grammar_from_choices": "structgen.grammar",
    "grammar_from_file": "structgen.grammar", "grammar_from_text": "structgen.grammar",
    "grammar_from_json_schema": "structgen.schema", "json_object_grammar": "structgen.schema",
    "compile_regex": "structgen.regex",
    # vocabulary and models
    "TokenizerInfo": "structgen.vocab", "load_model": "structgen.models", "load_tokenizer": "structgen.models",
    "load_tokenizer_info": "structgen.models", "list_models": "structgen.models", "DEFAULT_MODEL": "structgen.models",
    # user API
    "generate": "structgen.api", "stream": "structgen.api", "GenerationResult": "structgen.api",
    "StructgenLogitsProcessor": "structgen.api",
    # speculative decoding
    "speculative_decode": "structgen.speculative", "constrained_decode": "structgen.speculative",
}


def __getattr__(name: str):
    """Import submodules on first use so ``import structgen`` stays fast."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'structgen' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = sorted(set(_LAZY) | {"StructgenError", "GrammarError", "RegexError", "SchemaError",
                               "UnsupportedKeywordError", "CompileLimitError", "ModelLoadError",
                               "GenerationError", "__version__"})
