"""Character sets -> byte sequences (UTF-8 or JSON string encoding), and the
expansion of a character-class DFA into a byte DFA.

An encoding of a set is a list of *sequences*; each sequence is a tuple of
byte sets; each byte set is a tuple of inclusive ``(lo, hi)`` byte ranges.
Both encodings are prefix codes (no encoding of a character is a prefix of
another's), so expanding a deterministic character DFA edge by edge into
small byte tries keeps it deterministic.
"""
from __future__ import annotations

import bisect
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

# Characters JSON serializers never write as a \uXXXX escape: printable ASCII except the ones
# some of them escape (" \ by necessity, / by PHP, < > & ' by HTML-safe encoders such as Go's).
# "Canonical" string terminals refuse those escapes (see Terminal.canonical).
NEVER_ESCAPED: CharSet = cs.subtract(((0x20, 0x7E),), cs.from_chars('"\\/<>&\''))
_SHORT = {0x22: 0x22, 0x5C: 0x5C, 0x2F: 0x2F, 0x08: 0x62, 0x0C: 0x66, 0x0A: 0x6E, 0x0D: 0x72, 0x09: 0x74}


@functools.lru_cache(maxsize=4096)
def json_seqs(s: CharSet, canonical: bool = False) -> tuple[Seq, ...]:
    """All JSON string encodings (inside the quotes) of the characters in s (``canonical``:
    without \\u escapes of :data:`NEVER_ESCAPED` characters)."""
    out: list[Seq] = []
    raw = cs.subtract(cs.intersect(s, ((0x20, cs.MAX_CP),)), cs.from_chars('"\\'))
    out.extend(utf8_seqs(raw))
    for ch, letter in _SHORT.items():
        if cs.contains(s, ch):
            out.append((((0x5C, 0x5C),), ((letter, letter),)))
    bmp = cs.intersect(s, ((0, 0xFFFF),))
    if canonical:
        bmp = cs.subtract(bmp, NEVER_ESCAPED)
    for lo, hi in bmp:
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


def decoder(classes: tuple[CharSet, ...], json: bool, canonical: bool = False
            ) -> tuple[tuple[tuple[int, int, int], ...], ...]:
    """Byte trie decoding one character into its class: node 0 is the root.

    Edge destinations ``d >= 0`` are nodes, ``d < 0`` mean "class ``-d-1`` complete".
    Node ids grow from children to parents.  The tries of the two partitions every
    schema uses (one class of all characters; the ASCII partition) are constants of
    the encodings, kept for the process; the others are cached per partition.
    """
    key = (classes, json, canonical)
    got = _UNIVERSAL_DECODERS.get(key)
    if got is not None:
        return got
    if classes in _UNIVERSAL_PARTITIONS:
        got = _UNIVERSAL_DECODERS[key] = decoder_fast(classes, json, canonical)
        return got
    return _decoder_cached(classes, json, canonical)


@functools.lru_cache(maxsize=256)
def _decoder_cached(classes: tuple[CharSet, ...], json: bool, canonical: bool):
    return decoder_fast(classes, json, canonical)


_UNIVERSAL_DECODERS: dict[tuple, tuple] = {}


def decoder_reference(classes: tuple[CharSet, ...], json: bool, canonical: bool = False
                      ) -> tuple[tuple[tuple[int, int, int], ...], ...]:
    """:func:`decoder` from the explicit encodings of every class (reference for tests)."""
    enc = (lambda s: json_seqs(s, canonical)) if json else utf8_seqs
    tb = _TrieBuilder(1, 1 << 30)
    items = [(seq, -(c + 1)) for c, s in enumerate(classes) for seq in enc(s)]
    root = tb.build(items, 0) if items else ()
    return (root,) + tuple(tb.nodes)


