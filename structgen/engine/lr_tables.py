"""LR(0) automaton with FOLLOW-filtered reductions: tables for the GLR mask path.

Why LR(0) + FOLLOW and not LALR(1): the parser that uses these tables is a
GLR-style one (a *set* of persistent stacks, see ``lr_parser.py``), so
conflicts are allowed, they just fork stacks.  Filtering a reduction by
``FOLLOW(lhs)`` only prunes forks that can never shift the lookahead, so the
parser stays exact for every context-free grammar while LALR lookahead
computation (slow in pure Python: 0.65 s for the SQL grammar with lark's
analyzer) is skipped.  Building LR(0) states is a few milliseconds for the
shipped grammars; a state budget keeps pathological grammars on the Earley
path.

Symbols follow :mod:`earley`: nonterminal ``n >= 0``, terminal ``t`` encoded
as ``-(t + 1)``.  Production 0 is ``<start> -> S`` and nothing else derives
``<start>``, so "reduce production 0 on end-of-input" means *accept*.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_LR_STATES = 20_000
MAX_TABLE_CELLS = 40_000_000   # follow bitmap nts x terminals; beyond it the Earley path is used


class LRBudgetExceeded(Exception):
    """The grammar's LR(0) automaton is larger than the budget (use the Earley path)."""


@dataclass
class LRTables:
    n_states: int
    n_terminals: int            # END is terminal index n_terminals
    # CSR per state, sorted by symbol (binary-searched in the kernel)
    sh_start: np.ndarray        # int32 [S+1]
    sh_term: np.ndarray         # int32: terminal ids
    sh_to: np.ndarray           # int32: target states
    gt_start: np.ndarray        # int32 [S+1]
    gt_nt: np.ndarray           # int32: nonterminal ids
    gt_to: np.ndarray           # int32
    rd_start: np.ndarray        # int32 [S+1]
    rd_prod: np.ndarray         # int32: productions completed in the state
    prod_lhs: np.ndarray        # int32 [P]
    prod_len: np.ndarray        # int32 [P]
    follow: np.ndarray          # bool [N, T+1]: terminal (or END) may follow the nonterminal
    follow_bits: np.ndarray     # uint64 [N, ceil((T+1)/64)]: the same as bitsets
    # the same tables as Python containers, for the per-token (reference) parser
    shift: list[dict[int, int]]
    goto: list[dict[int, int]]
    reductions: list[tuple[int, ...]]
    follow_sets: list[frozenset[int]]

    @property
    def end(self) -> int:
        return self.n_terminals


def _first_and_follow(rhs_of: list[tuple[int, ...]], lhs_of: list[int], n_nt: int, n_term: int,
                      nullable: list[bool]) -> list[set[int]]:
    """FOLLOW sets (terminal ids, END = n_term) by the textbook fixpoint."""
    first: list[set[int]] = [set() for _ in range(n_nt)]
    changed = True
    while changed:
        changed = False
        for rhs, a in zip(rhs_of, lhs_of):
            fa = first[a]
            before = len(fa)
            for s in rhs:
                if s < 0:
                    fa.add(-s - 1)
                    break
                fa |= first[s]
                if not nullable[s]:
                    break
            if len(fa) != before:
                changed = True
    follow: list[set[int]] = [set() for _ in range(n_nt)]
    follow[lhs_of[0]].add(n_term)
    changed = True
    while changed:
        changed = False
        for rhs, a in zip(rhs_of, lhs_of):
            # walk right to left carrying what can follow position i
            trailer = set(follow[a])
            for s in reversed(rhs):
                if s < 0:
                    trailer = {-s - 1}
                    continue
                fs = follow[s]
                before = len(fs)
                fs |= trailer
                if len(fs) != before:
                    changed = True
                if nullable[s]:
                    trailer = trailer | first[s]
                else:
                    trailer = set(first[s])
    return follow


