"""PayoffGate: model drafting pauses while it is slower than plain steps, and resumes."""
from __future__ import annotations

import pytest

import time

from structgen.speculative import (DraftModelDrafter, DraftProposal, Drafter, GatedDrafter, JumpForwardDrafter,
                                   constrained_decode, speculative_decode)
from structgen.speculative.drafters.payoff import PayoffGate

from test_speculative_support import perturbed, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def spec_step(gate: PayoffGate, clock: FakeClock, draft_s: float, verify_s: float, produced: int) -> bool:
    """One step as a model drafter runs it; returns whether the gate let it draft."""
    if not gate.allow():
        gate.observe(1, fed=1, seconds=0.010)           # a plain one-token step: 10 ms
        return False
    gate.start()
    clock.t += draft_s
    gate.stop(drafted=4)
    gate.observe(produced, fed=5, seconds=verify_s)
    return True


def test_losing_drafts_back_off_doubling_and_winning_drafts_stay_on():
    clock = FakeClock()
    gate = PayoffGate(window=6, first_backoff=4, max_backoff=16, clock=clock)
    gate.observe(1, fed=0, seconds=1.0)                  # the prefill teaches nothing
    # 1 token per 40 ms of drafting+verifying; no plain timing yet: 2 plain steps to measure it
    assert [spec_step(gate, clock, 0.03, 0.01, 1) for _ in range(3)] == [True] * 3
    assert [spec_step(gate, clock, 0.03, 0.01, 1) for _ in range(2)] == [False] * 2
    # still losing (40 ms per token vs 10 ms): off for 4, then for 8, then 16 (the cap), then 16
    pattern = [spec_step(gate, clock, 0.03, 0.01, 1) for _ in range(1 + 4 + 3 + 8 + 3 + 16 + 3 + 16)]
    assert pattern == ([True] + [False] * 4 + [True] * 3 + [False] * 8 + [True] * 3 + [False] * 16
                       + [True] * 3 + [False] * 16)
    assert gate.backoffs == 4
    # drafts that pay (5 tokens per 20 ms vs 10 ms per token) keep drafting and reset the back-off
    steps = [spec_step(gate, clock, 0.01, 0.01, 5) for _ in range(20)]
    assert all(steps) and gate._backoff == 4


def test_steps_the_drafter_was_not_asked_about_are_ignored():
    clock = FakeClock()
    gate = PayoffGate(window=2, clock=clock)
    for _ in range(5):                                   # e.g. a jump-forward wrapper filled them
        gate.observe(1, fed=1, seconds=100.0)
    assert gate._plain is None and not gate._spec


TARGET = tiny_model(64, seed=0)
FAR_DRAFT = tiny_model(64, seed=7)       # unrelated to the target: its drafts are rejected


def test_a_rejected_draft_model_is_paused_and_output_is_unchanged():
    # each step drafts 8 tokens (8 draft forwards) and keeps ~none: far slower than a plain step
    prompt = [7, 7, 9, 3]
    ref = constrained_decode(TARGET, prompt, None, 60, eos_token_ids=[])
    drafter = DraftModelDrafter(FAR_DRAFT, eos_token_ids=[])
    got = speculative_decode(TARGET, prompt, None, drafter, 60, num_draft_tokens=8, eos_token_ids=[])
    assert got.tokens == ref.tokens
    assert drafter.gate.backoffs >= 1 and drafter.gate.steps_off >= 4
    # the same drafter without the gate drafts at every step
    always = DraftModelDrafter(FAR_DRAFT, eos_token_ids=[], payoff_gate=False)
    got2 = speculative_decode(TARGET, prompt, None, always, 60, num_draft_tokens=8, eos_token_ids=[])
    assert got2.tokens == ref.tokens and got2.stats["drafted"] > got.stats["drafted"]


class ModelledCostDrafter(DraftModelDrafter):
    """Reports a modelled verification time (10 ms + 1 ms per extra fed token) instead of the
    wall clock's, so the gate's decisions do not depend on how loaded the machine is."""

    def observe(self, new_tokens, accepted: int, fed: int = 0, seconds: float = 0.0) -> None:
        modelled = 0.010 + 0.001 * max(fed - 1, 0) if fed else seconds
        super().observe(new_tokens, accepted, fed, modelled)


def test_drafts_that_pay_are_never_paused_beyond_the_plain_probe():
    # drafting made free (a clock that does not move while drafting), verification costed by
    # a model of a forward pass, and a near copy of the target: each step yields several
    # tokens for one verification, so the gate only takes its two probe steps that time a
    # plain step (CI once saw a wall-clock hiccup pause it: the timing is now modelled)
    close = perturbed(TARGET, 0.02, seed=1)
    prompt = [5, 9, 11]
    drafter = ModelledCostDrafter(close, eos_token_ids=[])
    drafter.gate = PayoffGate(clock=FakeClock())
    got = speculative_decode(TARGET, prompt, None, drafter, 60, num_draft_tokens=4, eos_token_ids=[])
    assert got.tokens == constrained_decode(TARGET, prompt, None, 60, eos_token_ids=[]).tokens
    assert got.stats["accepted"] > 20
    assert drafter.gate.steps_off == 2 and drafter.gate.backoffs == 0


class SlowJunkDrafter(Drafter):
    """Proposes tokens the target never picks, slowly: every draft is a pure loss."""

    name = "slow-junk"

    def __init__(self) -> None:
        self.asked = 0

    def propose(self, context_ids, matcher, k):
        self.asked += 1
        time.sleep(0.004)
        return DraftProposal([63] * k)


def test_gated_drafter_stops_asking_a_losing_drafter_and_output_is_unchanged():
    prompt = [4, 8, 15]
    ref = constrained_decode(TARGET, prompt, None, 60, eos_token_ids=[])
    inner = SlowJunkDrafter()
    gated = GatedDrafter(inner)
    got = speculative_decode(TARGET, prompt, None, gated, 60, num_draft_tokens=4, eos_token_ids=[])
    assert got.tokens == ref.tokens
    assert gated.gate.backoffs >= 2 and inner.asked < 30        # ungated: asked at every one of ~60 steps
    # behind jump-forward the gate sees only the steps its drafter is asked about
    inner2 = SlowJunkDrafter()
    jf = JumpForwardDrafter(GatedDrafter(inner2))
    got2 = speculative_decode(TARGET, prompt, None, jf, 60, num_draft_tokens=4, eos_token_ids=[])
    assert got2.tokens == ref.tokens and inner2.asked < 30
