"""Turn model drafting off while it measurably loses time, and probe it again later.

A drafter that runs a model (a small draft model, or the target with layers skipped)
pays for every draft token whether or not the target accepts it. When acceptance is
low, speculative steps produce fewer tokens per second than plain one-token steps (the
135M default model drafting for itself with half its layers: 0.4x). The gate compares
the two rates as they are measured on this machine, during this generation:

* speculative rate: tokens produced by the last few drafted steps / (their drafting
  time + their verification time);
* plain rate: 1 token / the running time of an undrafted (one-token) step.

When the speculative rate falls below the plain rate, drafting stops for a back-off
period (4 steps, doubling on each repeated loss up to 64), after which it is probed
again over 3 drafted steps; a winning window resets the back-off. Probes are judged over
3 steps, not one, because single steps of model-free drafters vary a lot (a lookup miss
costs a verification for one token, a hit yields several): judging probes alone cut
jf+gated(prompt-lookup) on a repetitive JSON prompt from 2.4x to 1.45x. Whether a step drafts depends only on the
past, so the verifier's guarantees (greedy identical, sampling distribution unchanged)
hold as they do for any drafter.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from ..sampling import GREEDY, SamplingParams
from .base import DraftProposal, Drafter, WrappingDrafter


class PayoffGate:
    def __init__(self, window: int = 6, first_backoff: int = 4, max_backoff: int = 64,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.window, self.first_backoff, self.max_backoff = window, first_backoff, max_backoff
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Start of a generation: forget the measurements (the prompt and its lengths change them)."""
        self._spec: deque[tuple[int, float]] = deque(maxlen=self.window)   # (tokens, seconds) per drafted step
        self._plain: float | None = None          # running seconds of a one-token step
        self._off = 0                              # undrafted steps still to take
        self._backoff = self.first_backoff
        self._draft_seconds = 0.0
        self._step: str | None = None              # this step: None (not asked), "off", "draft"
        self._t = 0.0
        self.steps_off = 0                         # statistics: undrafted steps chosen by the gate
        self.backoffs = 0

    # -- the drafter's side ------------------------------------------------------------
    def allow(self) -> bool:
        """Whether this step may draft (called once per step, before drafting)."""
        if self._off > 0:
            self._off -= 1
            self.steps_off += 1
            self._step = "off"
            return False
        self._step = "draft"
        return True

    def start(self) -> None:
        self._t = self.clock()

    def stop(self, drafted: int) -> None:
        """Drafting of this step done; a step that drafted nothing counts as a plain step."""
        self._draft_seconds = self.clock() - self._t
        if drafted == 0:
            self._step = "off"

    def draft(self, make: Callable[[], DraftProposal]) -> DraftProposal:
        """One step's drafting through the gate: nothing while paused, else ``make()``, timed."""
        if not self.allow():
            return DraftProposal([])
        self.start()
        proposal = make()
        self.stop(len(proposal.tokens))
        return proposal

    # -- the verifier's report -----------------------------------------------------------
    def observe(self, produced: int, fed: int, seconds: float) -> None:
        """After every verification; steps this drafter was not asked about (a wrapper's forced
        tokens filled them) and the prompt prefill (fed=0) teach nothing."""
        step, self._step = self._step, None
        if step is None or fed == 0:
            return
        if step == "off":
            if fed == 1:                           # a plain one-token step
                self._plain = seconds if self._plain is None else 0.7 * self._plain + 0.3 * seconds
            return
        self._spec.append((produced, self._draft_seconds + seconds))
        if len(self._spec) < self.window // 2:
            return
        if self._plain is None:
            self._off = 2                          # measure what a plain step costs here
            return
        tokens = sum(n for n, _ in self._spec)
        spent = sum(s for _, s in self._spec)
        if tokens * self._plain < spent:           # slower than plain one-token steps
            self._off = self._backoff
            self._backoff = min(2 * self._backoff, self.max_backoff)
            self.backoffs += 1
            self._spec.clear()
        elif len(self._spec) == self.window:
            self._backoff = self.first_backoff


class GatedDrafter(WrappingDrafter):
    """Any drafter behind a :class:`PayoffGate`: its drafts are asked for only while they pay.

    For drafters whose misses cost verification time (prompt lookup on chat, where few
    drafts survive: 0.86x of constrained greedy) the gate turns a loss into plain steps.
    Tree proposals are not gated (the tree drafters size themselves by cost).
    """

    def __init__(self, inner: Drafter, gate: PayoffGate | None = None) -> None:
        super().__init__(inner, f"gated({inner.name})")
        self.gate = gate or PayoffGate()

    def reset(self, prompt_ids, sampling: SamplingParams = GREEDY, generator=None) -> None:
        super().reset(prompt_ids, sampling, generator)
        self.gate.reset()

    def observe(self, new_tokens, accepted: int, fed: int = 0, seconds: float = 0.0) -> None:
        super().observe(new_tokens, accepted, fed, seconds)
        self.gate.observe(len(new_tokens), fed, seconds)

    def propose(self, context_ids: Sequence[int], matcher, k: int) -> DraftProposal:
        if k <= 0:
            return DraftProposal([])
        return self.gate.draft(lambda: self.inner.propose(context_ids, matcher, k))
