"""Token slices: precomputed masks for free-text lexer states (string contents).

Inside a JSON string almost every token (147k of Qwen's 152k) keeps the lexer
in the same loop, so walking the whole token trie there is wasted work.  A
*slice* is the set of tokens a reference loop language ``R`` (say
``[^"\\\\\\x00-\\x1f]*`` as UTF-8) stays alive on, together with the
*remainder trie*: the trie restricted to the other tokens.  When a live lexer
state *covers* ``R`` (every string ``R`` stays alive on keeps that state alive)
the whole slice is allowed at once, with no parser involved, and only the
remainder trie is walked.  The remainder walk reports boundary nodes in the
full trie's numbering, so lexeme boundaries resume exactly as before.

Slices depend only on the tokenizer, so they are built once per token trie.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np

from ..regex import ByteDFA, compile_regex
from .trie import TokenTrie, _subtree_ends, pack_nodes

# Reference loop languages, largest first.  Only speed depends on this list:
# a lexer state that covers none of them is walked over the full trie.
REFERENCE_LOOPS: tuple[tuple[str, str], ...] = (
    ("json-string-body", r'[^"\\\x00-\x1f]*'),
    ("single-quoted-body", r"[^'\\\x00-\x1f]*"),   # SQL / Python / JS '...' strings
    ("line", r"[^\n]*"),
    ("prose", r"[A-Za-z0-9_ ,.]*"),   # words, spaces and sentence punctuation (a regex's [\w .,]{10,50})
    ("identifier", r"[A-Za-z0-9_]*"),   # word characters after the first of a NAME-like terminal
    ("word", r"[A-Za-z_][A-Za-z0-9_]*"),  # a whole NAME-like lexeme, from its start state
)


@dataclass
class TokenSlice:
    name: str
    dfa: ByteDFA                # the reference loop language R
    mask: np.ndarray            # uint32 words: tokens R stays alive on
    remainder: TokenTrie        # trie of every other token, node_orig -> full-trie node ids
    size: int                   # number of tokens in the slice
    max_len: int | None = None  # a bounded slice holds only its tokens of at most this many bytes


@numba.njit(cache=True)
def _node_states(node_byte, node_depth, trans, max_depth):
    """State of R after each node's byte path (-1 = dead), and each node's parent."""
    n = node_byte.shape[0]
    state = np.empty(n, dtype=np.int32)
    parent = np.empty(n, dtype=np.int32)
    path_state = np.empty(max_depth + 2, dtype=np.int32)
    path_node = np.empty(max_depth + 2, dtype=np.int32)
    state[0] = 0
    parent[0] = -1
    path_state[0] = 0
    path_node[0] = 0
    for i in range(1, n):
        d = node_depth[i]
        p = path_state[d - 1]
        s = trans[p, node_byte[i]] if p >= 0 else -1
        state[i] = s
        parent[i] = path_node[d - 1]
        path_state[d] = s
        path_node[d] = i
    return state, parent


@numba.njit(cache=True)
def _keep_nodes(state, parent):
    """Nodes on a path to a token R dies on (ancestor-closed, root included)."""
    n = state.shape[0]
    keep = np.zeros(n, dtype=np.bool_)
    keep[0] = True
    for i in range(n - 1, 0, -1):
        if state[i] < 0:
            keep[i] = True
        if keep[i]:
            keep[parent[i]] = True
    return keep


def build_slice(trie: TokenTrie, name: str, pattern: str, max_len: int | None = None,
                dfa: ByteDFA | None = None) -> TokenSlice:
    """The slice of reference loop ``pattern`` (``dfa``: its DFA, when already built); with
    ``max_len``, only its tokens of at most that many bytes (the others join the remainder trie)."""
    if dfa is None:
        dfa = compile_regex(pattern)
    state, parent = _node_states(trie.node_byte, trie.node_depth, dfa.transitions, trie.max_depth)
    if max_len is not None:
        state[trie.node_depth > max_len] = -1
    keep = _keep_nodes(state, parent)
    idx = np.nonzero(keep)[0].astype(np.int32)
    new_index = np.cumsum(keep, dtype=np.int64) - 1
    # tokens: in the slice iff R is alive at the node where the token ends
    tok_nodes = trie.token_node
    in_trie = tok_nodes >= 0
    alive_tok = np.zeros(trie.vocab_size, dtype=bool)
    alive_tok[in_trie] = state[tok_nodes[in_trie]] >= 0
    words = (trie.vocab_size + 31) // 32
    bits = np.zeros(words * 32, dtype=bool)
    bits[: trie.vocab_size] = alive_tok
    mask = np.packbits(bits, bitorder="little").view(np.uint32).copy()
    rem_ids = np.nonzero(in_trie & ~alive_tok)[0].astype(np.int32)
    rem_nodes = new_index[tok_nodes[rem_ids]].astype(np.int32)
    order = np.argsort(rem_nodes, kind="stable")
    n = idx.shape[0]
    tok_start = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rem_nodes, minlength=n), out=tok_start[1:])
    node_depth = trie.node_depth[idx]
    token_node = np.full(trie.vocab_size, -1, dtype=np.int32)
    token_node[rem_ids] = rem_nodes
    remainder = TokenTrie(node_byte=trie.node_byte[idx], node_depth=node_depth,
                          subtree_end=_subtree_ends(node_depth), tok_start=tok_start,
                          tok_ids=rem_ids[order], token_node=token_node, vocab_size=trie.vocab_size,
                          max_depth=trie.max_depth, node_orig=idx)
    return TokenSlice(name=name, dfa=dfa, mask=mask, remainder=remainder, size=int(alive_tok.sum()), max_len=max_len)


def build_slices(trie: TokenTrie) -> list[TokenSlice]:
    """The reference slices for one trie, largest first."""
    slices = [build_slice(trie, name, pattern) for name, pattern in REFERENCE_LOOPS]
    return sorted(slices, key=lambda s: -s.size)


# ----- bounded slices: counted free text ----------------------------------------------------
# A state with at most k characters left (a JSON Schema string with maxLength, a regex's
# [\w ]{10,50}) covers no loop: some long string of it dies.  But it covers every string of a
# loop up to k bytes, so the loop's tokens of at most L <= k bytes are allowed at once and the
# walk runs over the trie of the other tokens: 5,765 of Qwen's string-body tokens are longer
# than 12 bytes, 196 longer than 32.  Walking a maxLength string's counted states over the full
# trie visited ~188k nodes, ~2 ms, at every position.  The bounds stop at 32 (196 string-body
# tokens are longer) and start at 12: at 8 the remainder trie kept 176k nodes (5 MB, 9 ms to
# build) and walks saved only half.
BOUNDED_LENGTHS = (12, 16, 24, 32)
# Only loops whose remainder trie is at most this share of the full trie get bounded cuts: the
# identifier and word loops leave 80% of Qwen's trie (a cut saved little and cost 8 MB, 17 ms).
BOUNDED_MAX_REMAINDER_SHARE = 0.5


def boundable(trie: TokenTrie, sl: TokenSlice) -> bool:
    """Whether ``sl`` gets bounded cuts (see BOUNDED_MAX_REMAINDER_SHARE)."""
    return sl.remainder.node_byte.shape[0] <= BOUNDED_MAX_REMAINDER_SHARE * trie.node_byte.shape[0]


BOUNDED_PAIRS_BITS = 12                      # covered_length's pair table: 4,096 slots


def bounded_slice(trie: TokenTrie, sl: TokenSlice, max_len: int) -> TokenSlice:
    """The slice ``sl`` cut to tokens of at most ``max_len`` bytes, built at first use per trie
    (on Qwen's: 2-4 ms and 1-2 MB each for the string bodies, which ``warm_up`` builds; 10-13 ms
    and 5 MB for prose)."""
    if trie.bounded_slices is None:
        trie.bounded_slices = {}
    cache = trie.bounded_slices
    key = (sl.name, max_len)
    got = cache.get(key)
    if got is None:
        got = cache[key] = build_slice(trie, sl.name, dict(REFERENCE_LOOPS)[sl.name], max_len, sl.dfa)
    return got


@numba.njit(cache=True, inline="always")
def _add_pair(keys, key):
    """Insert ``key`` into the open-addressing set ``keys`` (-1 = empty slot, size a power of
    two); True when it was not there yet.  The product explorations' pair sets."""
    mask = keys.shape[0] - 1
    h = (key * np.int64(2654435761)) & mask
    while keys[h] != -1:
        if keys[h] == key:
            return False
        h = (h + 1) & mask
    keys[h] = key
    return True


