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

import numba
import numpy as np

from ..regex import ByteDFA, compile_regex
from .trie import TokenTrie, _subtree_ends

# Reference loop languages, largest first.  Only speed depends on this list:
# a lexer state that covers none of them is walked over the full trie.
REFERENCE_LOOPS: tuple[tuple[str, str], ...] = (
    ("json-string-body", r'[^"\\\x00-\x1f]*'),
    ("line", r"[^\n]*"),
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


def build_slice(trie: TokenTrie, name: str, pattern: str) -> TokenSlice:
    dfa = compile_regex(pattern)
    state, parent = _node_states(trie.node_byte, trie.node_depth, dfa.transitions, trie.max_depth)
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
    return TokenSlice(name=name, dfa=dfa, mask=mask, remainder=remainder, size=int(alive_tok.sum()))


def build_slices(trie: TokenTrie) -> list[TokenSlice]:
    """The reference slices for one trie, largest first."""
    slices = [build_slice(trie, name, pattern) for name, pattern in REFERENCE_LOOPS]
    return sorted(slices, key=lambda s: -s.size)


MAX_PRODUCT_PAIRS = 256


@numba.njit(cache=True)
def _covers_kernel(lexer_trans, q, rt, max_pairs):
    """Product exploration of (reference DFA, lexer) from (0, q); 1 = covers, 0 = not, -1 = too big."""
    if max_pairs < 1:
        return -1
    seen_r = np.empty(max_pairs + 1, dtype=np.int32)
    seen_s = np.empty(max_pairs + 1, dtype=np.int32)
    n = 1
    seen_r[0] = 0
    seen_s[0] = q
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
            found = False
            for j in range(n):   # pair sets stay tiny for the loops that do cover
                if seen_r[j] == r2 and seen_s[j] == s2:
                    found = True
                    break
            if not found:
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
