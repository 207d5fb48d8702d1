"""Character sets -> byte sequences (UTF-8 or JSON string encoding), and the
expansion of a character-class DFA into a byte DFA.

An encoding of a set is a list of *sequences*; each sequence is a tuple of
byte sets; each byte set is a tuple of inclusive ``(lo, hi)`` byte ranges.
Both encodings are prefix codes (no encoding of a character is a prefix of
another's), so expanding a deterministic character DFA edge by edge into
small byte tries keeps it deterministic.
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import CompileLimitError
from . import charset as cs
from .automaton import CharDFA
from .charset import CharSet

ByteSet = tuple[tuple[int, int], ...]
Seq = tuple[ByteSet, ...]


def _split_digits(lo: int, hi: int, ndig: int, base: int) -> list[tuple[tuple[int, int], ...]]:
    """Split [lo, hi] into sequences of per-digit ranges (most significant digit unbounded)."""
    if ndig == 1:
        return [((lo, hi),)]
    unit = base ** (ndig - 1)
    lo_d, lo_r = divmod(lo, unit)
    hi_d, hi_r = divmod(hi, unit)
    if lo_d == hi_d:
        return [((lo_d, lo_d),) + s for s in _split_digits(lo_r, hi_r, ndig - 1, base)]
    out = []
    if lo_r != 0:
        out += [((lo_d, lo_d),) + s for s in _split_digits(lo_r, unit - 1, ndig - 1, base)]
        lo_d += 1
    tail = []
    if hi_r != unit - 1:
        tail = [((hi_d, hi_d),) + s for s in _split_digits(0, hi_r, ndig - 1, base)]
        hi_d -= 1
    if lo_d <= hi_d:
        out.append(((lo_d, hi_d),) + ((0, base - 1),) * (ndig - 1))
    return out + tail


_UTF8_BOUNDS = ((0, 0x7F, 1), (0x80, 0x7FF, 2), (0x800, 0xFFFF, 3), (0x10000, 0x10FFFF, 4))
_LEAD = {2: 0xC0, 3: 0xE0, 4: 0xF0}


def utf8_range_seqs(lo: int, hi: int) -> list[Seq]:
    out: list[Seq] = []
    for blo, bhi, n in _UTF8_BOUNDS:
        a, b = max(lo, blo), min(hi, bhi)
        if a > b:
            continue
        if n == 1:
            out.append((((a, b),),))
            continue
        for digits in _split_digits(a, b, n, 64):
            (d0, d1), rest = digits[0], digits[1:]
            seq = (((_LEAD[n] | d0, _LEAD[n] | d1),),) + tuple(((0x80 | x, 0x80 | y),) for x, y in rest)
            out.append(seq)
    return out


@functools.lru_cache(maxsize=4096)
def utf8_seqs(s: CharSet) -> tuple[Seq, ...]:
    return tuple(seq for lo, hi in s for seq in utf8_range_seqs(lo, hi))


def _hex_byteset(a: int, b: int) -> ByteSet:
    """Bytes of the hex digits with values a..b (both letter cases)."""
    out = []
    if a <= 9:
        out.append((0x30 + a, 0x30 + min(b, 9)))
    if b >= 10:
        x = max(a, 10) - 10
        y = b - 10
        out.append((0x41 + x, 0x41 + y))
        out.append((0x61 + x, 0x61 + y))
    return tuple(out)


def _hex4_seqs(lo: int, hi: int) -> list[Seq]:
    return [tuple(_hex_byteset(x, y) for x, y in digits) for digits in _split_digits(lo, hi, 4, 16)]


_BS_U: Seq = (((0x5C, 0x5C),), ((0x75, 0x75),))  # "\u"
_SHORT = {0x22: 0x22, 0x5C: 0x5C, 0x2F: 0x2F, 0x08: 0x62, 0x0C: 0x66, 0x0A: 0x6E, 0x0D: 0x72, 0x09: 0x74}


@functools.lru_cache(maxsize=4096)
def json_seqs(s: CharSet) -> tuple[Seq, ...]:
    """All JSON string encodings (inside the quotes) of the characters in s."""
    out: list[Seq] = []
    raw = cs.subtract(cs.intersect(s, ((0x20, cs.MAX_CP),)), cs.from_chars('"\\'))
    out.extend(utf8_seqs(raw))
    for ch, letter in _SHORT.items():
        if cs.contains(s, ch):
            out.append((((0x5C, 0x5C),), ((letter, letter),)))
    for lo, hi in cs.intersect(s, ((0, 0xFFFF),)):
        out.extend(_BS_U + h for h in _hex4_seqs(lo, hi))
    for lo, hi in cs.intersect(s, ((0x10000, cs.MAX_CP),)):
        vlo, vhi = lo - 0x10000, hi - 0x10000
        hlo, hhi = vlo >> 10, vhi >> 10
        blocks = []  # (high surrogate range, low-surrogate offset range)
        if hlo == hhi:
            blocks.append((hlo, hlo, vlo & 0x3FF, vhi & 0x3FF))
        else:
            blocks.append((hlo, hlo, vlo & 0x3FF, 0x3FF))
            if hhi - hlo > 1:
                blocks.append((hlo + 1, hhi - 1, 0, 0x3FF))
            blocks.append((hhi, hhi, 0, vhi & 0x3FF))
        for h0, h1, l0, l1 in blocks:
            if h0 > h1 or l0 > l1:
                continue
            for hs in _hex4_seqs(0xD800 + h0, 0xD800 + h1):
                for ls in _hex4_seqs(0xDC00 + l0, 0xDC00 + l1):
                    out.append(_BS_U + hs + _BS_U + ls)
    return tuple(out)


class _TrieBuilder:
    """Deterministic byte tries over prefix-code sequences, with shared (hash-consed) nodes.

    Node ids are ``base + index``; leaf targets are passed through unchanged,
    so callers choose target values that cannot collide with node ids.
    """

    def __init__(self, base: int, max_nodes: int):
        self.base = base
        self.max_nodes = max_nodes
        self.nodes: list[tuple[tuple[int, int, int], ...]] = []
        self.node_ids: dict[tuple[tuple[int, int, int], ...], int] = {}
        self.memo: dict[tuple, tuple[tuple[int, int, int], ...]] = {}

    def build(self, items: list[tuple[Seq, int]], depth: int) -> tuple[tuple[int, int, int], ...]:
        """Transitions (lo, hi, dest) for the items' byte sets at ``depth``."""
        key = tuple(sorted((seq[depth:], t) for seq, t in items))
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        cuts = set()
        for seq, _ in items:
            for lo, hi in seq[depth]:
                cuts.add(lo)
                cuts.add(hi + 1)
        bounds = sorted(cuts)
        out: list[tuple[int, int, int]] = []
        for a, b in zip(bounds, bounds[1:]):
            hi = b - 1
            here = [(seq, t) for seq, t in items if any(lo <= a and hi <= h for lo, h in seq[depth])]
            if not here:
                continue
            ends = [t for seq, t in here if len(seq) == depth + 1]
            if ends:
                if len(ends) != len(here) or len(set(ends)) != 1:
                    raise AssertionError("encoding is not a prefix code")
                dest = ends[0]
            else:
                dest = self.node(self.build(here, depth + 1))
            if out and out[-1][2] == dest and out[-1][1] == a - 1:
                out[-1] = (out[-1][0], hi, dest)
            else:
                out.append((a, hi, dest))
        res = tuple(out)
        self.memo[key] = res
        return res

    def node(self, edges: tuple[tuple[int, int, int], ...]) -> int:
        nid = self.node_ids.get(edges)
        if nid is None:
            if len(self.nodes) >= self.max_nodes:
                raise CompileLimitError(f"byte-level DFA exceeds {self.max_nodes} states")
            nid = self.base + len(self.nodes)
            self.node_ids[edges] = nid
            self.nodes.append(edges)
        return nid