@numba.njit(cache=True)
def _covered_length_kernel(lexer_trans, q, rt, max_len, table_bits):
    """Product exploration of (reference DFA, lexer) from (0, q), one string length per level.
    Returns the largest n <= max_len such that every string of at most n bytes the reference
    stays alive on keeps q alive, or -1 when the pair table fills up (decide nothing).  A pair
    met at an earlier level is not expanded again: every string from there was already tried
    with at least as many bytes to go."""
    for b in range(256):
        if rt[0, b] >= 0 and lexer_trans[q, b] < 0:
            return 0   # most states die on some first byte: decided before allocating anything
    cap = 1 << table_bits
    keys = np.full(cap, -1, dtype=np.int64)
    cur_r = np.empty(cap, dtype=np.int32)
    cur_s = np.empty(cap, dtype=np.int32)
    nxt_r = np.empty(cap, dtype=np.int32)
    nxt_s = np.empty(cap, dtype=np.int32)
    n_states = np.int64(lexer_trans.shape[0])
    n_seen = 1
    _add_pair(keys, np.int64(q))   # (reference start 0, q)
    cur_r[0] = 0
    cur_s[0] = q
    n_cur = 1
    for level in range(1, max_len + 1):
        n_next = 0
        for i in range(n_cur):
            r = cur_r[i]
            st = cur_s[i]
            for b in range(256):
                r2 = rt[r, b]
                if r2 < 0:
                    continue
                s2 = lexer_trans[st, b]
                if s2 < 0:
                    return level - 1   # a string of `level` bytes kills q
                if _add_pair(keys, np.int64(r2) * n_states + np.int64(s2)):
                    n_seen += 1
                    if 2 * n_seen > cap:
                        return -1
                    nxt_r[n_next] = r2
                    nxt_s[n_next] = s2
                    n_next += 1
        if n_next == 0:
            return max_len + 1   # no new pair: every length is covered (the state covers R)
        for i in range(n_next):
            cur_r[i] = nxt_r[i]
            cur_s[i] = nxt_s[i]
        n_cur = n_next
    return max_len


