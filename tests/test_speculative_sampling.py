"""Speculative sampling follows exactly the constrained sampling distribution.

Tiny vocabulary, constraints with few complete outputs: the exact distribution over
whole outputs is computed independently (full forwards, softmax over the allowed
logits) and compared with many speculative samples by a chi-square test. Deliberately
wrong acceptance rules must fail the same test, so the test has power.
"""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from structgen.speculative import (AcceptanceRule, AdaptiveTreeDrafter, DraftModelDrafter, JumpForwardDrafter, LayerSkipDrafter,
                                   PromptLookupDrafter, SamplingParams, TokenRecyclingDrafter,
                                   constrained_decode, speculative_decode)
from test_speculative_support import EOS, TemplateMatcher, TrieMatcher, assert_crop_matches_fresh, micro_lm, perturbed

V = 16
TARGET = micro_lm(V, seed=5, layers=3, hidden=16)
NEAR = perturbed(TARGET, 0.5, seed=4)
FAR = micro_lm(V, seed=11, layers=2, hidden=16)
PROMPT = [2, 4, 3, 4, 2, 3, 2, 4]
TRIE = [(2, 3, 4), (2, 3, 5), (2, 6), (7,), (7, 8, 9), (4, 4), (5, 6, 7, 8)]
N = 600


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def exact_distribution(make_matcher, max_new: int, temperature: float) -> dict[tuple, float]:
    """P(output) by enumeration: product of softmax(logits / T) restricted to allowed ids."""
    out: dict[tuple, float] = {}

    def walk(prefix: tuple, prob: float) -> None:
        m = make_matcher()
        if m is not None:
            assert m.accept_tokens(prefix) == len(prefix)
        if len(prefix) == max_new or (prefix and prefix[-1] == EOS):
            out[prefix] = out.get(prefix, 0.0) + prob
            return
        allowed = list(m.allowed_token_ids()) if m is not None else list(range(V))
        with torch.inference_mode():
            logits = TARGET(torch.tensor([PROMPT + list(prefix)])).logits[0, -1].double()
        sub = torch.softmax(logits[allowed] / temperature, dim=0)
        for tok, p in zip(allowed, sub.tolist()):
            walk(prefix + (int(tok),), prob * p)

    walk((), 1.0)
    return out


def chi_square_pvalue(counts: Counter, probs: dict[tuple, float], n: int) -> float:
    """Pearson chi-square with cells of expected count < 5 pooled; survival via the regularized gamma."""
    assert set(counts) <= set(probs), f"impossible outputs sampled: {set(counts) - set(probs)}"
    cells = sorted(probs, key=probs.get, reverse=True)
    stat, df = 0.0, -1
    pool_e = pool_o = 0.0
    for c in cells:
        e, o = probs[c] * n, counts.get(c, 0)
        if e >= 5:
            stat += (o - e) ** 2 / e
            df += 1
        else:
            pool_e += e
            pool_o += o
    if pool_e > 0:
        stat += (pool_o - pool_e) ** 2 / pool_e
        df += 1
    assert df >= 3
    return float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64),
                                         torch.tensor(stat / 2, dtype=torch.float64)))


CONSTRAINTS = {
    "template": (lambda: TemplateMatcher(V, free={2, 4, 6}, period=3, sep=3, min_len=3), 4),
    "trie": (lambda: TrieMatcher(V, TRIE), 6),
    "unconstrained": (lambda: None, 2),
}

DRAFTERS = {
    "draft-model-sampled": lambda: DraftModelDrafter(NEAR, eos_token_ids=[EOS], payoff_gate=False),
    "draft-model-far": lambda: DraftModelDrafter(FAR, eos_token_ids=[EOS], payoff_gate=False),
    # the default: drafting pauses while it loses time; the distribution must not change either way
    "draft-model-far-gated": lambda: DraftModelDrafter(FAR, eos_token_ids=[EOS]),
    "draft-model-greedy": lambda: DraftModelDrafter(NEAR, mode="greedy", eos_token_ids=[EOS], payoff_gate=False),
    "prompt-lookup": lambda: PromptLookupDrafter(max_ngram=2),
    "token-recycling": lambda: TokenRecyclingDrafter(V, top_k=V, eos_token_ids=[EOS]),
    "self-speculation": lambda: LayerSkipDrafter(TARGET, skip_layers=[1], eos_token_ids=[EOS], payoff_gate=False),
    "jump-forward+draft-model": lambda: JumpForwardDrafter(DraftModelDrafter(NEAR, eos_token_ids=[EOS], payoff_gate=False)),
    # deterministic drafts whose length depends on past verdicts (learned acceptance, cost sizing)
    "adaptive-tree": lambda: AdaptiveTreeDrafter(),
}

