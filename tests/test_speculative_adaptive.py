"""AdaptiveTreeDrafter (cost-sized draft trees, learned acceptance) and the batched head rows of the tree verifier.

Losslessness is checked against references independent of the code under test (cache-less
forwards, arg-max over a fully masked row); the sizing rule against a brute force over every
subtree of a small candidate tree.
"""
from __future__ import annotations

import itertools
import random

import pytest
import torch

from structgen.engine import compile_grammar
from structgen.schema import grammar_from_json_schema
from structgen.speculative import (AdaptiveTreeDrafter, DraftTree, SamplingParams, VerifyCost, constrained_decode,
                                   speculative_decode)
from structgen.speculative.drafters.adaptive import AcceptanceStats, _Candidates
from structgen.speculative.head import GreedyHead
from structgen.speculative.kv import KVSequence
from structgen.speculative.tree import verify_tree
from structgen.vocab import TokenizerInfo
from test_speculative_support import EOS, TemplateMatcher, TrieMatcher, tiny_model
from test_speculative_support import reference_greedy as support_reference_greedy

V = 64
TARGET = tiny_model(V, seed=5)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fresh_row(ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return TARGET(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].double()


def reference_greedy(prompt, matcher, max_new):
    return support_reference_greedy(TARGET, prompt, matcher, max_new)


MATCHERS = {"unconstrained": lambda: None,
            "template": lambda: TemplateMatcher(V, period=4, sep=3, min_len=8),
            "trie": lambda: TrieMatcher(V, [(10, 12, 14, 16, 18), (10, 12, 20), (22, 24, 26, 28, 30, 32), (40,)])}

DRAFTERS = {"default": lambda: AdaptiveTreeDrafter(),
            "small": lambda: AdaptiveTreeDrafter(max_nodes=3, max_depth=2, branch_positions=1),
            # every kind judged likely and verification nearly free: the largest trees
            "eager": lambda: AdaptiveTreeDrafter(cost=VerifyCost(1.0, 1e-4),
                                                 priors={k: (0.99, 1e9) for k in ("branch", "alt1", "alt2", "alt3", "forced")})}


@pytest.mark.parametrize("drafter_name", sorted(DRAFTERS))
@pytest.mark.parametrize("matcher_name", sorted(MATCHERS))
def test_greedy_output_equals_the_reference(drafter_name, matcher_name):
    rng = random.Random(len(drafter_name) * 7 + len(matcher_name))
    accepted = 0
    for i in range(5):
        base = [rng.randrange(2, V) for _ in range(rng.randint(1, 5))]
        prompt = base * rng.randint(1, 3)
        ref = reference_greedy(prompt, MATCHERS[matcher_name](), 30)
        m = MATCHERS[matcher_name]()
        got = speculative_decode(TARGET, prompt, m, DRAFTERS[drafter_name](), 30, num_draft_tokens=2 + 6 * i)
        assert got.tokens == ref, f"prompt {prompt}"
        if m is not None:
            assert m.history == ref                     # matcher advanced along the output
        assert got.target_calls == got.stats["steps"]
        accepted += got.stats["accepted"]
    if not (drafter_name == "small" and matcher_name == "unconstrained"):
        assert accepted > 0                              # forced tokens / repeated prompts: drafts accepted


def test_sampling_with_the_chain_verifier_stays_grammatical_and_drafts():
    gen = torch.Generator().manual_seed(0)
    drafted = 0
    for _ in range(8):
        m = MATCHERS["template"]()
        r = speculative_decode(TARGET, [3, 5, 3, 5, 3], m, AdaptiveTreeDrafter(), 20,
                               SamplingParams(do_sample=True, temperature=0.7), generator=gen)
        assert m.history == r.tokens
        drafted += r.stats["drafted"]
    assert drafted > 0


def test_propose_is_grammatical_and_leaves_the_matcher_unchanged():
    m = MATCHERS["trie"]()
    d = AdaptiveTreeDrafter()
    ctx = [7, 10, 12, 14, 9, 7]
    d.reset(ctx)
    before = list(m.history)
    tree = d.propose_tree(ctx, m, 8)
    prop = d.propose(ctx, m, 8)
    assert m.history == before
    assert len(tree) and prop.tokens and m.validate_tokens(prop.tokens) == len(prop.tokens)
    for node in range(len(tree)):
        path = tree.path_to(node)
        assert m.validate_tokens(path) == len(path), path
    assert set(tree.tokens[i] for i in range(len(tree)) if tree.parents[i] == -1) >= {10, 22, 40}


def test_lookup_copies_the_occurrence_that_continues_grammatically():
    # the most recent occurrence of 9 continues 10 13 (refused after 10); an older one continues 10 12 14
    m = TrieMatcher(V, [(10, 12, 14), (10, 13, 15), (20,)])
    ctx = [9, 10, 12, 14, 5, 9, 10, 13, 6, 9]
    d = AdaptiveTreeDrafter()
    d.reset(ctx)
    tree = d.propose_tree(ctx, m, 8)
    assert tree.tokens[:3] == [10, 12, 14] and tree.parents[:3] == [-1, 0, 1]


PIECES = ([b"<pad>", b"<eos>"] + [bytes([c]) for c in b'{}[]:,"abcdefghijklmnopqrstuvwxyz0123456789 -.']
          + [b'{"', b'":', b'",', b'":"', b'name', b'"}'])
TOK = TokenizerInfo.from_token_bytes(PIECES, eos_ids=[1], special_ids=[0])


def test_a_forced_key_is_drafted_in_the_contexts_spelling_with_the_canonical_one_as_a_branch():
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
              "additionalProperties": False}
    m = compile_grammar(grammar_from_json_schema(schema), TOK).matcher()
    ids = {p: i for i, p in enumerate(PIECES)}
    canonical = m.forced_tokens()
    assert [PIECES[t] for t in canonical][:2] == [b'{"', b"name"]
    spelled = [ids[b'{"'], ids[b"n"], ids[b"a"], ids[b"m"], ids[b"e"], ids[b'":"'], ids[b"a"]]
    ctx = [ids[b"z"]] + spelled + [ids[b"."], ids[b"z"]]        # the prompt spells the key letter by letter
    d = AdaptiveTreeDrafter()
    d.reset(ctx)
    before = m.validate_tokens([])
    tree = d.propose_tree(ctx, m, 12)
    assert m.validate_tokens([]) == before
    assert tree.tokens[: len(spelled)] == spelled              # the context's spelling leads
    leaf = next(i for i in range(len(tree)) if tree.path_to(i) == canonical)
    assert tree.path_to(leaf) == canonical                     # the canonical spelling is a branch
    for node in range(len(tree)):
        path = tree.path_to(node)
        assert m.validate_tokens(path) == len(path)


