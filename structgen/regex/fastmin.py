"""Hopcroft minimization + trimming of a character-class DFA in numba.

Why: the pure-Python Hopcroft in :mod:`.automaton` costs about 2 s on the
26k-state subset DFA of an RFC 3339 date-time (the leap-second rule alone
needs ~11k states), and intersections (hostname labels x total length) are
as big.  This is the same algorithm (splitters = (block, class) pairs, the
smaller half re-queued, partial DFAs completed with a sink) on flat arrays;
the result is renumbered by BFS from the start state exactly like
:func:`structgen.regex.automaton.minimize`, so both give identical tables.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _hopcroft(trans: np.ndarray, accept: np.ndarray) -> tuple[np.ndarray, int]:
    """Block id of every state (the last state is the added sink) and the number of blocks."""
    n, k = trans.shape
    N = n + 1
    sink = n
    # inverse transitions, CSR per (class, target)
    counts = np.zeros(k * N + 1, np.int64)
    for s in range(n):
        for c in range(k):
            t = trans[s, c]
            if t < 0:
                t = sink
            counts[c * N + t + 1] += 1
    for c in range(k):
        counts[c * N + sink + 1] += 1
    for i in range(k * N):
        counts[i + 1] += counts[i]
    inv = np.empty(counts[k * N], np.int64)
    fill = counts[:-1].copy()
    for s in range(n):
        for c in range(k):
            t = trans[s, c]
            if t < 0:
                t = sink
            inv[fill[c * N + t]] = s
            fill[c * N + t] += 1
    for c in range(k):
        inv[fill[c * N + sink]] = sink
        fill[c * N + sink] += 1
    # partition: elems[first[b]:end[b]] are the states of block b
    elems = np.empty(N, np.int64)
    loc = np.empty(N, np.int64)
    block = np.empty(N, np.int64)
    first = np.zeros(N, np.int64)
    end = np.zeros(N, np.int64)
    marked = np.zeros(N, np.int64)
    pos = 0
    nb = 0
    for want in (True, False):
        start = pos
        for s in range(N):
            acc = accept[s] if s < n else False
            if acc == want:
                elems[pos] = s
                loc[s] = pos
                block[s] = nb
                pos += 1
        if pos > start:
            first[nb] = start
            end[nb] = pos
            nb += 1
    in_work = np.zeros(N * k, np.bool_)
    work = np.empty(N * k, np.int64)
    wtop = 0
    if nb == 2:
        small = 0 if end[0] - first[0] <= end[1] - first[1] else 1
        for c in range(k):
            work[wtop] = small * k + c
            wtop += 1
            in_work[small * k + c] = True
    splitter = np.empty(N, np.int64)
    touched = np.empty(N, np.int64)
    while wtop > 0:
        wtop -= 1
        item = work[wtop]
        in_work[item] = False
        b = item // k
        c = item % k
        ns = 0
        for i in range(first[b], end[b]):
            splitter[ns] = elems[i]
            ns += 1
        nt = 0
        for i in range(ns):
            t = splitter[i]
            base = c * N + t
            for j in range(counts[base], counts[base + 1]):
                s = inv[j]
                x = block[s]
                p = loc[s]
                q = first[x] + marked[x]
                if p < q:
                    continue  # already marked
                if marked[x] == 0:
                    touched[nt] = x
                    nt += 1
                # swap s into the marked prefix of its block
                other = elems[q]
                elems[q] = s
                loc[s] = q
                elems[p] = other
                loc[other] = p
                marked[x] += 1
        for i in range(nt):
            x = touched[i]
            m = marked[x]
            marked[x] = 0
            size = end[x] - first[x]
            if m == size:
                continue
            y = nb
            nb += 1
            if m <= size - m:   # the marked prefix becomes the new block
                first[y] = first[x]
                end[y] = first[x] + m
                first[x] = end[y]
            else:               # the unmarked suffix becomes the new block
                first[y] = first[x] + m
                end[y] = end[x]
                end[x] = first[y]
            for j in range(first[y], end[y]):
                block[elems[j]] = y
            for a in range(k):
                if in_work[x * k + a]:
                    work[wtop] = y * k + a
                    wtop += 1
                    in_work[y * k + a] = True
                else:
                    # the smaller of the two halves (y is the smaller by construction)
                    work[wtop] = y * k + a
                    wtop += 1
                    in_work[y * k + a] = True
    return block, nb


@numba.njit(cache=True)
def _trim_renumber(trans: np.ndarray, accept: np.ndarray, block: np.ndarray, nb: int):
    """Quotient DFA without the dead block and states that cannot reach acceptance, BFS-numbered."""
    n, k = trans.shape
    sink = n
    rep = np.full(nb, -1, np.int64)
    for s in range(n + 1):
        if rep[block[s]] < 0:
            rep[block[s]] = s
    brow = np.empty((nb, k), np.int64)
    bacc = np.zeros(nb, np.bool_)
    for b in range(nb):
        s = rep[b]
        if s == sink:
            for c in range(k):
                brow[b, c] = b
        else:
            bacc[b] = accept[s]
            for c in range(k):
                t = trans[s, c]
                brow[b, c] = block[t] if t >= 0 else block[sink]
    # live = can reach an accepting block (reverse BFS)
    rcount = np.zeros(nb + 1, np.int64)
    for b in range(nb):
        for c in range(k):
            rcount[brow[b, c] + 1] += 1
    for i in range(nb):
        rcount[i + 1] += rcount[i]
    radj = np.empty(rcount[nb], np.int64)
    rfill = rcount[:-1].copy()
    for b in range(nb):
        for c in range(k):
            t = brow[b, c]
            radj[rfill[t]] = b
            rfill[t] += 1
    live = np.zeros(nb, np.bool_)
    stack = np.empty(nb, np.int64)
    top = 0
    for b in range(nb):
        if bacc[b]:
            live[b] = True
            stack[top] = b
            top += 1
    while top > 0:
        top -= 1
        b = stack[top]
        for j in range(rcount[b], rcount[b + 1]):
            a = radj[j]
            if not live[a]:
                live[a] = True
                stack[top] = a
                top += 1
    start = block[0]
    new_id = np.full(nb, -1, np.int64)
    order = np.empty(nb, np.int64)
    if not live[start]:
        out = np.full((1, k), -1, np.int32)
        return out, np.zeros(1, np.bool_)
    new_id[start] = 0
    order[0] = start
    cnt = 1
    j = 0
    while j < cnt:
        b = order[j]
        j += 1
        for c in range(k):
            t = brow[b, c]
            if live[t] and new_id[t] < 0:
                new_id[t] = cnt
                order[cnt] = t
                cnt += 1
    out = np.empty((cnt, k), np.int32)
    oacc = np.empty(cnt, np.bool_)
    for i in range(cnt):
        b = order[i]
        oacc[i] = bacc[b]
        for c in range(k):
            t = brow[b, c]
            out[i, c] = new_id[t] if live[t] else -1
    return out, oacc


@numba.njit(cache=True)
def product_bfs(ta: np.ndarray, tb: np.ndarray, acc_a: np.ndarray, acc_b: np.ndarray, max_states: int):
    """Reachable product of two DFAs over the same classes, BFS-numbered from (0, 0).

    Returns (trans, accept, n) with n = -1 past ``max_states``; pair ids live in a dense
    na x nb table (the caller keeps na * nb small).
    """
    na, k = ta.shape
    nb = tb.shape[0]
    ids = np.full(na * nb, -1, np.int64)
    cap = 1024
    trans = np.full((cap, k), -1, np.int32)
    acc = np.zeros(cap, np.bool_)
    qa = np.empty(cap, np.int64)
    qb = np.empty(cap, np.int64)
    ids[0] = 0
    qa[0] = 0
    qb[0] = 0
    n = 1
    i = 0
    while i < n:
        sa = qa[i]
        sb = qb[i]
        acc[i] = acc_a[sa] and acc_b[sb]
        for c in range(k):
            x = ta[sa, c]
            y = tb[sb, c]
            if x < 0 or y < 0:
                continue
            key = x * nb + y
            t = ids[key]
            if t < 0:
                if n >= max_states:
                    return trans, acc, -1
                if n >= cap:
                    cap *= 2
                    t2 = np.full((cap, k), -1, np.int32)
                    t2[:n] = trans[:n]
                    trans = t2
                    a2 = np.zeros(cap, np.bool_)
                    a2[:n] = acc[:n]
                    acc = a2
                    q2 = np.empty(cap, np.int64)
                    q2[:n] = qa[:n]
                    qa = q2
                    q3 = np.empty(cap, np.int64)
                    q3[:n] = qb[:n]
                    qb = q3
                t = n
                ids[key] = t
                qa[n] = x
                qb[n] = y
                n += 1
            trans[i, c] = t
        i += 1
    return trans, acc, n


def minimize_arrays(trans: np.ndarray, accept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimal, trimmed, BFS-numbered (trans int32 [m, k], accept bool [m]) of a DFA (-1 = dead)."""
    trans = np.ascontiguousarray(trans, dtype=np.int32)
    accept = np.ascontiguousarray(accept, dtype=np.bool_)
    if trans.shape[1] == 0:
        trans = np.full((trans.shape[0], 1), -1, np.int32)
        out, acc = _trim_renumber(trans, accept, *_hopcroft(trans, accept))
        return out[:, :0], acc
    return _trim_renumber(trans, accept, *_hopcroft(trans, accept))