def expand(dfa: CharDFA, json: bool, max_states: int, *, quoted: bool = False, canonical: bool = False
           ) -> tuple[np.ndarray, np.ndarray]:
    r"""Byte-level transitions and accepting flags for a character DFA (see :func:`expand_per_state`).

    One-class DFAs (length-only strings such as ``[\s\S]{0,4096}``) take a
    vectorized path: there every state's instantiated trie depends only on its
    single target, so the byte table is the decoder template stamped once per
    distinct target.
    """
    canonical = canonical and json
    if len(dfa.classes) == 1 and dfa.n_states > 8 and not canonical:
        return _expand_one_class(dfa, json, max_states, quoted)
    if canonical and dfa.n_states < CANONICAL_PER_STATE_UP_TO:
        # canonical escapes never spell printable ASCII, so on the ASCII partition every state's
        # escape and multi-byte subtries are shared and the per-state walk is nearly free
        ascii_dfa = _on_ascii_partition(dfa)
        if ascii_dfa is not dfa:
            return expand_per_state(ascii_dfa, json, max_states, quoted=quoted, canonical=canonical)
    if dfa.n_states >= VECTORIZE_FROM:
        return expand_vectorized(dfa, json, max_states, quoted=quoted, canonical=canonical)
    if len(dfa.classes) >= 6 or canonical:
        dfa = _on_ascii_partition(dfa)
    return expand_per_state(dfa, json, max_states, quoted=quoted, canonical=canonical)


# one class per printable ASCII character, controls, and everything from DEL up: a partition
# many small DFAs refine (e.g. "any key but these", whose classes are the keys' letters and the
# rest), so they share one decoder trie instead of building one each (~4 ms apiece)
_ASCII_PARTITION: tuple[CharSet, ...] = ((((0, 0x1F),),) + tuple(((c, c),) for c in range(0x20, 0x7F))
                                         + (cs.normalize([(0x7F, cs.MAX_CP)]),))


_UNIVERSAL_PARTITIONS = frozenset({(cs.ALL,), _ASCII_PARTITION})


def _on_ascii_partition(dfa: CharDFA) -> CharDFA:
    """``dfa`` over :data:`_ASCII_PARTITION` when every one of its classes is a union of those
    classes (same language); otherwise ``dfa`` itself."""
    col = _ascii_columns(tuple(dfa.classes))
    if col is None:
        return dfa
    arr = np.asarray(dfa.trans, dtype=np.int64).reshape(dfa.n_states, len(dfa.classes))
    cols = np.asarray(col, dtype=np.int64)
    trans = np.where(cols >= 0, arr[:, np.maximum(cols, 0)], -1) if len(dfa.classes) else \
        np.full((dfa.n_states, len(col)), -1, dtype=np.int64)
    return CharDFA(list(_ASCII_PARTITION), trans.tolist(), dfa.accept)


def _ascii_columns(classes: tuple[CharSet, ...]) -> list[int] | None:
    """For each class of :data:`_ASCII_PARTITION` the class of ``classes`` containing it (-1: none),
    or None if one of them is split between classes."""
    iv = sorted((lo, hi, i) for i, klass in enumerate(classes) for lo, hi in klass)
    los = [x[0] for x in iv]

    def owner(lo: int, hi: int) -> int | None:
        """The one class covering all of [lo, hi] (-1 if none covers any of it), else None."""
        j = bisect.bisect_right(los, lo) - 1
        if j >= 0 and iv[j][1] >= lo:        # lo is in interval j
            c, end = iv[j][2], iv[j][1]
            while end < hi:                  # the same class must continue without a gap
                j += 1
                if j >= len(iv) or iv[j][0] != end + 1 or iv[j][2] != c:
                    return None
                end = iv[j][1]
            return c
        nxt = iv[j + 1][0] if j + 1 < len(iv) else cs.MAX_CP + 1
        return -1 if nxt > hi else None

    # printable ASCII characters one by one, from the intervals that reach below DEL
    of = [-1] * 0x7F
    for lo, hi, i in iv:
        if lo >= 0x7F:
            break
        for c in range(lo, min(hi, 0x7E) + 1):
            of[c] = i
    controls = of[0]
    if any(x != controls for x in of[1:0x20]):
        return None
    tails = {owner(lo, hi) for lo, hi in _ASCII_PARTITION[-1]}   # DEL and up (minus surrogates)
    if len(tails) != 1 or None in tails:
        return None
    return [controls] + of[0x20:0x7F] + [tails.pop()]


# below this many character states the per-state expansion's Python loop is cheaper than numpy set-up
VECTORIZE_FROM = 48
CANONICAL_PER_STATE_UP_TO = 4000


