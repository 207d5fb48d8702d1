"""Grammar jump-forward: the grammar's forced continuation as a draft, then another drafter.

`matcher.forced_tokens()` is the canonically tokenized text the grammar determines.
Those tokens cost no model call to draft; they are verified in the same target pass as
the inner drafter's tokens (a forced text may still have other tokenizations, so
appending without verification would change the output distribution). Positions where
the mask allows a single token are accepted by the verifier with certainty.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..sampling import GREEDY, SamplingParams
from .base import DraftProposal, Drafter, StepFeedback


class JumpForwardDrafter(Drafter):
    name = "jump-forward"

    def __init__(self, inner: Drafter | None = None, max_forced: int = 32) -> None:
        self.inner, self.max_forced = inner, max_forced
        self.needs_feedback = inner.needs_feedback if inner is not None else False
        if inner is not None:
            self.name = f"jump-forward+{inner.name}"

    def reset(self, prompt_ids, sampling: SamplingParams = GREEDY, generator=None) -> None:
        super().reset(prompt_ids, sampling, generator)
        if self.inner is not None:
            self.inner.reset(prompt_ids, sampling, generator)

    def update(self, feedback: StepFeedback) -> None:
        if self.inner is not None:
            self.inner.update(feedback)

    def propose(self, context_ids: Sequence[int], matcher, k: int) -> DraftProposal:
        forced: list[int] = []
        if matcher is not None and k > 0:
            forced = list(matcher.forced_tokens())[: min(k, self.max_forced)]
            forced = forced[: matcher.accept_tokens(forced)] if forced else []
        try:
            rest = DraftProposal([])
            if self.inner is not None and len(forced) < k:
                rest = self.inner.propose(list(context_ids) + forced, matcher, k - len(forced))
        finally:
            if forced:
                matcher.rollback(len(forced))
        tokens = forced + rest.tokens
        if rest.draft_probs is None:
            return DraftProposal(tokens)
        onehot = torch.zeros(len(forced), rest.draft_probs.shape[1], dtype=rest.draft_probs.dtype)
        if forced:
            onehot[torch.arange(len(forced)), torch.tensor(forced)] = 1.0
        return DraftProposal(tokens, torch.cat([onehot, rest.draft_probs]))
