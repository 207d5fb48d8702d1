"""One-call token masks for the GLR path (numba).

The Earley path walks the token trie in numba but returns to Python at every
group of lexeme boundaries to advance the parser; that round trip
(~100-250 us per walk) made first visits of a parser context slow.  Here,
past the root walk, the whole mask is one numba call.

* The root walk (tokens from the current lexer state up to the first lexeme
  boundary) does not depend on the parser, so it is the cached
  ``CompiledGrammar.walk`` result for the lexer vector: a mask plus the
  boundary nodes with the terminals accepted there.
* The kernel then runs a work queue.  A *boundary* (trie node, stack set,
  accepted terminals) takes the GLR step: reductions filtered by FOLLOW, then
  the shift, on a pool of hash-consed stack nodes; the result (one stack set)
  becomes an *item*.  An item walks the trie below its node with the lexer
  restarted for what its stacks expect, and every boundary it meets is queued.

Semantics are exactly those of ``lr_parser.LRSet.advance`` and of the Earley
parser (maximal munch, union or priority resolution, ignore terminals); the
tests compare the masks.  Capacities are fixed per call; on overflow the
caller retries with larger buffers.
"""
from __future__ import annotations

import numba
import numpy as np

from .buffers import BUFFERS
from .trie import pk_after, pk_depth, pk_set_tokens, pk_set_tokens_listed
from .walk import advance_states
from .lr_stacks import (C_CMARK, C_DEF, C_EXP, C_FLOOR, C_MARK, C_MEMO, C_NODES, C_RES, C_SETBUF, C_SETS, C_VEC,
                        DEFER_BOUNDARY, DEFER_ITEM, DEFERRED, T_RD_START, T_SH_START, T_SH_TERM, UNKNOWN,
                        accept_search, defer_work, expected_search, insertion_sort, intern_node, intern_set,
                        shift_search)


@numba.njit(cache=True, _nrt=False)
def _nodes_hash(nodes, n_off, n_len):
    """The node part of a sub-walk key (computed once per boundary group, carried with it)."""
    h = np.int64(n_len) * np.int64(0x9E3779B1)
    for j in range(n_len):
        h = (h * np.int64(1000003) + np.int64(nodes[n_off + j])) & np.int64(0x3FFFFFFFFFFFFFFF)
    return h


@numba.njit(cache=True, _nrt=False)
def _walk_key(hn, vec, v_off, v_len):
    """A sub-walk's cache key: its nodes' hash ``hn`` extended by the lexer start states."""
    h = (hn * np.int64(1000003) + np.int64(v_len)) & np.int64(0x3FFFFFFFFFFFFFFF)
    for j in range(v_len):
        h = (h * np.int64(1000003) + np.int64(vec[v_off + j])) & np.int64(0x3FFFFFFFFFFFFFFF)
    return h


@numba.njit(cache=True, _nrt=False)
def _group_id(nodes, n_off, n_len, f_byte, gb, k):
    """Row ``k`` of ``gb`` := the group's first-byte bits (4 words of 64 bytes, as int64) and its
    nodes' hash: what every item on this group needs, computed once instead of per item (reading
    ``f_byte`` for each node of each item was 8% of the SQL replay)."""
    b0 = np.uint64(0)
    b1 = np.uint64(0)
    b2 = np.uint64(0)
    b3 = np.uint64(0)
    for gi in range(n_len):
        b = f_byte[nodes[n_off + gi]]
        bit = np.uint64(1) << np.uint64(b & 63)
        if b < 64:
            b0 |= bit
        elif b < 128:
            b1 |= bit
        elif b < 192:
            b2 |= bit
        else:
            b3 |= bit
    gb[k, 0] = np.int64(b0)
    gb[k, 1] = np.int64(b1)
    gb[k, 2] = np.int64(b2)
    gb[k, 3] = np.int64(b3)
    gb[k, 4] = _nodes_hash(nodes, n_off, n_len)   # >= 0: a negative hash marks "not computed"


@numba.njit(cache=True, _nrt=False)
def _lookup_walk(sc_table, sc_data, key, nodes, n_off, n_len, vec, v_off, v_len):
    """Offset in ``sc_data`` of the cached walk of a node group from a lexer vector, or -1.

    Entries are runs of int64: [n_nodes, nodes..., n_vec, vector..., result depths, n_words,
    (word << 32 | bits)*, n_slices, prefix slice ids..., n_groups, (n_acc, acc..., n_nodes,
    group id (GID words, see _group_id), nodes...)*] - the tokens the walk allows (sparse
    words plus whole prefix-slice masks) and its boundaries grouped by accepted terminals.
    A first-byte unit's entry (see _record_unit) has no group ids: its boundaries are
    regrouped with the rest of its item's.  The index
    ``sc_table`` holds (key, entry offset + 1) pairs (0 = empty slot), probed
    linearly from the key's hash: a probe reads the key and the offset from one
    cache line (separate key and offset arrays were two more dependent misses
    per lookup).  The nodes and vector are compared in full, so a hit is exact.
    """
    p = _lookup_entry(sc_table, sc_data, key, n_len, nodes, n_off, n_len, vec, v_off, v_len)
    return p + 1 if p >= 0 else -1   # past the item-result slot


@numba.njit(cache=True, inline="always")
def _lookup_entry(sc_table, sc_data, key, marker, a, a_off, a_len, b, b_off, b_len):
    """Position just past the head [marker, a[a_off:a_off+a_len]..., b_len, b[b_off:b_off+b_len]...]
    of the entry under ``key`` whose head is exactly that, or -1 (a sub-walk's head is its nodes
    and lexer vector, an item result's its tag, walk and top states)."""
    tmask = (sc_table.shape[0] >> 1) - 1
    h = (key * np.int64(2654435761)) & tmask
    while True:
        v = sc_table[2 * h + 1]
        if v == 0:
            return -1
        if sc_table[2 * h] == key:
            p = v - 1
            same = sc_data[p] == marker
            if same:
                for j in range(a_len):
                    if sc_data[p + 1 + j] != a[a_off + j]:
                        same = False
                        break
            if same:
                q = p + 1 + a_len
                same = sc_data[q] == b_len
                if same:
                    for j in range(b_len):
                        if sc_data[q + 1 + j] != b[b_off + j]:
                            same = False
                            break
                if same:
                    return q + 1 + b_len
        h = (h + 1) & tmask


@numba.njit(cache=True, _nrt=False)
def _reserve_walk(sc_table, sc_data, sc_ctr, key, size):
    """Room for a new entry of ``size`` int64s: its offset, or -1 when the cache is full
    (``sc_ctr`` = [entries, int64s used]; the index is kept at most half full)."""
    e = sc_ctr[0]
    p = sc_ctr[1]
    if 4 * (e + 1) > sc_table.shape[0] or p + size > sc_data.shape[0]:
        return -1
    tmask = (sc_table.shape[0] >> 1) - 1
    h = (key * np.int64(2654435761)) & tmask
    while sc_table[2 * h + 1] != 0:
        h = (h + 1) & tmask
    sc_table[2 * h] = key
    sc_table[2 * h + 1] = p + 1
    sc_ctr[0] = e + 1
    sc_ctr[1] = p + size
    return p


@numba.njit(cache=True, inline="always")
def _same_run(buf, a, b, n):
    for y in range(n):
        if buf[a + y] != buf[b + y]:
            return False
    return True


# workspace arrays, reused across calls (see Workspace); int32 ones travel in one blob, int64 ones in another
# (the kernel runs without numba's reference counting, so it allocates nothing: every scratch array,
# down to the walk's per-depth rows, is a workspace part)
W32 = ("pool_state", "pool_parent", "todo", "exp_off", "exp_len", "exp_buf", "memo_off", "memo_len", "res_buf",
       "set_off", "set_len", "set_buf", "vec_off", "vec_len", "vec_buf", "scratch", "bq_noff", "bq_nlen", "bq_set",
       "bq_acc", "bq_alen", "it_noff", "it_nlen", "it_set", "gnode_buf", "acc_buf", "tb_node", "tb_acc", "tb_alen",
       "tb_group", "sg_acc", "sg_alen", "sg_count", "sg_pos", "node_slot", "memo_slot", "set_slot", "def_out",
       "stk_nodes", "tops", "cand_terms", "acc_terms", "chosen", "counts", "rec_start", "rec_len", "ps_cnt",
       "ps_applied", "states", "split_nodes", "byte_pos", "pool_height", "memo_floor", "exp_floor", "set_floor",
       "bq_parent", "it_parent", "it_walk", "it_floor", "it_child", "it_next", "key_buf", "chain_states")
W64 = ("node_table", "memo_table", "set_table", "visit", "la_stamp", "memo_key", "term_mark", "cand_mark", "ctr",
       "owner", "rec_owner", "stats", "bq_gid", "it_gid", "step_memo")
GID = 5   # a boundary group's carried id: 4 words of first-byte bits, then its nodes' hash (see _group_id)

# the kernel's ``stats`` part: N_STATS counters of the last call, then their running totals (the
# total in the can-end answer's slot counts completed calls)
N_STATS = 11
STAT_CALLS = 5
STAT_RESULTS_USED, STAT_RESULTS_MADE = 8, 9
STAT_CHAIN_STEPS = 10
# GLR steps of one-terminal lexemes, remembered per call by (set, terminal) for chain runs (see _glr_run)
STEP_MEMO = 64

# prefix-slice blob layout (int32 parts of pack_prefix_slices, in this order)
PS_NODE, PS_NFIRST, PS_RLO, PS_RHI, PS_RDEPTH, PS_REND, PS_RTOKSTART, PS_RTOKIDS, PS_RORIG, PS_CHILD = range(10)


@numba.njit(cache=True, _nrt=False)
def _walk_below_one(lo, hi, base, t_packed, t_end, t_tok_start, t_tok_ids, t_orig, use_orig, trans, acc_term, cur,
                    acc_buf, n_acc_buf, tb_node, tb_acc, tb_alen, n_tb, dmask, dirty, n_dirty):
    """:func:`_walk_subtree` for nodes ``lo:hi`` (the descendants of one node) when a single lexer
    state is alive: ``cur[d]`` is the state at relative depth d (the parent's is set).  No state
    vectors and no per-node parent bookkeeping: a boundary's accepted terminal is its parent
    state's, and consecutive boundaries with the same terminal share one acc_buf entry.  Below
    the first bytes of a lexeme one state is nearly always left, so most nodes walk here.
    Returns (n_tb, n_acc_buf, n_dirty, visited, ok)."""
    tb_cap = tb_node.shape[0]
    last_t = -1
    last_e = -1
    visited = 0
    i = lo
    while i < hi:
        visited += 1
        x = t_packed[i]
        d = pk_depth(x) - base
        prev = cur[d - 1]
        s = trans[prev, x & 255]
        if s < 0:
            t = acc_term[prev]
            if t >= 0:
                if t != last_t:
                    if n_acc_buf >= acc_buf.shape[0]:
                        return n_tb, n_acc_buf, n_dirty, visited, False
                    acc_buf[n_acc_buf] = t
                    last_e = n_acc_buf
                    last_t = t
                    n_acc_buf += 1
                if n_tb >= tb_cap:
                    return n_tb, n_acc_buf, n_dirty, visited, False
                tb_node[n_tb] = t_orig[i] if use_orig else i
                tb_acc[n_tb] = last_e
                tb_alen[n_tb] = 1
                n_tb += 1
            i = pk_after(x, i, t_end)
            continue
        cur[d] = s
        n_dirty = pk_set_tokens_listed(x, i, t_tok_start, t_tok_ids, dmask, dirty, n_dirty)
        i += 1
    return n_tb, n_acc_buf, n_dirty, visited, True


