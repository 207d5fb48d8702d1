"""Public entry points: regex / Terminal -> minimized, trimmed ByteDFA (cached)."""
from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict

import numpy as np

from ..errors import CompileLimitError
from . import charset as cs
from . import direct
from .automaton import CharDFA, ast_to_dfa, complement, intersect
from .bytedfa import ByteDFA
from .encode import NEVER_ESCAPED, expand
from .words import complement_dfa, known_complement
from .parser import EMPTY_NODE, Node, anchor_variants, parse
from .shortest import shortest_match_dfa

_MODES = ("fullmatch", "search")
_ANY_STAR: Node = ("rep", ("set", cs.ALL), 0, None)


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")


def regex_ast(pattern: str, mode: str = "fullmatch", dialect: str = "ecmascript") -> Node:
    """Anchor-free AST whose full-match language is the pattern's language in ``mode``.

    ``search``: ECMAScript / JSON Schema ``pattern`` semantics: the text matches
    if the regex matches anywhere; ``^``/``$`` keep a branch at the text's edges.
    """
    _check_mode(mode)
    node = parse(pattern, dialect)
    variants = anchor_variants(node, pattern)
    branches = []
    for at_start, at_end, body in variants:
        if mode == "search":
            parts = ([] if at_start else [_ANY_STAR]) + [body] + ([] if at_end else [_ANY_STAR])
            body = ("cat", tuple(parts))
        branches.append(body)
    return branches[0] if len(branches) == 1 else ("alt", tuple(branches))


@functools.lru_cache(maxsize=8192)
def char_dfa(pattern: str, mode: str = "fullmatch", max_states: int = 100_000,
             dialect: str = "ecmascript") -> CharDFA:
    """Minimized, trimmed DFA over character classes (cached); ``dialect`` as in ``parse``."""
    dfa = None
    if mode == "fullmatch" and dialect == "ecmascript":   # the shortcuts are ECMAScript patterns
        words = known_complement(pattern)
        builder = direct.known(pattern)
        if words is not None:
            dfa = complement_dfa(words)
        elif builder is not None:
            dfa = builder()
        else:
            m = _LENGTH_ONLY.fullmatch(pattern)
            if m is not None:
                dfa = _length_dfa(m, max_states)
    if dfa is not None:
        if dfa.n_states > max_states:
            raise CompileLimitError(f"regex DFA exceeds max_states={max_states} states")
        return dfa
    return ast_to_dfa(regex_ast(pattern, mode, dialect), max_states)


# ``[\s\S]*``, ``[\s\S]{m}``, ``[\s\S]{m,}``, ``[\s\S]{m,n}``: strings of a length range
# (JSON Schema minLength/maxLength), built directly as a chain of states.
_LENGTH_ONLY = re.compile(r"\[\\s\\S\](?:(\*)|\{(\d+)(?:(,)(\d*))?\})")


def _length_dfa(m: "re.Match[str]", max_states: int) -> CharDFA | None:
    if m.group(1):
        lo, hi = 0, None
    else:
        lo = int(m.group(2))
        hi = lo if m.group(3) is None else (int(m.group(4)) if m.group(4) else None)
    if hi is not None and hi < lo:
        return None  # let the parser report it
    last = lo if hi is None else hi
    if last + 1 > max_states:
        raise CompileLimitError(f"regex DFA exceeds max_states={max_states} states")
    if hi == 0:
        return CharDFA([], [[]], [True])
    trans = [[i + 1] for i in range(last)] + [[last] if hi is None else [-1]]
    accept = [i >= lo for i in range(last + 1)]
    return CharDFA([cs.ALL], trans, accept)


def _literal_dfa(text: str) -> CharDFA:
    node: Node = ("cat", tuple(("set", cs.single(ord(c))) for c in text)) if text else EMPTY_NODE
    return ast_to_dfa(node, max(len(text) + 2, 16))


def _never_escaped_only(dfa: CharDFA) -> bool:
    """Every character of the DFA's alphabet is one JSON serializers always write raw."""
    for klass in dfa.classes:
        for lo, hi in klass:
            if lo < 0x20 or hi > 0x7E or not all(cs.contains(NEVER_ESCAPED, c) for c in range(lo, hi + 1)):
                return False
    return True


