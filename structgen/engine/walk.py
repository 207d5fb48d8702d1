"""The token-trie walk: the hot path of mask computation (numba).

Walk the trie's preorder arrays carrying the vector of live lexer states.
A subtree is cut as soon as every lexer state dies.  Two outcomes per node:

* still alive  -> every token ending here is allowed *whatever the parser
  state*, because the live terminals were all expected by the parser;
* all dead right after an accepting state -> a lexeme boundary: the token
  continues into a new lexeme, which needs the parser.  The walk records
  (node, accepting terminals) and the caller resumes from that node with the
  lexer restarted for the parser's next expected terminals.

The result depends only on (start nodes, lexer vector), so callers cache it.
The trie may be a sub-trie (a slice's remainder, see slices.py): boundary
nodes are always reported in the full trie's numbering (``node_orig``).
"""
from __future__ import annotations

import numba
import numpy as np

from .lr_stacks import insertion_sort
from .trie import pk_after, pk_depth, pk_set_tokens_spare


@numba.njit(cache=True, inline="always")
def advance_states(trans, states, d, pc, b):
    """Row ``d`` of ``states`` = the live lexer states of row ``d - 1`` (``pc`` of them) after
    byte ``b``; returns how many there are (0: no lexeme continues with this byte)."""
    c = 0
    for j in range(pc):
        s = trans[states[d - 1, j], b]
        if s >= 0:
            states[d, c] = s
            c += 1
    return c


@numba.njit(cache=True, inline="always")
def _subtree_range(first, node_byte, node_depth, subtree_end):
    """(first node, end, depth offset) of the walk below start node ``first`` (0 = the whole trie)."""
    if first == 0:
        return 1, node_byte.shape[0], 0
    return first, subtree_end[first], node_depth[first] - 1


@numba.njit(cache=True)
def walk_kernel(packed, node_byte, node_depth, subtree_end, tok_start, tok_ids, node_orig,
                trans, acc_term, init_states, starts, mask_words,
                max_boundaries, max_acc, max_depth):
    """Returns (mask, b_node, b_acc_start, b_acc_len, acc_buf, n_boundaries, n_acc, visited, overflow)."""
    mask = np.zeros(mask_words + 1, dtype=np.uint32)   # + the spare word of pk_set_tokens_spare
    b_node = np.empty(max_boundaries, dtype=np.int32)
    b_acc_start = np.empty(max_boundaries, dtype=np.int32)
    b_acc_len = np.empty(max_boundaries, dtype=np.int32)
    acc_buf = np.empty(max_acc, dtype=np.int32)
    nb = 0
    na = 0
    visited = 0
    overflow = False
    k0 = init_states.shape[0]
    maxd = max_depth + 2
    states = np.empty((maxd, max(k0, 1)), dtype=np.int32)
    counts = np.zeros(maxd, dtype=np.int32)
    # per level: acc list already recorded for this parent (start,len), or -1
    rec_start = np.full(maxd, -1, dtype=np.int32)
    rec_len = np.zeros(maxd, dtype=np.int32)
    rec_owner = np.full(maxd, -1, dtype=np.int32)
    owner = np.full(maxd, -1, dtype=np.int32)  # node id at each level (root walk: -1 at level 0)
    for j in range(k0):
        states[0, j] = init_states[j]
    counts[0] = k0
    if k0 == 1:
        # one live state (one terminal: every regex, most mid-lexeme states): no state
        # vectors to carry, a single transition per node
        out = _walk_one(packed, node_byte, node_depth, subtree_end, tok_start, tok_ids, node_orig, trans, acc_term,
                        init_states[0], starts, mask, b_node, b_acc_start, b_acc_len, acc_buf, maxd)
        return (out[0][:mask_words],) + out[1:]
    for si in range(starts.shape[0]):
        lo, hi, base = _subtree_range(starts[si], node_byte, node_depth, subtree_end)
        owner[0] = -1 - si
        i = lo
        while i < hi:
            visited += 1
            x = packed[i]
            d = pk_depth(x) - base
            b = x & 255
            pc = counts[d - 1]
            c = advance_states(trans, states, d, pc, b)
            if c == 0:
                # lexeme cannot continue with this byte: boundary if parent accepted
                has_acc = False
                for j in range(pc):
                    if acc_term[states[d - 1, j]] >= 0:
                        has_acc = True
                        break
                if has_acc:
                    if nb >= max_boundaries:
                        overflow = True
                        return mask[:mask_words], b_node, b_acc_start, b_acc_len, acc_buf, nb, na, visited, overflow
                    par = owner[d - 1]
                    if rec_owner[d - 1] != par or rec_start[d - 1] < 0:
                        if na + pc > max_acc:
                            overflow = True
                            return mask[:mask_words], b_node, b_acc_start, b_acc_len, acc_buf, nb, na, visited, overflow
                        st = na
                        for j in range(pc):
                            t = acc_term[states[d - 1, j]]
                            if t >= 0:
                                acc_buf[na] = t
                                na += 1
                        rec_start[d - 1] = st
                        rec_len[d - 1] = na - st
                        rec_owner[d - 1] = par
                    b_node[nb] = node_orig[i]
                    b_acc_start[nb] = rec_start[d - 1]
                    b_acc_len[nb] = rec_len[d - 1]
                    nb += 1
                i = pk_after(x, i, subtree_end)
                continue
            counts[d] = c
            owner[d] = i
            pk_set_tokens_spare(x, i, tok_start, tok_ids, mask, mask_words)
            i += 1
    return mask[:mask_words], b_node, b_acc_start, b_acc_len, acc_buf, nb, na, visited, overflow


