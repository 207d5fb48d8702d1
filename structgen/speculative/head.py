"""Greedy token choice from a hidden state: the masked arg-max without a full lm-head row when possible.

Shared by the non-speculative greedy loop and the tree verifier, so both pay the same
per-token cost and make the same decision from the same hidden state.

* The grammar allows one token: it is the choice; no lm-head row at all.
* It allows few tokens (<= `restrict_limit`): logits of those rows only.
* Otherwise one full row, computed as `h @ W.T` with W.T stored contiguous: on CPU the
  matrix-vector product over a [hidden, vocab] matrix is 2-3x faster than `nn.Linear`'s
  over [vocab, hidden] (measured: 4.5 ms vs 12 ms for smollm2's 49152 x 576 head).
Ties go to the smallest id, like `torch.argmax` over the masked row.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
import torch

from structgen.errors import GenerationError

_TRANSPOSED: "weakref.WeakKeyDictionary[torch.nn.Module, torch.Tensor]" = weakref.WeakKeyDictionary()
#: largest transposed copy kept (bytes); bigger heads use nn.Linear as is
MAX_TRANSPOSED_BYTES = 1024 * 2**20      # qwen2.5-coder-1.5b's head is 933 MB


def allowed_ids(matcher, vocab: int) -> np.ndarray:
    """Sorted ids < vocab the matcher allows next."""
    words = (matcher.vocab_size + 31) // 32
    bitmask = np.zeros((1, words), dtype=np.int32)
    matcher.fill_next_token_bitmask(bitmask, 0)
    bits = np.unpackbits(bitmask[0].view(np.uint8), bitorder="little")[: min(vocab, matcher.vocab_size)]
    return np.flatnonzero(bits)


class GreedyHead:
    """lm-head of a causal LM, evaluated only as far as a greedy constrained choice needs."""

    def __init__(self, model, vocab: int, restrict_limit: int = 1024) -> None:
        self.lm_head = model.lm_head
        self.vocab, self.restrict_limit = vocab, restrict_limit
        w = self.lm_head.weight
        self.weight = w.detach()
        self.bias = None if getattr(self.lm_head, "bias", None) is None else self.lm_head.bias.detach()
        self.weight_t = _TRANSPOSED.get(self.lm_head)
        if self.weight_t is None and w.numel() * w.element_size() <= MAX_TRANSPOSED_BYTES:
            self.weight_t = w.detach().t().contiguous()
            _TRANSPOSED[self.lm_head] = self.weight_t

    @torch.inference_mode()
    def row(self, h: torch.Tensor) -> torch.Tensor:
        """Full logits row [V] for one hidden state [H]."""
        if self.weight_t is None:
            return self.lm_head(h)
        out = h @ self.weight_t
        return out + self.bias if self.bias is not None else out

    @torch.inference_mode()
    def rows(self, hs: torch.Tensor) -> torch.Tensor:
        """Full logits rows [m, V] for hidden states [m, H] in one matrix product: the head's weights
        are read once for all m rows (m separate rows read them m times; ~15 ms each for smollm2)."""
        if hs.shape[0] == 1:                  # a matrix-vector product, as for the baseline's rows
            return self.row(hs[0]).unsqueeze(0)
        if self.weight_t is None:
            return self.lm_head(hs)
        out = hs @ self.weight_t
        return out + self.bias if self.bias is not None else out

    @torch.inference_mode()
    def pick(self, h: torch.Tensor, matcher, where: str, want_row: bool = False,
             full_row: Callable[[], torch.Tensor] | None = None) -> tuple[int, torch.Tensor | None]:
        """Masked arg-max for hidden state h; also the full row when `want_row` (drafter feedback).

        `full_row`, if given, supplies h's full logits row when one is needed (a row computed in a
        batch with others); otherwise it is computed here.
        """
        row_of = full_row or (lambda: self.row(h))
        if matcher is None:
            row = row_of()
            return int(torch.argmax(row)), row
        allowed = allowed_ids(matcher, self.vocab)
        if allowed.size == 0:
            raise GenerationError(f"the grammar allows no token at {where}; the matcher is stuck")
        if allowed.size <= self.restrict_limit:          # the decision never depends on want_row
            if allowed.size == 1:
                choice = int(allowed[0])
            else:
                idx = torch.from_numpy(allowed)
                sub = self.weight.index_select(0, idx) @ h
                if self.bias is not None:
                    sub = sub + self.bias.index_select(0, idx)
                choice = int(allowed[int(torch.argmax(sub))])
            return choice, (row_of() if want_row else None)
        row = row_of()
        r = int(torch.argmax(row))
        pos = np.searchsorted(allowed, r)
        if pos < allowed.size and allowed[pos] == r:
            return r, row
        idx = torch.from_numpy(allowed)
        return int(allowed[int(torch.argmax(row.index_select(0, idx)))]), row