def covered_length(lexer_trans: np.ndarray, q: int, ref: ByteDFA, max_len: int) -> int:
    """Largest n <= ``max_len`` such that every byte string of at most n bytes the reference DFA
    stays alive on keeps lexer state ``q`` alive; ``max_len + 1`` when every length is (the
    product closed: q covers R, as :func:`covers` says); 0 when undecided within the pair table."""
    return max(0, int(_covered_length_kernel(lexer_trans, int(q), ref.transitions, max_len, BOUNDED_PAIRS_BITS)))


def covered_length_reference(lexer_trans: np.ndarray, q: int, ref: ByteDFA, max_len: int) -> int:
    """Pure-Python :func:`covered_length` (for the tests): the pairs first reached by strings of
    each length, level by level."""
    rt = ref.transitions
    seen = {(0, q)}
    level = [(0, q)]
    for n in range(1, max_len + 1):
        nxt = []
        for r, st in level:
            for b in range(256):
                r2 = int(rt[r, b])
                if r2 < 0:
                    continue
                s2 = int(lexer_trans[st, b])
                if s2 < 0:
                    return n - 1
                if (r2, s2) not in seen:
                    seen.add((r2, s2))
                    nxt.append((r2, s2))
        if not nxt:
            return max_len + 1
        level = nxt
    return max_len


MAX_PRODUCT_PAIRS = 256


