"""The pluggable drafter interface and the draft-length policies.

A drafter proposes up to k next tokens. It may use the matcher to keep its draft
grammatical but must hand it back in the state it received (advance, then roll back).
`draft_probs` is the distribution each draft token was drawn from (rows [k, V]);
None means every token is a point mass (deterministic / model-free draft), which the
verifier handles as q = one-hot. `masks[i]`, when a drafter computed it anyway, is the
grammar's bool mask at draft position i (before draft[i]); the verifier reuses it
instead of asking the matcher again.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from structgen.errors import GenerationError

from ..sampling import GREEDY, SamplingParams


@dataclass
class DraftProposal:
    tokens: list[int]
    draft_probs: torch.Tensor | None = None   # float64 [len(tokens), V] or None (point masses)
    masks: list[torch.Tensor | None] | None = None   # bool [V] grammar mask before each token, if known

    def __post_init__(self) -> None:
        if self.draft_probs is not None and self.draft_probs.shape[0] != len(self.tokens):
            raise GenerationError(
                f"DraftProposal has {len(self.tokens)} tokens but {self.draft_probs.shape[0]} probability rows")
        if self.masks is not None and len(self.masks) != len(self.tokens):
            raise GenerationError(f"DraftProposal has {len(self.tokens)} tokens but {len(self.masks)} masks")

    def mask(self, i: int) -> torch.Tensor | None:
        """The mask the drafter saw before token i, or None if it did not compute one."""
        return self.masks[i] if self.masks is not None and i < len(self.masks) else None


@dataclass
class StepFeedback:
    """What the target saw in one forward: tokens fed and their raw (unmasked) logits."""

    fed_tokens: list[int]
    logits: torch.Tensor              # [len(fed_tokens), V]; row j predicts the token after fed_tokens[j]
    accepted: int = 0                 # draft tokens accepted this step
    new_tokens: list[int] = field(default_factory=list)   # the tokens the target chose (under the mask)
    drafted: int = 0                  # draft tokens fed this step (the last `drafted` of fed_tokens)


class Drafter(ABC):
    """Proposes draft tokens; `update` receives the target's verdict after each step."""

    #: set True to receive target logits in `update` (costs a top-k over the logits)
    needs_feedback: bool = False
    #: prompt positions whose target logits the prefill feedback should carry (each costs an
    #: lm-head row: ~V x hidden multiply-adds, a real cost for large vocabularies on CPU)
    prefill_feedback: int = 512
    name: str = "drafter"

    def reset(self, prompt_ids: Sequence[int], sampling: SamplingParams = GREEDY,
              generator: torch.Generator | None = None) -> None:
        """Start of a new generation."""
        self.sampling = sampling
        self.generator = generator

    @abstractmethod
    def propose(self, context_ids: Sequence[int], matcher, k: int) -> DraftProposal:
        """Up to k tokens continuing `context_ids` (prompt + output so far)."""

    def update(self, feedback: StepFeedback) -> None:
        """Called after prefill and after each verification (when needs_feedback)."""

    def observe(self, new_tokens: Sequence[int], accepted: int, fed: int = 0, seconds: float = 0.0) -> None:
        """Called after every verification with the tokens it produced, how many drafted ones it
        accepted, how many tokens the target pass fed (0 for the prompt prefill) and how long the
        verification took (cheap: no logits); drafters that size their drafts by past acceptance
        and cost learn here."""


class WrappingDrafter(Drafter):
    """A drafter built around another one (jump-forward, trees, the payoff gate): takes over its
    feedback needs and passes every notification on; ``inner`` may be None."""

    def __init__(self, inner: Drafter | None, name: str | None = None) -> None:
        self.inner = inner
        self.needs_feedback = inner.needs_feedback if inner is not None else False
        self.prefill_feedback = inner.prefill_feedback if inner is not None else 0
        if name is not None:
            self.name = name

    def reset(self, prompt_ids: Sequence[int], sampling: SamplingParams = GREEDY,
              generator: torch.Generator | None = None) -> None:
        super().reset(prompt_ids, sampling, generator)
        if self.inner is not None:
            self.inner.reset(prompt_ids, sampling, generator)

    def update(self, feedback: StepFeedback) -> None:
        if self.inner is not None:
            self.inner.update(feedback)

    def observe(self, new_tokens: Sequence[int], accepted: int, fed: int = 0, seconds: float = 0.0) -> None:
        if self.inner is not None:
            self.inner.observe(new_tokens, accepted, fed, seconds)


@dataclass(frozen=True)
class DraftLength:
    """Fixed length (threshold=None) or SpecDec++-style adaptive stop.

    Adaptive: stop once the estimated chance that some draft token so far is rejected,
    1 - prod_i q_i(d_i) with q the draft's own probability of its token, exceeds `threshold`.
    """

    max_tokens: int = 8
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise GenerationError(f"DraftLength.max_tokens must be >= 1, got {self.max_tokens}")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise GenerationError(f"DraftLength.threshold must be in (0, 1), got {self.threshold}")

    def should_stop(self, survival: float) -> bool:
        """`survival` = product of draft probabilities of the tokens drafted so far."""
        return self.threshold is not None and 1.0 - survival > self.threshold


def take_valid(matcher, tokens: Sequence[int]) -> list[int]:
    """Longest grammatical prefix of `tokens` (all of them when unconstrained)."""
    tokens = list(tokens)
    if matcher is None or not tokens:
        return tokens
    return tokens[: matcher.validate_tokens(tokens)]
