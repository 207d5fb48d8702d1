"""Packed int32 token bitmasks (the ecosystem's layout) and applying them to logits."""
from __future__ import annotations

import numpy as np
import torch


def bitmask_words(vocab_size: int) -> int:
    return (vocab_size + 31) // 32


def allocate_token_bitmask(batch: int, vocab_size: int) -> torch.Tensor:
    """int32 [batch, ceil(V/32)], all bits set (everything allowed)."""
    return torch.full((batch, bitmask_words(vocab_size)), -1, dtype=torch.int32)


_SHIFTS = torch.arange(32, dtype=torch.int32)


class RowWriter:
    """Writes uint32 mask words into rows of a bitmask tensor or array, fast on repeated calls.

    Indexing a torch tensor and viewing it as numpy costs ~10 us per call, five
    times the 19 KB copy itself (152k vocabulary), and it happens on every decoding
    step; so the numpy view of the last CPU tensor seen is kept and reused while the
    tensor still has the same data pointer and shape (after ``set_`` to other storage
    a new view is made).
    """

    __slots__ = ("_tensor", "_ptr", "_shape", "_view")

    def __init__(self) -> None:
        self._tensor = None
        self._ptr = 0
        self._shape = None
        self._view = None

    def write(self, bitmask, index: int, words: np.ndarray) -> None:
        """Row ``index`` of ``bitmask`` (int32 [batch, W], numpy or torch, any device) := ``words``."""
        if isinstance(bitmask, np.ndarray):
            bitmask[index, :words.shape[0]] = words.view(np.int32)
            return
        if bitmask is self._tensor and bitmask.data_ptr() == self._ptr and bitmask.shape == self._shape:
            self._view[index, :words.shape[0]] = words.view(np.int32)
            return
        if bitmask.device.type == "cpu" and bitmask.dim() == 2 and bitmask.dtype == torch.int32:
            self._tensor, self._ptr, self._shape = bitmask, bitmask.data_ptr(), bitmask.shape
            self._view = bitmask.numpy()
            self._view[index, :words.shape[0]] = words.view(np.int32)
            return
        row = bitmask[index, :words.shape[0]]
        if row.device.type == "cpu":
            row.numpy()[:] = words.view(np.int32)
        else:
            row.copy_(torch.from_numpy(words.view(np.int32).copy()))


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """bool [batch, vocab_size] from the packed int32 layout."""
    bits = (bitmask.unsqueeze(-1) >> _SHIFTS.to(bitmask.device)) & 1
    return bits.reshape(bitmask.shape[0], -1)[:, :vocab_size].bool()


def apply_token_bitmask_inplace(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    """Set logits of forbidden tokens to -inf.  ``logits`` is [batch, V] or [V]."""
    squeeze = logits.dim() == 1
    lg = logits.unsqueeze(0) if squeeze else logits
    bm = bitmask.unsqueeze(0) if bitmask.dim() == 1 else bitmask
    vocab = lg.shape[-1]
    allowed = unpack_bitmask(bm.to(torch.int32), min(vocab, bm.shape[-1] * 32))
    if allowed.shape[-1] < vocab:  # logits wider than the mask: extra ids are forbidden
        pad = torch.zeros(allowed.shape[0], vocab - allowed.shape[-1], dtype=torch.bool)
        allowed = torch.cat([allowed, pad], dim=-1)
    lg.masked_fill_(~allowed.to(lg.device), float("-inf"))


def numpy_words_to_bool(words: np.ndarray, vocab_size: int) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8), bitorder="little")[:vocab_size].astype(bool)
