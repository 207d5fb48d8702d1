"""A transformers ``LogitsProcessor`` that applies structgen masks inside ``model.generate``.

Each call advances every row's matcher with the token generated since the
previous call (the last column of ``input_ids``), then masks that row's
logits.  Rows whose matcher already accepted EOS are left alone (transformers
pads them).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from transformers import LogitsProcessor

from ..errors import GenerationError


def _factory(source) -> Callable[[], Any]:
    if hasattr(source, "matcher"):
        return source.matcher
    if callable(source):
        return source
    raise TypeError(f"expected a CompiledGrammar or a callable returning a Matcher, got {type(source).__name__}")


class StructgenLogitsProcessor(LogitsProcessor):
    """Mask logits with structgen matchers, one per batch row.

    ``grammar``: a ``CompiledGrammar``, a zero-argument callable returning a
    fresh ``Matcher``, or a sequence of those (one per row).  ``batch_size``
    is checked against the first call when given.  Beam search is not
    supported (rows would be reordered); create a new processor per
    ``generate`` call or call :meth:`reset`.
    """

    def __init__(self, grammar, batch_size: int | None = None):
        if isinstance(grammar, Sequence) and not isinstance(grammar, (str, bytes)):
            self._factories = [_factory(g) for g in grammar]
            if batch_size is not None and batch_size != len(self._factories):
                raise ValueError(f"batch_size={batch_size} but {len(self._factories)} grammars were given")
            batch_size = len(self._factories)
        else:
            self._factories = None
            self._single = _factory(grammar)
        self.batch_size = batch_size
        self.matchers: list | None = None
        self._bitmask: torch.Tensor | None = None
        self._prompt_len = 0

    def reset(self) -> None:
        """Forget the matchers (next call starts a new generation)."""
        self.matchers = None
        self._bitmask = None

    def _start(self, input_ids: torch.LongTensor) -> None:
        rows = input_ids.shape[0]
        if self.batch_size is not None and rows != self.batch_size:
            raise GenerationError(f"StructgenLogitsProcessor built for batch_size={self.batch_size} got "
                                  f"{rows} rows (num_beams/num_return_sequences > 1 are not supported)")
        make = self._factories or [self._single] * rows
        self.matchers = [f() for f in make]
        self._prompt_len = input_ids.shape[1]
        from ..engine import allocate_token_bitmask
        self._bitmask = allocate_token_bitmask(rows, self.matchers[0].vocab_size)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.matchers is None or input_ids.shape[1] <= self._prompt_len:
            self._start(input_ids)
        elif input_ids.shape[0] != len(self.matchers):
            raise GenerationError(f"batch changed from {len(self.matchers)} to {input_ids.shape[0]} rows mid-generation")
        else:
            last = input_ids[:, -1].tolist()
            for row, (m, tok) in enumerate(zip(self.matchers, last)):
                if m.is_terminated():
                    continue
                if not m.accept_token(int(tok)):
                    raise GenerationError(f"row {row}: token {tok} was generated but the grammar does not allow "
                                          "it (was the processor applied after another sampler changed the token?)")
        from ..engine import apply_token_bitmask_inplace
        bitmask = self._bitmask
        bitmask.fill_(-1)
        for row, m in enumerate(self.matchers):
            if not m.is_terminated():
                m.fill_next_token_bitmask(bitmask, row)
        vocab = self.matchers[0].vocab_size
        out = scores.clone()
        if out.shape[-1] > vocab:
            out[:, vocab:] = float("-inf")
        view = out[:, :vocab]
        masked = view.float().contiguous()
        apply_token_bitmask_inplace(masked, bitmask.to(masked.device))
        out[:, :vocab] = masked.to(out.dtype)
        return out
