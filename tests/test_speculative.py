"""Greedy losslessness, KV-cache rollback and drafter contracts of structgen.speculative."""
from __future__ import annotations

import random

import pytest
import torch

from structgen.errors import GenerationError
from structgen.speculative import (AdaptiveTreeDrafter, ChainDrafter, DraftLength, DraftModelDrafter, GatedDrafter, GrammarTreeDrafter, JumpForwardDrafter,
                                   LayerSkipDrafter,
                                   PromptLookupDrafter, SamplingParams, TokenRecyclingDrafter,
                                   constrained_decode, speculative_decode)
from test_speculative_support import (EOS, TemplateMatcher, TrieMatcher, assert_crop_matches_fresh, perturbed,
                                      tiny_model)

V = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")

TARGET = tiny_model(V, seed=0)
CLOSE_DRAFT = perturbed(TARGET, 0.05, seed=1)     # agrees with the target most of the time
FAR_DRAFT = tiny_model(V, seed=7)                # an unrelated model: mostly rejected

DRAFTERS = {
    "none": lambda: None,
    # payoff_gate=False: these always draft (the counts below are about drafting itself)
    "draft-model": lambda: DraftModelDrafter(CLOSE_DRAFT, payoff_gate=False),
    "draft-model-far": lambda: DraftModelDrafter(FAR_DRAFT, payoff_gate=False),
    "draft-model-far-gated": lambda: DraftModelDrafter(FAR_DRAFT),
    "draft-model-adaptive": lambda: DraftModelDrafter(CLOSE_DRAFT, DraftLength(8, threshold=0.5), payoff_gate=False),
    "prompt-lookup": lambda: PromptLookupDrafter(),
    "token-recycling": lambda: TokenRecyclingDrafter(V, eos_token_ids=[EOS]),
    "self-speculation": lambda: LayerSkipDrafter(TARGET),
    "self-speculation-fixed": lambda: LayerSkipDrafter(TARGET, skip_layers=[2], length=DraftLength(4)),
    "jump-forward": lambda: JumpForwardDrafter(),
    "gated(prompt-lookup)": lambda: GatedDrafter(PromptLookupDrafter()),
    "jump-forward+gated(lookup|recycling)": lambda: JumpForwardDrafter(GatedDrafter(
        ChainDrafter([PromptLookupDrafter(), TokenRecyclingDrafter(V, eos_token_ids=[EOS])]))),
    "jump-forward+draft-model": lambda: JumpForwardDrafter(DraftModelDrafter(CLOSE_DRAFT, payoff_gate=False)),
    "jump-forward+lookup|recycling": lambda: JumpForwardDrafter(
        ChainDrafter([PromptLookupDrafter(), TokenRecyclingDrafter(V, eos_token_ids=[EOS])])),
    "adaptive-tree": lambda: AdaptiveTreeDrafter(),
    "tree(jump-forward+lookup|recycling)": lambda: GrammarTreeDrafter(JumpForwardDrafter(
        ChainDrafter([PromptLookupDrafter(), TokenRecyclingDrafter(V, eos_token_ids=[EOS])])),
        lookup=PromptLookupDrafter(), branch_inner=True),
}

TRIE = [(10, 12, 14, 16, 18), (10, 12, 20), (22, 24, 26, 28, 30, 32, 34), (22, 24), (40,)]
MATCHERS = {
    "unconstrained": lambda: None,
    "template": lambda: TemplateMatcher(V, period=4, sep=3, min_len=8),
    "trie": lambda: TrieMatcher(V, TRIE),
}