@numba.njit(cache=True, _nrt=False)
def _walk_subtree(lo, hi, base, t_packed, t_end, t_tok_start, t_tok_ids, t_orig, use_orig, trans, states,
                  counts, owner, rec_owner, rec_start, rec_len, acc_term, acc_buf, n_acc_buf, tb_node, tb_acc,
                  tb_alen, n_tb, dmask, dirty, n_dirty, stats):
    """Walk one item node's subtree (full trie, or a prefix slice's remainder whose nodes map to
    full ids by ``t_orig``): tokens into dmask (words turned non-zero listed in ``dirty``),
    boundaries into tb_*.  Returns (n_tb, n_acc_buf, n_dirty, ok)."""
    tb_cap = tb_node.shape[0]
    i = lo
    visited = 0   # a local: a store to stats per node kept every array in memory (they may alias)
    while i < hi:
        visited += 1
        x = t_packed[i]
        d = pk_depth(x) - base
        b = x & 255
        pc = counts[d - 1]
        if pc == 1:
            # one live state (below the first bytes, nearly always): one transition, no loop
            s1 = trans[states[d - 1, 0], b]
            c = 0
            if s1 >= 0:
                states[d, 0] = s1
                c = 1
        else:
            c = advance_states(trans, states, d, pc, b)
        if c == 0:
            par = owner[d - 1]
            if rec_owner[d - 1] != par:
                rec_owner[d - 1] = par
                st = n_acc_buf
                for j in range(pc):
                    t = acc_term[states[d - 1, j]]
                    if t >= 0:
                        if n_acc_buf >= acc_buf.shape[0]:
                            stats[0] += visited
                            return n_tb, n_acc_buf, n_dirty, False
                        acc_buf[n_acc_buf] = t
                        n_acc_buf += 1
                rec_start[d - 1] = st
                rec_len[d - 1] = n_acc_buf - st
            if rec_len[d - 1] > 0:
                if n_tb >= tb_cap:
                    stats[0] += visited
                    return n_tb, n_acc_buf, n_dirty, False
                tb_node[n_tb] = t_orig[i] if use_orig else i
                tb_acc[n_tb] = rec_start[d - 1]
                tb_alen[n_tb] = rec_len[d - 1]
                n_tb += 1
            i = pk_after(x, i, t_end)
            continue
        counts[d] = c
        owner[d] = t_orig[i] if use_orig else i    # full ids: unique across the items of a call
        n_dirty = pk_set_tokens_listed(x, i, t_tok_start, t_tok_ids, dmask, dirty, n_dirty)
        if c == 1:
            after = pk_after(x, i, t_end)
            if after - i > 2:
                # one state left: node i's subtree on the single-state walk
                n_tb, n_acc_buf, n_dirty, v1, ok = _walk_below_one(
                    i + 1, after, base, t_packed, t_end, t_tok_start, t_tok_ids, t_orig, use_orig, trans, acc_term,
                    states[:, 0], acc_buf, n_acc_buf, tb_node, tb_acc, tb_alen, n_tb, dmask, dirty, n_dirty)
                visited += v1
                if not ok:
                    stats[0] += visited
                    return n_tb, n_acc_buf, n_dirty, False
                i = after
                continue
        i += 1
    stats[0] += visited
    return n_tb, n_acc_buf, n_dirty, True


@numba.njit(cache=True, _nrt=False)
def _usable_prefix_slices(gnode_buf, g_off, g_len, f_byte, vec_buf, vo, k0, ps32, ps_off, ps_flags, ps_cnt):
    """Mark in ``ps_cnt`` (1 = usable) the prefix slices an item group may use; returns how many.

    Slice j applies to the group's children of its prefix node when those include every
    child where R can start (so all of the slice's tokens lie below the group) and a lexer
    start state of the item's vector covers R (``ps_flags[256 + state]``).
    """
    n_ps = ps_off[PS_NODE + 1] - ps_off[PS_NODE]
    if n_ps == 0 or g_len < 8:
        return 0
    cov = False
    for j in range(k0):
        if ps_flags[256 + vec_buf[vo + j]]:
            cov = True
            break
    if not cov:
        return 0
    child = ps32[ps_off[PS_CHILD]:ps_off[PS_CHILD + 1]]
    for j in range(n_ps):
        ps_cnt[j] = 0
    for gi in range(g_len):
        x = gnode_buf[g_off + gi]
        j = child[x]
        if j >= 0 and ps_flags[f_byte[x]]:
            ps_cnt[j] += 1
    n_use = 0
    for j in range(n_ps):
        nf = ps32[ps_off[PS_NFIRST] + j]
        if nf > 0 and ps_cnt[j] == nf:
            ps_cnt[j] = 1
            n_use += 1
        else:
            ps_cnt[j] = 0
    return n_use


@numba.njit(cache=True, _nrt=False)
def _group_by_acc(tb_acc, tb_alen, z0, z1, acc_buf, sg_acc, sg_alen, sg_count, tb_group):
    """Group boundaries ``tb_*[z0:z1]`` by their accepted-terminal runs (content; siblings share one
    run): ``tb_group[z]`` := group, ``sg_*`` := each group's run and size.  Returns the number of
    groups, or -1 when ``sg_*`` is full."""
    n_sub = 0
    for z in range(z0, z1):
        a = tb_acc[z]
        al = tb_alen[z]
        g = -1
        for y in range(n_sub - 1, -1, -1):
            if sg_alen[y] == al and (sg_acc[y] == a or _same_run(acc_buf, sg_acc[y], a, al)):
                g = y
                break
        if g < 0:
            if n_sub >= sg_acc.shape[0]:
                return -1
            g = n_sub
            sg_acc[g] = a
            sg_alen[g] = al
            sg_count[g] = 0
            n_sub += 1
        tb_group[z] = g
        sg_count[g] += 1
    return n_sub


@numba.njit(cache=True, _nrt=False)
def _write_entry_head(sc_data, p, nodes, n_off, n_len, vec, v_off, v_len, dmask, dirty, n_dirty):
    """Write a cached walk's key (nodes, vector) and tokens (non-zero ``dmask`` words, left in
    place) at ``p`` in the :func:`_lookup_walk` format; returns the position after them."""
    sc_data[p] = n_len
    for y in range(n_len):
        sc_data[p + 1 + y] = nodes[n_off + y]
    p += 1 + n_len
    sc_data[p] = v_len
    for y in range(v_len):
        sc_data[p + 1 + y] = vec[v_off + y]
    p += 1 + v_len
    sc_data[p] = 0   # which item results exist for this walk (see RESULT_TOP_BIT0)
    p += 1
    sc_data[p] = n_dirty
    p += 1
    for z in range(n_dirty):
        w = dirty[z]
        sc_data[p] = (np.int64(w) << 32) | np.int64(dmask[w])   # word index and bits in one int64
        p += 1
    return p


SPLIT_MIN_NODES = 32   # item groups at least this large walk as first-byte units (see _glr_run)


@numba.njit(cache=True, _nrt=False)
def _walk_group_node(lo, n_use, ps_child, ps_cnt, ps32, ps_off, r_orig, r_depth, r_end, r_tok_start, r_tok_ids,
                     ps_packed, f_packed, f_depth, f_end, f_tok_start, f_tok_ids, trans, states, counts, owner,
                     rec_owner, rec_start, rec_len, acc_term, acc_buf, n_acc_buf, tb_node, tb_acc, tb_alen, n_tb,
                     dmask, dirty, n_dirty, stats):
    """Walk below one node of an item group: the full trie, or only the remainder sub-trie of a
    prefix slice in use (its word tokens are allowed at once).  Returns (n_tb, n_acc_buf, n_dirty, ok)."""
    psj = ps_child[lo] if n_use > 0 else -1
    if psj >= 0 and ps_cnt[psj]:
        r_lo = ps32[ps_off[PS_RLO] + psj]
        r_hi = ps32[ps_off[PS_RHI] + psj]
        ri = np.searchsorted(r_orig[r_lo:r_hi], lo) + r_lo
        if ri >= r_hi or r_orig[ri] != lo:
            return n_tb, n_acc_buf, n_dirty, True          # the whole subtree is in the slice
        return _walk_subtree(ri, r_end[ri], r_depth[ri] - 1, ps_packed, r_end, r_tok_start, r_tok_ids,
                             r_orig, True, trans, states, counts, owner, rec_owner, rec_start, rec_len, acc_term,
                             acc_buf, n_acc_buf, tb_node, tb_acc, tb_alen, n_tb, dmask, dirty, n_dirty, stats)
    return _walk_subtree(lo, f_end[lo], f_depth[lo] - 1, f_packed, f_end, f_tok_start, f_tok_ids, f_depth,
                         False, trans, states, counts, owner, rec_owner, rec_start, rec_len, acc_term, acc_buf,
                         n_acc_buf, tb_node, tb_acc, tb_alen, n_tb, dmask, dirty, n_dirty, stats)


@numba.njit(cache=True, _nrt=False)
def _record_unit(sc_table, sc_data, sc_ctr, key, nodes, n_off, n_len, vec, v_off, v_len, dmask_u,
                 dirty_u, n_dirty_u, tb_node, tb_acc, tb_alen, z0, z1, acc_buf, sg_acc, sg_alen, sg_count, tb_group):
    """Cache one first-byte unit of a split walk (format of :func:`_lookup_walk`, no prefix slices):
    its tokens (``dmask_u`` words, left in place) and its boundaries ``tb_*[z0:z1]`` grouped by
    accepted terminals.  Nothing is written when the cache is full."""
    n_sub = _group_by_acc(tb_acc, tb_alen, z0, z1, acc_buf, sg_acc, sg_alen, sg_count, tb_group)
    if n_sub < 0:
        return
    acc_total = 0
    for y in range(n_sub):
        acc_total += sg_alen[y]
    size = 1 + n_len + 1 + v_len + 1 + 1 + n_dirty_u + 1 + 1 + 2 * n_sub + acc_total + (z1 - z0)
    p = _reserve_walk(sc_table, sc_data, sc_ctr, key, size)
    if p < 0:
        return
    p = _write_entry_head(sc_data, p, nodes, n_off, n_len, vec, v_off, v_len, dmask_u, dirty_u, n_dirty_u)
    sc_data[p] = 0          # prefix slices: applied by the item, never by a unit
    p += 1
    sc_data[p] = n_sub
    p += 1
    for y in range(n_sub):
        al = sg_alen[y]
        sc_data[p] = al
        for z in range(al):
            sc_data[p + 1 + z] = acc_buf[sg_acc[y] + z]
        p += 1 + al
        sc_data[p] = sg_count[y]
        p += 1
        for z in range(z0, z1):
            if tb_group[z] == y:
                sc_data[p] = tb_node[z]
                p += 1


# Item results (see _record_item_results): an item's tokens depend on its walk and on the states its
# searches read; when those are within the top ``result_depth`` states of its (one) stack, the union of
# every token below the item is cached under (walk, those states) and a later item with the same
# walk on a stack with the same top states takes it whole instead of redoing the GLR steps.
RESULT_DEPTH = 8            # most stack states an item result may be keyed by (0: no item results)
RESULT_TRIAL = 512         # results a grammar makes before GLRKernel judges whether they pay
RESULT_MIN_USE = 4         # ... they do while used at least once per this many made
RESULT_PROBE = 16          # past that, one call in this many still records
MAX_RESULT_DEPTH = 16
# a walk entry's result slot: bit d (1..MAX_RESULT_DEPTH) for each depth results were keyed by, then
# bit RESULT_TOP_BIT0 + (top state % RESULT_TOP_BITS) for each top state they were made on
RESULT_TOP_BIT0 = MAX_RESULT_DEPTH + 1
RESULT_TOP_BITS = 63 - RESULT_TOP_BIT0
RESULT_TAG = -7              # first int64 of an item result's entry (a walk entry starts with its node count)
WALK_NONE = -1             # it_walk: the item walked nothing (no start state survives its first bytes)
FLOOR_NONE = 1 << 30       # it_floor: nothing read yet
FLOOR_DIRTY = -(1 << 30)   # it_floor: no result can be recorded (deferred work, or an uncached walk)


@numba.njit(cache=True, inline="always")
def _apply_tokens(sc_data, p, mask, ps_applied, ps_masks):
    """OR the tokens stored at ``p`` (n_words, words..., n_slices, prefix slice ids...) into ``mask``;
    returns the position after them."""
    nw = sc_data[p]
    p += 1
    for z in range(nw):
        v = sc_data[p]
        mask[v >> 32] |= np.uint32(v & 0xFFFFFFFF)
        p += 1
    n_ps_used = sc_data[p]
    p += 1
    for z in range(n_ps_used):
        j = sc_data[p]
        p += 1
        if not ps_applied[j]:
            ps_applied[j] = 1   # the mask is a union: once per call suffices
            for w in range(mask.shape[0]):
                mask[w] |= ps_masks[j, w]
    return p