@numba.njit(cache=True)
def _walk_one(packed, node_byte, node_depth, subtree_end, tok_start, tok_ids, node_orig, trans, acc_term, q0, starts,
              mask, b_node, b_acc_start, b_acc_len, acc_buf, maxd):
    """:func:`walk_kernel` for a single live lexer state (same outputs; ``mask`` with its spare word)."""
    max_boundaries = b_node.shape[0]
    max_acc = acc_buf.shape[0]
    spare = mask.shape[0] - 1   # the spare word of pk_set_tokens_spare
    nb = 0
    na = 0
    visited = 0
    cur = np.empty(maxd, dtype=np.int32)
    # one live state: a boundary's accepted terminals are one terminal, so boundaries share one
    # acc_buf entry per terminal (no per-parent bookkeeping on the hot path)
    term_entry = np.full(max(acc_term.max() + 1, 1), -1, dtype=np.int32)
    for si in range(starts.shape[0]):
        lo, hi, base = _subtree_range(starts[si], node_byte, node_depth, subtree_end)
        cur[base] = q0   # cur is indexed by trie depth: no per-node offset
        i = lo
        while i < hi:
            visited += 1
            x = packed[i]
            d = pk_depth(x)
            prev = cur[d - 1]
            s = trans[prev, x & 255]
            if s < 0:
                t = acc_term[prev]
                if t >= 0:
                    if nb >= max_boundaries:
                        return mask, b_node, b_acc_start, b_acc_len, acc_buf, nb, na, visited, True
                    e = term_entry[t]
                    if e < 0:
                        if na + 1 > max_acc:
                            return mask, b_node, b_acc_start, b_acc_len, acc_buf, nb, na, visited, True
                        acc_buf[na] = t
                        e = term_entry[t] = na
                        na += 1
                    b_node[nb] = node_orig[i]
                    b_acc_start[nb] = e
                    b_acc_len[nb] = 1
                    nb += 1
                i = pk_after(x, i, subtree_end)
                continue
            cur[d] = s
            pk_set_tokens_spare(x, i, tok_start, tok_ids, mask, spare)
            i += 1
    return mask, b_node, b_acc_start, b_acc_len, acc_buf, nb, na, visited, False