def expand_vectorized(dfa: CharDFA, json: bool, max_states: int, *, quoted: bool = False,
                      canonical: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`expand_per_state` for all states at once, decoder node by decoder node (numpy).

    For decoder node j (children before parents) the instantiated node of state s
    is the row of its edges' targets: a class leaf's target is ``trans[s, class]``,
    a child's target is the child's instantiated node for s.  Rows are deduplicated
    per node, then identified across nodes by their 256-byte rows (what the
    per-state version keys nodes on: merged edge lists), so the result is the same
    minimal automaton up to state numbering.  Rows are compared through a random
    linear hash of the 256-byte row and every hash match is verified exactly.
    """
    n = dfa.n_states
    if n > max_states:
        raise CompileLimitError(f"DFA exceeds max_states={max_states} states")
    dec = decoder(tuple(dfa.classes), json, canonical and json)
    pad = 1 if quoted else 0
    limit = max_states - n - 2 * pad
    k = len(dfa.classes)
    T = np.asarray(dfa.trans, dtype=np.int64).reshape(n, k) if k else np.zeros((n, 0), np.int64)
    weights = np.random.default_rng(0x5EED).integers(1, 2**62, size=256, dtype=np.int64).astype(np.uint64)
    inst: list[np.ndarray | None] = [None] * len(dec)
    by_hash: dict[int, list[int]] = {}
    made_rows: list[np.ndarray] = []       # per block: the distinct new nodes' E-wide rows
    made_maps: list[np.ndarray] = []       # per block: byte -> edge column
    where: list[tuple[int, int]] = []      # node id - n -> (block, row)
    count = 0

    def columns(j: int) -> tuple[np.ndarray, np.ndarray]:
        edges = dec[j]
        cols = np.empty((n, len(edges) + 1), dtype=np.int64)
        cols[:, -1] = -1                   # the "no edge" column
        byte_edge = np.full(256, len(edges), dtype=np.int64)
        for e, (lo, hi, d) in enumerate(edges):
            cols[:, e] = T[:, -d - 1] if d < 0 else inst[d]
            byte_edge[lo:hi + 1] = e
        return cols, byte_edge

    def full_row(block: int, row: int) -> np.ndarray:
        return made_rows[block][row][made_maps[block]]

    for j in range(1, len(dec)):
        cols, byte_edge = columns(j)
        # a hash of each state's 256-byte row: sum over bytes of weight * target, i.e. per edge column
        w_edge = np.zeros(cols.shape[1], dtype=np.uint64)
        np.add.at(w_edge, byte_edge, weights)
        h = cols.astype(np.uint64) @ w_edge
        uh, first, inverse = np.unique(h, return_index=True, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        uniq = cols[first]
        if not (cols == uniq[inverse]).all():   # a hash collision inside this node: exact fallback
            uniq, inverse = np.unique(cols, axis=0, return_inverse=True)
            inverse = np.asarray(inverse).reshape(-1)
            uh = uniq.astype(np.uint64) @ w_edge
        live = np.nonzero(~(uniq < 0).all(axis=1))[0]
        got = np.full(len(uniq), -1, dtype=np.int64)
        block = len(made_rows)
        hashes = uh[live].tolist()
        seen = [hv in by_hash for hv in hashes]
        fresh: list[int] = []
        if any(seen):   # maybe equal to a node of an earlier block: verify the full rows
            for u, hv, was in zip(live.tolist(), hashes, seen):
                if not was:
                    continue
                mine = uniq[u][byte_edge]
                for cand in by_hash[hv]:
                    cb, cr = where[cand - n]
                    if np.array_equal(full_row(cb, cr), mine):
                        got[u] = cand
                        break
        todo = [u for u, was in zip(live.tolist(), seen) if not was or got[u] < 0] if any(seen) else live.tolist()
        if count + len(todo) > limit:
            raise CompileLimitError(f"byte-level DFA exceeds max_states={max_states} states")
        new_ids = range(n + count, n + count + len(todo))
        got[todo] = np.fromiter(new_ids, dtype=np.int64, count=len(todo))
        for u, nid in zip(todo, new_ids):
            lst = by_hash.get(int(uh[u]))
            if lst is None:
                by_hash[int(uh[u])] = [nid]
            else:
                lst.append(nid)
        where.extend((block, r) for r in range(len(todo)))
        count += len(todo)
        fresh = todo
        made_rows.append(uniq[fresh])
        made_maps.append(byte_edge)
        inst[j] = got[inverse]
    cols, byte_edge = columns(0)
    total = n + count
    trans = np.full((total + 2 * pad, 256), -1, dtype=np.int32)
    body = trans[pad:pad + total]
    body[:n] = cols[:, byte_edge]
    at = n
    for rows, bmap in zip(made_rows, made_maps):
        if len(rows):
            body[at:at + len(rows)] = rows[:, bmap]
            at += len(rows)
    if pad:
        np.add(body, pad, out=body, where=body >= 0)
    accepting = np.zeros(total + 2 * pad, dtype=bool)
    accepting[pad:pad + n] = dfa.accept
    return trans, accepting


def _expand_one_class(dfa: CharDFA, json: bool, max_states: int, quoted: bool) -> tuple[np.ndarray, np.ndarray]:
    n = dfa.n_states
    if n > max_states:
        raise CompileLimitError(f"DFA exceeds max_states={max_states} states")
    pad = 1 if quoted else 0
    dec = decoder(tuple(dfa.classes), json)
    nd = len(dec) - 1
    tpl = np.full((len(dec), 256), -1, dtype=np.int64)  # -1 dead, -2 class leaf, j >= 1 child node
    for j, edges in enumerate(dec):
        for lo, hi, d in edges:
            tpl[j, lo:hi + 1] = -2 if d < 0 else d
    targets = np.asarray([row[0] if row else -1 for row in dfa.trans], dtype=np.int64)
    uniq = np.unique(targets[targets >= 0])
    m = len(uniq)
    total = n + m * nd
    if total + 2 * pad > max_states:
        raise CompileLimitError(f"byte-level DFA exceeds max_states={max_states} states")
    trans = np.full((total + 2 * pad, 256), -1, dtype=np.int32)
    # node (u, j) of target uniq[u] and decoder node j >= 1 has id n + u * nd + j - 1 (before padding)
    body = trans[pad + n:pad + total].reshape(m, nd, 256)
    tgt = (uniq + pad).astype(np.int32)[:, None]
    node_base = (n + np.arange(m, dtype=np.int64) * nd - 1 + pad).astype(np.int32)[:, None]
    for j in range(1, nd + 1):
        row = tpl[j]
        leaf_cols = np.nonzero(row == -2)[0]
        if len(leaf_cols):
            body[:, j - 1, leaf_cols] = tgt
        for child in np.unique(row[row >= 1]):
            body[:, j - 1, np.nonzero(row == child)[0]] = node_base + int(child)
    live = targets >= 0
    u_of = np.searchsorted(uniq, targets[live])
    rows = trans[pad:pad + n]
    root = tpl[0]
    live_idx = np.nonzero(live)[0]
    leaf_cols = np.nonzero(root == -2)[0]
    if len(leaf_cols):
        rows[np.ix_(live_idx, leaf_cols)] = (targets[live] + pad).astype(np.int32)[:, None]
    for child in np.unique(root[root >= 1]):
        rows[np.ix_(live_idx, np.nonzero(root == child)[0])] = \
            (n + u_of * nd + int(child) - 1 + pad).astype(np.int32)[:, None]
    accepting = np.zeros(total + 2 * pad, dtype=bool)
    accepting[pad:pad + n] = dfa.accept
    return trans, accepting


def expand_per_state(dfa: CharDFA, json: bool, max_states: int, *, quoted: bool = False, canonical: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Byte-level transitions and accepting flags for a character DFA, state by state.

    Each state's outgoing edges are the decoder trie with leaves replaced by
    the state's targets; subtries leading only to dead ends are dropped and
    identical instantiated nodes are shared across states.

    ``quoted``: the table is built directly with room for the JSON quotes:
    row 0 is left for a new start state and the last row for the final
    state, the expansion's states shifted by one (the caller adds the quote
    transitions; this avoids copying a large table once more).
    """
    n = dfa.n_states
    if n > max_states:
        raise CompileLimitError(f"DFA exceeds max_states={max_states} states")
    dec = decoder(tuple(dfa.classes), json, canonical and json)
    pad = 1 if quoted else 0
    nodes: list[tuple[tuple[int, int, int], ...]] = []
    node_ids: dict[tuple[tuple[int, int, int], ...], int] = {}
    limit = max_states - n - 2 * pad

    under, child_of_edge, under_children, byte_col = _decoder_layout(dec, len(dfa.classes))
    # a subtrie whose classes all go to one target t instantiates the same for every state:
    # shared by (node, t), so each state only walks the paths to its other targets
    uniform: dict[tuple[int, int], int] = {}

    def inst(j: int, row: list[int], memo: dict[int, int], default: int, special: int) -> int:
        got = memo.get(j)
        if got is not None:
            return got
        same = j != 0 and not under[j] & special
        if same:
            got = uniform.get((j, default))
            if got is not None:
                memo[j] = got
                return got
        edges = []
        for lo, hi, d in dec[j]:
            if d < 0:
                t = row[-d - 1]
            else:
                t = uniform.get((d, default), -3) if not under[d] & special else -3
                if t == -3:
                    t = inst(d, row, memo, default, special)
            if t < 0:
                continue
            if edges and edges[-1][2] == t and edges[-1][1] == lo - 1:
                edges[-1] = (edges[-1][0], hi, t)
            else:
                edges.append((lo, hi, t))
        if not edges:
            res = -1
        else:
            key = tuple(edges)
            res = node_ids.get(key, -1)
            if res < 0:
                if len(nodes) >= limit:
                    raise CompileLimitError(f"byte-level DFA exceeds max_states={max_states} states")
                res = n + len(nodes)
                node_ids[key] = res
                nodes.append(key)
        if same:
            uniform[(j, default)] = res
        memo[j] = res
        return res

    # the root is instantiated for every state at once: its class leaves straight from the
    # transition table, its child subtries (multi-byte leads, escapes) per state as above
    child_inst = np.full((n, len(child_of_edge) + 1), -1, dtype=np.int64)   # last column: no edge
    k = len(dfa.classes)
    # each state's "default" target is the one of its largest class (most codepoints, so most of
    # the decoder trie); the other classes are "special" and only their paths are walked per state
    T = np.asarray(dfa.trans, dtype=np.int64).reshape(n, k) if k else np.zeros((n, 0), np.int64)
    big = _largest_class(tuple(dfa.classes)) if k else 0
    defaults = T[:, big].tolist() if k else [-1] * n
    rows_s, cols_s = np.nonzero(T != T[:, big:big + 1]) if k else (np.zeros(0, np.int64),) * 2
    specials = [0] * n
    for r, c in zip(rows_s.tolist(), cols_s.tolist()):
        specials[r] |= 1 << c
    by_default: dict[int, list[int]] = {}   # states whose root children are all uniform share them
    for s in range(n):
        default = defaults[s]
        special = specials[s]
        shared = not special & under_children
        vals = by_default.get(default) if shared else None
        if vals is None:
            memo: dict = {}
            row = dfa.trans[s]
            vals = []
            for d in child_of_edge:
                v = uniform.get((d, default)) if not under[d] & special else None
                vals.append(inst(d, row, memo, default, special) if v is None else v)
            if shared:
                by_default[default] = vals
        child_inst[s, :len(vals)] = vals
    cols = np.concatenate([T, child_inst], axis=1)
    trans, accepting = _table(n, [()] * n, nodes, pad, dfa.accept)
    body = trans[pad:pad + n]
    body[:] = cols[:, byte_col]
    if pad:
        np.add(body, pad, out=body, where=body >= 0)
    return trans, accepting


_LAYOUTS: dict[int, tuple] = {}


def _decoder_layout(dec: tuple, k: int) -> tuple[list[int], list[int], int, np.ndarray]:
    """Per decoder trie (cached with it): the classes under each node (bitmasks; children have
    smaller ids than parents), the root's child nodes, the classes under any of them, and the
    byte -> column map of the root (columns: k classes, then the children, then "no edge")."""
    got = _LAYOUTS.get(id(dec))
    if got is not None and got[0] is dec:
        return got[1]
    under = [0] * len(dec)
    for j in range(1, len(dec)):
        m = 0
        for lo, hi, d in dec[j]:
            m |= (1 << (-d - 1)) if d < 0 else under[d]
        under[j] = m
    root = dec[0]
    child_of_edge = [d for lo, hi, d in root if d >= 0]
    under_children = 0
    for d in child_of_edge:
        under_children |= under[d]
    byte_col = np.full(256, k + len(child_of_edge), dtype=np.int64)
    ci = 0
    for lo, hi, d in root:
        if d < 0:
            byte_col[lo:hi + 1] = -d - 1
        else:
            byte_col[lo:hi + 1] = k + ci
            ci += 1
    layout = (under, child_of_edge, under_children, byte_col)
    if len(_LAYOUTS) > 512:
        _LAYOUTS.clear()
    _LAYOUTS[id(dec)] = (dec, layout)   # keeps dec alive, so its id is not reused
    return layout


@functools.lru_cache(maxsize=512)
def _largest_class(classes: tuple[CharSet, ...]) -> int:
    return max(range(len(classes)), key=lambda c: sum(hi - lo + 1 for lo, hi in classes[c]))


def _table(n: int, rows: list, nodes: list, pad: int, accept: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Dense (total [+2], 256) table from per-state root edges and shared node edges."""
    total = n + len(nodes)
    flat = [(s, lo, hi, d) for s, edges in enumerate(rows) for lo, hi, d in edges]
    flat += [(n + j, lo, hi, d) for j, edges in enumerate(nodes) for lo, hi, d in edges]
    trans = np.full((total + 2 * pad, 256), -1, dtype=np.int32)
    if flat:
        e = np.array(flat, dtype=np.int64)
        lo_a = e[:, 1]
        lens = e[:, 2] - lo_a + 1
        starts = (e[:, 0] + pad) * 256 + lo_a
        offs = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        trans.reshape(-1)[np.repeat(starts, lens) + offs] = np.repeat((e[:, 3] + pad).astype(np.int32), lens)
    accepting = np.zeros(total + 2 * pad, dtype=bool)
    accepting[pad:pad + n] = accept
    return trans, accepting


_HEX_DIGIT_BYTES = tuple(_hex_byteset(d, d) for d in range(16))
_ALL_HEX: ByteSet = ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66))


class _DecoderBuilder:
    """Builds the same decoder trie as :func:`decoder_reference` by splitting codepoint blocks.

    Every byte position of an encoding selects a sub-block of codepoints (UTF-8
    continuation bytes: 64-way; ``\\uXXXX`` hex digits: 16-way).  A block whose
    codepoints all fall in one class (or in none) becomes a shared chain node
    without looking at its codepoints; only blocks containing a class boundary
    are split.  Nodes are hash-consed on their merged edge lists, as in
    :class:`_TrieBuilder`, so the result is the same DAG up to node numbering.
    """

    MIXED = -2

    def __init__(self, classes: tuple[CharSet, ...], canonical: bool = False):
        self.starts, self.ends, self.cls = self._intervals(classes)
        # \uXXXX escapes decode through their own table: without NEVER_ESCAPED when canonical
        self.e_starts, self.e_ends, self.e_cls = (
            self._intervals(tuple(cs.subtract(c, NEVER_ESCAPED) for c in classes)) if canonical
            else (self.starts, self.ends, self.cls))
        self.nodes: list[tuple[tuple[int, int, int], ...]] = []
        self.ids: dict[tuple[tuple[int, int, int], ...], int] = {}
        self.memo: dict[tuple, int | None] = {}

    @staticmethod
    def _intervals(classes: tuple[CharSet, ...]) -> tuple[list[int], list[int], list[int]]:
        iv = sorted((lo, hi, c) for c, s in enumerate(classes) for lo, hi in s)
        starts, ends, cls = [], [], []
        prev = 0
        for lo, hi, c in iv:
            if lo > prev:
                starts.append(prev); ends.append(lo - 1); cls.append(-1)
            starts.append(lo); ends.append(hi); cls.append(c)
            prev = hi + 1
        starts.append(prev); ends.append(0x1FFFFF); cls.append(-1)
        return starts, ends, cls

    def const(self, a: int, b: int) -> int:
        """Class of every codepoint in [a, b], -1 if none is in a class, MIXED otherwise."""
        i = bisect.bisect_right(self.starts, a) - 1
        return self.cls[i] if self.ends[i] >= b else self.MIXED

    def const_esc(self, a: int, b: int) -> int:
        """:meth:`const` for codepoints written as \\u escapes."""
        i = bisect.bisect_right(self.e_starts, a) - 1
        return self.e_cls[i] if self.e_ends[i] >= b else self.MIXED

    def node(self, edges: list[tuple[int, int, int | None]]) -> int | None:
        out: list[tuple[int, int, int]] = []
        for lo, hi, d in sorted((e for e in edges if e[2] is not None), key=lambda e: e[0]):
            if out and out[-1][2] == d and out[-1][1] == lo - 1:
                out[-1] = (out[-1][0], hi, d)
            else:
                out.append((lo, hi, d))
        if not out:
            return None
        key = tuple(out)
        nid = self.ids.get(key)
        if nid is None:
            nid = len(self.nodes) + 1
            self.ids[key] = nid
            self.nodes.append(key)
        return nid

    @staticmethod
    def leaf(c: int) -> int | None:
        return None if c < 0 else -(c + 1)

    # --- UTF-8 continuation bytes
    def const_cont(self, c: int, levels: int) -> int | None:
        if levels == 0:
            return self.leaf(c)
        key = ("cc", c, levels)
        if key not in self.memo:
            self.memo[key] = self.node([(0x80, 0xBF, self.const_cont(c, levels - 1))])
        return self.memo[key]

    def cont(self, base: int, levels: int, lo_i: int = 0, hi_i: int = 63) -> int | None:
        """Node reading ``levels`` continuation bytes for codepoints base..base+64**levels-1,
        the first byte restricted to indices lo_i..hi_i."""
        sub = 64 ** (levels - 1)
        c = self.const(base + lo_i * sub, base + (hi_i + 1) * sub - 1)
        if c != self.MIXED:
            if c < 0:
                return None
            return self.node([(0x80 + lo_i, 0x80 + hi_i, self.const_cont(c, levels - 1))])
        edges = []
        for i in range(lo_i, hi_i + 1):
            b0 = base + i * sub
            d = self.leaf(self.const(b0, b0)) if levels == 1 else self.cont(b0, levels - 1)
            edges.append((0x80 + i, 0x80 + i, d))
        return self.node(edges)

    def utf8_multibyte_edges(self) -> list[tuple[int, int, int | None]]:
        edges = []
        for lead in range(0xC2, 0xE0):
            edges.append((lead, lead, self.cont((lead - 0xC0) << 6, 1)))
        for lead in range(0xE0, 0xF0):
            edges.append((lead, lead, self.cont((lead - 0xE0) << 12, 2, 0x20 if lead == 0xE0 else 0)))
        for lead in range(0xF0, 0xF5):
            edges.append((lead, lead, self.cont((lead - 0xF0) << 18, 3, 0x10 if lead == 0xF0 else 0,
                                                0x0F if lead == 0xF4 else 63)))
        return edges

    # --- \uXXXX escapes
    def const_hex(self, target: tuple, r: int) -> int | None:
        """``r`` arbitrary hex digits, then ``target`` (("leaf", c) or ("pair", c))."""
        key = ("ch", target, r)
        if key not in self.memo:
            if r == 0:
                kind, c = target
                res = self.leaf(c) if kind == "leaf" else self.pair_const(c)
            else:
                child = self.const_hex(target, r - 1)
                res = self.node([(lo, hi, child) for lo, hi in _ALL_HEX])
            self.memo[key] = res
        return self.memo[key]

    def pair_const(self, c: int) -> int | None:
        """After a high surrogate whose 1024 code points are all in class c."""
        return self._after_high(("const", c))

    def _after_high(self, low_spec: tuple) -> int | None:
        key = ("ah", low_spec)
        if key not in self.memo:
            if low_spec[0] == "const":
                low = self.hexr(0, 4, 0xDC00, 0xDFFF, None, False, const_class=low_spec[1])
            else:
                low = self.hexr(0, 4, 0xDC00, 0xDFFF, low_spec[1], False)
            u = self.node([(0x75, 0x75, low)])
            self.memo[key] = self.node([(0x5C, 0x5C, u)])
        return self.memo[key]

    def hexr(self, vbase: int, r: int, wlo: int, whi: int, off: int | None, pairs: bool,
             const_class: int | None = None) -> int | None:
        """Read ``r`` hex digits of a value in [vbase, vbase+16**r) ∩ [wlo, whi]; the value v
        decodes to codepoint v + off (or, with ``pairs``, high surrogates continue with a low one)."""
        key = ("hx", vbase, r, wlo, whi, off, pairs, const_class)
        if key in self.memo:
            return self.memo[key]
        vhi = vbase + 16 ** r - 1
        a, b = max(vbase, wlo), min(vhi, whi)
        res: int | None
        if a > b:
            res = None
        else:
            special = pairs and not (b < 0xD800 or a > 0xDBFF)
            full = a == vbase and b == vhi
            if special:
                cp_lo = 0x10000 + ((max(a, 0xD800) - 0xD800) << 10)
                cp_hi = 0x10000 + ((min(b, 0xDBFF) - 0xD800 + 1) << 10) - 1
                c = self.const_esc(cp_lo, cp_hi)
                if full and 0xD800 <= a and b <= 0xDBFF and c != self.MIXED:
                    res = None if c < 0 else self.const_hex(("pair", c), r)
                elif r == 0:
                    res = self._after_high(("off", 0x10000 + ((vbase - 0xD800) << 10) - 0xDC00))
                else:
                    res = self._split_hex(vbase, r, wlo, whi, off, pairs, const_class)
            else:
                if const_class is not None:
                    c = const_class
                else:
                    c = self.const_esc(a + off, b + off) if r > 0 or True else self.MIXED
                if c != self.MIXED and (full or r == 0):
                    res = None if c < 0 else self.const_hex(("leaf", c), r)
                else:
                    res = self._split_hex(vbase, r, wlo, whi, off, pairs, const_class)
        self.memo[key] = res
        return res

    def _split_hex(self, vbase, r, wlo, whi, off, pairs, const_class) -> int | None:
        sub = 16 ** (r - 1)
        edges = []
        for d in range(16):
            child = self.hexr(vbase + d * sub, r - 1, wlo, whi, off, pairs, const_class)
            for lo, hi in _HEX_DIGIT_BYTES[d]:
                edges.append((lo, hi, child))
        return self.node(edges)

    def build(self, json: bool) -> tuple[tuple[tuple[int, int, int], ...], ...]:
        root: list[tuple[int, int, int | None]] = []
        for byte in range(0x80):
            if json and (byte < 0x20 or byte in (0x22, 0x5C)):
                continue
            root.append((byte, byte, self.leaf(self.const(byte, byte))))
        root += self.utf8_multibyte_edges()
        if json:
            esc = [(letter, letter, self.leaf(self.const(ch, ch))) for ch, letter in _SHORT.items()]
            esc.append((0x75, 0x75, self.hexr(0, 4, 0, 0xFFFF, 0, True)))
            root.append((0x5C, 0x5C, self.node(esc)))
        # the root is not a node of its own: merge its edges the same way without registering it
        out: list[tuple[int, int, int]] = []
        for lo, hi, d in sorted((e for e in root if e[2] is not None), key=lambda e: e[0]):
            if out and out[-1][2] == d and out[-1][1] == lo - 1:
                out[-1] = (out[-1][0], hi, d)
            else:
                out.append((lo, hi, d))
        return (tuple(out),) + tuple(self.nodes)


def decoder_fast(classes: tuple[CharSet, ...], json: bool, canonical: bool = False
                 ) -> tuple[tuple[tuple[int, int, int], ...], ...]:
    """:func:`decoder_reference`'s trie, built by splitting codepoint blocks at class boundaries."""
    return _DecoderBuilder(classes, canonical and json).build(json)
