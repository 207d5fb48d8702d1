"""Arithmetic progressions: continue a run of integers the output is counting through.

A model asked for a list of numbers often writes `1,2,3,4,...` or `10, 20, 30`; prompt
lookup cannot draft those (each next number is new text), so every token cost a target
call. When the output ends with at least `min_terms` integers in arithmetic progression
(non-zero step) separated by one repeated separator, optionally followed by the first
digits of the next one, the text of the next terms is drafted. Model-free, like lookup;
the verifier decides every token.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from .base import DraftProposal, Drafter, take_valid

_NUMBER = re.compile(rb"-?\d+")
_PARTIAL = re.compile(rb"-?\d*\Z")


def continue_progression(text: bytes, min_terms: int = 3, length: int = 48, max_sep: int = 4) -> bytes:
    """The text that continues the arithmetic progression `text` ends with (b"" if none), at least
    `length` bytes. `text` may end inside the next number (its first digits)."""
    partial = _PARTIAL.search(text).group()
    body = text[: len(text) - len(partial)]
    nums = list(_NUMBER.finditer(body))
    if len(nums) < min_terms:
        return b""
    last = nums[-1]
    sep = body[last.end():]
    if not 1 <= len(sep) <= max_sep or b"-" in sep:
        return b""
    values = [int(last.group())]                    # newest first, while the step stays the same
    for prev, cur in zip(reversed(nums[:-1]), reversed(nums)):
        if body[prev.end():cur.start()] != sep or len(values) >= 8:
            break
        v = int(prev.group())
        if len(values) >= 2 and values[-2] - values[-1] != values[-1] - v:
            break
        values.append(v)
    if len(values) < min_terms or values[0] == values[1]:
        return b""
    step = values[0] - values[1]
    values.reverse()
    nxt = values[-1] + step
    first = str(nxt).encode()
    if not first.startswith(partial):
        return b""                                  # the text is not heading for the next term
    out = bytearray(first[len(partial):])
    while len(out) < length:
        out += sep
        nxt += step
        out += str(nxt).encode()
    return bytes(out)


class ProgressionDrafter(Drafter):
    """Drafts the next terms of an integer progression at the end of the context.

    The text is read through the matcher's tokenizer (or `tokenizer`, a `TokenizerInfo`, for
    unconstrained decoding); no tokenizer, no drafts.
    """

    name = "progression"

    def __init__(self, tokenizer=None, max_tokens: int = 16, window: int = 48, min_terms: int = 3) -> None:
        self.tokenizer, self.max_tokens, self.window, self.min_terms = tokenizer, max_tokens, window, min_terms

    def continuation(self, context_ids: Sequence[int], matcher, k: int) -> list[int]:
        """Up to k grammatical tokens continuing the progression (canonical tokenization of its text)."""
        tok = self.tokenizer
        if tok is None and matcher is not None and getattr(matcher, "compiled", None) is not None:
            tok = matcher.compiled.tokenizer
        if tok is None or k <= 0:
            return []
        tb = tok.token_bytes
        size = len(tb)
        tail = b"".join(tb[t] for t in context_ids[-self.window:] if 0 <= t < size)
        text = continue_progression(tail, self.min_terms, length=4 * k)
        if not text:
            return []
        ids = [int(i) for i in tok.encode(text.decode("ascii"))][:k]
        return take_valid(matcher, ids)

    def propose(self, context_ids: Sequence[int], matcher, k: int) -> DraftProposal:
        return DraftProposal(self.continuation(context_ids, matcher, min(k, self.max_tokens)))
