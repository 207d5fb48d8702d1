"""Public entry points: regex / Terminal -> minimized, trimmed ByteDFA (cached)."""
from __future__ import annotations

import functools

import numpy as np

from ..errors import CompileLimitError
from . import charset as cs
from .automaton import CharDFA, ast_to_dfa, intersect
from .bytedfa import ByteDFA
from .encode import expand
from .parser import EMPTY_NODE, Node, anchor_variants, parse

_MODES = ("fullmatch", "search")
_ANY_STAR: Node = ("rep", ("set", cs.ALL), 0, None)


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")


def regex_ast(pattern: str, mode: str = "fullmatch") -> Node:
    """Anchor-free AST whose full-match language is the pattern's language in ``mode``.

    ``search``: ECMAScript / JSON Schema ``pattern`` semantics: the text matches
    if the regex matches anywhere; ``^``/``$`` keep a branch at the text's edges.
    """
    _check_mode(mode)
    node = parse(pattern)
    variants = anchor_variants(node, pattern)
    branches = []
    for at_start, at_end, body in variants:
        if mode == "search":
            parts = ([] if at_start else [_ANY_STAR]) + [body] + ([] if at_end else [_ANY_STAR])
            body = ("cat", tuple(parts))
        branches.append(body)
    return branches[0] if len(branches) == 1 else ("alt", tuple(branches))


@functools.lru_cache(maxsize=1024)
def char_dfa(pattern: str, mode: str = "fullmatch", max_states: int = 100_000) -> CharDFA:
    """Minimized, trimmed DFA over character classes (cached)."""
    return ast_to_dfa(regex_ast(pattern, mode), max_states)


def _literal_dfa(text: str) -> CharDFA:
    node: Node = ("cat", tuple(("set", cs.single(ord(c))) for c in text)) if text else EMPTY_NODE
    return ast_to_dfa(node, max(len(text) + 2, 16))


def _to_bytes(dfa: CharDFA, *, json: bool, max_states: int) -> ByteDFA:
    if dfa.n_states == 1 and not dfa.accept[0] and all(t < 0 for t in dfa.trans[0]):
        return ByteDFA(np.full((1, 256), -1, np.int32), np.zeros(1, bool))
    trans, acc = expand(dfa, json, max_states)
    # Both encodings are prefix codes in which a partially decoded character
    # can never behave like a character boundary, so expanding a minimal
    # character DFA with shared tries is already minimal (tests check this
    # against a full Hopcroft pass on the byte DFA).
    if not json:
        return ByteDFA(trans, acc)
    # Wrap in quotes: new start --'"'--> content start; accepting --'"'--> final.
    n = trans.shape[0]
    if n + 2 > max_states:
        raise CompileLimitError(f"byte-level DFA exceeds max_states={max_states} states")
    full = np.full((n + 2, 256), -1, dtype=np.int32)
    full[1:n + 1] = np.where(trans >= 0, trans + 1, -1)
    full[0, 0x22] = 1
    final = n + 1
    full[np.nonzero(acc)[0] + 1, 0x22] = final
    accepting = np.zeros(n + 2, dtype=bool)
    accepting[final] = True
    return ByteDFA(full, accepting)


@functools.lru_cache(maxsize=1024)
def compile_regex(pattern: str, *, mode: str = "fullmatch", max_states: int = 100_000) -> ByteDFA:
    """Compile ``pattern`` to a byte DFA over its UTF-8 encoding.

    ``mode="fullmatch"``: the whole text must match.  ``mode="search"``: the
    text matches if the regex matches anywhere in it (JSON Schema ``pattern``).
    Raises RegexError (unsupported/malformed) or CompileLimitError (too big).
    """
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be str, got {type(pattern).__name__}")
    return _to_bytes(char_dfa(pattern, mode, max_states), json=False, max_states=max_states)


@functools.lru_cache(maxsize=1024)
def _compile_terminal(term, max_states: int) -> ByteDFA:
    if term.literal is not None and not term.json_string and not term.also_match:
        return literal_dfa_bytes(term.literal.encode("utf-8"))
    if term.literal is not None:
        dfa = _literal_dfa(term.literal)
    else:
        dfa = char_dfa(term.regex, "fullmatch", max_states)
    for extra in term.also_match:
        dfa = intersect(dfa, char_dfa(extra, "fullmatch", max_states), max_states)
    return _to_bytes(dfa, json=term.json_string, max_states=max_states)


def literal_dfa_bytes(data: bytes) -> ByteDFA:
    """The DFA accepting exactly ``data``."""
    n = len(data) + 1
    trans = np.full((n, 256), -1, dtype=np.int32)
    trans[np.arange(len(data)), np.frombuffer(data, dtype=np.uint8)] = np.arange(1, n, dtype=np.int32)
    acc = np.zeros(n, dtype=bool)
    acc[-1] = True
    return ByteDFA(trans, acc)


def compile_terminal(term, *, max_states: int = 100_000) -> ByteDFA:
    """Compile a grammar ``Terminal`` (literal / regex, ``also_match``, ``json_string``)."""
    return _compile_terminal(term, max_states)


@functools.lru_cache(maxsize=1024)
def json_string_dfa(content_pattern: str, *also_match: str, max_states: int = 100_000) -> ByteDFA:
    """DFA of ``"`` + JSON encoding of a string fully matching every pattern + ``"``."""
    dfa = char_dfa(content_pattern, "fullmatch", max_states)
    for extra in also_match:
        dfa = intersect(dfa, char_dfa(extra, "fullmatch", max_states), max_states)
    return _to_bytes(dfa, json=True, max_states=max_states)