@numba.njit(cache=True)
def _covers_kernel(lexer_trans, q, rt, max_pairs):
    """Product exploration of (reference DFA, lexer) from (0, q); 1 = covers, 0 = not, -1 = too big.
    Pairs are deduplicated in a hash table: a counted state explores up to the cap, and a linear
    search made that ~2 ms per new state of a maxLength string."""
    if max_pairs < 1:
        return -1
    cap = 16
    while cap < 2 * (max_pairs + 1):
        cap *= 2
    keys = np.full(cap, -1, dtype=np.int64)
    seen_r = np.empty(max_pairs + 1, dtype=np.int32)
    seen_s = np.empty(max_pairs + 1, dtype=np.int32)
    n_states = np.int64(lexer_trans.shape[0])
    n = 1
    seen_r[0] = 0
    seen_s[0] = q
    _add_pair(keys, np.int64(q))   # (reference start 0, q)
    head = 0
    while head < n:
        r = seen_r[head]
        st = seen_s[head]
        head += 1
        for b in range(256):
            r2 = rt[r, b]
            if r2 < 0:
                continue
            s2 = lexer_trans[st, b]
            if s2 < 0:
                return 0
            if _add_pair(keys, np.int64(r2) * n_states + np.int64(s2)):
                if n >= max_pairs:
                    return -1
                seen_r[n] = r2
                seen_s[n] = s2
                n += 1
    return 1


def covers(lexer_trans: np.ndarray, q: int, ref: ByteDFA, max_pairs: int = MAX_PRODUCT_PAIRS) -> bool:
    """True iff every byte string the reference DFA stays alive on keeps lexer state ``q`` alive.

    Explores the product of the two automata from (R start, q) in numba.  For a
    free-text loop state the product is tiny; when it grows past ``max_pairs``
    (a counted string such as ``.{0,4096}`` only dies thousands of characters
    later) the answer is a conservative False: the state is then walked over
    the full trie, which is always exact, instead of spending time proving coverage.
    """
    return _covers_kernel(lexer_trans, int(q), ref.transitions, max_pairs) == 1


def covers_reference(lexer_trans: np.ndarray, q: int, ref: ByteDFA, max_pairs: int = MAX_PRODUCT_PAIRS) -> bool:
    """Pure-Python :func:`covers` (kept for the tests)."""
    if max_pairs < 1:
        return False
    rt = ref.transitions
    seen = {(0, q)}
    stack = [(0, q)]
    while stack:
        r, st = stack.pop()
        for b in range(256):
            r2 = int(rt[r, b])
            if r2 < 0:
                continue
            s2 = int(lexer_trans[st, b])
            if s2 < 0:
                return False
            if (r2, s2) not in seen:
                if len(seen) >= max_pairs:
                    return False
                seen.add((r2, s2))
                stack.append((r2, s2))
    return True


# ----- prefix slices: the same idea one lexeme in -------------------------------------------
# After a lexeme boundary at a punctuation or whitespace node p (" ", ".", "(", ", "), a
# parser state that expects a NAME-like terminal allows every token "p + word prefix" below
# p: 41k of Qwen's tokens sit below " " alone.  The GLR kernel walks those subtrees once per
# new lexer vector; a prefix slice lets it allow them at once and walk only the remainder.
PREFIX_LOOP = ("word", r"[A-Za-z_][A-Za-z0-9_]*")
PREFIX_MAX_DEPTH = 3          # prefix nodes this deep at most (" ", ", ", ").\n" ...)
PREFIX_MIN_TOKENS = 256       # a prefix slice must allow at least this many tokens at once


