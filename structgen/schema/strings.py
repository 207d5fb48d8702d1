"""String-content regexes: literal quoting, finite-set complements, ``pattern`` search semantics.

All regexes here are full-match patterns over *decoded* string characters in
structgen's regex syntax (a Python ``re`` / ECMAScript common subset); they end
up in ``Terminal(json_string=True, regex=..., also_match=...)``.
"""
from __future__ import annotations

from ..regex.quote import quote
from ..regex.words import complement_regex

ANY_CHARS = r"[\s\S]*"


class PatternRefused(Exception):
    """A ``pattern`` uses anchors in a position search semantics cannot express here."""


def length_regex(min_len: int, max_len: int | None) -> str:
    """Strings of min..max characters (code points)."""
    if max_len is None:
        return r"[\s\S]{%d,}" % min_len if min_len else ANY_CHARS
    if min_len == max_len:
        return r"[\s\S]{%d}" % min_len
    return r"[\s\S]{%d,%d}" % (min_len, max_len)


def not_in_set(words: list[str] | set[str] | frozenset[str]) -> str:
    """Regex for every string that is *not* one of ``words`` (finite set complement, via a trie).

    The regex package remembers the words, so compiling this exact pattern
    builds the complement DFA directly instead of parsing the regex.
    """
    return complement_regex(words)


def split_top_level(pattern: str) -> list[str]:
    """Split a regex at its top-level ``|`` (outside groups and classes)."""
    parts, depth, in_class, cur, i = [], 0, False, [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            cur.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescaped_anchor_positions(p: str) -> list[int]:
    pos, in_class, i = [], False, 0
    while i < len(p):
        c = p[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if i + 1 < len(p) and p[i + 1] == "^":
                i += 1
            if i + 1 < len(p) and p[i + 1] == "]":
                i += 1
        elif c in "^$":
            pos.append(i)
        i += 1
    return pos


def search_regex(pattern: str) -> str:
    """Full-match regex for strings in which ECMAScript ``pattern`` finds a match (``pattern`` keyword).

    Top-level ``^``/``$`` anchors (per alternative) are turned into the absence
    of the ``[\\s\\S]*`` padding; anchors anywhere else are refused.
    """
    branches = []
    for br in split_top_level(pattern):
        start = br.startswith("^")
        core = br[1:] if start else br
        end = False
        if core.endswith("$"):
            # make sure the $ is not escaped
            k = len(core) - 2
            bs = 0
            while k >= 0 and core[k] == "\\":
                bs += 1
                k -= 1
            if bs % 2 == 0:
                end = True
                core = core[:-1]
        if _unescaped_anchor_positions(core):
            raise PatternRefused(f"anchor inside pattern {pattern!r} (only leading ^ / trailing $ are supported)")
        branches.append(("" if start else ANY_CHARS) + f"(?:{core})" + ("" if end else ANY_CHARS))
    if len(branches) == 1:
        return branches[0]
    return "(?:" + "|".join(branches) + ")"

