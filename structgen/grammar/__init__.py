"""Grammar IR and front-ends (regex, Lark, GBNF/EBNF, choices)."""
from .ir import Grammar, GrammarBuilder, Terminal
from .gbnf_frontend import grammar_from_gbnf, grammar_from_gbnf_file
from .lark_frontend import grammar_from_lark, grammar_from_lark_file
from .simple_frontends import (grammar_from_choices, grammar_from_file, grammar_from_regex,
                               grammar_from_text, list_shipped_grammars, shipped_grammar_path)

__all__ = ["Grammar", "GrammarBuilder", "Terminal", "grammar_from_gbnf", "grammar_from_gbnf_file",
           "grammar_from_lark", "grammar_from_lark_file", "grammar_from_choices", "grammar_from_file",
           "grammar_from_regex", "grammar_from_text", "list_shipped_grammars", "shipped_grammar_path"]