def prompts(n: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        base = [rng.randrange(2, V) for _ in range(rng.randint(1, 6))]
        out.append(base * rng.randint(1, 3))                 # repeats give prompt lookup something to find
    return out


@pytest.mark.parametrize("drafter_name", sorted(DRAFTERS))
@pytest.mark.parametrize("matcher_name", sorted(MATCHERS))
def test_greedy_output_identical_to_baseline(drafter_name, matcher_name):
    accepted = 0
    spec_calls = base_calls = 0
    for i, prompt in enumerate(prompts(8, seed=len(drafter_name) * 31 + len(matcher_name))):
        m_base, m_spec = MATCHERS[matcher_name](), MATCHERS[matcher_name]()
        ref = constrained_decode(TARGET, prompt, m_base, 36)
        drafter = DRAFTERS[drafter_name]()
        got = speculative_decode(TARGET, prompt, m_spec, drafter, 36, num_draft_tokens=1 + i % 6)
        assert got.tokens == ref.tokens, f"prompt {prompt}"
        assert got.finish_reason == ref.finish_reason
        if m_spec is not None:
            assert m_spec.history == m_base.history == ref.tokens       # matcher advanced along the output
        accepted += got.stats["accepted"]
        spec_calls += got.target_calls
        base_calls += ref.target_calls
        assert got.target_calls == got.stats["steps"]
        # one target-chosen token per step, except a step that ends on an accepted EOS draft
        n = got.stats["steps"] + got.stats["accepted"]
        assert len(got.tokens) == n or (got.finish_reason == "eos" and len(got.tokens) == n - 1)
    if drafter_name in ("draft-model", "draft-model-adaptive", "jump-forward+draft-model"):
        assert accepted > 0 and spec_calls < base_calls
    if drafter_name == "jump-forward" and matcher_name in ("template", "trie"):
        assert accepted > 0                               # forced separators / trie chains accepted


def test_identical_draft_model_accepts_everything():
    prompt = [5, 9, 11]
    ref = constrained_decode(TARGET, prompt, None, 40, eos_token_ids=[])
    got = speculative_decode(TARGET, prompt, None, DraftModelDrafter(TARGET, eos_token_ids=[], payoff_gate=False), 40,
                             num_draft_tokens=7, eos_token_ids=[])
    assert got.tokens == ref.tokens and len(got.tokens) == 40
    assert got.stats["accepted_per_step"] == [7] * 5                    # 5 steps x (7 drafts + 1 bonus)
    assert got.target_calls == 5


def test_greedy_identical_with_top_k_and_temperature_ignored():
    # greedy decoding ignores sampling knobs only when do_sample=False: both paths agree
    prompt = [4, 8, 15, 16, 23, 42]
    for drafter in (PromptLookupDrafter(), DraftModelDrafter(CLOSE_DRAFT)):
        ref = constrained_decode(TARGET, prompt, TemplateMatcher(V), 30)
        got = speculative_decode(TARGET, prompt, TemplateMatcher(V), drafter, 30)
        assert got.tokens == ref.tokens


def test_kv_cache_crop_matches_fresh_forward():
    assert_crop_matches_fresh(TARGET, V, seed=3, steps=25, max_new=5)


def test_rejection_leaves_target_cache_consistent():
    # far draft: nearly every step rejects, so every step crops the cache
    prompt = [7, 7, 9]
    got = speculative_decode(TARGET, prompt, None, DraftModelDrafter(FAR_DRAFT, payoff_gate=False), 30, num_draft_tokens=5,
                             eos_token_ids=[])
    ref = constrained_decode(TARGET, prompt, None, 30, eos_token_ids=[])
    assert got.stats["drafted"] > got.stats["accepted"] and got.tokens == ref.tokens


@pytest.mark.parametrize("drafter_name", ["draft-model", "prompt-lookup", "token-recycling",
                                          "self-speculation", "jump-forward+draft-model", "adaptive-tree"])
def test_drafters_return_grammatical_drafts_and_leave_matcher_unchanged(drafter_name):
    drafter = DRAFTERS[drafter_name]()
    matcher = TemplateMatcher(V, period=4, sep=3, min_len=8)
    ctx = [6, 8, 3, 6, 8, 10, 3, 6, 8]
    drafter.reset(ctx, SamplingParams(do_sample=True), torch.Generator().manual_seed(0))
    if drafter.needs_feedback:
        from structgen.speculative import StepFeedback
        with torch.inference_mode():
            drafter.update(StepFeedback(ctx, TARGET(torch.tensor([ctx])).logits[0]))
    for t in [2, 4]:
        assert matcher.accept_token(t)
    before = list(matcher.history)
    prop = drafter.propose(ctx, matcher, 6)
    assert matcher.history == before
    assert matcher.validate_tokens(prop.tokens) == len(prop.tokens)
    assert len(prop.tokens) <= 6
    if prop.draft_probs is not None:
        assert prop.draft_probs.shape[0] == len(prop.tokens)
        assert torch.allclose(prop.draft_probs.sum(-1), torch.ones(len(prop.tokens), dtype=torch.float64))
        for row, tok in zip(prop.draft_probs, prop.tokens):
            assert row[tok] > 0


def test_prompt_lookup_copies_the_continuation():
    d = PromptLookupDrafter(max_ngram=2)
    prop = d.propose([5, 6, 7, 8, 9, 1, 6, 7], None, 3)
    assert prop.tokens == [8, 9, 1]
    # under a grammar that refuses 9, the valid prefix is kept
    m = TrieMatcher(V, [(8, 10)])
    assert d.propose([5, 6, 7, 8, 9, 1, 6, 7], m, 3).tokens == [8]


def test_adaptive_length_stops_early_on_uncertain_drafts():
    fixed = DraftModelDrafter(FAR_DRAFT, DraftLength(8), payoff_gate=False)
    adaptive = DraftModelDrafter(FAR_DRAFT, DraftLength(8, threshold=0.3), payoff_gate=False)
    for d in (fixed, adaptive):
        d.reset([3, 4])
    assert len(fixed.propose([3, 4, 5], None, 8).tokens) == 8
    assert 1 <= len(adaptive.propose([3, 4, 5], None, 8).tokens) < 8


def test_layer_skip_validates_layers_and_calibrates():
    with pytest.raises(GenerationError, match="cannot skip layers"):
        LayerSkipDrafter(TARGET, skip_layers=[0])
    d = LayerSkipDrafter(TARGET)
    speculative_decode(TARGET, list(range(2, 30)), None, d, 5)
    assert d.calibration_scores and d.skip in d.calibration_scores
    assert 0 not in d.skip and len(TARGET.model.layers) - 1 not in d.skip
    # skipping is undone after drafting: the target still computes full-depth logits
    with torch.inference_mode():
        a = TARGET(torch.tensor([[3, 4, 5]])).logits
        b = TARGET(torch.tensor([[3, 4, 5]])).logits
    assert torch.equal(a, b) and "forward" not in vars(TARGET.model.layers[d.skip[0]])


def test_bad_input_is_refused():
    with pytest.raises(GenerationError, match="prompt is empty"):
        speculative_decode(TARGET, [], None, None, 4)
    with pytest.raises(GenerationError, match="temperature"):
        SamplingParams(do_sample=True, temperature=0)
    with pytest.raises(GenerationError, match="batch size 1"):
        constrained_decode(TARGET, torch.zeros(2, 3, dtype=torch.long), None, 4)


def test_jump_forward_interleaves_forced_tokens_with_the_inner_draft():
    # template: sep 3 forced at every 4th position; the lookup copies free tokens from the context
    m = TemplateMatcher(V, period=4, sep=3, min_len=8)
    assert m.accept_tokens([6, 8]) == 2
    ctx = [6, 8, 10, 3, 12, 14, 16, 3, 6, 8]                  # "6 8" was followed by "10 3 12 14 16 3"
    inner = PromptLookupDrafter(max_ngram=2, max_tokens=1)    # one copied token per call
    prop = JumpForwardDrafter(inner).propose(ctx, m, 6)
    # lookup "10", then the forced separator, then lookup again from the new suffix "10 3" -> "12"
    assert prop.tokens == [10, 3, 12]
    assert m.history == [6, 8]
    assert m.validate_tokens(prop.tokens) == 3


def test_chain_uses_the_first_drafter_with_a_proposal():
    lookup = PromptLookupDrafter(max_ngram=2)
    recycling = TokenRecyclingDrafter(V, eos_token_ids=[EOS])
    chain = ChainDrafter([lookup, recycling])
    assert chain.needs_feedback
    chain.reset([5, 6, 7])
    recycling.adjacency[9, 0] = 11
    assert chain.propose([5, 6, 7, 5, 6], None, 2).tokens == [7, 5]        # lookup hit
    assert chain.propose([5, 6, 7, 9], None, 1).tokens == [11]             # no lookup hit: recycling


def test_recycling_puts_the_targets_masked_choice_first():
    # the trie forces 22 24 26 ...: whatever the raw top-k, the chosen (masked) successor is promoted
    d = TokenRecyclingDrafter(V, eos_token_ids=[EOS])
    m = TrieMatcher(V, [(22, 24, 26, 28, 30, 32, 34)])
    got = speculative_decode(TARGET, [5, 9, 7], m, d, 7, num_draft_tokens=3)
    out = [7] + got.tokens
    assert got.tokens[:7] == [22, 24, 26, 28, 30, 32, 34]
    for prev, nxt in zip(out, out[1:]):
        if nxt != EOS:
            assert d.adjacency[prev, 0] == nxt
