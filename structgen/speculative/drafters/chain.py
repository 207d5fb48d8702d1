"""Fallback chain: ask drafters in order, use the first non-empty proposal.

Prompt lookup is precise when the output copies the prompt but often has no match;
Token Recycling always has a guess but a weaker one. Chaining them drafts at every
step without letting the weaker drafter override a lookup hit.
"""
from __future__ import annotations

from collections.abc import Sequence

from structgen.errors import GenerationError

from ..sampling import GREEDY, SamplingParams
from .base import DraftProposal, Drafter, StepFeedback


class ChainDrafter(Drafter):
    def __init__(self, drafters: Sequence[Drafter]) -> None:
        if not drafters:
            raise GenerationError("ChainDrafter needs at least one drafter")
        self.drafters = list(drafters)
        self.needs_feedback = any(d.needs_feedback for d in self.drafters)
        self.prefill_feedback = max((d.prefill_feedback for d in self.drafters if d.needs_feedback), default=0)
        self.name = "|".join(d.name for d in self.drafters)

    def reset(self, prompt_ids, sampling: SamplingParams = GREEDY, generator=None) -> None:
        super().reset(prompt_ids, sampling, generator)
        for d in self.drafters:
            d.reset(prompt_ids, sampling, generator)

    def update(self, feedback: StepFeedback) -> None:
        for d in self.drafters:
            if d.needs_feedback:
                d.update(feedback)

    def observe(self, new_tokens, accepted: int, fed: int = 0, seconds: float = 0.0) -> None:
        for d in self.drafters:
            d.observe(new_tokens, accepted, fed, seconds)

    def propose(self, context_ids: Sequence[int], matcher, k: int) -> DraftProposal:
        for d in self.drafters:
            prop = d.propose(context_ids, matcher, k)
            if prop.tokens:
                return prop
        return DraftProposal([])