@numba.njit(cache=True, _nrt=False)
def _top_states(top, pool_state, pool_parent, k, key_buf):
    """The top states (at most ``k``) of the stack on node ``top`` into ``key_buf[1:]``, from the
    top down to its bottom or an unknown part: their count (``key_buf[0]`` is the walk)."""
    node = top
    for n in range(k):
        key_buf[1 + n] = pool_state[node]
        node = pool_parent[node]
        if node < 0:
            return n + 1
    return k


@numba.njit(cache=True, _nrt=False)
def _find_item_result(sc_table, sc_data, wp, top, pool_state, pool_parent, result_depth, key_buf):
    """Position of a cached result of walk ``wp`` (see _lookup_result) whose top states the stack on
    node ``top`` has, trying the depths recorded for the walk from the shallowest, or -1."""
    bits = sc_data[wp - 1]
    if not (bits >> (RESULT_TOP_BIT0 + pool_state[top] % RESULT_TOP_BITS)) & 1:
        return -1   # no result of this walk has this top state: no probe (most misses)
    deepest = 0
    for d in range(1, result_depth + 1):
        if (bits >> d) & 1:
            deepest = d
    key_buf[0] = wp
    n_known = _top_states(top, pool_state, pool_parent, deepest, key_buf)
    for d in range(1, n_known + 1):
        if (bits >> d) & 1:
            mp = _lookup_result(sc_table, sc_data, _result_key(key_buf, d), key_buf, d)
            if mp >= 0:
                return mp
    return -1


@numba.njit(cache=True, _nrt=False)
def _result_key(key_buf, n):
    """Index key of an item result: its walk ``key_buf[0]`` and top states ``key_buf[1:n + 1]``."""
    h = (np.int64(key_buf[0]) * np.int64(0x9E3779B1) + np.int64(n) + np.int64(0x2545F491)) \
        & np.int64(0x3FFFFFFFFFFFFFFF)
    for j in range(n):
        h = (h * np.int64(1000003) + np.int64(key_buf[1 + j])) & np.int64(0x3FFFFFFFFFFFFFFF)
    return h


@numba.njit(cache=True, _nrt=False)
def _lookup_result(sc_table, sc_data, key, key_buf, n):
    """Position of the cached result of walk ``key_buf[0]`` on top states ``key_buf[1:n + 1]`` (its
    floor depth, then its tokens), or -1.  Entries: [RESULT_TAG, walk, n, states..., depth, tokens];
    the walk and the states are compared in full, so a hit is exact."""
    return _lookup_entry(sc_table, sc_data, key, RESULT_TAG, key_buf, 0, 1, key_buf, 1, n)


@numba.njit(cache=True, _nrt=False)
def _record_item_results(n_items, it_parent, it_walk, it_floor, it_child, it_next, it_set, set_off, set_len,
                         set_buf, pool_state, pool_parent, pool_height, result_depth, key_buf, sc_table, sc_data, sc_ctr,
                         dmask_u, dirty_u, ps_flags, dfs, stats, eligible):
    """After a complete call: cache the result of each item whose searches (its own and those of
    every item below it) read at most the top ``result_depth`` states of its stack: the union of the
    tokens below it, keyed by its walk and the states read (see _lookup_result).  Items come after
    the item whose walk made them, so one backward pass folds each item's floor into its parent's.

    Only the topmost item of a chain of such items gets a result: one below it would be used only
    when its walk recurs under another parent.  Recording every level made 20x more results than
    were used (syncode Go replay: 7,460 made, 1,526 used; topmost only: 371 made, 1,148 used)."""
    for i in range(n_items):
        it_child[i] = -1
    for i in range(n_items - 1, -1, -1):
        pk = it_parent[i]
        if pk >= 0:
            if it_floor[i] < it_floor[pk]:
                it_floor[pk] = it_floor[i]
            it_next[i] = it_child[pk]
            it_child[pk] = i
    n_ps = ps_flags.shape[0]
    for j in range(n_ps):
        ps_flags[j] = 0
    for i in range(n_items):
        pk = it_parent[i]
        eligible[i] = 0
        wp = it_walk[i]
        if wp < 0:
            continue   # walked nothing, or itself a cached result
        q = wp + 1 + sc_data[wp]
        if sc_data[q + 1 + sc_data[q]] == 0:
            continue   # a walk without boundaries: replaying it is as cheap
        sid = it_set[i]
        if set_len[sid] != 1:
            continue
        top = set_buf[set_off[sid]]
        h = pool_height[top]
        if it_floor[i] < h - result_depth + 1:
            continue   # read deeper than a key may reach (or dirty)
        eligible[i] = 1
        if pk >= 0 and eligible[pk]:
            continue   # its parent gets a result (or has one): only the topmost of a chain does
        n_key = h - it_floor[i] + 1 if it_floor[i] <= h else 1   # the states it read: its key
        key_buf[0] = wp
        if _top_states(top, pool_state, pool_parent, n_key, key_buf) != n_key:
            continue
        key = _result_key(key_buf, n_key)
        if _lookup_result(sc_table, sc_data, key, key_buf, n_key) >= 0:
            continue
        n_dirty = 0
        n_psu = 0
        dfs[0] = i
        n_dfs = 1
        while n_dfs > 0:
            n_dfs -= 1
            y = dfs[n_dfs]
            w = it_walk[y]
            if w == WALK_NONE:
                continue
            q = w if w >= 0 else -2 - w + 1
            nw = sc_data[q]
            q += 1
            for z in range(nw):
                v = sc_data[q + z]
                wi = v >> 32
                if dmask_u[wi] == 0:
                    dirty_u[n_dirty] = wi
                    n_dirty += 1
                dmask_u[wi] |= np.uint32(v & 0xFFFFFFFF)
            q += nw
            for z in range(sc_data[q]):
                j = sc_data[q + 1 + z]
                if not ps_flags[j]:
                    ps_flags[j] = 1
                    n_psu += 1
            if w >= 0:
                c = it_child[y]
                while c >= 0:
                    dfs[n_dfs] = c
                    n_dfs += 1
                    c = it_next[c]
        size = 3 + n_key + 1 + 1 + n_dirty + 1 + n_psu
        p = _reserve_walk(sc_table, sc_data, sc_ctr, key, size)
        if p >= 0:
            sc_data[p] = RESULT_TAG
            sc_data[p + 1] = wp
            sc_data[p + 2] = n_key
            for j in range(n_key):
                sc_data[p + 3 + j] = key_buf[1 + j]
            p += 3 + n_key
            sc_data[p] = n_key - 1
            p += 1
            sc_data[p] = n_dirty
            p += 1
            for z in range(n_dirty):
                wi = dirty_u[z]
                sc_data[p + z] = (np.int64(wi) << 32) | np.int64(dmask_u[wi])
            p += n_dirty
            sc_data[p] = n_psu
            p += 1
            for j in range(n_ps):
                if ps_flags[j]:
                    sc_data[p] = j
                    p += 1
            sc_data[wp - 1] |= (np.int64(1) << np.int64(n_key)) | (
                np.int64(1) << np.int64(RESULT_TOP_BIT0 + key_buf[1] % RESULT_TOP_BITS))
            stats[STAT_RESULTS_MADE] += 1
        for z in range(n_dirty):
            dmask_u[dirty_u[z]] = 0
        if n_psu:
            for j in range(n_ps):
                ps_flags[j] = 0


@numba.njit(cache=True, inline="always")
def _step_slot(sid, t, n_terms):
    """Key and slot in step_memo (direct-mapped: a collision forgets the older step) of the GLR step
    of a one-terminal lexeme ``t`` on set ``sid``."""
    skey = np.int64(sid) * np.int64(n_terms + 1) + t + 1
    return skey, 2 * ((skey * np.int64(2654435761)) & (STEP_MEMO - 1))