def _refuse_hidden_left_recursion(rhs_of, lhs_of, n_nt: int, nullable: list[bool]) -> None:
    """Hidden left recursion (``s: a s | "x"`` with ``a`` nullable) lets LR(0) stacks grow
    without bound inside one reduction search (empty ``a`` reduced again and again), so such
    grammars stay on Earley.

    Left-corner graph: N -> M for each production N -> X1..Xk M ... whose X1..Xk are
    all nullable; an edge is *hidden* when k >= 1.  A cycle through a hidden edge is
    refused.  (The mask kernel also gives up past a node budget, so a case this misses
    still falls back to Earley, only later.)
    """
    edges: list[set[tuple[int, bool]]] = [set() for _ in range(n_nt)]
    for rhs, a in zip(rhs_of, lhs_of):
        for k, sym in enumerate(rhs):
            if sym < 0:
                break
            edges[a].add((sym, k > 0))
            if not nullable[sym]:
                break
    # strongly connected components (iterative Tarjan); refuse a hidden edge inside one
    index = [-1] * n_nt
    low = [0] * n_nt
    comp = [-1] * n_nt
    on_stack = [False] * n_nt
    order: list[int] = []
    counter = 0
    n_comp = 0
    for root in range(n_nt):
        if index[root] >= 0:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        order.append(root)
        on_stack[root] = True
        while work:
            v, it = work[-1]
            advanced = False
            for (w, _hidden) in it:
                if index[w] < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    order.append(w)
                    on_stack[w] = True
                    work.append((w, iter(edges[w])))
                    advanced = True
                    break
                if on_stack[w]:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                while True:
                    w = order.pop()
                    on_stack[w] = False
                    comp[w] = n_comp
                    if w == v:
                        break
                n_comp += 1
    for a in range(n_nt):
        for (m, hidden) in edges[a]:
            if hidden and comp[a] == comp[m]:
                raise LRBudgetExceeded("hidden left recursion: empty reductions can grow a stack without bound")


