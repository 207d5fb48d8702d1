"""Target/draft distributions under a grammar mask, shared by every decoder here.

The baseline decoder and the speculative verifier must define "the next-token
distribution" identically (mask first, then temperature / top-k / top-p among the
allowed tokens), otherwise speculative sampling could not be exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from structgen.errors import GenerationError

_SHIFTS = torch.arange(32, dtype=torch.int32)


@dataclass(frozen=True)
class SamplingParams:
    """Greedy (do_sample=False) or sampling with temperature / top-k / top-p."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise GenerationError(f"SamplingParams.temperature must be > 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise GenerationError(f"SamplingParams.top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise GenerationError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")


GREEDY = SamplingParams()


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """int32 [W] bitmask (bit i of word i//32) -> bool [vocab_size]."""
    bits = ((bitmask.unsqueeze(-1) >> _SHIFTS) & 1).reshape(-1).bool()
    if bits.numel() >= vocab_size:
        return bits[:vocab_size]
    out = torch.zeros(vocab_size, dtype=torch.bool)
    out[: bits.numel()] = bits
    return out


def allowed_mask(matcher, vocab_size: int) -> torch.Tensor:
    """Bool [vocab_size] of the tokens the matcher allows next (ids past its vocab are refused)."""
    words = (matcher.vocab_size + 31) // 32
    bitmask = torch.full((1, words), -1, dtype=torch.int32)
    matcher.fill_next_token_bitmask(bitmask, 0)
    mask = unpack_bitmask(bitmask[0], min(vocab_size, matcher.vocab_size))
    if mask.numel() < vocab_size:
        mask = torch.cat([mask, torch.zeros(vocab_size - mask.numel(), dtype=torch.bool)])
    return mask


def _check_nonempty(mask: torch.Tensor, where: str) -> None:
    if not bool(mask.any()):
        raise GenerationError(f"the grammar allows no token at {where}; the matcher is stuck")


def masked_logits(logits: torch.Tensor, mask: torch.Tensor | None, where: str = "this position") -> torch.Tensor:
    """Copy of `logits` (float64) with refused tokens at -inf."""
    out = logits.to(torch.float64).clone()
    if mask is not None:
        _check_nonempty(mask, where)
        out[..., ~mask] = float("-inf")
    return out


def greedy_token(logits: torch.Tensor, mask: torch.Tensor | None, where: str = "this position") -> int:
    """Arg-max over the allowed tokens (first index on ties, like torch.argmax)."""
    return int(torch.argmax(masked_logits(logits, mask, where)))


def distribution(logits: torch.Tensor, mask: torch.Tensor | None, params: SamplingParams,
                 where: str = "this position") -> torch.Tensor:
    """The exact float64 next-token distribution used for sampling: mask, temperature, top-k, top-p."""
    x = masked_logits(logits, mask, where) / params.temperature
    if params.top_k is not None and params.top_k < x.shape[-1]:
        kth = torch.topk(x, params.top_k, dim=-1).values[..., -1:]
        x = x.masked_fill(x < kth, float("-inf"))
    probs = torch.softmax(x, dim=-1)
    if params.top_p is not None and params.top_p < 1.0:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        before = torch.cumsum(sorted_p, dim=-1) - sorted_p
        drop_sorted = before >= params.top_p          # keep the smallest prefix reaching top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One draw from a 1-D distribution."""
    return int(torch.multinomial(probs, 1, generator=generator))


def choose_token(logits: torch.Tensor, mask: torch.Tensor | None, params: SamplingParams,
                 generator: torch.Generator | None, where: str = "this position") -> int:
    """Next token under the grammar mask: arg-max when greedy, else a draw from `distribution`."""
    if not params.do_sample:
        return greedy_token(logits, mask, where)
    return sample(distribution(logits, mask, params, where), generator)
