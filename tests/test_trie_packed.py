"""The packed node words the walks read (trie.pack_nodes) say what the trie arrays say.

Walks read one int64 per node instead of five arrays; a node whose tokens or
subtree do not fit the word is marked and read from the arrays.  These tests
decode every word against the arrays, and force the marked (fallback) form on
every node to check that walks give the same masks and boundaries both ways.
"""
from __future__ import annotations

import random

import numpy as np

from structgen.engine.trie import (PK_DEPTH_SHIFT, PK_NTOK_SHIFT, PK_SIZE_SHIFT, PK_TOK_SHIFT, build_token_trie,
                                   pack_nodes)
from structgen.engine.walk import run_walk
from structgen.regex import compile_regex


def random_vocab(seed: int, n: int = 600) -> list[bytes]:
    rng = random.Random(seed)
    alphabet = b"ab c_(){}\"\n1\xc3\xa9"
    vocab = [bytes([b]) for b in range(256)]
    while len(vocab) < n:
        vocab.append(bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 7))))
    vocab += vocab[300:320]          # equal bytes under several ids: nodes with 2+ tokens
    vocab.append(b"")                # a token with no bytes: not in the trie
    return vocab


def test_packed_words_decode_to_the_trie_arrays():
    vocab = random_vocab(1)
    trie = build_token_trie(vocab, len(vocab))
    p = trie.packed
    n = trie.n_nodes
    assert p.dtype == np.int64 and p.shape == (n,) and (p >= 0).all()
    assert ((p & 255) == trie.node_byte).all()
    assert (((p >> PK_DEPTH_SHIFT) & 4095) == trie.node_depth).all()
    ntok = np.diff(trie.tok_start)
    count = (p >> PK_NTOK_SHIFT) & 3
    assert (count == np.minimum(ntok, 2)).all()
    assert (ntok >= 2).any(), "the vocabulary must have nodes where several tokens end"
    one = np.nonzero(ntok == 1)[0]
    assert (((p[one] >> PK_TOK_SHIFT) & ((1 << 21) - 1)) == trie.tok_ids[trie.tok_start[one]]).all()
    size = p >> PK_SIZE_SHIFT
    assert (size == trie.subtree_end - np.arange(n)).all()


def _fallback_everywhere(trie) -> np.ndarray:
    """The packed words with every node marked: tokens and subtree ends read from the arrays."""
    p = trie.packed.copy()
    keep = (1 << PK_NTOK_SHIFT) - 1          # byte and depth
    return (p & keep) | (np.int64(2) << PK_NTOK_SHIFT)


def test_walks_agree_with_the_fallback_form():
    vocab = random_vocab(2, 2000)
    trie = build_token_trie(vocab, len(vocab))
    marked = _fallback_everywhere(trie)

    class Lexer:
        pass

    for pattern in [r"[a-c ]+", r"[a-c_]+", r"\(\)|[a-z]+", r"[^\n]*", r"é+|1"]:
        dfa = compile_regex(pattern)
        lexer = Lexer()
        lexer.trans = dfa.transitions
        lexer.acc_term = np.where(dfa.accepting, 0, -1).astype(np.int32)
        for init in ([0], sorted({0, int(dfa.transitions[0, ord("a")]) if dfa.transitions[0, ord("a")] >= 0 else 0})):
            init = np.array(init, dtype=np.int32)
            starts = np.array([0], dtype=np.int32)
            a = run_walk(trie, lexer, init, starts)
            original = trie.packed
            trie.packed = marked
            try:
                b = run_walk(trie, lexer, init, starts)
            finally:
                trie.packed = original
            assert (a[0] == b[0]).all(), pattern
            assert a[5] == b[5] and (a[1][:a[5]] == b[1][:b[5]]).all(), pattern
            assert a[7] == b[7], pattern
            assert a[0].any(), f"{pattern}: the walk must allow some tokens"


def test_pack_nodes_marks_what_does_not_fit():
    # a token id past 21 bits and a subtree of a million nodes go to the arrays
    node_byte = np.array([0, 97, 98], dtype=np.uint8)
    node_depth = np.array([0, 1, 2], dtype=np.int32)
    subtree_end = np.array([3, 3, 3], dtype=np.int32)
    tok_start = np.array([0, 0, 1, 2], dtype=np.int32)
    tok_ids = np.array([5, 1 << 21], dtype=np.int32)
    p = pack_nodes(node_byte, node_depth, subtree_end, tok_start, tok_ids)
    assert (p[1] >> PK_NTOK_SHIFT) & 3 == 1 and (p[1] >> PK_TOK_SHIFT) & ((1 << 21) - 1) == 5
    assert (p[2] >> PK_NTOK_SHIFT) & 3 == 2
    big_end = np.array([1 << 21, 1 + (1 << 20), 3], dtype=np.int64)   # sizes 2^21, 2^20, 1
    q = pack_nodes(node_byte, node_depth, big_end, tok_start, tok_ids)
    assert q[0] >> PK_SIZE_SHIFT == 0 and q[1] >> PK_SIZE_SHIFT == 0 and q[2] >> PK_SIZE_SHIFT == 1