def _all_subtrees(parents: list[int]):
    """Every node set closed under taking parents (a valid draft tree)."""
    n = len(parents)
    for r in range(n + 1):
        for subset in itertools.combinations(range(n), r):
            chosen = set(subset)
            if all(parents[i] == -1 or parents[i] in chosen for i in chosen):
                yield sorted(chosen)


@pytest.mark.parametrize("seed", range(6))
def test_sizing_picks_the_subtree_with_the_most_expected_tokens_per_cost(seed):
    rng = random.Random(seed)
    cands = _Candidates()
    for _ in range(9):
        parent = rng.randrange(-1, len(cands.tree))
        cands.add(parent, rng.randrange(2, V), "forced", rng.choice([0.05, 0.3, 0.6, 0.95, 1.0]))
    cost = VerifyCost(rng.choice([1.2, 1.8, 2.5]), rng.choice([0.01, 0.05, 0.2]))
    d = AdaptiveTreeDrafter(cost=cost)
    d._first = False
    chosen = d._select(cands, k=99, chain_only=False)
    path = cands.path_probs()

    def value(nodes):
        return (1 + sum(path[i] for i in nodes)) / cost(1 + len(nodes))

    best = max(value(s) for s in _all_subtrees(cands.tree.parents))
    assert value(chosen) == pytest.approx(best)
    assert all(cands.tree.parents[i] == -1 or cands.tree.parents[i] in chosen for i in chosen)


def test_no_draft_when_none_pays_and_drafts_return_once_candidates_prove_right():
    ctx = [4, 5, 6, 7] * 3                                     # lookup always has a continuation
    low = {k: (0.02, 2.0) for k in ("lookup:p1", "lookup:p2", "lookup:p3", "lookup:p4",
                                    "lookup:o1", "lookup:o2", "lookup:o3", "lookup:o4")}
    d = AdaptiveTreeDrafter(priors=low)
    d.reset(ctx)
    assert len(d.propose_tree(ctx, None, 8)) > 0              # the prefill pass verifies drafts nearly for free
    d.observe([8], 0)                                          # ... and they were wrong
    assert len(d.propose_tree(ctx, None, 8)) == 0              # back-off: a plain 1-token step
    # the declined candidates are still judged against what the target produced: they keep being right
    for _ in range(6):
        if len(d.propose_tree(ctx, None, 8)):
            break
        d.observe([4], 0)
    assert len(d.propose_tree(ctx, None, 8)) > 0
    assert AdaptiveTreeDrafter(priors=low, learn=False).stats.rate("lookup:p4") == pytest.approx(0.02)


