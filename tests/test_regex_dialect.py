"""Lark terminals read their regexes as Python's ``re`` does (Lark compiles them with it): ``.``
excludes only "\\n", and ``\\d \\w \\s`` are Unicode sets; the regex front-end and JSON Schema keep
ECMAScript's meaning."""
from __future__ import annotations

import random
import re

import pytest

from structgen.engine import accepts_text
from structgen.grammar import grammar_from_lark
from structgen.grammar.ir import Terminal
from structgen.regex import compile_regex, compile_terminal

PATTERNS = [".", r"\d", r"\w", r"\s", r"\D", r"\W", r"\S", r"[^\W\d]", r"[\w\-]", r"(?i)[k\d]", r"(?s).", r"[^\s\d]"]


def code_points() -> list[int]:
    rng = random.Random(7)
    every = [c for c in range(0x3100) if not 0xD800 <= c <= 0xDFFF]
    return every + [c for c in (rng.randrange(0x3100, 0x110000) for _ in range(20000)) if not 0xD800 <= c <= 0xDFFF]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_python_dialect_classes_match_python_re(pattern):
    dfa = compile_terminal(Terminal(regex=pattern, dialect="python"))
    compiled = re.compile(pattern)
    wrong = [cp for cp in code_points() if dfa.matches(chr(cp).encode()) != bool(compiled.fullmatch(chr(cp)))]
    assert not wrong, [hex(c) for c in wrong[:10]]


def test_ecmascript_dialect_keeps_its_meaning():
    """JSON Schema patterns: ``.`` excludes every line terminator, ``\\d`` is ASCII."""
    assert not compile_regex(".").matches("\r".encode())
    assert not compile_regex(r"\d").matches("٣".encode())
    assert compile_regex(r"\d").matches(b"7")


def test_lark_grammar_reads_terminals_as_python():
    g = grammar_from_lark('start: COMMENT+ NAME NUM\nCOMMENT: /:::.*\\n/\nNAME: /[^\\W\\d]\\w*/\nNUM: /\\d+/\n'
                          '%ignore /\\s+/')
    assert all(t.dialect == "python" for t in g.terminals.values() if t.regex is not None)
    assert accepts_text(g, ":::a\r\n:::\u2028\ncafé ٣٤")           # \r and \u2028 inside a line, Unicode word/digits
    assert not accepts_text(g, ":::a\n\n9x 1")


def test_per_byte_lexeme_cut_gap_is_reported_not_silent():
    """A Unicode word terminal followed by the fullwidth comma: both start 0xEF 0xBC, the word
    reads those bytes and dies inside the comma, so "你好，世界" is refused where Python's re
    would cut before the comma.  Compiling such a grammar warns with an example."""
    import warnings

    from structgen.engine import byte_level_tokenizer, compile_grammar
    from structgen.grammar import grammar_from_file

    with pytest.warns(UserWarning, match=r"cut per byte.*W then .* starting with '，' \(U\+FF0C\)"):
        compile_grammar(grammar_from_lark('start: W ("，" W)*\nW: /\\w+/'), byte_level_tokenizer(), cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a word, then ASCII punctuation: nothing to report
        g = grammar_from_lark('start: W (", " W)*\nW: /\\w+/')
        compile_grammar(g, byte_level_tokenizer(), cache=False)
        assert accepts_text(g, "你好, 世界")
        for name in ("json", "sql", "python", "csv", "arithmetic", "json.gbnf"):
            compile_grammar(grammar_from_file(name), byte_level_tokenizer(), cache=False)