@numba.njit(cache=True, _nrt=False)
def glr_mask_kernel(
        f_byte, f_depth, f_end, f_tok_start, f_tok_ids, f_packed,
        trans, acc_term, term_start, is_ignore, prio, is_lit, resolve,
        lr_blob, lr_off, follow_bits,
        root_mask, rg_nodes, rg_noff, rg_acc, rg_aoff,
        stk_states, stk_off, stk_unknown, topk, record, def_in, record_results, max_depth, result_depth, w32_blob, w32_off,
        w64_blob,
        w64_off, la, dmask, sc_table, sc_data, sc_ctr, ps32, ps_off, ps_packed, ps_masks, ps_flags,
        first_bits, ce_mode, ce_acc, end_term, mask):
    """Fills ``mask`` (root_mask, then every token past the root walk); returns (status, n_deferred).
    status 1: done; 0: a workspace capacity was exceeded (retry larger); -1: a search popped below
    a complete stack (a bug).  Runs without reference counting (``_nrt=False``): numba's atomic
    increments of the dozens of array views passed around were a quarter of a small call.

    The root walk's boundaries arrive grouped by accepted terminals: group g is
    ``rg_nodes[rg_noff[g]:rg_noff[g+1]]`` with terminals ``rg_acc[rg_aoff[g]:rg_aoff[g+1]]``.
    Stacks are ``stk_states[stk_off[k]:stk_off[k+1]]`` (bottom to top).  With
    ``record``, a stack flagged in ``stk_unknown`` holds only its top ``topk``
    states, the rest being *unknown*: the mask then has exactly the tokens whose
    outcome the known states decide, and every boundary or item group whose
    search reached an unknown part is written to ``def_out`` (the first
    ``n_deferred`` int32s) instead of being explored.  ``def_in`` is such a list
    to explore now, on the complete stacks (whose top ``topk`` states are the
    ones recorded with).  The LR tables and the workspace arrive as flat blobs
    with offset arrays (one argument each instead of dozens: numba's
    per-argument dispatch cost was a third of a small mask); the workspace is
    clean on entry and left clean.  ``sc_*`` is the persistent cache of group
    walks (see :func:`_lookup_walk`), which also holds *item results*: an item whose searches read
    at most ``result_depth`` top states of its stack takes a result cached under its walk and those
    states when there is one (the union of every token below it), and with ``record_results`` the
    call caches such results at its end (see :func:`_record_item_results`).  ``stats`` (a workspace
    part) = [trie nodes visited, items, stack nodes, stack sets, cached walks replayed, can end,
    first-byte units walked, units replayed, item results used, item results made], then the same
    counters summed over completed calls (the can-end slot's sum counts the calls).

    The can-end check answers whether EOS may come next, on the same stacks
    and memos as the mask: ``ce_mode`` CE_SET0 asks it of the stacks as they
    are (no lexeme pending), CE_AFTER_LEXEME after the GLR step for the
    pending lexeme's accepted terminals ``ce_acc`` (``end_term`` is END's
    terminal id).  ``stats[5]`` is 1 or 0, or -1 when not asked or decided
    by a stack's unknown part.
    """

    lr = (lr_blob[lr_off[0]:lr_off[1]], lr_blob[lr_off[1]:lr_off[2]], lr_blob[lr_off[2]:lr_off[3]],
          lr_blob[lr_off[3]:lr_off[4]], lr_blob[lr_off[4]:lr_off[5]], lr_blob[lr_off[5]:lr_off[6]],
          lr_blob[lr_off[6]:lr_off[7]], lr_blob[lr_off[7]:lr_off[8]], lr_blob[lr_off[8]:lr_off[9]],
          lr_blob[lr_off[9]:lr_off[10]])
    sv_start = lr_blob[lr_off[10]:lr_off[11]]
    sv_states = lr_blob[lr_off[11]:lr_off[12]]
    w32 = (w32_blob[w32_off[0]:w32_off[1]], w32_blob[w32_off[1]:w32_off[2]], w32_blob[w32_off[2]:w32_off[3]],
           w32_blob[w32_off[3]:w32_off[4]], w32_blob[w32_off[4]:w32_off[5]], w32_blob[w32_off[5]:w32_off[6]],
           w32_blob[w32_off[6]:w32_off[7]], w32_blob[w32_off[7]:w32_off[8]], w32_blob[w32_off[8]:w32_off[9]],
           w32_blob[w32_off[9]:w32_off[10]], w32_blob[w32_off[10]:w32_off[11]], w32_blob[w32_off[11]:w32_off[12]],
           w32_blob[w32_off[12]:w32_off[13]], w32_blob[w32_off[13]:w32_off[14]], w32_blob[w32_off[14]:w32_off[15]],
           w32_blob[w32_off[15]:w32_off[16]], w32_blob[w32_off[16]:w32_off[17]], w32_blob[w32_off[17]:w32_off[18]],
           w32_blob[w32_off[18]:w32_off[19]], w32_blob[w32_off[19]:w32_off[20]], w32_blob[w32_off[20]:w32_off[21]],
           w32_blob[w32_off[21]:w32_off[22]], w32_blob[w32_off[22]:w32_off[23]], w32_blob[w32_off[23]:w32_off[24]],
           w32_blob[w32_off[24]:w32_off[25]], w32_blob[w32_off[25]:w32_off[26]], w32_blob[w32_off[26]:w32_off[27]],
           w32_blob[w32_off[27]:w32_off[28]], w32_blob[w32_off[28]:w32_off[29]], w32_blob[w32_off[29]:w32_off[30]],
           w32_blob[w32_off[30]:w32_off[31]], w32_blob[w32_off[31]:w32_off[32]], w32_blob[w32_off[32]:w32_off[33]],
           w32_blob[w32_off[33]:w32_off[34]], w32_blob[w32_off[34]:w32_off[35]], w32_blob[w32_off[35]:w32_off[36]],
           w32_blob[w32_off[36]:w32_off[37]], w32_blob[w32_off[37]:w32_off[38]], w32_blob[w32_off[38]:w32_off[39]],
           w32_blob[w32_off[39]:w32_off[40]], w32_blob[w32_off[40]:w32_off[41]], w32_blob[w32_off[41]:w32_off[42]],
           w32_blob[w32_off[42]:w32_off[43]], w32_blob[w32_off[43]:w32_off[44]], w32_blob[w32_off[44]:w32_off[45]],
           w32_blob[w32_off[45]:w32_off[46]], w32_blob[w32_off[46]:w32_off[47]], w32_blob[w32_off[47]:w32_off[48]],
           w32_blob[w32_off[48]:w32_off[49]], w32_blob[w32_off[49]:w32_off[50]], w32_blob[w32_off[50]:w32_off[51]],
           w32_blob[w32_off[51]:w32_off[52]], w32_blob[w32_off[52]:w32_off[53]], w32_blob[w32_off[53]:w32_off[54]],
           w32_blob[w32_off[54]:w32_off[55]], w32_blob[w32_off[55]:w32_off[56]], w32_blob[w32_off[56]:w32_off[57]],
           w32_blob[w32_off[57]:w32_off[58]], w32_blob[w32_off[58]:w32_off[59]], w32_blob[w32_off[59]:w32_off[60]],
           w32_blob[w32_off[60]:w32_off[61]], w32_blob[w32_off[61]:w32_off[62]], w32_blob[w32_off[62]:w32_off[63]])
    w64 = (w64_blob[w64_off[0]:w64_off[1]], w64_blob[w64_off[1]:w64_off[2]], w64_blob[w64_off[2]:w64_off[3]],
           w64_blob[w64_off[3]:w64_off[4]], w64_blob[w64_off[4]:w64_off[5]], w64_blob[w64_off[5]:w64_off[6]],
           w64_blob[w64_off[6]:w64_off[7]], w64_blob[w64_off[7]:w64_off[8]], w64_blob[w64_off[8]:w64_off[9]],
           w64_blob[w64_off[9]:w64_off[10]], w64_blob[w64_off[10]:w64_off[11]], w64_blob[w64_off[11]:w64_off[12]],
           w64_blob[w64_off[12]:w64_off[13]], w64_blob[w64_off[13]:w64_off[14]], w64_blob[w64_off[14]:w64_off[15]])
    (node_table, memo_table, set_table, visit, la_stamp, memo_key, term_mark, cand_mark, ctr, owner, rec_owner,
     stats, _bq_gid, _it_gid, _step_memo) = w64
    exp_off = w32[3]
    vec_off = w32[12]
    node_slot = w32[34]
    memo_slot = w32[35]
    set_slot = w32[36]
    for w in range(mask.shape[0]):
        mask[w] = root_mask[w]
    for j in range(N_STATS):
        stats[j] = 0
    stats[5] = -1
    for c_ in (C_NODES, C_EXP, C_MEMO, C_RES, C_SETS, C_SETBUF, C_VEC, C_DEF):
        ctr[c_] = 0   # stamps and marks (C_STAMP, C_MARK, C_CMARK) keep counting across calls
    status = _glr_run(f_byte, f_depth, f_end, f_tok_start, f_tok_ids, f_packed, trans, acc_term, term_start, is_ignore,
                      prio, is_lit, resolve, lr, follow_bits, rg_nodes, rg_noff, rg_acc, rg_aoff, stk_states,
                      stk_off, stk_unknown, topk, record, def_in, record_results, max_depth, result_depth, w32, w64, la,
                      dmask, sc_table,
                      sc_data, sc_ctr, mask, stats, ps32, ps_off, ps_packed, ps_masks, ps_flags,
                      first_bits, ce_mode, ce_acc, end_term, sv_start, sv_states)
    # leave the workspace clean: hash slots, per-node and per-set caches, the scratch mask
    for k in range(ctr[C_NODES]):
        node_table[node_slot[k]] = 0
        exp_off[k] = -1
    for k in range(ctr[C_MEMO]):
        memo_table[memo_slot[k]] = 0
    for k in range(ctr[C_SETS]):
        if set_slot[k] >= 0:
            set_table[set_slot[k]] = 0
        vec_off[k] = -1
    if status != 1:
        for w in range(dmask.shape[0]):
            dmask[w] = 0
    else:
        # running totals of completed calls (slot 5, the can-end answer, counts the calls)
        for j in range(N_STATS):
            if j != STAT_CALLS:
                stats[N_STATS + j] += stats[j]
        stats[N_STATS + STAT_CALLS] += 1
    return status, ctr[C_DEF]


CE_NONE, CE_SET0, CE_AFTER_LEXEME = 0, 1, 2   # what glr_mask_kernel's can-end check starts from
NO_TERMS = np.zeros(0, dtype=np.int32)


@numba.njit(cache=True, _nrt=False)
def _accepts(set_buf, lo, n, end_term, lr, follow_bits, pool_state, pool_parent, pool_height, node_table, visit,
             todo, ctr, node_slot):
    """1 if some stack of the set may end the input, 0 if none, -1 if unknown (a stack's unknown part
    decides), -2 on overflow."""
    res = 0
    for q in range(lo, lo + n):
        a = accept_search(set_buf[q], end_term, lr, follow_bits, pool_state, pool_parent, pool_height, node_table,
                          visit, todo, ctr, node_slot)
        if a == 1:
            return 1
        if a == UNKNOWN:
            res = -1
        elif a < 0:
            return -2
    return res


