"""One-call token masks for the GLR path (numba).

The Earley path walks the token trie in numba but returns to Python at every
group of lexeme boundaries to advance the parser, and that round trip
(~100-250 us per walk) is what made first visits of a parser context slow.
Here the whole mask is one numba call: a work queue of (trie node, stack set)
items.  Each item walks the subtree below its node with the lexer started for
what its stacks expect; where a lexeme ends inside a token, the GLR step
(reductions filtered by FOLLOW, then shift) runs right there on a pool of
hash-consed stack nodes, and the rest of the token becomes a new item.

Semantics are exactly those of ``lr_parser.LRSet.advance`` and the Earley
parser (maximal munch, union or priority resolution, ignore terminals), which
the tests check mask for mask.  Capacities are fixed per call; on overflow
the caller retries with larger buffers.
"""
from __future__ import annotations

import numba
import numpy as np

@numba.njit(cache=True, inline="always")
def _find(keys, lo, hi, key):
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


@numba.njit(cache=True)
def _intern_node(state, parent, pool_state, pool_parent, n_nodes, table):
    """Node id for (state, parent); returns (id, new count) or (-1, count) when full."""
    mask = table.shape[0] - 1
    h = (np.int64(state) * np.int64(1000003) + np.int64(parent + 1) * np.int64(7919)) & mask
    while True:
        v = table[h]
        if v == 0:
            if n_nodes >= pool_state.shape[0]:
                return -1, n_nodes
            pool_state[n_nodes] = state
            pool_parent[n_nodes] = parent
            table[h] = n_nodes + 1
            return n_nodes, n_nodes + 1
        j = v - 1
        if pool_state[j] == state and pool_parent[j] == parent:
            return j, n_nodes
        h = (h + 1) & mask