def _to_bytes(dfa: CharDFA, *, json: bool, max_states: int, canonical: bool = False) -> ByteDFA:
    """Byte DFA of the UTF-8 text, or with ``json`` of the quoted JSON string: every escape
    spelling, or with ``canonical`` all but \\u escapes of characters serializers never escape
    (for an alphabet of only those characters: the raw spelling alone)."""
    if dfa.n_states == 1 and not dfa.accept[0] and all(t < 0 for t in dfa.trans[0]):
        return ByteDFA(np.full((1, 256), -1, np.int32), np.zeros(1, bool))
    # Both encodings are prefix codes in which a partially decoded character
    # can never behave like a character boundary, so expanding a minimal
    # character DFA with shared tries is already minimal (tests check this
    # against a full Hopcroft pass on the byte DFA).
    if not json:
        trans, acc = expand(dfa, json, max_states)
        return ByteDFA(trans, acc)
    # Wrap in quotes: new start 0 --'"'--> content start 1; accepting --'"'--> final (last row).
    if canonical and _never_escaped_only(dfa):
        trans, content_acc = expand(dfa, False, max_states, quoted=True)
    else:
        trans, content_acc = expand(dfa, True, max_states, quoted=True, canonical=canonical)
    final = trans.shape[0] - 1
    trans[0, 0x22] = 1
    trans[np.nonzero(content_acc)[0], 0x22] = final
    accepting = np.zeros(final + 1, dtype=bool)
    accepting[final] = True
    return ByteDFA(trans, accepting)


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


class _BudgetCache:
    """LRU cache bounded by entry count *and* by the bytes of the cached tables.

    Byte DFAs range from a few hundred bytes (a literal) to tens of MB (a
    date-time format in JSON encoding, 66k states x 1 KiB); a count-only LRU
    either evicts the expensive ones after a few hundred small terminals or
    lets memory grow without bound.
    """

    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.data: "OrderedDict[object, tuple[object, int]]" = OrderedDict()
        self.nbytes = 0
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            hit = self.data.get(key)
            if hit is None:
                return None
            self.data.move_to_end(key)
            return hit[0]

    def put(self, key, value, nbytes: int) -> None:
        with self.lock:
            if key in self.data or nbytes > self.max_bytes:
                return
            self.data[key] = (value, nbytes)
            self.nbytes += nbytes
            while len(self.data) > self.max_entries or self.nbytes > self.max_bytes:
                _, (_, size) = self.data.popitem(last=False)
                self.nbytes -= size

    def clear(self) -> None:
        with self.lock:
            self.data.clear()
            self.nbytes = 0


_TERMINALS = _BudgetCache(max_entries=16384, max_bytes=512 << 20)


def _compile_terminal(term, max_states: int) -> ByteDFA:
    key = (term, max_states)
    hit = _TERMINALS.get(key)
    if hit is None:
        hit = _compile_terminal_uncached(term, max_states)
        _TERMINALS.put(key, hit, hit.transitions.nbytes + hit.accepting.nbytes)
    return hit


_compile_terminal.cache_clear = _TERMINALS.clear  # type: ignore[attr-defined]


def _compile_terminal_uncached(term, max_states: int) -> ByteDFA:
    if term.shortest:
        if term.regex is None or term.json_string or term.also_match or term.not_match:
            raise ValueError("Terminal(shortest=True) takes a plain regex")
        return shortest_match_dfa(term.regex, max_states, term.dialect)
    if term.literal is not None and not term.json_string and not term.also_match and not term.not_match:
        return literal_dfa_bytes(term.literal.encode("utf-8"))
    if term.literal is not None:
        dfa = _literal_dfa(term.literal)
    else:
        dfa = char_dfa(term.regex, "fullmatch", max_states, term.dialect)
    for extra in term.also_match:
        dfa = intersect(dfa, char_dfa(extra, "fullmatch", max_states), max_states)
    for excluded in term.not_match:
        dfa = intersect(dfa, complement(char_dfa(excluded, "fullmatch", max_states)), max_states)
    return _to_bytes(dfa, json=term.json_string, max_states=max_states,
                     canonical=term.canonical and term.json_string)


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


def clear_caches() -> None:
    """Forget every compiled DFA (cold-compile measurements; frees the memory of big tables).

    The caches are keyed by pattern / terminal, so within a process a second schema
    using the same ``format`` or key set reuses the first one's DFAs; benchmarks that
    time a cold compile call this before each schema.  Kept: the byte-decoding tries of
    the two character partitions every JSON schema uses (all characters; ASCII), which
    are constants of UTF-8 and JSON escaping, not derived from any schema.
    """
    from . import encode
    char_dfa.cache_clear()
    compile_regex.cache_clear()
    json_string_dfa.cache_clear()
    _TERMINALS.clear()
    encode._decoder_cached.cache_clear()
    encode.utf8_seqs.cache_clear()
    encode.json_seqs.cache_clear()
