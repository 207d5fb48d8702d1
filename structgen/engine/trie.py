"""Token trie in flat preorder arrays, the shape the numba mask walk needs.

Sorting the token byte strings lexicographically yields the trie's preorder
directly: each token adds one node per byte after its longest common prefix
with the previous token.  So the whole trie is built from sorted bytes with
no pointer structure at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


@dataclass
class TokenTrie:
    node_byte: np.ndarray      # uint8 [N]; node 0 is the root (byte unused)
    node_depth: np.ndarray     # int32 [N]; root has depth 0
    subtree_end: np.ndarray    # int32 [N]; one past the last descendant (preorder)
    tok_start: np.ndarray      # int32 [N + 1]; CSR offsets into tok_ids of tokens ending at each node
    tok_ids: np.ndarray        # int32 [M]
    token_node: np.ndarray     # int32 [V]; node where each token ends, -1 if not in the trie
    vocab_size: int
    max_depth: int = 0
    node_orig: np.ndarray | None = None  # int32 [N]: node ids in the full trie (sub-tries only)
    slices: list | None = None           # TokenSlice list (full tries only), see slices.py
    prefix_slices: object = None         # PrefixSlices (full tries only), see slices.py
    bounded_slices: dict | None = None   # (slice name, byte bound) -> TokenSlice, built at first use
    packed: np.ndarray | None = None     # int64 [N]: the walk's view of each node, see pack_nodes
    walk_buffers: tuple = (4096, 16384)  # boundary / accepted-terminal room of a walk (grown on overflow)

    def __post_init__(self) -> None:
        if self.packed is None:
            self.packed = pack_nodes(self.node_byte, self.node_depth, self.subtree_end, self.tok_start,
                                     self.tok_ids)

    def orig_ids(self) -> np.ndarray:
        """Full-trie id of every node (identity for a full trie)."""
        if self.node_orig is None:
            self.node_orig = np.arange(self.node_byte.shape[0], dtype=np.int32)
        return self.node_orig

    @property
    def n_nodes(self) -> int:
        return int(self.node_byte.shape[0])


# pack_nodes layout: what a walk reads per node, in one int64 (one memory stream instead of five)
PK_DEPTH_SHIFT, PK_NTOK_SHIFT, PK_TOK_SHIFT, PK_SIZE_SHIFT = 8, 20, 22, 43
PK_DEPTH_MASK, PK_TOK_MASK = (1 << 12) - 1, (1 << 21) - 1
PK_SIZE_LIMIT = 1 << 20


def pack_nodes(node_byte: np.ndarray, node_depth: np.ndarray, subtree_end: np.ndarray, tok_start: np.ndarray,
               tok_ids: np.ndarray) -> np.ndarray:
    """One int64 per node: byte | depth << 8 | min(tokens ending here, 2) << 20 | that token << 22 |
    subtree size << 43.

    A walk visits hundreds of thousands of nodes on a cold mask; reading node byte,
    depth, subtree end and the two token offsets from five arrays cost twice the
    time of reading one packed word (measured on Qwen's 333k-node trie: 0.8 ms ->
    0.4 ms for a lowercase-words walk).  A node where several tokens end (equal
    bytes), a token id of 2^21 or more, or a subtree of 2^20 nodes or more is
    marked (token count 2, size 0) and read from the CSR arrays / ``subtree_end``.
    """
    n = node_byte.shape[0]
    if n and int(node_depth.max()) > PK_DEPTH_MASK:
        raise ValueError("token trie deeper than 4095 bytes: not supported by the packed walk")
    ntok = np.diff(tok_start).astype(np.int64)
    first = np.zeros(n, dtype=np.int64)
    has = ntok > 0
    first[has] = tok_ids[tok_start[:-1][has]]
    count = np.minimum(ntok, 2)
    count[first > PK_TOK_MASK] = 2
    first[count != 1] = 0
    size = subtree_end.astype(np.int64) - np.arange(n, dtype=np.int64)
    size[size >= PK_SIZE_LIMIT] = 0
    return (node_byte.astype(np.int64) | (node_depth.astype(np.int64) << PK_DEPTH_SHIFT)
            | (count << PK_NTOK_SHIFT) | (first << PK_TOK_SHIFT) | (size << PK_SIZE_SHIFT))


@numba.njit(cache=True, inline="always")
def pk_depth(x):
    return (x >> PK_DEPTH_SHIFT) & PK_DEPTH_MASK


@numba.njit(cache=True, inline="always")
def pk_after(x, i, subtree_end):
    """The node after node ``i``'s subtree (``x`` = its packed word)."""
    size = x >> PK_SIZE_SHIFT
    if size > 0:
        return i + size
    return subtree_end[i]