@numba.njit(cache=True, _nrt=False)
def _glr_run(f_byte, f_depth, f_end, f_tok_start, f_tok_ids, f_packed, trans, acc_term, term_start, is_ignore, prio,
             is_lit, resolve, lr, follow_bits, rg_nodes, rg_noff, rg_acc, rg_aoff, stk_states, stk_off,
             stk_unknown, topk, record, def_in, record_results, max_depth, result_depth, w32, w64, la, dmask, sc_table,
             sc_data, sc_ctr, mask, stats, ps32, ps_off, ps_packed, ps_masks, ps_flags, first_bits, ce_mode, ce_acc,
             end_term, sv_start, sv_states):
    """The work queue of :func:`glr_mask_kernel`; returns its status."""
    (pool_state, pool_parent, todo, exp_off, exp_len, exp_buf, memo_off, memo_len, res_buf,
     set_off, set_len, set_buf, vec_off, vec_len, vec_buf, scratch, bq_noff, bq_nlen, bq_set,
     bq_acc, bq_alen, it_noff, it_nlen, it_set, gnode_buf, acc_buf, tb_node, tb_acc, tb_alen,
     tb_group, sg_acc, sg_alen, sg_count, sg_pos, node_slot, memo_slot, set_slot, def_out, stk_nodes, tops,
     cand_terms, acc_terms, chosen, counts, rec_start, rec_len, ps_cnt, ps_applied, states_flat, split_nodes,
     byte_pos, pool_height, memo_floor, exp_floor, set_floor, bq_parent, it_parent, it_walk, it_floor, it_child,
     it_next, key_buf, chain_states) = w32
    (node_table, memo_table, set_table, visit, la_stamp, memo_key, term_mark, cand_mark, ctr, owner, rec_owner,
     _stats, bq_gid_flat, it_gid_flat, step_memo) = w64
    n_terms = term_start.shape[0]
    cap = pool_state.shape[0]
    sh_start = lr[T_SH_START]
    sh_term = lr[T_SH_TERM]
    rd_start = lr[T_RD_START]
    bq_cap = bq_noff.shape[0]
    it_cap = it_noff.shape[0]
    if bq_gid_flat.shape[0] < GID * bq_cap or it_gid_flat.shape[0] < GID * it_cap:
        return 0
    bq_gid = bq_gid_flat[:GID * bq_cap].reshape((bq_cap, GID))
    it_gid = it_gid_flat[:GID * it_cap].reshape((it_cap, GID))
    tb_cap = tb_node.shape[0]
    carried = la[la.shape[0] - 1]   # expected_search's scratch lookahead bits (the spare last row)
    for j in range(step_memo.shape[0]):
        step_memo[j] = 0   # set ids are this call's
    n_bq = 0
    n_items = 0
    n_gn = 0
    n_acc_buf = 0
    # ---- the initial stacks, as set 0 ---------------------------------------------------
    n_stk = stk_off.shape[0] - 1
    if n_stk > cap or n_stk > set_buf.shape[0]:
        return 0
    if stk_states.shape[0] > stk_nodes.shape[0]:
        return 0
    for k in range(n_stk):
        # a recorded stack longer than topk sits on its unknown part, id -2 - k
        parent = -2 - k if (record and stk_unknown[k]) else -1
        for j in range(stk_off[k], stk_off[k + 1]):
            parent = intern_node(stk_states[j], parent, pool_state, pool_parent, pool_height, node_table, ctr,
                                 node_slot)
            if parent < 0:
                return 0
            stk_nodes[j] = parent
        scratch[k] = parent
    for k in range(n_stk):
        tops[k] = scratch[k]
    insertion_sort(tops, n_stk)
    for k in range(n_stk):
        set_buf[k] = tops[k]
    set_off[0] = 0
    set_len[0] = n_stk
    set_slot[0] = -1   # set 0 is never looked up by content
    ctr[C_SETBUF] = n_stk
    ctr[C_SETS] = 1
    # ---- the root walk's boundary groups, on set 0 ----------------------------------------
    n_rg = rg_noff.shape[0] - 1
    if n_rg > bq_cap or rg_nodes.shape[0] > gnode_buf.shape[0] or rg_acc.shape[0] > acc_buf.shape[0]:
        return 0
    for j in range(rg_nodes.shape[0]):
        gnode_buf[j] = rg_nodes[j]
    for j in range(rg_acc.shape[0]):
        acc_buf[j] = rg_acc[j]
    n_gn = rg_nodes.shape[0]
    n_acc_buf = rg_acc.shape[0]
    for g in range(n_rg):
        bq_noff[g] = rg_noff[g]
        bq_nlen[g] = rg_noff[g + 1] - rg_noff[g]
        bq_acc[g] = rg_aoff[g]
        bq_alen[g] = rg_aoff[g + 1] - rg_aoff[g]
        bq_set[g] = 0
        bq_parent[g] = -1
        bq_gid[g, GID - 1] = -1   # computed if the group becomes an item (many root groups never do)
    n_bq = n_rg
    # ---- may the input end here? (EOS bit; see glr_mask_kernel) ----------------------------------
    ce_k = -1
    if ce_mode == CE_SET0:
        stats[5] = _accepts(set_buf, set_off[0], set_len[0], end_term, lr, follow_bits, pool_state, pool_parent,
                            pool_height, node_table, visit, todo, ctr, node_slot)
        if stats[5] == -2:
            return 0
    elif ce_mode == CE_AFTER_LEXEME:
        # a boundary group with no nodes: the GLR step for the current lexeme, then the accept check
        if n_bq >= bq_cap or n_acc_buf + ce_acc.shape[0] > acc_buf.shape[0]:
            return 0
        ce_k = n_bq
        bq_noff[n_bq] = n_gn
        bq_nlen[n_bq] = 0
        bq_acc[n_bq] = n_acc_buf
        bq_alen[n_bq] = ce_acc.shape[0]
        bq_set[n_bq] = 0
        bq_parent[n_bq] = -1
        for j in range(ce_acc.shape[0]):
            acc_buf[n_acc_buf + j] = ce_acc[j]
        n_acc_buf += ce_acc.shape[0]
        n_bq += 1
    # ---- deferred work recorded on these stacks' top states: rebuild its sets on the full stacks
    pos = 0
    while pos < def_in.shape[0]:
        kind = def_in[pos]
        nl = def_in[pos + 1]
        pos += 2
        if n_gn + nl > gnode_buf.shape[0]:
            return 0
        g_off = n_gn
        for j in range(nl):
            gnode_buf[n_gn + j] = def_in[pos + j]
        n_gn += nl
        pos += nl
        a_off = 0
        a_len = 0
        if kind == DEFER_BOUNDARY:
            a_len = def_in[pos]
            pos += 1
            if n_acc_buf + a_len > acc_buf.shape[0]:
                return 0
            a_off = n_acc_buf
            for j in range(a_len):
                acc_buf[n_acc_buf + j] = def_in[pos + j]
            n_acc_buf += a_len
            pos += a_len
        n_members = def_in[pos]
        pos += 1
        if n_members > scratch.shape[0]:
            return 0
        for q in range(n_members):
            k = def_in[pos]
            length = def_in[pos + 1]
            pos += 2
            if k < 0:
                parent = -1
            else:
                # the node the recorded chain stood on: just below stack k's top topk states
                parent = stk_nodes[stk_off[k + 1] - topk - 1]
            for j in range(length):
                parent = intern_node(def_in[pos + j], parent, pool_state, pool_parent, pool_height, node_table, ctr,
                                     node_slot)
                if parent < 0:
                    return 0
            pos += length
            scratch[q] = parent
        sid = intern_set(scratch, n_members, set_off, set_len, set_buf, set_table, set_slot, ctr)
        if sid < 0:
            return 0
        if kind == DEFER_BOUNDARY:
            if n_bq >= bq_cap:
                return 0
            bq_noff[n_bq] = g_off
            bq_nlen[n_bq] = nl
            bq_acc[n_bq] = a_off
            bq_alen[n_bq] = a_len
            bq_set[n_bq] = sid
            bq_parent[n_bq] = -1
            bq_gid[n_bq, GID - 1] = -1
            n_bq += 1
        else:
            if n_items >= it_cap:
                return 0
            it_noff[n_items] = g_off
            it_nlen[n_items] = nl
            it_set[n_items] = sid
            it_parent[n_items] = -1
            it_walk[n_items] = WALK_NONE
            it_floor[n_items] = FLOOR_NONE
            _group_id(gnode_buf, g_off, nl, f_byte, it_gid, n_items)
            n_items += 1

    maxd = max_depth + 2
    if counts.shape[0] < maxd or states_flat.shape[0] < maxd * max(n_terms, 1):
        return 0
    states = states_flat[:maxd * max(n_terms, 1)].reshape((maxd, max(n_terms, 1)))
    for d in range(maxd):
        counts[d] = 0
        owner[d] = -1
        rec_owner[d] = -2
        rec_start[d] = 0
        rec_len[d] = 0
    mk = ctr[C_MARK]
    n_ps = ps_off[PS_NODE + 1] - ps_off[PS_NODE]
    if ps_cnt.shape[0] < n_ps:
        return 0
    ps_cnt = ps_cnt[:n_ps]
    ps_applied = ps_applied[:n_ps]
    for j in range(n_ps):
        ps_cnt[j] = 0
        ps_applied[j] = 0
    # the workspace's dmask holds the scratch mask, then the list of its non-zero words, then the
    # same two for one first-byte unit of a split walk; each scratch mask ends with the spare word
    # of pk_set_tokens_listed, kept non-zero (never listed, never cleared, never read)
    n_words = mask.shape[0]
    r = n_words + 1
    dirty = dmask[r:2 * r].view(np.int32)
    dmask_u = dmask[2 * r:3 * r]
    dirty_u = dmask[3 * r:4 * r].view(np.int32)
    dmask = dmask[:r]
    dmask[n_words] = 1
    dmask_u[n_words] = 1
    n_units = 0
    ps_child = ps32[ps_off[PS_CHILD]:ps_off[PS_CHILD + 1]]
    r_depth = ps32[ps_off[PS_RDEPTH]:ps_off[PS_RDEPTH + 1]]
    r_end = ps32[ps_off[PS_REND]:ps_off[PS_REND + 1]]
    r_tok_start = ps32[ps_off[PS_RTOKSTART]:ps_off[PS_RTOKSTART + 1]]
    r_tok_ids = ps32[ps_off[PS_RTOKIDS]:ps_off[PS_RTOKIDS + 1]]
    r_orig = ps32[ps_off[PS_RORIG]:ps_off[PS_RORIG + 1]]

    bq_head = 0
    it_head = 0
    while True:
        if bq_head < n_bq:
            # ---------------- a boundary group: the GLR step ----------------------------------
            k = bq_head
            bq_head += 1
            sid = bq_set[k]
            r_set = -1
            ctr[C_MARK] += 1
            mk = ctr[C_MARK]
            n_acc = 0
            any_ignore = False
            for e in range(bq_acc[k], bq_acc[k] + bq_alen[k]):
                t = acc_buf[e]
                if term_mark[t] != mk:
                    term_mark[t] = mk
                    acc_terms[n_acc] = t
                    n_acc += 1
                    if is_ignore[t]:
                        any_ignore = True
            n_ch = 0
            unknown = False
            step_floor = FLOOR_NONE   # lowest stack height the step's searches read
            for ci in range(n_acc):
                t = acc_terms[ci]
                got = False
                for q in range(set_off[sid], set_off[sid] + set_len[sid]):
                    node = set_buf[q]
                    key = np.int64(node) * np.int64(n_terms + 1) + t
                    mh = (key * np.int64(2654435761)) & (memo_table.shape[0] - 1)
                    mi = -1
                    while True:
                        v = memo_table[mh]
                        if v == 0:
                            break
                        if memo_key[v - 1] == key:
                            mi = v - 1
                            break
                        mh = (mh + 1) & (memo_table.shape[0] - 1)
                    if mi < 0:
                        if ctr[C_MEMO] >= cap:
                            return 0
                        mo = ctr[C_RES]
                        ctr[C_FLOOR] = pool_height[node]
                        n_out = shift_search(node, t, lr, follow_bits, pool_state, pool_parent, pool_height, node_table,
                                             visit, todo, ctr, res_buf, mo, node_slot)
                        if n_out == UNKNOWN:
                            if not record:
                                return -1
                            n_res_len = -1   # decided below the known top: defer
                            n_out = mo
                        elif n_out < 0:
                            return 0
                        else:
                            n_res_len = n_out - mo
                        ctr[C_RES] = n_out
                        mi = ctr[C_MEMO]
                        memo_key[mi] = key
                        memo_off[mi] = mo
                        memo_len[mi] = n_res_len
                        memo_floor[mi] = ctr[C_FLOOR]
                        memo_table[mh] = mi + 1
                        memo_slot[mi] = mh
                        ctr[C_MEMO] = mi + 1
                    if memo_floor[mi] < step_floor:
                        step_floor = memo_floor[mi]
                    if memo_len[mi] > 0:
                        got = True
                    elif memo_len[mi] < 0:
                        unknown = True
                if got:
                    chosen[n_ch] = t
                    n_ch += 1
            if unknown:
                n_ch = 0
                r_set = DEFERRED   # some terminal's fate depends on the unknown part of a stack
            pk = bq_parent[k]
            if pk >= 0:
                # what the walk of item pk led to depends on the stack down to here
                if unknown:
                    it_floor[pk] = FLOOR_DIRTY
                elif step_floor < it_floor[pk]:
                    it_floor[pk] = step_floor
            if n_ch > 0 and resolve:
                best = prio[chosen[0]]
                for ci in range(1, n_ch):
                    if prio[chosen[ci]] > best:
                        best = prio[chosen[ci]]
                has_lit = False
                for ci in range(n_ch):
                    if prio[chosen[ci]] == best and is_lit[chosen[ci]]:
                        has_lit = True
                m2 = 0
                for ci in range(n_ch):
                    t = chosen[ci]
                    if prio[t] == best and (is_lit[t] or not has_lit):
                        chosen[m2] = t
                        m2 += 1
                n_ch = m2
            if n_ch > 0:
                # union of the chosen shifts -> one interned set
                n_sc = 0
                for ci in range(n_ch):
                    t = chosen[ci]
                    for q in range(set_off[sid], set_off[sid] + set_len[sid]):
                        node = set_buf[q]
                        key = np.int64(node) * np.int64(n_terms + 1) + t
                        mh = (key * np.int64(2654435761)) & (memo_table.shape[0] - 1)
                        while memo_key[memo_table[mh] - 1] != key:
                            mh = (mh + 1) & (memo_table.shape[0] - 1)
                        mi = memo_table[mh] - 1
                        for e in range(memo_off[mi], memo_off[mi] + memo_len[mi]):
                            if n_sc >= cap:
                                return 0
                            scratch[n_sc] = res_buf[e]
                            n_sc += 1
                r_set = intern_set(scratch, n_sc, set_off, set_len, set_buf, set_table, set_slot, ctr)
                if r_set < 0:
                    return 0
            elif any_ignore and not unknown:
                r_set = sid   # an ignored lexeme: same stacks, lexer restarts
            if n_acc == 1 and not unknown:
                skey, h = _step_slot(sid, acc_terms[0], n_terms)
                step_memo[h] = skey
                step_memo[h + 1] = r_set
            if k == ce_k:
                if r_set == DEFERRED:
                    stats[5] = -1
                elif r_set < 0:
                    stats[5] = 0    # no terminal of the lexeme fits: the input cannot end here
                else:
                    stats[5] = _accepts(set_buf, set_off[r_set], set_len[r_set], end_term, lr, follow_bits,
                                        pool_state, pool_parent, pool_height, node_table, visit, todo, ctr,
                                        node_slot)
                    if stats[5] == -2:
                        return 0
                continue
            if r_set == DEFERRED:
                dp = defer_work(def_out, ctr[C_DEF], DEFER_BOUNDARY, gnode_buf, bq_noff[k], bq_nlen[k], acc_buf,
                                bq_acc[k], bq_alen[k], sid, set_off, set_len, set_buf, pool_state, pool_parent)
                if dp < 0:
                    return 0
                ctr[C_DEF] = dp
            elif r_set >= 0:
                if n_items >= it_cap:
                    return 0
                it_noff[n_items] = bq_noff[k]
                it_nlen[n_items] = bq_nlen[k]
                it_set[n_items] = r_set
                it_parent[n_items] = pk
                it_walk[n_items] = WALK_NONE
                it_floor[n_items] = FLOOR_NONE
                if bq_gid[k, GID - 1] < 0:
                    _group_id(gnode_buf, bq_noff[k], bq_nlen[k], f_byte, it_gid, n_items)
                else:
                    for y in range(GID):
                        it_gid[n_items, y] = bq_gid[k, y]
                n_items += 1
            continue
        if it_head >= n_items:
            break
        # ---------------- an item group: walk below its nodes ------------------------------------
        it = it_head
        it_head += 1
        sid = it_set[it]
        if vec_off[sid] == -1 and set_len[sid] == 1:
            s = pool_state[set_buf[set_off[sid]]]
            if rd_start[s] == rd_start[s + 1]:
                # one stack whose top state reduces nothing: its state's shift vector, precomputed
                nv = ctr[C_VEC]
                c = sv_start[s + 1] - sv_start[s]
                if nv + c > vec_buf.shape[0]:
                    return 0
                for j in range(c):
                    vec_buf[nv + j] = sv_states[sv_start[s] + j]
                vec_off[sid] = nv
                vec_len[sid] = c
                set_floor[sid] = pool_height[set_buf[set_off[sid]]]
                ctr[C_VEC] = nv + c
        if vec_off[sid] == -1:
            # lexer start vector: expected(set) U ignore, as sorted start states
            ctr[C_MARK] += 1
            mk = ctr[C_MARK]
            unknown_vec = False
            v_floor = FLOOR_NONE
            for q in range(set_off[sid], set_off[sid] + set_len[sid]):
                node = set_buf[q]
                if exp_off[node] < 0:
                    s = pool_state[node]
                    ne = ctr[C_EXP]
                    ctr[C_FLOOR] = pool_height[node]
                    if rd_start[s] == rd_start[s + 1]:
                        # nothing to reduce: every terminal the state shifts is expected, exactly
                        cnt = sh_start[s + 1] - sh_start[s]
                        if ne + cnt > exp_buf.shape[0]:
                            return 0
                        for e in range(cnt):
                            exp_buf[ne + e] = sh_term[sh_start[s] + e]
                    else:
                        ctr[C_CMARK] += 1
                        cnt = expected_search(node, lr, follow_bits, pool_state, pool_parent, pool_height, node_table,
                                              la, la_stamp, todo, ctr, cand_terms, cand_mark, node_slot, carried)
                        if cnt == UNKNOWN:
                            if not record:
                                return -1
                            unknown_vec = True
                            break
                        if cnt < 0 or ne + cnt > exp_buf.shape[0]:
                            return 0
                        for ci in range(cnt):
                            exp_buf[ne + ci] = cand_terms[ci]
                    exp_off[node] = ne
                    exp_len[node] = cnt
                    exp_floor[node] = ctr[C_FLOOR]
                    ctr[C_EXP] = ne + cnt
                if exp_floor[node] < v_floor:
                    v_floor = exp_floor[node]
                for e in range(exp_off[node], exp_off[node] + exp_len[node]):
                    term_mark[exp_buf[e]] = mk
            if unknown_vec:
                vec_off[sid] = -2   # what this set expects depends on unknown stack parts
            else:
                for t in range(n_terms):
                    if is_ignore[t]:
                        term_mark[t] = mk
                nv = ctr[C_VEC]
                if nv + n_terms > vec_buf.shape[0]:
                    return 0
                c = 0
                for t in range(n_terms):
                    if term_mark[t] == mk:
                        vec_buf[nv + c] = term_start[t]
                        c += 1
                vec_off[sid] = nv
                vec_len[sid] = c
                set_floor[sid] = v_floor
                ctr[C_VEC] = nv + c
        if vec_off[sid] == -2:
            it_floor[it] = FLOOR_DIRTY
            dp = defer_work(def_out, ctr[C_DEF], DEFER_ITEM, gnode_buf, it_noff[it], it_nlen[it], acc_buf, 0, 0,
                            sid, set_off, set_len, set_buf, pool_state, pool_parent)
            if dp < 0:
                return 0
            ctr[C_DEF] = dp
            continue
        if set_floor[sid] < it_floor[it]:
            it_floor[it] = set_floor[sid]
        g_off = it_noff[it]
        g_len = it_nlen[it]
        pa = it_parent[it]
        if g_len == 1 and pa >= 0 and (it_set[pa] == sid or (it_parent[pa] >= 0 and it_set[it_parent[pa]] == sid)):
            # ---- a chain run: the stacks came back within one or two lexemes (SQL's `a * * * *`, a run
            # of `*` tokens up to 80 bytes long).  Follow the node's one-child path while each byte is a
            # whole lexeme of one terminal whose GLR step this call already made (step_memo): the
            # byte's live states continue on no next byte, so the item walk would end the lexeme
            # there and the boundary step would give the memoized set.  Tokens on the path go into
            # the mask; the first node the run cannot take becomes an item on its set.
            x = gnode_buf[g_off]
            xs = sid
            n_done = 0
            n_live = -1
            while True:
                x_end = f_end[x]
                if x + 1 < x_end and f_end[x + 1] != x_end:
                    break                                    # several children: the item walk's job
                if vec_off[xs] < 0:
                    break
                bx = f_byte[x]
                w6 = bx >> 6
                bit = np.uint64(1) << np.uint64(bx & 63)
                n_live = 0
                for j in range(vec_off[xs], vec_off[xs] + vec_len[xs]):
                    if first_bits[vec_buf[j], w6] & bit:
                        chain_states[n_live] = trans[vec_buf[j], bx]
                        n_live += 1
                if n_live == 0:
                    if n_done == 0:
                        break                                # the item walk finds nothing either
                    x = -1
                    break
                child = x + 1 if x + 1 < x_end else -1
                nxt = -1
                if child >= 0:
                    by = f_byte[child]
                    w6 = by >> 6
                    bit = np.uint64(1) << np.uint64(by & 63)
                    goes_on = False
                    t = -1
                    for j in range(n_live):
                        q = chain_states[j]
                        if first_bits[q, w6] & bit:
                            goes_on = True
                        if acc_term[q] >= 0:
                            if t >= 0 and acc_term[q] != t:
                                goes_on = True               # two terminals: not a one-terminal step
                            t = acc_term[q]
                    if goes_on:
                        break
                    if t >= 0:
                        skey, h = _step_slot(xs, t, n_terms)
                        if step_memo[h] != skey:
                            break                            # a step not made yet: the boundary's job
                        nxt = step_memo[h + 1]
                n_done += 1
                pk_set_tokens(f_packed[x], x, f_tok_start, f_tok_ids, mask)
                if nxt < 0:
                    x = -1                                   # a leaf, or nothing fits after the lexeme
                    break
                x = child
                xs = nxt
            if n_done > 0:
                stats[STAT_CHAIN_STEPS] += n_done
                it_floor[it] = FLOOR_DIRTY   # its tokens are in no cached walk: no item result above it
                if x >= 0:
                    if n_items >= it_cap or n_gn >= gnode_buf.shape[0]:
                        return 0
                    gnode_buf[n_gn] = x
                    it_noff[n_items] = n_gn
                    it_nlen[n_items] = 1
                    it_set[n_items] = xs
                    it_parent[n_items] = it
                    it_walk[n_items] = WALK_NONE
                    it_floor[n_items] = FLOOR_NONE
                    _group_id(gnode_buf, n_gn, 1, f_byte, it_gid, n_items)
                    n_gn += 1
                    n_items += 1
                continue
            if n_live == 0 and x >= 0:
                continue
        # only the start states some first byte below the group's nodes keeps alive matter: the
        # walk (and its cache key) uses those, so contexts that differ only in terminals that
        # cannot start here share one cached walk (exact: the others die on the first byte)
        gb0 = np.uint64(it_gid[it, 0])
        gb1 = np.uint64(it_gid[it, 1])
        gb2 = np.uint64(it_gid[it, 2])
        gb3 = np.uint64(it_gid[it, 3])
        vo = ctr[C_VEC]   # scratch room past the committed vectors, used up within this item
        if vo + vec_len[sid] > vec_buf.shape[0]:
            return 0
        k0 = 0
        for j in range(vec_off[sid], vec_off[sid] + vec_len[sid]):
            q = vec_buf[j]
            if ((first_bits[q, 0] & gb0) | (first_bits[q, 1] & gb1) | (first_bits[q, 2] & gb2)
                    | (first_bits[q, 3] & gb3)) != 0:
                vec_buf[vo + k0] = q
                k0 += 1
        if k0 == 0:
            continue
        skey = _walk_key(it_gid[it, 4], vec_buf, vo, k0)
        p = _lookup_walk(sc_table, sc_data, skey, gnode_buf, g_off, g_len, vec_buf, vo, k0)
        if p >= 0 and sc_data[p - 1] != 0 and set_len[sid] == 1:
            # an earlier call's result for this walk on a stack with the same top states
            mp = _find_item_result(sc_table, sc_data, p, set_buf[set_off[sid]], pool_state, pool_parent, result_depth,
                                   key_buf)
            if mp >= 0:
                it_walk[it] = -2 - mp   # its tokens: the result's (read back by an enclosing item's result)
                fl = pool_height[set_buf[set_off[sid]]] - sc_data[mp]
                if fl < it_floor[it]:
                    it_floor[it] = fl
                _apply_tokens(sc_data, mp + 1, mask, ps_applied, ps_masks)
                stats[STAT_RESULTS_USED] += 1
                continue
        if p >= 0:
            # replay the cached walk: its tokens, then its boundary groups on this item's stacks
            it_walk[it] = p
            p = _apply_tokens(sc_data, p, mask, ps_applied, ps_masks)
            n_sub = sc_data[p]
            p += 1
            for z in range(n_sub):
                al = sc_data[p]
                if n_bq >= bq_cap or n_acc_buf + al > acc_buf.shape[0]:
                    return 0
                for y in range(al):
                    acc_buf[n_acc_buf + y] = sc_data[p + 1 + y]
                p += 1 + al
                nl = sc_data[p]
                if n_gn + nl > gnode_buf.shape[0]:
                    return 0
                for y in range(GID):
                    bq_gid[n_bq, y] = sc_data[p + 1 + y]
                p += 1 + GID
                for y in range(nl):
                    gnode_buf[n_gn + y] = sc_data[p + y]
                p += nl
                bq_noff[n_bq] = n_gn
                bq_nlen[n_bq] = nl
                bq_acc[n_bq] = n_acc_buf
                bq_alen[n_bq] = al
                bq_set[n_bq] = sid
                bq_parent[n_bq] = it
                n_bq += 1
                n_gn += nl
                n_acc_buf += al
            stats[4] += 1
            continue
        # ---- walk every node of the group; tokens into dmask, boundaries into tb_*
        n_tb = 0
        n_use = _usable_prefix_slices(gnode_buf, g_off, g_len, f_byte, vec_buf, vo, k0, ps32, ps_off, ps_flags,
                                      ps_cnt)
        if n_use > 0:
            # every token "prefix + word prefix" keeps a NAME-like lexeme alive: allowed at once
            # (the cached walk records the slice, not its dense mask); below those prefixes only
            # the slices' remainder sub-tries are walked
            for j in range(ps_cnt.shape[0]):
                if ps_cnt[j] and not ps_applied[j]:
                    ps_applied[j] = 1          # the mask is a union: once per call suffices
                    for w in range(mask.shape[0]):
                        mask[w] |= ps_masks[j, w]
        n_dirty = 0
        for j in range(k0):           # row 0 is only read by the walks: set once per item
            states[0, j] = vec_buf[vo + j]
        counts[0] = k0
        owner[0] = -1 - it
        n_split = 0
        if g_len >= SPLIT_MIN_NODES:
            # a large group walks as first-byte units, each cached on its own with only the start
            # states its byte keeps alive: contexts whose lexer vectors differ (other keywords
            # expected, say) still share the units whose first byte cannot start those terminals
            for b in range(257):
                byte_pos[b] = 0
            for gi in range(g_len):
                byte_pos[f_byte[gnode_buf[g_off + gi]] + 1] += 1
            for b in range(256):
                if byte_pos[b + 1] > 0:
                    n_split += 1
                byte_pos[b + 1] += byte_pos[b]
            if n_split < 2 or vo + 2 * k0 + 1 > vec_buf.shape[0] or ps_cnt.shape[0] > 30:
                n_split = 0
        if n_split > 0:
            for gi in range(g_len):
                x = gnode_buf[g_off + gi]
                b = f_byte[x]
                split_nodes[byte_pos[b]] = x     # preorder kept within each byte
                byte_pos[b] += 1
            ps_bits = 0
            if n_use > 0:
                for j in range(ps_cnt.shape[0]):
                    if ps_cnt[j]:
                        ps_bits |= 1 << j
            u_end = 0
            while u_end < g_len:
                u_off = u_end
                b = f_byte[split_nodes[u_off]]
                u_end = byte_pos[b]
                # the unit's start states: the item's that byte b keeps alive, then a marker of the
                # prefix slices in use (the walk skips their tokens), so unit keys never equal item keys
                uvo = vo + k0
                kb = 0
                w6 = b >> 6
                bit = np.uint64(1) << np.uint64(b & 63)
                for j in range(k0):
                    q = vec_buf[vo + j]
                    if first_bits[q, w6] & bit:
                        vec_buf[uvo + kb] = q
                        kb += 1
                if kb == 0:
                    continue
                vec_buf[uvo + kb] = -1 - ps_bits
                u_len = u_end - u_off
                ukey = _walk_key(_nodes_hash(split_nodes, u_off, u_len), vec_buf, uvo, kb + 1)
                up = _lookup_walk(sc_table, sc_data, ukey, split_nodes, u_off, u_len, vec_buf, uvo,
                                  kb + 1)
                if up >= 0:
                    # replay the unit into the item's walk: tokens into dmask, boundaries into tb_*
                    nw = sc_data[up]
                    up += 1
                    for z in range(nw):
                        v = sc_data[up]
                        w = v >> 32
                        if dmask[w] == 0:
                            dirty[n_dirty] = w
                            n_dirty += 1
                        dmask[w] |= np.uint32(v & 0xFFFFFFFF)
                        up += 1
                    up += 1 + sc_data[up]          # units record no prefix slices
                    n_sub_u = sc_data[up]
                    up += 1
                    for z in range(n_sub_u):
                        al = sc_data[up]
                        if n_acc_buf + al > acc_buf.shape[0]:
                            return 0
                        a0 = n_acc_buf
                        for y in range(al):
                            acc_buf[n_acc_buf + y] = sc_data[up + 1 + y]
                        n_acc_buf += al
                        up += 1 + al
                        nl = sc_data[up]
                        if n_tb + nl > tb_cap:
                            return 0
                        for y in range(nl):
                            tb_node[n_tb] = sc_data[up + 1 + y]
                            tb_acc[n_tb] = a0
                            tb_alen[n_tb] = al
                            n_tb += 1
                        up += 1 + nl
                    stats[7] += 1
                    continue
                stats[6] += 1
                for j in range(kb):
                    states[0, j] = vec_buf[uvo + j]
                counts[0] = kb
                n_units += 1
                owner[0] = -1 - it_cap - n_units   # distinct from every item's and node's owner id
                t0 = n_tb
                n_dirty_u = 0
                for gi in range(u_off, u_end):
                    n_tb, n_acc_buf, n_dirty_u, ok = _walk_group_node(
                        split_nodes[gi], n_use, ps_child, ps_cnt, ps32, ps_off, r_orig, r_depth, r_end, r_tok_start,
                        r_tok_ids, ps_packed, f_packed, f_depth, f_end, f_tok_start, f_tok_ids, trans, states, counts,
                        owner, rec_owner, rec_start, rec_len, acc_term, acc_buf, n_acc_buf, tb_node, tb_acc, tb_alen,
                        n_tb, dmask_u, dirty_u, n_dirty_u, stats)
                    if not ok:
                        return 0
                _record_unit(sc_table, sc_data, sc_ctr, ukey, split_nodes, u_off, u_len, vec_buf,
                             uvo, kb + 1, dmask_u, dirty_u, n_dirty_u, tb_node, tb_acc, tb_alen, t0, n_tb, acc_buf,
                             sg_acc, sg_alen, sg_count, tb_group)
                for z in range(n_dirty_u):
                    w = dirty_u[z]
                    if dmask[w] == 0:
                        dirty[n_dirty] = w
                        n_dirty += 1
                    dmask[w] |= dmask_u[w]
                    dmask_u[w] = 0
        else:
            for gi in range(g_len):
                n_tb, n_acc_buf, n_dirty, ok = _walk_group_node(
                    gnode_buf[g_off + gi], n_use, ps_child, ps_cnt, ps32, ps_off, r_orig, r_depth, r_end, r_tok_start,
                    r_tok_ids, ps_packed, f_packed, f_depth, f_end, f_tok_start, f_tok_ids, trans, states, counts, owner,
                    rec_owner, rec_start, rec_len, acc_term, acc_buf, n_acc_buf, tb_node, tb_acc, tb_alen, n_tb, dmask,
                    dirty, n_dirty, stats)
                if not ok:
                    return 0
        # ---- group the boundaries by accepted terminals
        n_sub = _group_by_acc(tb_acc, tb_alen, 0, n_tb, acc_buf, sg_acc, sg_alen, sg_count, tb_group)
        if n_sub < 0 or n_bq + n_sub > bq_cap or n_gn + n_tb > gnode_buf.shape[0]:
            return 0
        acc_total = 0
        for y in range(n_sub):
            sg_pos[y] = n_gn
            bq_noff[n_bq + y] = n_gn
            bq_nlen[n_bq + y] = sg_count[y]
            bq_acc[n_bq + y] = sg_acc[y]
            bq_alen[n_bq + y] = sg_alen[y]
            bq_set[n_bq + y] = sid
            bq_parent[n_bq + y] = it
            n_gn += sg_count[y]
            acc_total += sg_alen[y]
        for z in range(n_tb):   # nodes in preorder within each group
            g = tb_group[z]
            gnode_buf[sg_pos[g]] = tb_node[z]
            sg_pos[g] += 1
        first_new_bq = n_bq
        n_bq += n_sub
        # ---- record the walk for every later item with these nodes and this vector
        nw = n_dirty
        for y in range(n_sub):
            _group_id(gnode_buf, bq_noff[first_new_bq + y], bq_nlen[first_new_bq + y], f_byte, bq_gid,
                      first_new_bq + y)
        size = 1 + g_len + 1 + k0 + 1 + 1 + nw + 1 + n_use + 1 + (2 + GID) * n_sub + acc_total + n_tb
        p = _reserve_walk(sc_table, sc_data, sc_ctr, skey, size)
        if p < 0:
            for z in range(n_dirty):   # cache full: just apply the tokens
                w = dirty[z]
                mask[w] |= dmask[w]
                dmask[w] = 0
            it_floor[it] = FLOOR_DIRTY   # nowhere to read its tokens back from: no item result above it
            continue
        it_walk[it] = p + 3 + g_len + k0   # where _lookup_walk will find it: its tokens
        p = _write_entry_head(sc_data, p, gnode_buf, g_off, g_len, vec_buf, vo, k0, dmask, dirty, n_dirty)
        for z in range(n_dirty):
            w = dirty[z]
            mask[w] |= dmask[w]
            dmask[w] = 0
        sc_data[p] = n_use
        p += 1
        for j in range(ps_cnt.shape[0]):
            if n_use > 0 and ps_cnt[j]:
                sc_data[p] = j
                p += 1
        sc_data[p] = n_sub
        p += 1
        for y in range(n_sub):
            bqi = first_new_bq + y
            al = bq_alen[bqi]
            sc_data[p] = al
            for z in range(al):
                sc_data[p + 1 + z] = acc_buf[bq_acc[bqi] + z]
            p += 1 + al
            nl = bq_nlen[bqi]
            sc_data[p] = nl
            for z in range(GID):
                sc_data[p + 1 + z] = bq_gid[bqi, z]
            p += 1 + GID
            for z in range(nl):
                sc_data[p + z] = gnode_buf[bq_noff[bqi] + z]
            p += nl
    stats[1] = n_items
    stats[2] = ctr[C_NODES]
    stats[3] = ctr[C_SETS]
    if record_results and result_depth > 0 and n_items > 0:
        _record_item_results(n_items, it_parent, it_walk, it_floor, it_child, it_next, it_set, set_off, set_len,
                             set_buf, pool_state, pool_parent, pool_height, result_depth, key_buf, sc_table, sc_data, sc_ctr,
                             dmask_u, dirty_u, ps_cnt, tb_node, stats, tb_group)
    return 1


