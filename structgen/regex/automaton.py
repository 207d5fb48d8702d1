"""Codepoint-level DFAs: AST -> Glushkov position automaton -> subset DFA -> minimal, trimmed.

Working on character *classes* (a partition of the codepoints the pattern
distinguishes) keeps the alphabet tiny; the byte-level expansion happens
afterwards in :mod:`structgen.regex.encode`.  The Glushkov construction has no
epsilon moves and sets of positions are Python ints (bitsets), so subset
construction is a handful of big-int ANDs per state.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import CompileLimitError
from . import charset as cs
from .charset import CharSet
from .parser import Node


@dataclass
class CharDFA:
    """DFA over character classes: ``trans[s][c]`` is the target or -1; state 0 is the start."""

    classes: list[CharSet]
    trans: list[list[int]]
    accept: list[bool]

    @property
    def n_states(self) -> int:
        return len(self.trans)


class _Glushkov:
    def __init__(self, max_positions: int, max_repeat: int):
        self.labels: list[CharSet] = [cs.EMPTY]  # position 0 = the virtual start
        self.follow: list[int] = [0]
        self.max_positions = max_positions
        self.max_repeat = max_repeat

    def add_follow(self, last: int, targets: int) -> None:
        if not targets:
            return
        follow = self.follow
        while last:
            low = last & -last
            p = low.bit_length() - 1
            follow[p] |= targets
            last ^= low

    def build(self, node: Node) -> tuple[int, int, bool]:
        """Return (first, last, nullable) of ``node``; positions are bit indices."""
        k = node[0]
        if k == "set":
            if not node[1]:
                return 0, 0, False
            p = len(self.labels)
            if p > self.max_positions:
                raise CompileLimitError(f"regex too large: more than {self.max_positions} character positions")
            self.labels.append(node[1])
            self.follow.append(0)
            b = 1 << p
            return b, b, False
        if k == "empty" or k == "anchor":
            return 0, 0, True
        if k == "alt":
            first = last = 0
            nullable = False
            for c in node[1]:
                f, l_, n = self.build(c)
                first |= f
                last |= l_
                nullable |= n
            return first, last, nullable
        if k == "cat":
            return self.concat([self.build(c) for c in node[1]])
        if k == "rep":
            return self.repeat(node[1], node[2], node[3])
        raise AssertionError(k)

    def concat(self, parts: list[tuple[int, int, bool]]) -> tuple[int, int, bool]:
        # suffix firsts: F_i = first_i | (F_{i+1} if nullable_i)
        suffix_first = 0
        for f, l_, n in reversed(parts):
            self.add_follow(l_, suffix_first)
            suffix_first = f | (suffix_first if n else 0)
        first = suffix_first
        last = 0
        nullable = True
        for f, l_, n in reversed(parts):
            last |= l_
            if not n:
                nullable = False
                break
        if nullable:
            nullable = all(n for _, _, n in parts)
        return first, last, nullable

    def repeat(self, inner: Node, lo: int, hi: int | None) -> tuple[int, int, bool]:
        bound = hi if hi is not None else lo
        if bound > self.max_repeat:
            raise CompileLimitError(f"repetition count {bound} exceeds the state limit {self.max_repeat}")
        if hi == 0:
            return 0, 0, True
        if hi is None:
            copies = [self.build(inner) for _ in range(max(lo, 1))]
            f, l_, n = copies[-1]
            self.add_follow(l_, f)  # loop on the last copy
            if lo == 0:
                return f, l_, True
            return self.concat(copies)
        copies = [self.build(inner) for _ in range(hi)]
        if any(n for _, _, n in copies):
            # nullable body: x{lo,hi} == x{0,hi}; plain concatenation of nullable copies
            return self.concat(copies)
        # non-nullable body: chain c1 -> c2 -> ... ; may stop after any copy >= lo
        for (f1, l1, _), (f2, _, _) in zip(copies, copies[1:]):
            self.add_follow(l1, f2)
        last = 0
        for j in range(max(lo, 1) - 1, hi):
            last |= copies[j][1]
        return copies[0][0], last, lo == 0


def partition(sets: list[CharSet]) -> tuple[list[CharSet], list[int]]:
    """Split codepoints into classes no set distinguishes.

    Returns (classes, membership) where ``membership[i]`` is a bitmask of the
    classes contained in ``sets[i]``.  Codepoints in no set get no class.
    """
    cuts = set()
    for s in sets:
        for lo, hi in s:
            cuts.add(lo)
            cuts.add(hi + 1)
    bounds = sorted(cuts)
    # atoms are [bounds[a], bounds[a+1]-1]
    sig = [0] * max(len(bounds) - 1, 0)
    for i, s in enumerate(sets):
        bit = 1 << i
        for lo, hi in s:
            a = bisect.bisect_left(bounds, lo)
            b = bisect.bisect_left(bounds, hi + 1)
            for t in range(a, b):
                sig[t] |= bit
    by_sig: dict[int, list[tuple[int, int]]] = {}
    for t, sgn in enumerate(sig):
        if sgn:
            by_sig.setdefault(sgn, []).append((bounds[t], bounds[t + 1] - 1))
    classes = []
    membership = [0] * len(sets)
    for c, (sgn, ranges) in enumerate(by_sig.items()):
        classes.append(cs.normalize(ranges))
        i = 0
        while sgn:
            if sgn & 1:
                membership[i] |= 1 << c
            sgn >>= 1
            i += 1
    return classes, membership


def ast_to_dfa(node: Node, max_states: int) -> CharDFA:
    """Glushkov automaton + subset construction; minimized and trimmed."""
    g = _Glushkov(max_positions=max(20 * max_states, 1000), max_repeat=max_states)
    first, last, nullable = g.build(node)
    g.follow[0] = first
    uniq: dict[CharSet, int] = {}
    pos_bits: list[int] = []
    for p, lab in enumerate(g.labels):
        if p == 0:
            continue
        u = uniq.setdefault(lab, len(uniq))
        if u == len(pos_bits):
            pos_bits.append(0)
        pos_bits[u] |= 1 << p
    classes, membership = partition(list(uniq))
    k = len(classes)
    posmask = [0] * k
    for u, mem in enumerate(membership):
        c = 0
        while mem:
            if mem & 1:
                posmask[c] |= pos_bits[u]
            mem >>= 1
            c += 1
    follow = g.follow
    ids: dict[int, int] = {1: 0}
    order = [1]
    trans: list[list[int]] = []
    accept: list[bool] = []
    i = 0
    while i < len(order):
        S = order[i]
        i += 1
        accept.append(bool(S & last) or (S == 1 and nullable))
        F = 0
        x = S
        while x:
            low = x & -x
            F |= follow[low.bit_length() - 1]
            x ^= low
        row = [-1] * k
        if F:
            for c in range(k):
                T = F & posmask[c]
                if T:
                    t = ids.get(T)
                    if t is None:
                        t = len(order)
                        if t >= max_states:
                            raise CompileLimitError(
                                f"regex DFA exceeds max_states={max_states} states")
                        ids[T] = t
                        order.append(T)
                    row[c] = t
        trans.append(row)
    return minimize(CharDFA(classes, trans, accept))


def minimize(dfa: CharDFA) -> CharDFA:
    """Hopcroft minimization, then drop states that cannot reach acceptance (numba, see fastmin.py)."""
    from .fastmin import minimize_arrays
    n, k = len(dfa.trans), len(dfa.classes)
    arr = np.array(dfa.trans, dtype=np.int32).reshape(n, k)
    out, acc = minimize_arrays(arr, np.array(dfa.accept, dtype=np.bool_))
    return CharDFA(dfa.classes, out.tolist(), acc.tolist())


def minimize_reference(dfa: CharDFA) -> CharDFA:
    """:func:`minimize` in pure Python (the reference the numba version is tested against)."""
    trans, accept = dfa.trans, dfa.accept
    n, k = len(trans), len(dfa.classes)
    sink = n
    N = n + 1
    inv: list[list[list[int]]] = [[[] for _ in range(N)] for _ in range(k)]
    for s, row in enumerate(trans):
        for c, t in enumerate(row):
            inv[c][t if t >= 0 else sink].append(s)
    for c in range(k):
        inv[c][sink].append(sink)
    acc = [s for s in range(n) if accept[s]]
    rej = [s for s in range(N) if s == sink or not accept[s]]
    blocks: list[set[int]] = []
    block_of = [0] * N
    for grp in (acc, rej):
        if grp:
            for s in grp:
                block_of[s] = len(blocks)
            blocks.append(set(grp))
    work: deque[tuple[int, int]] = deque()
    in_work: set[tuple[int, int]] = set()
    if len(blocks) == 2:
        small = 0 if len(blocks[0]) <= len(blocks[1]) else 1
        for c in range(k):
            work.append((small, c))
            in_work.add((small, c))
    while work:
        b, c = work.popleft()
        in_work.discard((b, c))
        inv_c = inv[c]
        hit: dict[int, set[int]] = {}
        for t in blocks[b]:
            for s in inv_c[t]:
                hit.setdefault(block_of[s], set()).add(s)
        for bid, part in hit.items():
            B = blocks[bid]
            if len(part) == len(B):
                continue
            rest = B - part
            small_set, large_set = (part, rest) if len(part) <= len(rest) else (rest, part)
            new_id = len(blocks)
            blocks[bid] = large_set
            blocks.append(small_set)
            for s in small_set:
                block_of[s] = new_id
            for cc in range(k):
                if (bid, cc) in in_work:
                    work.append((new_id, cc))
                    in_work.add((new_id, cc))
                elif len(small_set) <= len(large_set):
                    work.append((new_id, cc))
                    in_work.add((new_id, cc))
    # live blocks: can reach an accepting block
    nb = len(blocks)
    brow = [[-1] * k for _ in range(nb)]
    bacc = [False] * nb
    for bid, B in enumerate(blocks):
        s = next(iter(B))
        if s != sink:
            bacc[bid] = accept[s]
            for c, t in enumerate(trans[s]):
                brow[bid][c] = block_of[t if t >= 0 else sink]
        else:
            brow[bid] = [bid] * k
    radj: list[list[int]] = [[] for _ in range(nb)]
    for bid in range(nb):
        for t in brow[bid]:
            radj[t].append(bid)
    live = [False] * nb
    stack = [b for b in range(nb) if bacc[b]]
    for b in stack:
        live[b] = True
    while stack:
        b = stack.pop()
        for a in radj[b]:
            if not live[a]:
                live[a] = True
                stack.append(a)
    # renumber by BFS from the start block (state 0 first)
    start = block_of[0]
    if not live[start]:
        return CharDFA(dfa.classes, [[-1] * k], [False])
    new_id = {start: 0}
    order = [start]
    j = 0
    while j < len(order):
        b = order[j]
        j += 1
        for t in brow[b]:
            if live[t] and t not in new_id:
                new_id[t] = len(order)
                order.append(t)
    out_trans = [[new_id[t] if live[t] else -1 for t in brow[b]] for b in order]
    return CharDFA(dfa.classes, out_trans, [bacc[b] for b in order])


def complement(a: CharDFA) -> CharDFA:
    """Every string of code points that ``a`` rejects (minimal, trimmed).

    The DFA is completed first: code points in none of its classes get a class of
    their own, and every missing transition goes to an accepting sink.
    """
    covered = cs.union(*a.classes) if a.classes else ()
    rest = cs.subtract(cs.ALL, covered)
    classes = list(a.classes) + ([rest] if rest else [])
    k = len(classes)
    n = a.n_states
    sink = n
    trans = [[t if t >= 0 else sink for t in row] + ([sink] if rest else []) for row in a.trans]
    trans.append([sink] * k)
    accept = [not x for x in a.accept] + [True]
    if n == 0:                      # the empty language: its complement is everything
        trans, accept = [[0] * k], [True]
    return minimize(CharDFA(classes, trans, accept))


def intersect(a: CharDFA, b: CharDFA, max_states: int, *, reference: bool = False) -> CharDFA:
    """Product construction over the common refinement of both class partitions.

    The product BFS runs in numba (fastmin.product_bfs) when the pair table fits;
    ``reference=True`` forces the pure-Python loop (tests compare the two).
    """
    classes, membership = partition(list(a.classes) + list(b.classes))
    ka = len(a.classes)
    # class of the refinement -> (class in a, class in b); missing side means dead
    pair: list[tuple[int, int]] = [(-1, -1)] * len(classes)
    for i, mem in enumerate(membership):
        c = 0
        while mem:
            if mem & 1:
                x, y = pair[c]
                pair[c] = (i, y) if i < ka else (x, i - ka)
            mem >>= 1
            c += 1
    used = [c for c, (x, y) in enumerate(pair) if x >= 0 and y >= 0]
    new_classes = [classes[c] for c in used]
    pairs = [pair[c] for c in used]
    if a.n_states * b.n_states <= 8_000_000 and pairs and not reference:
        from .fastmin import minimize_arrays, product_bfs
        ta = np.array(a.trans, dtype=np.int32).reshape(a.n_states, ka)[:, [x for x, _ in pairs]]
        tb = np.array(b.trans, dtype=np.int32).reshape(b.n_states, len(b.classes))[:, [y for _, y in pairs]]
        trans_arr, acc_arr, n = product_bfs(np.ascontiguousarray(ta), np.ascontiguousarray(tb),
                                            np.array(a.accept, dtype=np.bool_), np.array(b.accept, dtype=np.bool_),
                                            max_states)
        if n < 0:
            raise CompileLimitError(f"intersection DFA exceeds max_states={max_states} states")
        out, oacc = minimize_arrays(trans_arr[:n], acc_arr[:n])
        return CharDFA(new_classes, out.tolist(), oacc.tolist())
    ids = {(0, 0): 0}
    order = [(0, 0)]
    trans, accept = [], []
    i = 0
    while i < len(order):
        sa, sb = order[i]
        i += 1
        accept.append(a.accept[sa] and b.accept[sb])
        ra, rb = a.trans[sa], b.trans[sb]
        row = []
        for x, y in pairs:
            ta, tb = ra[x], rb[y]
            if ta < 0 or tb < 0:
                row.append(-1)
                continue
            key = (ta, tb)
            t = ids.get(key)
            if t is None:
                t = len(order)
                if t >= max_states:
                    raise CompileLimitError(f"intersection DFA exceeds max_states={max_states} states")
                ids[key] = t
                order.append(key)
            row.append(t)
        trans.append(row)
    return minimize(CharDFA(new_classes, trans, accept))