def test_glr_kernel_masks_agree_with_the_fallback_form():
    """The GLR kernel's sub-walks (multi-state and single-state) and the root walks read the
    marked words the same way: same masks along SQL and arithmetic texts on a synthetic vocabulary
    whose trie is entirely in the fallback form."""
    from test_engine import synthetic_vocab
    from structgen.engine import compile_grammar
    from structgen.engine.compiled import token_trie_for
    from structgen.grammar import grammar_from_file, shipped_grammar_path

    normal_tok = synthetic_vocab(5)
    marked_tok = synthetic_vocab(5)          # an equal vocabulary, its own trie
    trie = token_trie_for(marked_tok)
    trie.packed = _fallback_everywhere(trie)
    texts = {"sql": "SELECT a, b FROM t WHERE a = 1 AND b < 2 ORDER BY a",
             "arithmetic": "(1 + 2) * 3 - 4 / (5 + 6.25) ^ -2"}
    for name, text in texts.items():
        g = grammar_from_file(shipped_grammar_path(name))
        a = compile_grammar(g, normal_tok, cache=False, parser="glr").matcher()
        b = compile_grammar(g, marked_tok, cache=False, parser="glr").matcher()
        ids = normal_tok.encode(text)
        assert len(ids) > 5
        for i, t in enumerate(ids):
            wa, wb = a.next_token_mask_words(), b.next_token_mask_words()
            assert (wa == wb).all(), f"{name}: masks differ before token {i}"
            assert a.accept_token(t) and b.accept_token(t)


def _node_paths(trie) -> list[bytes]:
    """Each node's bytes from the root (preorder: the parent is the last node one level up)."""
    paths, stack = [b""], [b""]
    for i in range(1, trie.n_nodes):
        d = int(trie.node_depth[i])
        del stack[d:]
        stack.append(stack[-1] + bytes([int(trie.node_byte[i])]))
        paths.append(stack[-1])
    return paths


def _brute_walk(vocab, paths, dfa, q, start):
    """What a walk from lexer state ``q`` at trie node ``start`` (a lexeme starting with the
    node's byte; the root: with any first byte) must give, token by token: tokens at or below
    the node whose bytes from there keep ``q`` alive, and the nodes where ``q`` dies right after
    an accepting state (lexeme boundaries)."""
    path = paths[start][:-1]
    node_of = {p: i for i, p in enumerate(paths)}
    allowed, boundaries = set(), set()
    for tid, b in enumerate(vocab):
        if not b or not b.startswith(paths[start]):
            continue
        s = q
        for k, byte in enumerate(b[len(path):]):
            s2 = int(dfa.transitions[s, byte])
            if s2 < 0:
                if dfa.accepting[s]:
                    boundaries.add(node_of[b[:len(path) + k + 1]])
                break
            s = s2
        else:
            allowed.add(tid)
    return allowed, boundaries


def test_single_state_walks_match_brute_force():
    """The one-live-state walk (every regex) from every lexer state, from the root and from
    nodes below it (a lexeme starting at the node's byte): exactly the tokens a byte-by-byte run allows, a mask of exactly the
    vocabulary's words (the walk ORs tokenless nodes into a spare word past them), and every
    lexeme boundary."""
    vocab = random_vocab(3, 900)
    trie = build_token_trie(vocab, len(vocab))
    paths = _node_paths(trie)
    words = (len(vocab) + 31) // 32
    rng = random.Random(3)

    class Lexer:
        pass

    for pattern in [r"[a-c ]{2,5}", r"ab*c?", r"[a-c_]+|\(\)", r"é{1,3}1"]:
        dfa = compile_regex(pattern)
        lexer = Lexer()
        lexer.trans = dfa.transitions
        lexer.acc_term = np.where(dfa.accepting, 0, -1).astype(np.int32)
        starts = [0] + rng.sample(range(1, trie.n_nodes), 25)
        for q in range(dfa.transitions.shape[0]):
            for start in starts:
                out = run_walk(trie, lexer, np.array([q], dtype=np.int32), np.array([start], dtype=np.int32))
                mask = out[0]
                assert mask.shape == (words,), pattern
                bits = np.unpackbits(mask.view(np.uint8), bitorder="little")
                got = set(np.nonzero(bits)[0].tolist())
                allowed, boundaries = _brute_walk(vocab, paths, dfa, q, start)
                assert got == allowed, (pattern, q, start)
                assert set(out[1][:out[5]].tolist()) == boundaries, (pattern, q, start)