@dataclass
class PrefixSlices:
    """Prefix slices of one trie for one loop language R, flattened for the kernel.

    Slice j: prefix node ``node[j]`` (full trie); ``n_first[j]`` children of it start R;
    ``masks[j]`` = tokens below it whose bytes after the prefix are a non-empty string R
    stays alive on; remainder sub-trie = nodes ``r_lo[j]:r_hi[j]`` of the ``r_*`` arrays
    (the prefix node first), with global ``r_end`` / ``r_tok_start`` offsets and full-trie
    ids ``r_orig`` (ascending within a slice).
    """

    dfa: ByteDFA
    node: np.ndarray
    n_first: np.ndarray
    masks: np.ndarray
    r_lo: np.ndarray
    r_hi: np.ndarray
    r_byte: np.ndarray
    r_depth: np.ndarray
    r_end: np.ndarray
    r_tok_start: np.ndarray
    r_tok_ids: np.ndarray
    r_orig: np.ndarray
    child: np.ndarray           # int32 [full trie nodes]: slice j whose prefix node is the node's parent, or -1

    @property
    def count(self) -> int:
        return int(self.node.shape[0])

    @cached_property
    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The int32 arrays as one blob plus offsets, built once per trie (megabytes: ~1 ms that
        would otherwise land on every GLR grammar's compile)."""
        parts = (self.node, self.n_first, self.r_lo, self.r_hi, self.r_depth, self.r_end, self.r_tok_start,
                 self.r_tok_ids, self.r_orig, self.child)
        off = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in parts], out=off[1:])
        return np.concatenate(parts).astype(np.int32), off

    @cached_property
    def r_packed(self) -> np.ndarray:
        """The remainder sub-tries' nodes as the walk reads them (see trie.pack_nodes)."""
        return pack_nodes(self.r_byte, self.r_depth, self.r_end, self.r_tok_start, self.r_tok_ids)


@numba.njit(cache=True)
def _prefix_candidates(node_byte, node_depth, tok_start, rtrans, is_word_byte, max_k):
    """Per node p (depth <= max_k, last byte not a word byte): tokens below p whose bytes
    after p keep R alive (non-empty suffix)."""
    n = node_byte.shape[0]
    count = np.zeros(n, dtype=np.int64)
    path_node = np.zeros(4098, dtype=np.int32)
    rstate = np.full((max_k + 1, 4098), -1, dtype=np.int32)   # rstate[k, d]: R after bytes k+1..d
    for i in range(1, n):
        d = node_depth[i]
        path_node[d] = i
        b = node_byte[i]
        for k in range(1, min(max_k, d - 1) + 1):
            prev = 0 if d - 1 == k else rstate[k, d - 1]
            rstate[k, d] = rtrans[prev, b] if prev >= 0 else -1
        ntok = tok_start[i + 1] - tok_start[i]
        if ntok:
            for k in range(1, min(max_k, d - 1) + 1):
                if rstate[k, d] >= 0:
                    p = path_node[k]
                    if not is_word_byte[node_byte[p]]:
                        count[p] += ntok
    return count


@numba.njit(cache=True)
def _prefix_states(node_byte, node_depth, rtrans, p, end):
    """R state of each node of subtree(p) after the bytes below p (p itself: R's start)."""
    d0 = node_depth[p]
    m = end - p
    state = np.empty(m, dtype=np.int32)
    parent = np.empty(m, dtype=np.int32)
    path_state = np.empty(4098, dtype=np.int32)
    path_node = np.empty(4098, dtype=np.int32)
    state[0] = 0
    parent[0] = -1
    path_state[0] = 0
    path_node[0] = 0
    for i in range(1, m):
        d = node_depth[p + i] - d0
        s0 = path_state[d - 1]
        s = rtrans[s0, node_byte[p + i]] if s0 >= 0 else -1
        state[i] = s
        parent[i] = path_node[d - 1]
        path_state[d] = s
        path_node[d] = i
    return state, parent


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated index ranges [starts[i], starts[i] + lengths[i])."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    return np.repeat(np.asarray(starts, dtype=np.int64) - (ends - lengths), lengths) + np.arange(total)