@functools.lru_cache(maxsize=256)
def decoder(classes: tuple[CharSet, ...], json: bool) -> tuple[tuple[tuple[int, int, int], ...], ...]:
    """Byte trie decoding one character into its class: node 0 is the root.

    Edge destinations ``d >= 0`` are nodes, ``d < 0`` mean "class ``-d-1`` complete".
    """
    enc = json_seqs if json else utf8_seqs
    tb = _TrieBuilder(1, 1 << 30)
    items = [(seq, -(c + 1)) for c, s in enumerate(classes) for seq in enc(s)]
    root = tb.build(items, 0) if items else ()
    return (root,) + tuple(tb.nodes)


def expand(dfa: CharDFA, json: bool, max_states: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte-level transitions and accepting flags for a character DFA.

    Each state's outgoing edges are the decoder trie with leaves replaced by
    the state's targets; subtries leading only to dead ends are dropped and
    identical instantiated nodes are shared across states.
    """
    n = dfa.n_states
    if n > max_states:
        raise CompileLimitError(f"DFA exceeds max_states={max_states} states")
    dec = decoder(tuple(dfa.classes), json)
    nodes: list[tuple[tuple[int, int, int], ...]] = []
    node_ids: dict[tuple[tuple[int, int, int], ...], int] = {}
    limit = max_states - n

    def inst(j: int, row: list[int], memo: dict[int, int]) -> int:
        got = memo.get(j)
        if got is not None:
            return got
        edges = []
        for lo, hi, d in dec[j]:
            if d < 0:
                t = row[-d - 1]
            else:
                t = inst(d, row, memo)
            if t < 0:
                continue
            if edges and edges[-1][2] == t and edges[-1][1] == lo - 1:
                edges[-1] = (edges[-1][0], hi, t)
            else:
                edges.append((lo, hi, t))
        if not edges:
            res = -1
        elif j == 0:
            res = -2  # root: not a node of its own
            memo[-1] = edges  # type: ignore[assignment]
            return res
        else:
            key = tuple(edges)
            res = node_ids.get(key, -1)
            if res < 0:
                if len(nodes) >= limit:
                    raise CompileLimitError(f"byte-level DFA exceeds max_states={max_states} states")
                res = n + len(nodes)
                node_ids[key] = res
                nodes.append(key)
        memo[j] = res
        return res

    rows: list = []
    for s in range(n):
        memo: dict = {}
        inst(0, dfa.trans[s], memo)
        rows.append(memo.get(-1, ()))
    total = n + len(nodes)
    src_l, lo_l, hi_l, dst_l = [], [], [], []
    for s, edges in enumerate(rows):
        for lo, hi, d in edges:
            src_l.append(s); lo_l.append(lo); hi_l.append(hi); dst_l.append(d)
    for j, edges in enumerate(nodes):
        for lo, hi, d in edges:
            src_l.append(n + j); lo_l.append(lo); hi_l.append(hi); dst_l.append(d)
    trans = np.full((total, 256), -1, dtype=np.int32)
    if src_l:
        lo_a = np.asarray(lo_l, dtype=np.int64)
        lens = np.asarray(hi_l, dtype=np.int64) - lo_a + 1
        starts = np.asarray(src_l, dtype=np.int64) * 256 + lo_a
        offs = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        trans.reshape(-1)[np.repeat(starts, lens) + offs] = np.repeat(np.asarray(dst_l, dtype=np.int32), lens)
    accepting = np.zeros(total, dtype=bool)
    accepting[:n] = dfa.accept
    return trans, accepting