SUBWALK_CACHE_INT64S = 2_000_000   # at most 16 MB of cached sub-walks per compiled grammar
SUBWALK_CACHE_ENTRIES = 1 << 16


@numba.njit(cache=True)
def _rehash(new_table, old_table):
    """Reinsert every (key, offset) pair of ``old_table`` into the larger empty ``new_table``."""
    tmask = (new_table.shape[0] >> 1) - 1
    for i in range(old_table.shape[0] >> 1):
        v = old_table[2 * i + 1]
        if v == 0:
            continue
        key = old_table[2 * i]
        h = (key * np.int64(2654435761)) & tmask
        while new_table[2 * h + 1] != 0:
            h = (h + 1) & tmask
        new_table[2 * h] = key
        new_table[2 * h + 1] = v


class SubwalkCache:
    """The kernel's persistent cache of large sub-walks (one per compiled grammar).

    ``table`` is the index (``2 * entries`` slots of (key, offset + 1), see
    :func:`_lookup_walk`), ``data`` the entries, ``ctr`` = [entries, int64s used].
    Starts at half the data bound and a quarter of the index bound and grows (4x, at most
    to the bounds) while more than half full; past them new walks are simply not cached.  The arrays come from
    the process-wide ``buffers.BUFFERS`` pool (fresh ones are mapped on first touch, so
    the start costs neither time nor resident memory until used; a dead grammar's are
    reused, already mapped), while a growth copies what is cached inside some mask's time (and walks
    made while the cache is full go uncached): starting at 1/64 of the bounds cost
    the SQL benchmark replay three growths (0.5 ms), at 1/4 none; with item results the
    syncode Go replay passed half of a 1/4 data array and grew inside a mask (1.2 ms).
    """

    def __init__(self, n_int64: int = SUBWALK_CACHE_INT64S // 2, entries: int = SUBWALK_CACHE_ENTRIES // 4):
        self.entries = entries
        self.table, self._table_back, _ = BUFFERS.zeros(self, 4 * entries, np.int64)
        self.data, self._data_back, _ = BUFFERS.zeros(self, n_int64, np.int64, zero=False)   # written before read
        self.ctr = np.zeros(2, dtype=np.int64)
        self._set_thresholds()

    def _set_thresholds(self) -> None:
        """Past half of either array it grows, unless that array is at its bound (then never)."""
        self._entries_at = self.entries // 2 if self.entries < SUBWALK_CACHE_ENTRIES else 1 << 62
        self._data_at = len(self.data) // 2 if len(self.data) < SUBWALK_CACHE_INT64S else 1 << 62

    def grow_if_needed(self) -> bool:
        """Grow the index or the data 4x once more than half full; True when an array was replaced
        (cheap otherwise: it runs after every kernel call)."""
        n_entries, used = self.ctr[0], self.ctr[1]
        if n_entries <= self._entries_at and used <= self._data_at:
            return False
        n_entries, used = int(n_entries), int(used)
        if n_entries > self._entries_at:
            self.entries = min(4 * self.entries, SUBWALK_CACHE_ENTRIES)
            table, back, _ = BUFFERS.zeros(self, 4 * self.entries, np.int64)
            _rehash(table, self.table)
            self.table = table
            self._table_back()
            self._table_back = back
        if used > self._data_at:
            data, back, _ = BUFFERS.zeros(self, min(4 * len(self.data), SUBWALK_CACHE_INT64S), np.int64,
                                          zero=False)
            data[:used] = self.data[:used]
            self.data = data
            self._data_back()
            self._data_back = back
        self._set_thresholds()
        return True


class Workspace:
    """Scratch arrays of the kernel, allocated once per compiled grammar and grown on overflow."""

    def __init__(self, n_terms: int, n_words_la: int, mask_words: int, max_depth: int, n_prefix_slices: int,
                 cap: int = 1024):
        self.cap = cap
        self.max_depth = max_depth
        self.n_prefix_slices = n_prefix_slices
        maxd = max_depth + 2
        tsize = 1
        while tsize < 2 * cap:
            tsize *= 2
        sizes32 = {"exp_buf": 8 * cap, "res_buf": 8 * cap, "set_buf": 8 * cap, "vec_buf": 8 * cap + n_terms,
                   "acc_buf": 16 * cap, "def_out": 16 * cap, "gnode_buf": 32 * cap,
                   "bq_noff": 4 * cap, "bq_nlen": 4 * cap, "bq_set": 4 * cap, "bq_acc": 4 * cap, "bq_alen": 4 * cap,
                   "it_noff": 4 * cap, "it_nlen": 4 * cap, "it_set": 4 * cap,
                   "tb_node": 8 * cap, "tb_acc": 8 * cap, "tb_alen": 8 * cap, "tb_group": 8 * cap,
                   "sg_acc": 8 * cap, "sg_alen": 8 * cap, "sg_count": 8 * cap, "sg_pos": 8 * cap,
                   "stk_nodes": 8 * cap, "cand_terms": n_terms + 1, "acc_terms": n_terms + 1, "chosen": n_terms + 1,
                   "counts": maxd, "rec_start": maxd, "rec_len": maxd, "ps_cnt": max(n_prefix_slices, 1),
                   "ps_applied": max(n_prefix_slices, 1), "states": maxd * max(n_terms, 1),
                   "split_nodes": 32 * cap, "byte_pos": 257, "bq_parent": 4 * cap, "it_parent": 4 * cap,
                   "it_walk": 4 * cap, "it_floor": 4 * cap, "it_child": 4 * cap, "it_next": 4 * cap,
                   "key_buf": MAX_RESULT_DEPTH + 1, "chain_states": n_terms + 1}
        sizes = [sizes32.get(name, cap) for name in W32]
        self.w32_off = np.zeros(len(W32) + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.w32_off[1:])
        # a workspace of the same layout, left clean by the kernel, is reused as it is (buffers.py)
        self.w32_blob, _, _ = BUFFERS.zeros(self, int(self.w32_off[-1]), np.int32, layout=("w32",) + tuple(sizes))
        for name in ("exp_off", "vec_off"):
            i = W32.index(name)
            self.w32_blob[self.w32_off[i]:self.w32_off[i + 1]] = -1
        sizes64 = {"node_table": tsize, "memo_table": tsize, "set_table": tsize, "term_mark": n_terms + 1,
                   "cand_mark": n_terms + 1, "ctr": 16, "owner": maxd, "rec_owner": maxd, "stats": 2 * N_STATS,
                   "bq_gid": GID * 4 * cap, "it_gid": GID * 4 * cap, "step_memo": 2 * STEP_MEMO}
        sizes = [sizes64.get(name, cap) for name in W64]
        self.w64_off = np.zeros(len(W64) + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.w64_off[1:])
        self.w64_blob, _, reused = BUFFERS.zeros(self, int(self.w64_off[-1]), np.int64,
                                                 layout=("w64",) + tuple(sizes))
        if reused:
            self.stats_view[:] = 0   # the counters are this grammar's (stamps and marks may go on counting)
        self.n_terms = n_terms
        self.la = np.zeros((cap + 1, n_words_la), dtype=np.uint64)   # + expected_search's scratch row
        # scratch masks + their non-zero word lists: an item's walk, and one first-byte unit of it
        # (each with a spare word: see _glr_run)
        self.dmask, _, _ = BUFFERS.zeros(self, 4 * (mask_words + 1), np.uint32, layout="dmask")   # scratch masks left zero

    def grown(self) -> "Workspace":
        """A workspace 4x larger, keeping the running totals of the stats."""
        ws = Workspace(self.n_terms, self.la.shape[1], self.dmask.shape[0] // 4 - 1, self.max_depth,
                       self.n_prefix_slices, self.cap * 4)
        ws.stats_view[N_STATS:] = self.stats_view[N_STATS:]
        return ws

    def part(self, name: str) -> np.ndarray:
        i = W32.index(name)
        return self.w32_blob[self.w32_off[i]:self.w32_off[i + 1]]

    @property
    def stats_view(self) -> np.ndarray:
        """The kernel's stats part (see glr_mask_kernel and N_STATS), a view."""
        i = W64.index("stats")
        return self.w64_blob[self.w64_off[i]:self.w64_off[i + 1]]


NO_DEFERRED = np.zeros(0, dtype=np.int32)
NO_FLAGS = np.zeros(0, dtype=np.bool_)   # stk_unknown of a call that does not record (never read)
MAX_WORKSPACE_CAP = 1 << 18


class GLRTooAmbiguous(Exception):
    """A mask search grew past the workspace limit (e.g. unboundedly many empty reductions)."""


_ONE_STACK_OFFSETS: dict[int, np.ndarray] = {}


def pack_stacks(stacks) -> tuple[np.ndarray, np.ndarray]:
    """Stacks (bottom to top) as the kernel wants them: (concatenated states, offsets)."""
    if len(stacks) == 1:   # the common case (deterministic grammars): offsets [0, n], shared
        flat1 = np.array(stacks[0], dtype=np.int32)
        off1 = _ONE_STACK_OFFSETS.get(len(flat1))
        if off1 is None:
            # (not made read-only: numba would compile the kernel again for a read-only array type)
            off1 = _ONE_STACK_OFFSETS[len(flat1)] = np.array([0, len(flat1)], dtype=np.int32)
        return flat1, off1
    flat: list[int] = []
    off = [0]
    for st in stacks:
        flat.extend(st)
        off.append(len(flat))
    return np.array(flat, dtype=np.int32), np.array(off, dtype=np.int32)


NO_BOUNDARIES = (np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int32),
                 np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int32))


