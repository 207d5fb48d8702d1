"""The shared literal escaping: quoted text matches exactly itself, in and out of classes."""
from __future__ import annotations

from structgen.regex import compile_regex
from structgen.regex.quote import escape_char, quote

TRICKY = "\\.^$|?*+()[]{}/-\"'\n\t\x00\x7f\u2028\u2029é😀 a"


def _matches(pattern: str, text: str) -> bool:
    d = compile_regex(pattern)
    s = 0
    for b in text.encode("utf-8"):
        s = int(d.transitions[s, b])
        if s < 0:
            return False
    return bool(d.accepting[s])


def test_quote_matches_exactly_the_text():
    assert _matches(quote(TRICKY), TRICKY)
    assert not _matches(quote(TRICKY), TRICKY[:-1])
    for c in TRICKY:
        assert _matches(quote(c), c) and not _matches(quote(c), "x" if c != "x" else "y")


def test_escape_char_inside_a_class():
    for c in TRICKY:
        cls = "[" + escape_char(c, in_class=True) + "]"
        assert _matches(cls, c), (c, cls)
        assert not _matches(cls, "Q")