@numba.njit(cache=True)
def glr_mask_kernel(
        a_byte, a_depth, a_end, a_tok_start, a_tok_ids, a_orig,      # root trie (full or slice remainder)
        f_byte, f_depth, f_end, f_tok_start, f_tok_ids,              # full trie
        trans, acc_term, term_start, is_ignore, prio, is_lit, resolve,
        sh_start, sh_term, sh_to, gt_start, gt_nt, gt_to, rd_start, rd_prod, prod_lhs, prod_len, follow,
        init_states, stk_states, stk_off, mask_words, max_depth, cap):
    """Returns (mask, ok, stats).  ``ok`` is False when a capacity was exceeded (retry larger).

    ``stats`` = [trie nodes visited, items, stack nodes, stack sets].
    """
    n_terms = term_start.shape[0]
    mask = np.zeros(mask_words, dtype=np.uint32)
    stats = np.zeros(4, dtype=np.int64)
    # ---- stack-node pool (hash-consed) ------------------------------------------------
    pool_state = np.empty(cap, dtype=np.int32)
    pool_parent = np.empty(cap, dtype=np.int32)
    tsize = 1
    while tsize < 2 * cap:
        tsize *= 2
    node_table = np.zeros(tsize, dtype=np.int64)
    n_nodes = 0
    visit = np.zeros(cap, dtype=np.int64)
    stamp = 0
    todo = np.empty(cap, dtype=np.int32)
    # per node: expected terminals (computed lazily) in exp_buf
    exp_off = np.full(cap, -1, dtype=np.int32)
    exp_len = np.zeros(cap, dtype=np.int32)
    exp_buf = np.empty(8 * cap, dtype=np.int32)
    n_exp = 0
    # shift memo (node, terminal) -> result nodes in res_buf
    memo_table = np.zeros(tsize, dtype=np.int64)
    memo_key = np.empty(cap, dtype=np.int64)
    memo_off = np.empty(cap, dtype=np.int32)
    memo_len = np.empty(cap, dtype=np.int32)
    n_memo = 0
    res_buf = np.empty(8 * cap, dtype=np.int32)
    n_res = 0
    # stack sets (sorted node lists) and their lexer start vectors
    set_off = np.empty(cap, dtype=np.int32)
    set_len = np.empty(cap, dtype=np.int32)
    set_buf = np.empty(8 * cap, dtype=np.int32)
    n_setbuf = 0
    set_table = np.zeros(tsize, dtype=np.int64)
    n_sets = 0
    vec_off = np.full(cap, -1, dtype=np.int32)
    vec_len = np.zeros(cap, dtype=np.int32)
    vec_buf = np.empty(8 * cap, dtype=np.int32)
    n_vec = 0
    term_mark = np.zeros(n_terms, dtype=np.int64)   # set unions and boundary terminal sets
    mark = 0
    cand_mark = np.zeros(n_terms, dtype=np.int64)   # candidate terminals of one stack
    cmark = 0
    # work queue
    item_node = np.empty(4 * cap, dtype=np.int32)
    item_set = np.empty(4 * cap, dtype=np.int32)
    n_items = 0
    # scratch
    scratch = np.empty(cap, dtype=np.int32)
    cands = np.empty(n_terms + 1, dtype=np.int32)
    chosen = np.empty(n_terms + 1, dtype=np.int32)
    cand_terms = np.empty(n_terms + 1, dtype=np.int32)

    # ---- load the initial stacks as one set -----------------------------------------
    n_stk = stk_off.shape[0] - 1
    for k in range(n_stk):
        parent = -1
        for j in range(stk_off[k], stk_off[k + 1]):
            parent, n_nodes = _intern_node(stk_states[j], parent, pool_state, pool_parent, n_nodes, node_table)
            if parent < 0:
                return mask, False, stats
        scratch[k] = parent
    # initial set: the tops, sorted
    tops = np.sort(scratch[:n_stk].copy())
    set_off[0] = 0
    set_len[0] = n_stk
    for k in range(n_stk):
        set_buf[k] = tops[k]
    n_setbuf = n_stk
    n_sets = 1
    item_node[0] = 0
    item_set[0] = 0
    n_items = 1

    maxd = max_depth + 2
    width = max(init_states.shape[0], n_terms)
    states = np.empty((maxd, max(width, 1)), dtype=np.int32)
    counts = np.zeros(maxd, dtype=np.int32)
    owner = np.full(maxd, -1, dtype=np.int64)
    rec_owner = np.full(maxd, -2, dtype=np.int64)
    rec_set = np.full(maxd, -1, dtype=np.int32)

    head = 0
    while head < n_items:
        it = head
        head += 1
        sid = item_set[it]
        root = it == 0
        # lexer start vector of this item
        if root:
            k0 = init_states.shape[0]
            for j in range(k0):
                states[0, j] = init_states[j]
            counts[0] = k0
        else:
            if vec_off[sid] < 0:
                # expected(set) U ignore -> start states, sorted (terminal ranges are ordered)
                mark += 1
                for q in range(set_off[sid], set_off[sid] + set_len[sid]):
                    node = set_buf[q]
                    if exp_off[node] < 0 and rd_start[pool_state[node]] == rd_start[pool_state[node] + 1]:
                        # nothing to reduce: every terminal the state shifts is expected, exactly
                        s = pool_state[node]
                        cnt = sh_start[s + 1] - sh_start[s]
                        if n_exp + cnt > exp_buf.shape[0]:
                            return mask, False, stats
                        exp_off[node] = n_exp
                        for e in range(cnt):
                            exp_buf[n_exp + e] = sh_term[sh_start[s] + e]
                        exp_len[node] = cnt
                        n_exp += cnt
                    if exp_off[node] < 0:
                        # ---- expected terminals of one stack: candidates, then exact check
                        cmark += 1
                        n_cand = 0
                        stamp += 1
                        top = 0
                        todo[top] = node
                        top += 1
                        visit[node] = stamp
                        while top > 0:
                            top -= 1
                            x = todo[top]
                            s = pool_state[x]
                            for e in range(sh_start[s], sh_start[s + 1]):
                                t = sh_term[e]
                                if cand_mark[t] != cmark:
                                    cand_mark[t] = cmark
                                    cand_terms[n_cand] = t
                                    n_cand += 1
                            for e in range(rd_start[s], rd_start[s + 1]):
                                r = rd_prod[e]
                                if r == 0:
                                    continue
                                anc = x
                                for _ in range(prod_len[r]):
                                    anc = pool_parent[anc]
                                gs = pool_state[anc]
                                gi = _find(gt_nt, gt_start[gs], gt_start[gs + 1], prod_lhs[r])
                                if gi < 0:
                                    continue
                                y, n_nodes = _intern_node(gt_to[gi], anc, pool_state, pool_parent, n_nodes, node_table)
                                if y < 0:
                                    return mask, False, stats
                                if visit[y] != stamp:
                                    visit[y] = stamp
                                    if top >= cap:
                                        return mask, False, stats
                                    todo[top] = y
                                    top += 1
                        if n_exp + n_cand > exp_buf.shape[0]:
                            return mask, False, stats
                        exp_off[node] = n_exp
                        cnt = 0
                        for ci in range(n_cand):
                            t = cand_terms[ci]
                            # exact: does some reduction path allowed before t shift t?
                            stamp += 1
                            top = 0
                            todo[top] = node
                            top += 1
                            visit[node] = stamp
                            ok_t = False
                            while top > 0 and not ok_t:
                                top -= 1
                                x = todo[top]
                                s = pool_state[x]
                                if _find(sh_term, sh_start[s], sh_start[s + 1], t) >= 0:
                                    ok_t = True
                                    break
                                for e in range(rd_start[s], rd_start[s + 1]):
                                    r = rd_prod[e]
                                    if r == 0 or not follow[prod_lhs[r], t]:
                                        continue
                                    anc = x
                                    for _ in range(prod_len[r]):
                                        anc = pool_parent[anc]
                                    gs = pool_state[anc]
                                    gi = _find(gt_nt, gt_start[gs], gt_start[gs + 1], prod_lhs[r])
                                    if gi < 0:
                                        continue
                                    y, n_nodes = _intern_node(gt_to[gi], anc, pool_state, pool_parent, n_nodes,
                                                              node_table)
                                    if y < 0:
                                        return mask, False, stats
                                    if visit[y] != stamp:
                                        visit[y] = stamp
                                        if top >= cap:
                                            return mask, False, stats
                                        todo[top] = y
                                        top += 1
                            if ok_t:
                                exp_buf[n_exp + cnt] = t
                                cnt += 1
                        exp_len[node] = cnt
                        n_exp += cnt
                    for e in range(exp_off[node], exp_off[node] + exp_len[node]):
                        t = exp_buf[e]
                        if term_mark[t] != mark:
                            term_mark[t] = mark
                for t in range(n_terms):
                    if is_ignore[t]:
                        term_mark[t] = mark
                if n_vec + n_terms > vec_buf.shape[0]:
                    return mask, False, stats
                vec_off[sid] = n_vec
                c = 0
                for t in range(n_terms):
                    if term_mark[t] == mark:
                        vec_buf[n_vec + c] = term_start[t]
                        c += 1
                vec_len[sid] = c
                n_vec += c
            k0 = vec_len[sid]
            for j in range(k0):
                states[0, j] = vec_buf[vec_off[sid] + j]
            counts[0] = k0
        if counts[0] == 0:
            continue
        if root:
            nb_ = a_byte
            nd_ = a_depth
            ne_ = a_end
            nts_ = a_tok_start
            nti_ = a_tok_ids
            lo = 1
            hi = a_byte.shape[0]
            base = 0
        else:
            nb_ = f_byte
            nd_ = f_depth
            ne_ = f_end
            nts_ = f_tok_start
            nti_ = f_tok_ids
            lo = item_node[it]
            hi = f_end[lo]
            base = f_depth[lo] - 1
        owner[0] = -1 - it
        i = lo
        while i < hi:
            stats[0] += 1
            d = nd_[i] - base
            b = nb_[i]
            pc = counts[d - 1]
            c = 0
            for j in range(pc):
                s = trans[states[d - 1, j], b]
                if s >= 0:
                    states[d, c] = s
                    c += 1
            if c == 0:
                par = owner[d - 1]
                if rec_owner[d - 1] != par:
                    rec_owner[d - 1] = par
                    rec_set[d - 1] = -1
                    # terminals whose lexeme ends right before this byte
                    mark += 1
                    n_acc = 0
                    any_ignore = False
                    for j in range(pc):
                        t = acc_term[states[d - 1, j]]
                        if t >= 0 and term_mark[t] != mark:
                            term_mark[t] = mark
                            cands[n_acc] = t
                            n_acc += 1
                            if is_ignore[t]:
                                any_ignore = True
                    if n_acc > 0:
                        # GLR step for each (stack, terminal), memoized; keep terminals that shift
                        n_ch = 0
                        for ci in range(n_acc):
                            t = cands[ci]
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
                                    # reductions allowed before t, then shift t
                                    if n_memo >= cap:
                                        return mask, False, stats
                                    mo = n_res
                                    stamp += 1
                                    top = 0
                                    todo[top] = node
                                    top += 1
                                    visit[node] = stamp
                                    while top > 0:
                                        top -= 1
                                        x = todo[top]
                                        s = pool_state[x]
                                        si = _find(sh_term, sh_start[s], sh_start[s + 1], t)
                                        if si >= 0:
                                            y, n_nodes = _intern_node(sh_to[si], x, pool_state, pool_parent, n_nodes,
                                                                      node_table)
                                            if y < 0 or n_res >= res_buf.shape[0]:
                                                return mask, False, stats
                                            res_buf[n_res] = y
                                            n_res += 1
                                        for e in range(rd_start[s], rd_start[s + 1]):
                                            r = rd_prod[e]
                                            if r == 0 or not follow[prod_lhs[r], t]:
                                                continue
                                            anc = x
                                            for _ in range(prod_len[r]):
                                                anc = pool_parent[anc]
                                            gs = pool_state[anc]
                                            gi = _find(gt_nt, gt_start[gs], gt_start[gs + 1], prod_lhs[r])
                                            if gi < 0:
                                                continue
                                            y, n_nodes = _intern_node(gt_to[gi], anc, pool_state, pool_parent,
                                                                      n_nodes, node_table)
                                            if y < 0:
                                                return mask, False, stats
                                            if visit[y] != stamp:
                                                visit[y] = stamp
                                                if top >= cap:
                                                    return mask, False, stats
                                                todo[top] = y
                                                top += 1
                                    mi = n_memo
                                    memo_key[mi] = key
                                    memo_off[mi] = mo
                                    memo_len[mi] = n_res - mo
                                    memo_table[mh] = mi + 1
                                    n_memo += 1
                                if memo_len[mi] > 0:
                                    got = True
                            if got:
                                chosen[n_ch] = t
                                n_ch += 1
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
                            # union of every chosen shift result -> one sorted set
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
                                            return mask, False, stats
                                        scratch[n_sc] = res_buf[e]
                                        n_sc += 1
                            srt = np.sort(scratch[:n_sc])
                            m2 = 0
                            for e in range(n_sc):
                                if m2 == 0 or srt[e] != srt[m2 - 1]:
                                    srt[m2] = srt[e]
                                    m2 += 1
                            # intern the set
                            hkey = np.int64(m2)
                            for e in range(m2):
                                hkey = hkey * np.int64(1000003) + srt[e]
                            sh = (hkey * np.int64(2654435761)) & (set_table.shape[0] - 1)
                            found = -1
                            while True:
                                v = set_table[sh]
                                if v == 0:
                                    break
                                cand = v - 1
                                if set_len[cand] == m2:
                                    same = True
                                    for e in range(m2):
                                        if set_buf[set_off[cand] + e] != srt[e]:
                                            same = False
                                            break
                                    if same:
                                        found = cand
                                        break
                                sh = (sh + 1) & (set_table.shape[0] - 1)
                            if found < 0:
                                if n_sets >= cap or n_setbuf + m2 > set_buf.shape[0]:
                                    return mask, False, stats
                                found = n_sets
                                set_off[found] = n_setbuf
                                set_len[found] = m2
                                for e in range(m2):
                                    set_buf[n_setbuf + e] = srt[e]
                                n_setbuf += m2
                                set_table[sh] = found + 1
                                n_sets += 1
                            rec_set[d - 1] = found
                        elif any_ignore:
                            rec_set[d - 1] = sid   # an ignored lexeme: same stacks, lexer restarts
                r2 = rec_set[d - 1]
                if r2 >= 0:
                    if n_items >= item_node.shape[0]:
                        return mask, False, stats
                    item_node[n_items] = a_orig[i] if root else i
                    item_set[n_items] = r2
                    n_items += 1
                i = ne_[i]
                continue
            counts[d] = c
            owner[d] = i if not root else -(np.int64(i) + 1000000000)
            for q in range(nts_[i], nts_[i + 1]):
                t = nti_[q]
                mask[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
            i += 1
    stats[1] = n_items
    stats[2] = n_nodes
    stats[3] = n_sets
    return mask, True, stats


def run_glr_mask(lexer, lr, trie, full_trie, init_states: np.ndarray, stacks: list[list[int]],
                 is_ignore: np.ndarray, prio: np.ndarray, is_lit: np.ndarray, resolve: bool):
    """Call the kernel, growing its buffers until they suffice: (mask, stats)."""
    stk_states = np.array([s for st in stacks for s in st], dtype=np.int32)
    stk_off = np.zeros(len(stacks) + 1, dtype=np.int32)
    np.cumsum([len(st) for st in stacks], out=stk_off[1:])
    words = (full_trie.vocab_size + 31) // 32
    cap = 1024
    while True:
        mask, ok, stats = glr_mask_kernel(
            trie.node_byte, trie.node_depth, trie.subtree_end, trie.tok_start, trie.tok_ids, trie.orig_ids(),
            full_trie.node_byte, full_trie.node_depth, full_trie.subtree_end, full_trie.tok_start,
            full_trie.tok_ids,
            lexer.trans, lexer.acc_term, lexer.start_state, is_ignore, prio, is_lit, resolve,
            lr.sh_start, lr.sh_term, lr.sh_to, lr.gt_start, lr.gt_nt, lr.gt_to, lr.rd_start, lr.rd_prod,
            lr.prod_lhs, lr.prod_len, lr.follow,
            init_states, stk_states, stk_off, words, full_trie.max_depth, cap)
        if ok:
            return mask, stats
        cap *= 4
        if cap > (1 << 24):
            raise MemoryError("GLR mask search exceeded its buffers (grammar too ambiguous)")
