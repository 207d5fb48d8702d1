"""Token Recycling: reuse the target's own top-k candidates as drafts.

Keeps an adjacency matrix M[token] = the target's top-k next tokens the last time it
read `token` (updated from every verification pass, rejected positions included, and
from the prompt prefill). Where the target actually chose a token (under the grammar
mask), that choice goes first: raw top-k of the prompt often holds only tokens the
grammar refuses (e.g. `": "` with a space when the schema is compact). Drafts follow M greedily from the last context token,
taking at each step the best-ranked candidate the grammar allows. The matrix persists
across generations (the paper's "recycling"); `clear()` forgets it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from structgen.errors import GenerationError

from .base import DraftProposal, Drafter, StepFeedback


class TokenRecyclingDrafter(Drafter):
    name = "token-recycling"
    needs_feedback = True

    def __init__(self, vocab_size: int, top_k: int = 8, max_tokens: int = 8,
                 eos_token_ids: Sequence[int] = (), prefill_feedback: int = 512) -> None:
        if top_k < 1 or vocab_size < 1:
            raise GenerationError(f"TokenRecyclingDrafter needs top_k >= 1 and vocab_size >= 1, got {top_k}, {vocab_size}")
        self.vocab_size, self.top_k, self.max_tokens = vocab_size, top_k, max_tokens
        self.eos = frozenset(eos_token_ids)
        self.prefill_feedback = prefill_feedback     # prompt rows learned at prefill (0 = learn from the output only)
        self.clear()

    def clear(self) -> None:
        self.adjacency = np.full((self.vocab_size, self.top_k), -1, dtype=np.int64)

    def update(self, feedback: StepFeedback) -> None:
        k = min(self.top_k, feedback.logits.shape[-1])
        top = torch.topk(feedback.logits.float(), k, dim=-1).indices.numpy()
        fed = np.asarray(feedback.fed_tokens, dtype=np.int64)
        keep = fed < self.vocab_size
        self.adjacency[fed[keep], :k] = top[keep]
        # fed[base + j] is the token before new_tokens[j] (base = position of the last cached context token)
        base = len(fed) - feedback.drafted - 1
        for j, chosen in enumerate(feedback.new_tokens):
            if base + j < 0 or base + j >= len(fed) or fed[base + j] >= self.vocab_size:
                continue
            self._promote(int(fed[base + j]), int(chosen))

    def _promote(self, prev: int, chosen: int) -> None:
        """Put `chosen` first in prev's row, keeping the other candidates in order."""
        row = self.adjacency[prev]
        rest = row[row != chosen][: self.top_k - 1]
        row[0] = chosen
        row[1:1 + rest.shape[0]] = rest

    def propose(self, context_ids: Sequence[int], matcher, k: int) -> DraftProposal:
        k = min(k, self.max_tokens)
        tokens: list[int] = []
        tok = int(context_ids[-1])
        advanced = 0
        try:
            while len(tokens) < k and tok < self.vocab_size:
                nxt = -1
                for cand in self.adjacency[tok]:
                    cand = int(cand)
                    if cand < 0:
                        break
                    if matcher is None or cand in self.eos and matcher.validate_tokens([cand]) == 1:
                        nxt = cand
                        break
                    if matcher.accept_token(cand):
                        advanced += 1
                        nxt = cand
                        break
                if nxt < 0:
                    break
                tokens.append(nxt)
                if nxt in self.eos or (matcher is not None and matcher.is_terminated()):
                    break
                tok = nxt
        finally:
            if matcher is not None and advanced:
                matcher.rollback(advanced)
        return DraftProposal(tokens)