def shift_start_vectors(sh_start: np.ndarray, sh_term: np.ndarray, is_ignore: np.ndarray,
                        term_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per LR state, the lexer start vector of the terminals it shifts plus the ignored ones, in
    terminal order: (offsets [n_states + 1], start states).  For a stack whose top state has no
    reduction this is exactly what the kernel would build from ``expected`` (most item sets: 93%
    on the SQL benchmark texts), so it is copied instead."""
    n_states = len(sh_start) - 1
    live = np.tile(np.asarray(is_ignore, dtype=np.bool_), (n_states, 1))
    live[np.repeat(np.arange(n_states), np.diff(sh_start)), sh_term[:sh_start[-1]]] = True
    _, terms = np.nonzero(live)          # row-major: state by state, terminals in order
    off = np.zeros(n_states + 1, dtype=np.int32)
    np.cumsum(live.sum(axis=1), out=off[1:])
    return off, np.asarray(term_start, dtype=np.int32)[terms]


def first_byte_bits(lexer_trans: np.ndarray) -> np.ndarray:
    """uint64 [n_states, 4]: bit b of row q is set iff lexer state q has a transition on byte b."""
    live = lexer_trans >= 0
    packed = np.packbits(live, axis=1, bitorder="little")          # [n_states, 32] bytes
    return np.ascontiguousarray(packed).view(np.uint64).reshape(len(lexer_trans), 4).copy()


def pack_prefix_slices(ps, lexer_trans: np.ndarray, start_states) -> tuple:
    """Kernel inputs for a trie's prefix slices (None: no slices) and one grammar's lexer
    (the last one, ``first_byte_bits``).

    ``ps_flags[b]`` (b < 256): R can start with byte b; ``ps_flags[256 + q]``: lexer state q
    (a terminal's start state) covers R, so every word token below a prefix keeps it alive.
    """
    from .slices import covers
    n_states = lexer_trans.shape[0]
    first_bits = first_byte_bits(lexer_trans)
    flags = np.zeros(256 + n_states, dtype=np.bool_)
    if ps is None or ps.count == 0:
        return (np.zeros(0, dtype=np.int32), np.zeros(11, dtype=np.int64), np.zeros(0, dtype=np.int64),
                np.zeros((0, 1), dtype=np.uint32), flags, first_bits)
    flags[:256] = ps.dfa.transitions[0] >= 0
    for q in set(int(x) for x in start_states):
        flags[256 + q] = covers(lexer_trans, q, ps.dfa)
    blob, off = ps.kernel_arrays
    return blob, off, ps.r_packed, ps.masks, flags, first_bits


class GLRKernel:
    """The mask kernel of one compiled grammar, with its per-grammar arguments bound once.

    A mask then costs one call carrying only what changes per mask (root walk, stacks,
    deferred work, can-end request).  Python work around the kernel was a third of a
    cold SQL mask: cold-cache interpreter steps, each cheap alone.  The sub-walk cache
    grows and the workspace is replaced on overflow here, and the bound argument
    tuples are rebuilt when either does.
    """

    def __init__(self, lexer, lr_blob: np.ndarray, lr_off: np.ndarray, follow_bits: np.ndarray, trie,
                 is_ignore: np.ndarray, prio: np.ndarray, is_lit: np.ndarray, resolve: bool, cache: SubwalkCache,
                 ws: "Workspace", prefix: tuple):
        self._head = (trie.node_byte, trie.node_depth, trie.subtree_end, trie.tok_start, trie.tok_ids, trie.packed,
                      lexer.trans, lexer.acc_term, lexer.start_state, is_ignore, prio, is_lit, resolve,
                      lr_blob, lr_off, follow_bits)
        self._max_depth = trie.max_depth
        self._prefix = prefix
        self._end_term = len(is_ignore)
        self.result_depth = RESULT_DEPTH   # 0 turns item results off (tests compare both ways)
        self._results_skipped = 0
        self.cache = cache
        self.ws = ws
        self._bind()

    def _bind(self) -> None:
        ws, cache = self.ws, self.cache
        if not 0 <= self.result_depth <= MAX_RESULT_DEPTH:
            raise ValueError(f"result_depth must be within 0..{MAX_RESULT_DEPTH}, not {self.result_depth}")
        self._mid = (self._max_depth, self.result_depth, ws.w32_blob, ws.w32_off, ws.w64_blob, ws.w64_off, ws.la, ws.dmask,
                     cache.table, cache.data, cache.ctr) + self._prefix
        self.stats = ws.stats_view

    def _record_results(self) -> bool:
        """Whether this call records item results: always during a trial, then only while they are
        used at least once per RESULT_MIN_USE made (else every RESULT_PROBE-th call, to notice when
        they start paying).  In the syncode SQL replay items read 3-12 stack states and came back
        rarely: 1,975 results made, 76 used."""
        if self.result_depth == 0:
            return False
        t = self.stats
        made = t[N_STATS + STAT_RESULTS_MADE]
        if made < RESULT_TRIAL or RESULT_MIN_USE * t[N_STATS + STAT_RESULTS_USED] >= made:
            return True
        self._results_skipped += 1
        return self._results_skipped % RESULT_PROBE == 0

    def totals(self) -> dict[str, int]:
        """Counters summed over every completed call (see glr_mask_kernel's ``stats``)."""
        t = self.stats
        n = N_STATS
        return {"glr_calls": int(t[n + STAT_CALLS]), "visited_nodes": int(t[n]), "walks_replayed": int(t[n + 4]),
                "units_walked": int(t[n + 6]), "units_replayed": int(t[n + 7]),
                "item_results_used": int(t[n + STAT_RESULTS_USED]), "item_results_made": int(t[n + STAT_RESULTS_MADE]),
                "chain_steps": int(t[n + STAT_CHAIN_STEPS])}

    def run(self, root_mask: np.ndarray, root_boundaries, stk_states: np.ndarray, stk_off: np.ndarray,
            stk_unknown: np.ndarray = NO_FLAGS, topk: int = 0, record: bool = False,
            deferred: np.ndarray | None = None, ce_mode: int = 0, ce_acc: np.ndarray | None = None):
        """(mask, n_deferred): the kernel's mask, growing the workspace until it suffices.

        ``root_boundaries`` = the cached root walk's boundary groups (nodes, node offsets,
        accepted terminals, terminal offsets), see ``CompiledGrammar._glr_root``; the stacks
        come from :func:`pack_stacks`.  With ``record``, the stacks flagged in ``stk_unknown``
        are only their top ``topk`` states and the call records the work that needs more of
        them (``self.deferred(n)`` reads it); otherwise ``deferred`` (recorded with the same
        top states) is explored on these complete stacks.  ``ce_mode``/``ce_acc`` ask whether
        EOS may come next (answer in ``self.stats[5]``, see :func:`glr_mask_kernel`).
        """
        if deferred is None:
            deferred = NO_DEFERRED
        if ce_acc is None:
            ce_acc = NO_TERMS
        while True:
            mask = np.empty_like(root_mask)
            status, n_def = glr_mask_kernel(*self._head, root_mask, *root_boundaries, stk_states, stk_off,
                                            stk_unknown, topk, record, deferred, self._record_results(), *self._mid, ce_mode, ce_acc,
                                            self._end_term, mask)
            if status == 1:
                if self.cache.grow_if_needed():
                    self._bind()
                return mask, n_def
            if status < 0:
                raise AssertionError("GLR mask search popped below the bottom of a complete stack")
            if self.ws.cap >= MAX_WORKSPACE_CAP:
                raise GLRTooAmbiguous(f"a GLR mask search needed more than {self.ws.cap} stack nodes")
            self.ws = self.ws.grown()
            self._bind()

    def deferred(self, n: int) -> np.ndarray:
        """A copy of the work the last recording call deferred (its ``n_deferred`` int32s)."""
        return self.ws.part("def_out")[:n].copy()