def run_walk(trie, lexer, init_states: np.ndarray, starts: np.ndarray):
    """Run the kernel, growing the boundary buffers until they suffice."""
    words = (trie.vocab_size + 31) // 32
    # boundary buffers sized by the largest walk this trie has needed (an overflow reruns the
    # whole walk: a lowercase-words walk over Qwen's trie has 2,700 boundaries and paid ~40%)
    max_b, max_a = trie.walk_buffers
    while True:
        out = walk_kernel(trie.packed, trie.node_byte, trie.node_depth, trie.subtree_end, trie.tok_start, trie.tok_ids,
                          trie.orig_ids(),
                          lexer.trans, lexer.acc_term, init_states, starts, words, max_b, max_a,
                          trie.max_depth)
        if not out[8]:
            return out
        max_b *= 4
        max_a *= 4
        trie.walk_buffers = (max_b, max_a)


@numba.njit(cache=True)
def group_boundaries(b_node, b_st, b_len, acc_buf, nb, n_terms):
    """Boundaries grouped by the set of terminals accepted there, in numba.

    Returns (nodes, node offsets, terminals, terminal offsets): group g holds the
    boundary nodes ``nodes[noff[g]:noff[g+1]]`` (ascending) where exactly the
    terminals ``terms[aoff[g]:aoff[g+1]]`` (ascending, distinct) were accepted.
    Groups come in order of first appearance.  One GLR step or Earley advance is
    taken per group, so grouping here (not in Python, ~1 us per boundary) keeps
    first visits of a lexer state cheap.
    """
    gid = np.empty(nb, dtype=np.int32)
    g_terms = np.empty(max(1, acc_buf.shape[0]), dtype=np.int32)
    g_aoff = np.zeros(nb + 1, dtype=np.int32)
    n_groups = 0
    mark = np.zeros(max(1, n_terms), dtype=np.bool_)
    cand = np.empty(max(1, n_terms), dtype=np.int32)
    last_st = -1
    last_ln = -1
    last_g = -1
    for k in range(nb):
        st = b_st[k]
        ln = b_len[k]
        if st != last_st or ln != last_ln:
            # canonical form of this region: its distinct terminals, ascending
            nc = 0
            for e in range(st, st + ln):
                t = acc_buf[e]
                if not mark[t]:
                    mark[t] = True
                    cand[nc] = t
                    nc += 1
            for e in range(nc):
                mark[cand[e]] = False
            insertion_sort(cand, nc)
            srt = cand[:nc]
            found = -1
            for g in range(n_groups):
                a0 = g_aoff[g]
                if g_aoff[g + 1] - a0 != nc:
                    continue
                same = True
                for e in range(nc):
                    if g_terms[a0 + e] != srt[e]:
                        same = False
                        break
                if same:
                    found = g
                    break
            if found < 0:
                found = n_groups
                a0 = g_aoff[n_groups]
                if a0 + nc > g_terms.shape[0]:
                    grown = np.empty(2 * (a0 + nc), dtype=np.int32)
                    grown[:a0] = g_terms[:a0]
                    g_terms = grown
                g_terms[a0:a0 + nc] = srt
                g_aoff[n_groups + 1] = a0 + nc
                n_groups += 1
            last_st = st
            last_ln = ln
            last_g = found
        gid[k] = last_g
    noff = np.zeros(n_groups + 1, dtype=np.int32)
    for k in range(nb):
        noff[gid[k] + 1] += 1
    for g in range(n_groups):
        noff[g + 1] += noff[g]
    ascending = True
    for k in range(1, nb):
        if b_node[k] <= b_node[k - 1]:
            ascending = False
            break
    if ascending:
        # walks report boundaries in preorder, so a stable counting sort by group keeps
        # each group's nodes ascending (an argsort of ~1000 keys cost ~20 us)
        nodes = np.empty(nb, dtype=np.int32)
        pos = noff[:n_groups].copy()
        for k in range(nb):
            g = gid[k]
            nodes[pos[g]] = b_node[k]
            pos[g] += 1
    else:
        keys = gid[:nb].astype(np.int64) * np.int64(1 << 32) + b_node[:nb].astype(np.int64)
        nodes = b_node[:nb][np.argsort(keys)].astype(np.int32)
    return nodes, noff, g_terms[:g_aoff[n_groups]].copy(), g_aoff[:n_groups + 1].copy()
