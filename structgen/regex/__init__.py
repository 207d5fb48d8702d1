"""Regex -> byte-level DFA (UTF-8 or JSON-string encoded): the lexer building block."""
from .bytedfa import ByteDFA
from .compile import clear_caches, compile_regex, compile_terminal, json_string_dfa, literal_dfa_bytes, regex_ast
from .parser import parse

__all__ = ["ByteDFA", "clear_caches", "compile_regex", "compile_terminal", "json_string_dfa", "literal_dfa_bytes",
           "parse", "regex_ast"]
