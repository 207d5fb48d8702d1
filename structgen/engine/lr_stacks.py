"""The GLR stack-node pool and the searches on it (numba), used by the mask kernel.

Stacks are hash-consed nodes (state, parent) in flat arrays, so equal stacks
are one node and a search's visited set is a stamp per node.  Three searches:
the exact expected terminals of a stack (one search with lookahead bitsets),
the GLR step for one terminal (reductions filtered by FOLLOW, then the shift),
and sets of stacks interned by content.  A parent id below -1 marks the
*unknown* part of a stack (the kernel's top-states cache): a search that pops
into it reports UNKNOWN instead of guessing.  Every node knows its height (states
below it), and the searches lower ``ctr[C_FLOOR]`` to the lowest height whose state
they read, so the kernel knows how much of a stack a result depends on.
"""
from __future__ import annotations

import numba
import numpy as np

# counters kept in one int64 array so helpers can update them
C_NODES, C_STAMP, C_EXP, C_MEMO, C_RES, C_SETS, C_SETBUF, C_VEC, C_MARK, C_CMARK, C_DEF, C_FLOOR = range(12)
# the LR tables travel as one int32 blob, in this order
T_SH_START, T_SH_TERM, T_SH_TO, T_GT_START, T_GT_NT, T_GT_TO, T_RD_START, T_RD_PROD, T_LHS, T_LEN = range(10)


DEFER_BOUNDARY, DEFER_ITEM = 0, 1


@numba.njit(cache=True, inline="always")
def find_sorted(keys, lo, hi, key):
    """Index of ``key`` in sorted ``keys[lo:hi]``, or -1."""
    while lo < hi:
        mid = (lo + hi) >> 1
        k = keys[mid]
        if k < key:
            lo = mid + 1
        elif k > key:
            hi = mid
        else:
            return mid
    return -1


@numba.njit(cache=True, _nrt=False)
def intern_node(state, parent, pool_state, pool_parent, pool_height, table, ctr, node_slot):
    """Stack node for (state, parent), or -1 when the pool is full (slots recorded for cleanup).
    Its height is its parent's + 1 (0 on a stack's bottom or on an unknown part)."""
    tmask = table.shape[0] - 1
    h = (np.int64(state) * np.int64(1000003) + np.int64(parent + 1) * np.int64(7919)) & tmask
    while True:
        v = table[h]
        if v == 0:
            n = ctr[C_NODES]
            if n >= pool_state.shape[0]:
                return -1
            pool_state[n] = state
            pool_parent[n] = parent
            pool_height[n] = pool_height[parent] + 1 if parent >= 0 else 0
            table[h] = n + 1
            node_slot[n] = h
            ctr[C_NODES] = n + 1
            return n
        j = v - 1
        if pool_state[j] == state and pool_parent[j] == parent:
            return j
        h = (h + 1) & tmask


UNKNOWN = -3   # a search needed the part of a stack below the known top (see glr_mask_kernel)
NO_GOTO = -4   # a reduction whose goto is undefined: that path dies


@numba.njit(cache=True, inline="always")
def reduce_node(x, r, plen, lhs, gt_start, gt_nt, gt_to, pool_state, pool_parent, pool_height, table, ctr,
                node_slot):
    """The stack after reducing production ``r`` on top of node ``x``: pop, then goto (reading the
    state it pops to, so ``ctr[C_FLOOR]`` goes down to that node's height).

    Returns the node, NO_GOTO, UNKNOWN (popped into a stack's unknown part) or -1 (pool full).
    The LR tables arrive as separate arrays, not the ``lr`` tuple: taking an array out of a
    tuple costs an NRT incref/decref pair, and this runs once per reduction.
    """
    anc = x
    for _ in range(plen[r]):
        anc = pool_parent[anc]
        if anc < 0:
            return UNKNOWN
    if pool_height[anc] < ctr[C_FLOOR]:
        ctr[C_FLOOR] = pool_height[anc]
    gs = pool_state[anc]
    gi = find_sorted(gt_nt, gt_start[gs], gt_start[gs + 1], lhs[r])
    if gi < 0:
        return NO_GOTO
    return intern_node(gt_to[gi], anc, pool_state, pool_parent, pool_height, table, ctr, node_slot)


@numba.njit(cache=True, inline="always")
def _push_reduction(x, r, t, top, plen, lhs, gt_start, gt_nt, gt_to, follow_bits, pool_state, pool_parent,
                    pool_height, table, ctr, node_slot, visit, stamp, todo):
    """One reduction step of a search before lookahead ``t``: reduce ``r`` on node ``x`` when ``t`` may
    follow its left-hand side, and push the result unless visited.  Returns the new stack top, or
    UNKNOWN / -1 (overflow)."""
    if not (follow_bits[lhs[r], t >> 6] >> np.uint64(t & 63)) & np.uint64(1):
        return top
    y = reduce_node(x, r, plen, lhs, gt_start, gt_nt, gt_to, pool_state, pool_parent, pool_height, table, ctr,
                    node_slot)
    if y == NO_GOTO:
        return top
    if y < 0:
        return y
    if visit[y] != stamp:
        visit[y] = stamp
        if top >= todo.shape[0]:
            return -1
        todo[top] = y
        top += 1
    return top


