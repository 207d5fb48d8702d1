"""Tree verification, the lazy greedy lm-head and the tree drafter of structgen.speculative.

References are independent of the code under test: fresh cache-less forwards of the
model over each path, and arg-max over a fully masked logits row.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from structgen.speculative import (DraftTree, GrammarTreeDrafter, JumpForwardDrafter, PromptLookupDrafter,
                                   constrained_decode, speculative_decode)
from structgen.speculative.head import GreedyHead
from structgen.speculative.kv import KVSequence
from test_speculative_support import EOS, TemplateMatcher, TrieMatcher, tiny_model
from test_speculative_support import reference_greedy as support_reference_greedy

V = 64
TARGET = tiny_model(V, seed=3)
TRIE = [(10, 12, 14, 16, 18), (10, 12, 20), (10, 13), (22, 24, 26, 28, 30, 32, 34), (22, 24), (22, 25, 26), (40,)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@torch.inference_mode()
def fresh_logits(ids: list[int]) -> torch.Tensor:
    """Logits of every position from a cache-less forward (the reference)."""
    return TARGET(input_ids=torch.tensor([ids]), use_cache=False).logits[0]


def random_tree(rng: random.Random, n: int) -> DraftTree:
    tree = DraftTree()
    for _ in range(n):
        tree.add(rng.randrange(-1, len(tree)), rng.randrange(2, V))
    return tree


def test_tree_pass_matches_a_fresh_forward_along_every_path():
    rng = random.Random(0)
    for trial in range(6):
        prefix = [rng.randrange(2, V) for _ in range(rng.randint(2, 9))]
        seq = KVSequence(TARGET)
        if trial % 2:                                   # part of the prefix already cached
            seq.feed(prefix[:-2])
        tail = prefix[len(seq):]
        tree = random_tree(rng, rng.randint(1, 12))
        hidden = seq.feed_tree(tail + tree.tokens, tree.parents, len(tail))
        logits = seq.logits_of(hidden)
        assert len(seq) == len(prefix) + len(tree)
        for node in range(len(tree)):
            path = tree.path_to(node)
            ref = fresh_logits(prefix + path)
            torch.testing.assert_close(logits[len(tail) + node], ref[-1], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(logits[len(tail) - 1], fresh_logits(prefix)[-1], atol=1e-4, rtol=1e-4)


def test_keeping_a_branch_leaves_the_cache_equal_to_a_fresh_forward():
    rng = random.Random(1)
    for _ in range(6):
        prefix = [rng.randrange(2, V) for _ in range(5)]
        tree = random_tree(rng, 10)
        node = rng.randrange(len(tree))
        path_nodes = []
        while node >= 0:
            path_nodes.append(node)
            node = tree.parents[node]
        path_nodes.reverse()
        seq = KVSequence(TARGET)
        seq.feed_tree(prefix + tree.tokens, tree.parents, len(prefix))
        seq.keep_positions(len(prefix), path_nodes)
        kept = prefix + [tree.tokens[i] for i in path_nodes]
        assert seq.tokens == kept
        nxt = rng.randrange(2, V)
        torch.testing.assert_close(seq.feed([nxt])[-1], fresh_logits(kept + [nxt])[-1], atol=1e-4, rtol=1e-4)


def test_keep_positions_refuses_rows_out_of_order():
    seq = KVSequence(TARGET)
    seq.feed_tree([3, 4, 5, 6], [-1, -1, 0], 1)
    with pytest.raises(Exception, match="increasing"):
        seq.keep_positions(1, [2, 0])


class _SetMatcher:
    """Allows a fixed set of ids (enough of the Matcher contract for GreedyHead)."""

    def __init__(self, allowed) -> None:
        self.vocab_size = V
        self.allowed = sorted(allowed)

    def fill_next_token_bitmask(self, bitmask, index=0) -> None:
        bits = np.zeros((V + 31) // 32 * 32, dtype=np.uint8)
        bits[self.allowed] = 1
        bitmask[index, :] = np.packbits(bits, bitorder="little").view(np.int32)


@pytest.mark.parametrize("limit", [0, 8, 1024])
def test_greedy_head_equals_the_masked_arg_max_of_the_full_row(limit):
    rng = random.Random(limit)
    head = GreedyHead(TARGET, V, restrict_limit=limit)
    for size in (1, 2, 5, 9, 40, V):
        for _ in range(10):
            h = torch.randn(TARGET.config.hidden_size)
            allowed = rng.sample(range(V), size)
            full = TARGET.lm_head(h).detach().double()
            masked = torch.full_like(full, float("-inf"))
            masked[allowed] = full[allowed]
            choice, row = head.pick(h, _SetMatcher(allowed), "test", want_row=True)
            assert choice == int(torch.argmax(masked))
            torch.testing.assert_close(row.double(), full, atol=1e-5, rtol=1e-5)
    assert head.pick(torch.randn(TARGET.config.hidden_size), None, "test")[0] in range(V)


def reference_greedy(prompt, matcher, max_new):
    return support_reference_greedy(TARGET, prompt, matcher, max_new)


MATCHERS = {"unconstrained": lambda: None,
            "template": lambda: TemplateMatcher(V, period=4, sep=3, min_len=8),
            "trie": lambda: TrieMatcher(V, TRIE)}


def tree_drafter(**kw):
    return GrammarTreeDrafter(JumpForwardDrafter(PromptLookupDrafter()), lookup=PromptLookupDrafter(), **kw)


@pytest.mark.parametrize("matcher_name", sorted(MATCHERS))
@pytest.mark.parametrize("branch_inner", [False, True])
def test_tree_drafts_give_the_reference_greedy_output(matcher_name, branch_inner):
    rng = random.Random(len(matcher_name))
    for i in range(5):
        base = [rng.randrange(2, V) for _ in range(rng.randint(1, 5))]
        prompt = base * rng.randint(1, 3)
        ref = reference_greedy(prompt, MATCHERS[matcher_name](), 30)
        assert constrained_decode(TARGET, prompt, MATCHERS[matcher_name](), 30).tokens == ref
        m = MATCHERS[matcher_name]()
        got = speculative_decode(TARGET, prompt, m, tree_drafter(max_nodes=6 + 4 * i, branch_inner=branch_inner), 30,
                                 num_draft_tokens=1 + i % 6)
        assert got.tokens == ref, f"prompt {prompt}"
        if m is not None:
            assert m.history == ref
        assert got.target_calls == got.stats["steps"]


def test_tree_drafter_branches_where_the_grammar_allows_few_tokens():
    m = TrieMatcher(V, TRIE)
    drafter = tree_drafter()
    drafter.reset([7, 8])
    before = list(m.history)
    tree = drafter.propose_tree([7, 8], m, 8)
    assert m.history == before                                  # matcher handed back unchanged
    roots = {t for t, p in zip(tree.tokens, tree.parents) if p == -1}
    assert roots == {10, 22, 40}                                # every first token the trie allows
    for node in range(len(tree)):
        path = tree.path_to(node)
        assert m.validate_tokens(path) == len(path), path        # every path is grammatical
    assert not tree.is_chain()


def test_prompt_lookup_continues_a_repetition_past_the_end_of_the_context():
    d = PromptLookupDrafter()
    assert d.candidates([5, 1, 2, 3, 1, 2, 3, 1, 2], 8)[0] == [3, 1, 2, 3, 1, 2, 3, 1]
    assert d.candidates([1, 2, 3, 4, 1, 2], 8)[0] == [3, 4, 1, 2, 3, 4, 1, 2]
    assert d.candidates([9, 8, 7, 6], 4) == []


def test_tree_path_reports_first_call_stats():
    got = speculative_decode(TARGET, [4, 5, 4, 5], None, tree_drafter(), 12, eos_token_ids=[])
    assert got.stats["first_call_tokens"] >= 1 and 0 < got.stats["first_call_seconds"] <= got.elapsed
    ref = constrained_decode(TARGET, [4, 5, 4, 5], None, 12, eos_token_ids=[])
    assert ref.stats["first_call_tokens"] == 1 and got.tokens == ref.tokens


def test_prompt_lookup_cuts_drafts_from_short_matches():
    ctx = [7, 1, 2, 3, 4, 5, 6, 9, 1]             # only a 1-gram match for the suffix [1]
    assert PromptLookupDrafter().candidates(ctx, 8)[0] == [2, 3, 4, 5, 6, 9, 1, 2]
    assert PromptLookupDrafter(length_by_ngram={1: 2}).candidates(ctx, 8)[0] == [2, 3]
    assert PromptLookupDrafter(length_by_ngram={1: 2}).candidates([1, 2, 3, 1, 2], 8)[0] == [3, 1, 2, 3, 1, 2, 3, 1]