def test_acceptance_stats_are_conditional_on_the_parent_being_accepted():
    d = AdaptiveTreeDrafter()
    d.reset([1, 2])
    c = _Candidates()
    a = c.add(-1, 10, "forced", 0.5)
    c.add(a, 11, "branch", 0.5)                     # judged only when 10 was accepted
    c.add(-1, 12, "alt1", 0.5)
    d._last = c
    d.observe([12, 30], 1)                          # 12 accepted, then the bonus 30
    assert d.stats.trials == {"forced": 1.0, "alt1": 1.0} and d.stats.hits == {"alt1": 1.0}


def test_verify_tree_with_batched_full_rows_gives_the_reference_greedy_output():
    # restrict_limit=0: every position needs a full lm-head row; along the chain they come in blocks
    head = GreedyHead(TARGET, V, restrict_limit=0)
    rng = random.Random(11)
    longest = 0
    for trial in range(4):
        prompt = [rng.randrange(2, V) for _ in range(5)]
        m_ref, m = MATCHERS["template"](), MATCHERS["template"]()
        ref = reference_greedy(prompt, m_ref, 40)
        k = min([3, 9, 12, 19][trial], len(ref) - 2)
        tree = DraftTree()
        chain = ref[:k]
        if trial % 2:
            chain = chain[:-1] + [(chain[-1] + 1) % V]          # last draft wrong
        tree.add_path(-1, [t for t in chain])
        tree.add(-1, (ref[0] + 2) % V)                          # an off-chain branch
        seq = KVSequence(TARGET)
        out = verify_tree(seq, head, list(prompt), tree, m, frozenset([EOS]), 0)
        n_ok = next((i for i, (a, b) in enumerate(zip(chain, ref)) if a != b), len(chain))
        longest = max(longest, n_ok)
        assert out.new == ref[: n_ok + 1]
        assert seq.tokens == prompt + ref[:n_ok]
        torch.testing.assert_close(seq.logits_of(seq.feed_hidden([ref[n_ok]]))[-1].double(),
                                   fresh_row(prompt + ref[: n_ok + 1]), atol=1e-4, rtol=1e-4)
    assert longest > 8                          # accepted past the first block of batched rows


def test_bad_arguments_are_refused():
    with pytest.raises(Exception, match="max_nodes"):
        AdaptiveTreeDrafter(max_nodes=0)


def test_verify_cost_model_and_its_measurement():
    cost = VerifyCost(1.8, 0.05)
    assert cost(1) == 1.0 and cost(0) == 1.0 and cost(10) == pytest.approx(2.3)
    measured = VerifyCost.measure(TARGET, context=8, sizes=(2, 4), repeats=2)
    assert measured.base >= 1.0 and measured.per_token > 0          # a fit, not a speed claim


def test_the_cost_model_follows_timed_steps():
    for multi, expected in ((0.30, 3.0 - 0.05 * 11), (0.13, 1.0)):   # 1.0: the floor (never below a 1-token step)
        d = AdaptiveTreeDrafter(cost=VerifyCost(1.8, 0.05))
        d.reset([1, 2, 3])
        d.observe([4], 0, fed=0, seconds=5.0)                  # the prefill: not a decode step
        assert d.cost == VerifyCost(1.8, 0.05)
        for _ in range(40):                                    # 1-token steps 0.1 s, 11-token steps `multi`
            d.observe([4], 0, fed=1, seconds=0.1)
            d.observe([4, 5], 1, fed=11, seconds=multi)
        assert d.cost.base == pytest.approx(expected, abs=0.02) and d.cost.per_token == 0.05
        d.reset([1])
        assert d.cost == VerifyCost(1.8, 0.05)                 # a new generation starts from the prior
    fixed = AdaptiveTreeDrafter(cost=VerifyCost(1.8, 0.05), learn_cost=False)
    fixed.reset([1])
    fixed.observe([4], 0, fed=1, seconds=0.1)
    fixed.observe([4], 0, fed=11, seconds=0.5)
    assert fixed.cost == VerifyCost(1.8, 0.05)