CASES = [("template", "draft-model-sampled", 1.0), ("template", "draft-model-greedy", 1.0),
         ("template", "token-recycling", 1.0), ("template", "self-speculation", 0.6),
         ("template", "prompt-lookup", 1.0), ("trie", "jump-forward+draft-model", 1.0),
         ("template", "adaptive-tree", 1.0), ("trie", "adaptive-tree", 0.7),
         ("unconstrained", "draft-model-far", 0.8), ("unconstrained", "draft-model-far-gated", 0.8)]


def run(constraint: str, drafter_name: str, params: SamplingParams, rule=None, seed: int = 0,
        n: int = N) -> tuple[Counter, int, int]:
    make, max_new = CONSTRAINTS[constraint]
    gen = torch.Generator().manual_seed(seed)
    drafter = DRAFTERS[drafter_name]()
    counts: Counter = Counter()
    drafted = accepted = 0
    for _ in range(n):
        r = speculative_decode(TARGET, PROMPT, make(), drafter, max_new, params, num_draft_tokens=3,
                               eos_token_ids=[EOS], generator=gen, rule=rule)
        counts[tuple(r.tokens)] += 1
        drafted += r.stats["drafted"]
        accepted += r.stats["accepted"]
    return counts, drafted, accepted


@pytest.mark.parametrize("constraint,drafter_name,temperature", CASES)
def test_speculative_sampling_matches_exact_distribution(constraint, drafter_name, temperature):
    params = SamplingParams(do_sample=True, temperature=temperature)
    make, max_new = CONSTRAINTS[constraint]
    probs = exact_distribution(make, max_new, temperature)
    counts, drafted, accepted = run(constraint, drafter_name, params)
    assert drafted > 0.2 * N, "the drafter must actually propose tokens for this test to mean anything"
    assert 0 < accepted < drafted or drafter_name == "prompt-lookup"
    p = chi_square_pvalue(counts, probs, N)
    assert p > 1e-3, f"p-value {p:.2e}"


def test_baseline_sampler_matches_exact_distribution():
    probs = exact_distribution(CONSTRAINTS["template"][0], 4, 1.0)
    gen = torch.Generator().manual_seed(1)
    counts = Counter(tuple(constrained_decode(TARGET, PROMPT, CONSTRAINTS["template"][0](), 4,
                                              SamplingParams(do_sample=True), eos_token_ids=[EOS],
                                              generator=gen).tokens) for _ in range(N))
    assert chi_square_pvalue(counts, probs, N) > 1e-3


class AlwaysAccept(AcceptanceRule):
    def accept(self, p, q, token, generator):
        return True


class ResampleFromTarget(AcceptanceRule):
    """Wrong: on rejection draws from p instead of the residual max(0, p - q)."""

    def residual(self, p, q):
        return p


class UnmaskedDraftRatio(AcceptanceRule):
    """Wrong: pretends the draft was not masked (q spread over the whole vocabulary)."""

    def accept(self, p, q, token, generator):
        return super().accept(p, torch.full_like(q, 1.0 / q.numel()), token, generator)


@pytest.mark.parametrize("wrong", [AlwaysAccept(), ResampleFromTarget(), UnmaskedDraftRatio()],
                         ids=lambda r: type(r).__name__)
def test_wrong_acceptance_rule_fails_the_same_test(wrong):
    params = SamplingParams(do_sample=True)
    probs = exact_distribution(CONSTRAINTS["template"][0], 4, 1.0)
    counts, _, _ = run("template", "draft-model-far", params, rule=wrong)
    p = chi_square_pvalue(counts, probs, N)
    assert p < 1e-3, f"a wrong rule passed with p-value {p:.2e}: the test has no power"


def test_micro_lm_cache_crop_matches_fresh_forward():
    # the statistical tests above rely on MicroLM's KV cache being exact under crop + refeed
    assert_crop_matches_fresh(TARGET, V, seed=5, steps=30, max_new=4)