@numba.njit(cache=True, inline="always")
def insertion_sort(buf, n):
    """Sort ``buf[:n]`` in place without allocating (a handful of terminals; np.sort would allocate)."""
    for i in range(1, n):
        v = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > v:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = v


@numba.njit(cache=True, _nrt=False)
def expected_search(node, lr, follow_bits, pool_state, pool_parent, pool_height, table, la, la_stamp, todo, ctr,
                     out, cand_mark, node_slot, carried):
    """Every terminal that stack ``node`` can shift next, exactly, in one search.

    Each configuration reached by reductions carries the set of lookaheads
    still allowed on the way there (the intersection of FOLLOW(lhs) over the
    reductions taken), as a bitset; a terminal is expected iff some
    configuration shifts it with its bit still set.  A configuration reached
    again with new bits is explored again with the union, which is exact
    because intersection distributes over union.  Returns the number of
    terminals written to ``out`` (deduplicated by ``cand_mark``), -1 on
    overflow, UNKNOWN when a reduction pops into a stack's unknown part.
    """
    (sh_start, sh_term, sh_to, gt_start, gt_nt, gt_to, rd_start, rd_prod, lhs, plen) = lr
    n_words = la.shape[1]
    cap = todo.shape[0]
    ctr[C_STAMP] += 1
    stamp = ctr[C_STAMP]
    cm = ctr[C_CMARK]
    for w in range(n_words):
        la[node, w] = ~np.uint64(0)
    la_stamp[node] = stamp
    todo[0] = node
    top = 1
    n_out = 0
    while top > 0:
        top -= 1
        x = todo[top]
        s = pool_state[x]
        for e in range(sh_start[s], sh_start[s + 1]):
            t = sh_term[e]
            if (la[x, t >> 6] >> np.uint64(t & 63)) & np.uint64(1) and cand_mark[t] != cm:
                cand_mark[t] = cm
                if n_out >= out.shape[0]:
                    return -1
                out[n_out] = t
                n_out += 1
        for e in range(rd_start[s], rd_start[s + 1]):
            r = rd_prod[e]
            if r == 0:
                continue
            a = lhs[r]
            nz = False
            for w in range(n_words):
                carried[w] = la[x, w] & follow_bits[a, w]
                if carried[w] != 0:
                    nz = True
            if not nz:
                continue
            y = reduce_node(x, r, plen, lhs, gt_start, gt_nt, gt_to, pool_state, pool_parent, pool_height, table,
                            ctr, node_slot)
            if y == NO_GOTO:
                continue
            if y < 0:
                return y   # UNKNOWN or -1 (overflow)
            if y >= la.shape[0]:
                return -1
            push = False
            if la_stamp[y] != stamp:
                la_stamp[y] = stamp
                for w in range(n_words):
                    la[y, w] = carried[w]
                push = True
            else:
                for w in range(n_words):
                    fresh = carried[w] & ~la[y, w]
                    if fresh != 0:
                        la[y, w] |= fresh
                        push = True
            if push:
                if top >= cap:
                    return -1
                todo[top] = y
                top += 1
    insertion_sort(out, n_out)   # the callers expect terminals in increasing order
    return n_out


@numba.njit(cache=True, _nrt=False)
def shift_search(node, t, lr, follow_bits, pool_state, pool_parent, pool_height, table, visit, todo, ctr,
                  out, n_out, node_slot):
    """The GLR step: append to ``out`` every stack after reductions allowed before ``t`` and the shift of ``t``.

    Returns the new length of ``out``, -1 on overflow, or UNKNOWN when a
    reduction pops into a stack's unknown part (parent ids below -1).
    """
    (sh_start, sh_term, sh_to, gt_start, gt_nt, gt_to, rd_start, rd_prod, lhs, plen) = lr
    ctr[C_STAMP] += 1
    stamp = ctr[C_STAMP]
    todo[0] = node
    top = 1
    visit[node] = stamp
    while top > 0:
        top -= 1
        x = todo[top]
        s = pool_state[x]
        si = find_sorted(sh_term, sh_start[s], sh_start[s + 1], t)
        if si >= 0:
            y = intern_node(sh_to[si], x, pool_state, pool_parent, pool_height, table, ctr, node_slot)
            if y < 0 or n_out >= out.shape[0]:
                return -1
            out[n_out] = y
            n_out += 1
        for e in range(rd_start[s], rd_start[s + 1]):
            r = rd_prod[e]
            if r == 0:
                continue  # production 0 reduces only to accept at end of input
            top = _push_reduction(x, r, t, top, plen, lhs, gt_start, gt_nt, gt_to, follow_bits, pool_state,
                                  pool_parent, pool_height, table, ctr, node_slot, visit, stamp, todo)
            if top < 0:
                return top   # UNKNOWN or -1 (overflow)
    return n_out