@numba.njit(cache=True, inline="always")
def pk_set_tokens(x, i, tok_start, tok_ids, mask):
    """OR the tokens ending at node ``i`` into ``mask``."""
    k = (x >> PK_NTOK_SHIFT) & 3
    if k == 1:
        t = (x >> PK_TOK_SHIFT) & PK_TOK_MASK
        mask[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
    elif k == 2:
        for q in range(tok_start[i], tok_start[i + 1]):
            t = tok_ids[q]
            mask[t >> 5] |= np.uint32(1) << np.uint32(t & 31)


@numba.njit(cache=True, inline="always")
def pk_set_tokens_spare(x, i, tok_start, tok_ids, mask, spare):
    """:func:`pk_set_tokens` for a ``mask`` with one spare word past the vocabulary's, at index
    ``spare``: a node without exactly one token ORs a zero-token bit into that word instead of
    branching.  Whether a node ends a token is close to a coin toss along a walk, and the
    mispredicted branch was ~40% of a single-state walk's time (Qwen's trie, a regex's counted
    run: 965 -> 580-616 us over 180k nodes)."""
    k = (x >> PK_NTOK_SHIFT) & 3
    t = (x >> PK_TOK_SHIFT) & PK_TOK_MASK
    w = (t >> 5) if k == 1 else spare
    mask[w] |= np.uint32(1) << np.uint32(t & 31)
    if k == 2:
        for q in range(tok_start[i], tok_start[i + 1]):
            t = tok_ids[q]
            mask[t >> 5] |= np.uint32(1) << np.uint32(t & 31)


@numba.njit(cache=True, inline="always")
def pk_set_tokens_listed(x, i, tok_start, tok_ids, mask, listed, n_listed):
    """:func:`pk_set_tokens_spare`, also appending to ``listed`` every word of ``mask`` that turns
    non-zero (a sparse record of the walk's tokens); returns the new length of ``listed``.
    ``mask``'s last word is the spare and must be non-zero, so it is never listed."""
    k = (x >> PK_NTOK_SHIFT) & 3
    t = (x >> PK_TOK_SHIFT) & PK_TOK_MASK
    w = (t >> 5) if k == 1 else mask.shape[0] - 1
    v = mask[w]
    if v == 0:
        listed[n_listed] = w
        n_listed += 1
    mask[w] = v | (np.uint32(1) << np.uint32(t & 31))
    if k == 2:
        for q in range(tok_start[i], tok_start[i + 1]):
            t = tok_ids[q]
            w = t >> 5
            if mask[w] == 0:
                listed[n_listed] = w
                n_listed += 1
            mask[w] |= np.uint32(1) << np.uint32(t & 31)
    return n_listed


@numba.njit(cache=True)
def _build_preorder(flat: np.ndarray, offsets: np.ndarray, order: np.ndarray, n_nodes_max: int):
    node_byte = np.zeros(n_nodes_max, dtype=np.uint8)
    node_depth = np.zeros(n_nodes_max, dtype=np.int32)
    token_node = np.full(order.shape[0], -1, dtype=np.int32)
    n = 1  # root
    path = np.zeros(4096, dtype=np.int32)  # node index at each depth along the current path
    prev_start = 0
    prev_len = 0
    for k in range(order.shape[0]):
        t = order[k]
        s = offsets[t]
        ln = offsets[t + 1] - s
        # longest common prefix with previous token in sorted order
        lcp = 0
        lim = min(ln, prev_len)
        while lcp < lim and flat[s + lcp] == flat[prev_start + lcp]:
            lcp += 1
        for d in range(lcp, ln):
            node_byte[n] = flat[s + d]
            node_depth[n] = d + 1
            path[d + 1] = n
            n += 1
        token_node[k] = path[ln] if ln > 0 else 0
        prev_start = s
        prev_len = ln
    return node_byte[:n], node_depth[:n], token_node


@numba.njit(cache=True)
def _subtree_ends(node_depth: np.ndarray) -> np.ndarray:
    n = node_depth.shape[0]
    end = np.full(n, n, dtype=np.int32)
    stack = np.zeros(4097, dtype=np.int32)
    top = 0
    for i in range(n):
        d = node_depth[i]
        while top > 0 and node_depth[stack[top - 1]] >= d:
            end[stack[top - 1]] = i
            top -= 1
        stack[top] = i
        top += 1
    return end


def build_token_trie(token_bytes: list[bytes], vocab_size: int, excluded: set[int] | frozenset[int] = frozenset()) -> TokenTrie:
    """Build the trie of every token with non-empty bytes that is not excluded."""
    ids = [i for i, b in enumerate(token_bytes) if b and i not in excluded and i < vocab_size]
    if any(len(token_bytes[i]) > 4000 for i in ids):
        raise ValueError("token longer than 4000 bytes: not supported by the token trie")
    ids.sort(key=lambda i: token_bytes[i])
    lens = np.array([len(token_bytes[i]) for i in ids], dtype=np.int64)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    flat = np.frombuffer(b"".join(token_bytes[i] for i in ids), dtype=np.uint8)
    order = np.arange(len(ids), dtype=np.int64)
    node_byte, node_depth, tok_node_sorted = _build_preorder(flat, offsets, order, int(offsets[-1]) + 1)
    subtree_end = _subtree_ends(node_depth)
    n = node_byte.shape[0]
    token_node = np.full(vocab_size, -1, dtype=np.int32)
    ids_arr = np.array(ids, dtype=np.int32)
    token_node[ids_arr] = tok_node_sorted
    # CSR of tokens per node
    counts = np.bincount(tok_node_sorted, minlength=n).astype(np.int32)
    tok_start = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=tok_start[1:])
    order_by_node = np.argsort(tok_node_sorted, kind="stable")
    tok_ids = ids_arr[order_by_node].astype(np.int32)
    return TokenTrie(node_byte=node_byte, node_depth=node_depth, subtree_end=subtree_end,
                     tok_start=tok_start, tok_ids=tok_ids, token_node=token_node, vocab_size=vocab_size,
                     max_depth=int(node_depth.max()) if len(node_depth) else 0)