def build_prefix_slices(trie: TokenTrie, pattern: str = PREFIX_LOOP[1], max_depth: int = PREFIX_MAX_DEPTH,
                        min_tokens: int = PREFIX_MIN_TOKENS) -> PrefixSlices:
    dfa = compile_regex(pattern)
    rt = dfa.transitions
    is_word = np.zeros(256, dtype=np.bool_)
    for b in range(256):
        c = chr(b)
        is_word[b] = b < 128 and (c.isalnum() or c == "_")
    count = _prefix_candidates(trie.node_byte, trie.node_depth, trie.tok_start, rt, is_word, max_depth)
    first_bytes = rt[0] >= 0
    words = (trie.vocab_size + 31) // 32
    nodes, n_first, masks, los, his = [], [], [], [], []
    parts = {k: [] for k in ("byte", "depth", "end", "tok_start", "tok_ids", "orig")}
    total = 0
    tok_total = 0
    # the root too: after a lexeme that ends exactly where a token starts, the group is the
    # root's children and the slice is every token that is a word prefix from its first byte
    root_state, _ = _prefix_states(trie.node_byte, trie.node_depth, rt, 0, trie.n_nodes)
    ntok_all = trie.tok_start[1:] - trie.tok_start[:-1]
    count[0] = int(ntok_all[1:][root_state[1:] >= 0].sum())
    for p in np.nonzero(count >= min_tokens)[0].tolist():
        end = int(trie.subtree_end[p])
        state, parent = _prefix_states(trie.node_byte, trie.node_depth, rt, p, end)
        # tokens ending at a node R is alive at (below p) form the slice; p's own tokens do not
        ids = np.arange(p, end)
        ntok = trie.tok_start[ids + 1] - trie.tok_start[ids]
        in_slice = state >= 0
        in_slice[0] = False
        keep = _keep_nodes(np.where(in_slice | (ntok == 0), 0, -1).astype(np.int32), parent)
        # a node stays in the remainder iff some token at or below it is outside the slice
        local = np.nonzero(keep)[0]
        slice_nodes = ids[in_slice]
        bits = np.zeros(words * 32, dtype=bool)
        bits[trie.tok_ids[_ranges(trie.tok_start[slice_nodes], ntok[in_slice])]] = True
        masks.append(np.packbits(bits, bitorder="little").view(np.uint32))
        nodes.append(p)
        child = ids[1:][trie.node_depth[p + 1:end] == trie.node_depth[p] + 1]
        n_first.append(int(first_bytes[trie.node_byte[child]].sum()))
        full = ids[local]
        rem_tok_counts = np.where(in_slice[local], 0, ntok[local])
        rem_tok_counts[0] = 0          # the prefix's own tokens: never below a group of its children
        tok_start = np.zeros(len(local) + 1, dtype=np.int32)
        np.cumsum(rem_tok_counts, out=tok_start[1:])
        parts["tok_ids"].append(trie.tok_ids[_ranges(trie.tok_start[full], rem_tok_counts)])
        parts["tok_start"].append(tok_start[:-1] + tok_total)
        tok_total += int(tok_start[-1])
        depth = trie.node_depth[full]
        parts["end"].append(_subtree_ends(depth) + total)
        parts["byte"].append(trie.node_byte[full])
        parts["depth"].append(depth)
        parts["orig"].append(full.astype(np.int32))
        los.append(total)
        total += len(local)
        his.append(total)
    cat = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in parts.items()}
    child_slice = np.full(trie.n_nodes, -1, dtype=np.int32)
    for j, p in enumerate(nodes):
        kids = np.arange(p + 1, int(trie.subtree_end[p]))
        child_slice[kids[trie.node_depth[kids] == trie.node_depth[p] + 1]] = j
    r_tok_start = np.concatenate([cat["tok_start"], [tok_total]]).astype(np.int32)
    return PrefixSlices(
        dfa=dfa, node=np.array(nodes, dtype=np.int32), n_first=np.array(n_first, dtype=np.int32),
        masks=np.array(masks, dtype=np.uint32).reshape(len(masks), words),
        r_lo=np.array(los, dtype=np.int32), r_hi=np.array(his, dtype=np.int32),
        r_byte=cat["byte"].astype(np.uint8), r_depth=cat["depth"].astype(np.int32),
        r_end=cat["end"].astype(np.int32), r_tok_start=r_tok_start,
        r_tok_ids=cat["tok_ids"].astype(np.int32), r_orig=cat["orig"].astype(np.int32), child=child_slice)
