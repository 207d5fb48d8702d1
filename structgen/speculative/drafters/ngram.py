"""Prompt lookup: copy what followed an earlier occurrence of the current n-gram.

Searches prompt + output for the last `n` tokens (longest n first, most recent match
first) and proposes the tokens that followed; a match whose continuation reaches the end
of the context is extended periodically (the output is repeating itself). Among the matches of the longest n it
keeps the candidate with the longest grammatical prefix, so grammar-invalid copies
do not waste the verification pass.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from structgen.errors import GenerationError

from .base import DraftProposal, Drafter, take_valid


class PromptLookupDrafter(Drafter):
    name = "prompt-lookup"

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1, max_tokens: int = 8,
                 max_candidates: int = 4, length_by_ngram: dict[int, int] | None = None) -> None:
        if not 1 <= min_ngram <= max_ngram:
            raise GenerationError(f"need 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self.max_tokens, self.max_candidates = max_tokens, max_candidates
        # draft length by matched n-gram size: a 1-token match is a weak predictor, so its copy is
        # cut short instead of paying a long verification that is mostly rejected
        self.length_by_ngram = dict(length_by_ngram or {})

    def candidates(self, context_ids: Sequence[int], k: int) -> list[list[int]]:
        """Continuations of the most recent matches of the longest matching suffix n-gram."""
        n, conts = suffix_matches(context_ids, k, self.max_ngram, self.min_ngram, self.max_candidates)
        cut = self.length_by_ngram.get(n, k)
        return [c[:cut] for c in conts] if cut < k else conts

    def propose(self, context_ids: Sequence[int], matcher, k: int) -> DraftProposal:
        k = min(k, self.max_tokens)
        best: list[int] = []
        for cand in self.candidates(context_ids, k) if k > 0 else []:
            valid = take_valid(matcher, cand)
            if len(valid) > len(best):
                best = valid
        return DraftProposal(best)


def suffix_matches(context_ids: Sequence[int], k: int, max_ngram: int, min_ngram: int = 1,
                   max_candidates: int = 4) -> tuple[int, list[list[int]]]:
    """(n, continuations): the longest suffix n-gram (min_ngram <= n <= max_ngram) that occurs earlier
    in the context, and up to k tokens after each of its most recent occurrences (newest first)."""
    for n, conts, _ in suffix_match_levels(context_ids, k, max_ngram, min_ngram, max_candidates):
        return n, conts
    return 0, []


def suffix_match_levels(context_ids: Sequence[int], k: int, max_ngram: int, min_ngram: int = 1,
                        max_candidates: int = 4) -> Iterator[tuple[int, list[list[int]], list[int]]]:
    """For n from max_ngram down to min_ngram, where the suffix n-gram occurs earlier in the context:
    (n, up to k tokens after each of its most recent `max_candidates` occurrences (newest first),
    the context index where each continuation starts).

    A continuation that runs into the end of the context continues with the same period (a
    repetition loop `a b a b` drafts `a b a b ...`, not just up to the context's end).
    """
    ctx = np.asarray(context_ids, dtype=np.int64)
    L = len(ctx)
    if k <= 0:
        return
    for n in range(min(max_ngram, L - 1), min_ngram - 1, -1):
        pattern = ctx[L - n:]
        # windows starting at 0 .. L-n-1 (exclude the suffix itself)
        windows = np.lib.stride_tricks.sliding_window_view(ctx[: L - 1], n)
        hits = np.flatnonzero((windows == pattern).all(axis=1))
        if hits.size == 0:
            continue
        out, starts = [], []
        for start in hits[::-1][:max_candidates]:
            cont = ctx[start + n: start + n + k].tolist()
            period = L - start - n
            while cont and len(cont) < k and start + n + len(cont) >= L:
                cont.append(cont[len(cont) - period])
            if cont:
                out.append(cont)
                starts.append(int(start) + n)
        if out:
            yield n, out, starts
