"""Grammar jump-forward: the grammar's forced continuation as a draft, interleaved with another drafter.

`matcher.forced_tokens()` is the canonically tokenized text the grammar determines.
Those tokens cost no model call to draft; they are verified in the same target pass as
the inner drafter's tokens (a forced text may still have other tokenizations, so
appending without verification would change the output distribution); where the forced
text completes the grammar, its held-back last token and an EOS are drafted too
(`forced.forced_draft`). Positions where
the mask allows a single token are accepted by the verifier with certainty.

The draft alternates: forced tokens, then the inner drafter's continuation, then the
tokens the grammar forces after that continuation (e.g. `","key":"` after a copied
value), then the inner drafter again, until k tokens or nothing more is proposed.
The inner drafter is asked again only after new forced tokens, so a drafter's own
stopping rule (adaptive length, no lookup match) is respected.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import DraftProposal, Drafter, WrappingDrafter
from .forced import forced_draft


class JumpForwardDrafter(WrappingDrafter):
    name = "jump-forward"

    def __init__(self, inner: Drafter | None = None, max_forced: int = 32) -> None:
        super().__init__(inner, f"jump-forward+{inner.name}" if inner is not None else None)
        self.max_forced = max_forced

    def propose(self, context_ids: Sequence[int], matcher, k: int) -> DraftProposal:
        tokens: list[int] = []
        chunks: list[tuple[int, DraftProposal | None]] = []     # (length, inner proposal or None = forced)
        forced_left = self.max_forced
        advanced = 0
        try:
            while len(tokens) < k:
                n_forced = 0
                if matcher is not None and forced_left > 0:
                    forced = forced_draft(matcher, min(k - len(tokens), forced_left), context_ids)
                    n_forced = matcher.accept_tokens(forced) if forced else 0
                    advanced += n_forced
                    forced_left -= n_forced
                    if n_forced:
                        tokens += forced[:n_forced]
                        chunks.append((n_forced, None))
                if len(tokens) >= k or self.inner is None or (chunks and n_forced == 0):
                    break
                if matcher is not None and matcher.is_terminated():
                    break
                rest = self.inner.propose(list(context_ids) + tokens, matcher, k - len(tokens))
                if not rest.tokens:
                    break
                n = matcher.accept_tokens(rest.tokens) if matcher is not None else len(rest.tokens)
                advanced += n
                if n < len(rest.tokens):          # the inner drafter broke its contract: keep the valid part
                    rest = DraftProposal(rest.tokens[:n], None if rest.draft_probs is None else rest.draft_probs[:n],
                                         None if rest.masks is None else rest.masks[:n])
                    if not n:
                        break
                tokens += rest.tokens
                chunks.append((len(rest.tokens), rest))
                if matcher is not None and matcher.is_terminated():
                    break
        finally:
            if matcher is not None and advanced:
                matcher.rollback(advanced)
        return self._assemble(tokens, chunks)

    @staticmethod
    def _assemble(tokens: list[int], chunks: list[tuple[int, DraftProposal | None]]) -> DraftProposal:
        """Concatenate the chunks' probability rows (one-hot for forced tokens) and masks."""
        inner = [c for _, c in chunks if c is not None]
        masks = None
        if any(c.masks is not None for c in inner):
            masks = []
            for n, c in chunks:
                masks += c.masks if c is not None and c.masks is not None else [None] * n
        if not any(c.draft_probs is not None for c in inner):
            return DraftProposal(tokens, None, masks)
        ref = next(c.draft_probs for c in inner if c.draft_probs is not None)
        rows, pos = [], 0
        for n, c in chunks:
            if c is not None and c.draft_probs is not None:
                rows.append(c.draft_probs)
            else:                                  # point masses: forced tokens, deterministic drafters
                onehot = torch.zeros(n, ref.shape[1], dtype=ref.dtype)
                onehot[torch.arange(n), torch.tensor(tokens[pos:pos + n])] = 1.0
                rows.append(onehot)
            pos += n
        return DraftProposal(tokens, torch.cat(rows), masks)
