"""Finite sets of words: the regex for "any string except these words", and its DFA built directly.

JSON Schema objects with open ``additionalProperties`` need a key terminal for
every string that is *not* a declared property name.  Going through the regex
parser, the Glushkov construction and Hopcroft minimization costs tens of
milliseconds per object; the complement of a finite set is a trie plus one
"free" state, minimized by hash-consing subtries (exact: the trie is acyclic
and every trie node reaches a word end, so none is equivalent to the free
state).  :func:`complement_regex` returns the same regex text as before and
remembers which words produced it, so :func:`known_complement` can answer
:func:`structgen.regex.compile.char_dfa` for that exact pattern without
parsing it.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

from . import charset as cs
from .automaton import CharDFA
from .quote import escape_char

ANY_CHARS = r"[\s\S]*"

_REGISTRY: "OrderedDict[str, frozenset[str]]" = OrderedDict()
_REGISTRY_SIZE = 4096


def _trie(words: Iterable[str]) -> dict:
    trie: dict = {}
    for w in words:
        node = trie
        for c in w:
            node = node.setdefault(c, {})
        node[""] = {}
    return trie


def _complement(node: dict) -> str | None:
    children = sorted(c for c in node if c)
    alts = []
    if "" not in node:
        alts.append("")  # the prefix itself is not a word
    if children:
        klass = "".join(escape_char(c, in_class=True) for c in children)
        alts.append(f"[^{klass}]{ANY_CHARS}")
        for c in children:
            sub = _complement(node[c])
            if sub is not None:
                alts.append(escape_char(c) + sub)
    else:
        alts.append(r"[\s\S]+")
    if alts == [""]:
        return ""
    return "(?:" + "|".join(alts) + ")"


def complement_regex(words: Iterable[str]) -> str:
    """Regex (full match) for every string that is *not* one of ``words``; remembered for
    :func:`known_complement`."""
    wset = frozenset(words)
    pattern = _complement(_trie(sorted(wset)))
    assert pattern is not None
    _REGISTRY[pattern] = wset
    _REGISTRY.move_to_end(pattern)
    while len(_REGISTRY) > _REGISTRY_SIZE:
        _REGISTRY.popitem(last=False)
    return pattern


def known_complement(pattern: str) -> frozenset[str] | None:
    """The words whose complement ``pattern`` is, if :func:`complement_regex` produced it."""
    return _REGISTRY.get(pattern)


def complement_dfa(words: Iterable[str]) -> CharDFA:
    """Minimal, trimmed character DFA of all strings except ``words`` (state 0 = start)."""
    words = list(words)
    trie = _trie(words)
    chars = sorted({c for w in words for c in w})
    class_of = {c: i for i, c in enumerate(chars)}
    classes = [cs.single(ord(c)) for c in chars]
    rest = cs.subtract(cs.ALL, cs.normalize((ord(c), ord(c)) for c in chars))
    k = len(classes) + (1 if rest else 0)
    if rest:
        classes.append(rest)
    FREE = 0  # canonical id of the free state; trie nodes get ids >= 1 by signature
    sig_ids: dict[tuple, int] = {}
    sigs: list[tuple] = [(True, (FREE,) * k)]

    def canon(node: dict) -> int:
        row = [FREE] * k
        for c, child in node.items():
            if c:
                row[class_of[c]] = canon(child)
        key = ("" not in node, tuple(row))
        sid = sig_ids.get(key)
        if sid is None:
            sid = len(sigs)
            sig_ids[key] = sid
            sigs.append(key)
        return sid

    start = canon(trie)
    # renumber by BFS from the start (state 0 first), like minimize()
    new_id = {start: 0}
    order = [start]
    i = 0
    while i < len(order):
        for t in sigs[order[i]][1]:
            if t not in new_id:
                new_id[t] = len(order)
                order.append(t)
        i += 1
    trans = [[new_id[t] for t in sigs[s][1]] for s in order]
    accept = [sigs[s][0] for s in order]
    return CharDFA(classes, trans, accept)