@numba.njit(cache=True, _nrt=False)
def accept_search(node, end, lr, follow_bits, pool_state, pool_parent, pool_height, table, visit, todo, ctr,
                  node_slot):
    """1 if the input may end on stack ``node`` (production 0 reducible on end-of-input), else 0.

    The reductions allowed before END, as in :func:`shift_search`, until a
    configuration completes production 0.  -1 on overflow, UNKNOWN when a
    reduction pops into a stack's unknown part.  The kernel's twin of
    ``GLRContext.can_accept``.
    """
    (sh_start, sh_term, sh_to, gt_start, gt_nt, gt_to, rd_start, rd_prod, lhs, plen) = lr
    if not (follow_bits[lhs[0], end >> 6] >> np.uint64(end & 63)) & np.uint64(1):
        return 0
    ctr[C_STAMP] += 1
    stamp = ctr[C_STAMP]
    todo[0] = node
    top = 1
    visit[node] = stamp
    while top > 0:
        top -= 1
        x = todo[top]
        s = pool_state[x]
        for e in range(rd_start[s], rd_start[s + 1]):
            r = rd_prod[e]
            if r == 0:
                return 1
            top = _push_reduction(x, r, end, top, plen, lhs, gt_start, gt_nt, gt_to, follow_bits, pool_state,
                                  pool_parent, pool_height, table, ctr, node_slot, visit, stamp, todo)
            if top < 0:
                return top   # UNKNOWN or -1 (overflow)
    return 0


@numba.njit(cache=True, _nrt=False)
def intern_set(nodes, n, set_off, set_len, set_buf, set_table, set_slot, ctr):
    """Set id of the stack nodes ``nodes[:n]`` (sorted and deduplicated in place), -1 when full."""
    m2 = 0
    for e in range(n):   # insertion sort + dedupe: sets are tiny
        x = nodes[e]
        pos = m2
        dup = False
        while pos > 0 and nodes[pos - 1] >= x:
            if nodes[pos - 1] == x:
                dup = True
                break
            pos -= 1
        if dup:
            continue
        for z in range(m2, pos, -1):
            nodes[z] = nodes[z - 1]
        nodes[pos] = x
        m2 += 1
    hkey = np.int64(m2)
    for e in range(m2):
        hkey = hkey * np.int64(1000003) + nodes[e]
    tmask = set_table.shape[0] - 1
    h = (hkey * np.int64(2654435761)) & tmask
    while True:
        v = set_table[h]
        if v == 0:
            break
        cs = v - 1
        if set_len[cs] == m2:
            same = True
            for e in range(m2):
                if set_buf[set_off[cs] + e] != nodes[e]:
                    same = False
                    break
            if same:
                return cs
        h = (h + 1) & tmask
    ns = ctr[C_SETS]
    nsb = ctr[C_SETBUF]
    if ns >= set_off.shape[0] or nsb + m2 > set_buf.shape[0]:
        return -1
    set_off[ns] = nsb
    set_len[ns] = m2
    for e in range(m2):
        set_buf[nsb + e] = nodes[e]
    ctr[C_SETBUF] = nsb + m2
    set_table[h] = ns + 1
    set_slot[ns] = h
    ctr[C_SETS] = ns + 1
    return ns


@numba.njit(cache=True, _nrt=False)
def write_set(out, pos, sid, set_off, set_len, set_buf, pool_state, pool_parent):
    """Append set ``sid`` as [n_stacks, (stack k, n_states, states bottom->top)*]; new pos or -1.

    ``k`` is the initial stack whose unknown part the chain sits on (-1: the
    chain reaches the real bottom).
    """
    n = set_len[sid]
    if pos + 1 > out.shape[0]:
        return -1
    out[pos] = n
    pos += 1
    for q in range(set_off[sid], set_off[sid] + n):
        x = set_buf[q]
        length = 0
        y = x
        while y >= 0:
            length += 1
            y = pool_parent[y]
        k = -1 if y == -1 else -2 - y
        if pos + 2 + length > out.shape[0]:
            return -1
        out[pos] = k
        out[pos + 1] = length
        y = x
        for j in range(length - 1, -1, -1):
            out[pos + 2 + j] = pool_state[y]
            y = pool_parent[y]
        pos += 2 + length
    return pos


DEFERRED = -5   # a boundary result that depends on unknown stack parts


@numba.njit(cache=True, _nrt=False)
def defer_work(out, pos, kind, gnode_buf, n_off, n_len, acc_buf, a_off, a_len, sid, set_off, set_len, set_buf,
               pool_state, pool_parent):
    """Append deferred work; new pos or -1 when ``out`` is full.

    A boundary group is [kind, n_nodes, nodes..., n_acc, acc..., set], an item
    group [kind, n_nodes, nodes..., set]; the set as written by :func:`write_set`.
    """
    if pos + 3 + n_len + a_len > out.shape[0]:
        return -1
    out[pos] = kind
    out[pos + 1] = n_len
    for y in range(n_len):
        out[pos + 2 + y] = gnode_buf[n_off + y]
    pos += 2 + n_len
    if kind == DEFER_BOUNDARY:
        out[pos] = a_len
        for y in range(a_len):
            out[pos + 1 + y] = acc_buf[a_off + y]
        pos += 1 + a_len
    return write_set(out, pos, sid, set_off, set_len, set_buf, pool_state, pool_parent)