def _csr(rows: list[list[tuple[int, int]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    start = np.zeros(len(rows) + 1, dtype=np.int32)
    keys: list[int] = []
    vals: list[int] = []
    for i, row in enumerate(rows):
        row = sorted(row)
        keys.extend(k for k, _ in row)
        vals.extend(v for _, v in row)
        start[i + 1] = len(keys)
    return start, np.array(keys, dtype=np.int32), np.array(vals, dtype=np.int32)


def build_lr_tables(rhs_of: list[tuple[int, ...]], lhs_of: list[int], n_nt: int, n_term: int,
                    nullable: list[bool], *, max_states: int | None = None) -> LRTables:
    """The LR(0) automaton of the grammar (production 0 = ``<start> -> S``), with FOLLOW sets.

    Raises :class:`LRBudgetExceeded` when it would have more than ``max_states`` states.
    """
    if max_states is None:
        max_states = MAX_LR_STATES
    if n_nt * (n_term + 1) > MAX_TABLE_CELLS:
        raise LRBudgetExceeded(f"{n_nt} nonterminals x {n_term} terminals")
    _refuse_hidden_left_recursion(rhs_of, lhs_of, n_nt, nullable)
    by_lhs: list[list[int]] = [[] for _ in range(n_nt)]
    for q, a in enumerate(lhs_of):
        by_lhs[a].append(q)
    # nonterminals a closure predicts from N: N and, transitively, every
    # nonterminal that starts one of their productions
    left: list[set[int]] = [set() for _ in range(n_nt)]
    for q, rhs in enumerate(rhs_of):
        if rhs and rhs[0] >= 0:
            left[lhs_of[q]].add(rhs[0])
    pred_cache: dict[int, tuple[int, ...]] = {}

    def predicted(nt: int) -> tuple[int, ...]:
        got = pred_cache.get(nt)
        if got is None:
            seen = {nt}
            order = [nt]
            i = 0
            while i < len(order):
                for b in left[order[i]]:
                    if b not in seen:
                        seen.add(b)
                        order.append(b)
                i += 1
            got = pred_cache[nt] = tuple(order)
        return got

    # what predicting a nonterminal contributes: moves over the first symbol, empty reductions
    own_moves: list[dict[int, list[tuple[int, int]]] | None] = [None] * n_nt
    own_empty: list[list[int]] = [[] for _ in range(n_nt)]
    for a in range(n_nt):
        moves: dict[int, list[tuple[int, int]]] = {}
        for q in by_lhs[a]:
            rhs = rhs_of[q]
            if rhs:
                moves.setdefault(rhs[0], []).append((q, 1))
            else:
                own_empty[a].append(q)
        own_moves[a] = moves

    kernels: list[frozenset[tuple[int, int]]] = [frozenset({(0, 0)})]
    ids: dict[frozenset[tuple[int, int]], int] = {kernels[0]: 0}
    shift_rows: list[list[tuple[int, int]]] = []
    goto_rows: list[list[tuple[int, int]]] = []
    reduce_rows: list[tuple[int, ...]] = []
    i = 0
    while i < len(kernels):
        kernel = kernels[i]
        succ: dict[int, set[tuple[int, int]]] = {}
        reds: set[int] = set()
        preds: set[int] = set()
        for (p, d) in kernel:
            rhs = rhs_of[p]
            if d == len(rhs):
                reds.add(p)
                continue
            sym = rhs[d]
            succ.setdefault(sym, set()).add((p, d + 1))
            if sym >= 0:
                preds.update(predicted(sym))
        for nt in preds:
            for sym, items in own_moves[nt].items():
                succ.setdefault(sym, set()).update(items)
            reds.update(own_empty[nt])
        sh: list[tuple[int, int]] = []
        gt: list[tuple[int, int]] = []
        for sym, items in succ.items():
            key = frozenset(items)
            j = ids.get(key)
            if j is None:
                j = len(kernels)
                if j >= max_states:
                    raise LRBudgetExceeded(f"more than {max_states} LR(0) states")
                ids[key] = j
                kernels.append(key)
            if sym < 0:
                sh.append((-sym - 1, j))
            else:
                gt.append((sym, j))
        shift_rows.append(sh)
        goto_rows.append(gt)
        reduce_rows.append(tuple(sorted(reds)))
        i += 1

    follow_sets = _first_and_follow(rhs_of, lhs_of, n_nt, n_term, nullable)
    follow = np.zeros((n_nt, n_term + 1), dtype=np.bool_)
    for a, fs in enumerate(follow_sets):
        if fs:
            follow[a, list(fs)] = True
    n_words = (n_term + 1 + 63) // 64
    padded = np.zeros((n_nt, n_words * 64), dtype=np.bool_)
    padded[:, :n_term + 1] = follow
    follow_bits = np.packbits(padded, axis=1, bitorder="little").view(np.uint64).copy()
    sh_start, sh_term, sh_to = _csr(shift_rows)
    gt_start, gt_nt, gt_to = _csr(goto_rows)
    rd_start = np.zeros(len(reduce_rows) + 1, dtype=np.int32)
    np.cumsum([len(r) for r in reduce_rows], out=rd_start[1:])
    rd_prod = np.array([p for r in reduce_rows for p in r], dtype=np.int32)
    return LRTables(
        n_states=len(kernels), n_terminals=n_term,
        sh_start=sh_start, sh_term=sh_term, sh_to=sh_to,
        gt_start=gt_start, gt_nt=gt_nt, gt_to=gt_to,
        rd_start=rd_start, rd_prod=rd_prod,
        prod_lhs=np.array(lhs_of, dtype=np.int32),
        prod_len=np.array([len(r) for r in rhs_of], dtype=np.int32),
        follow=follow, follow_bits=follow_bits,
        shift=[dict(r) for r in shift_rows], goto=[dict(r) for r in goto_rows],
        reductions=reduce_rows, follow_sets=[frozenset(f) for f in follow_sets])
