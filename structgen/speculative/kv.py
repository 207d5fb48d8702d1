"""A causal LM plus its KV cache, fed incrementally and truncated on rejection.

Keeps the token ids the cache holds, so a caller can crop back to any prefix and
the invariant "cache == fresh forward over `tokens`" always holds.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from transformers import DynamicCache

from structgen.errors import GenerationError


def _cache_kwarg(model) -> str:
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def model_vocab_size(model) -> int:
    """Logits dimension of a causal LM."""
    return int(model.get_output_embeddings().weight.shape[0])


def eos_ids_of(model) -> frozenset[int]:
    """EOS ids from the model's generation config (or config), as a set."""
    for cfg in (getattr(model, "generation_config", None), model.config):
        eos = getattr(cfg, "eos_token_id", None) if cfg is not None else None
        if eos is not None:
            return frozenset([eos] if isinstance(eos, int) else eos)
    return frozenset()


class KVSequence:
    """Incremental forward passes of one sequence with a transformers DynamicCache."""

    def __init__(self, model) -> None:
        self.model = model
        self.tokens: list[int] = []
        self.cache = DynamicCache(config=model.config)
        self._kw = _cache_kwarg(model)
        self.calls = 0

    def __len__(self) -> int:
        return len(self.tokens)

    @torch.inference_mode()
    def feed(self, tokens: Sequence[int], last_only: bool = False, keep: int | None = None) -> torch.Tensor:
        """Append `tokens`, return their logits [n, V] (only the last one / last `keep` if asked)."""
        if not tokens:
            raise GenerationError("KVSequence.feed needs at least one token")
        ids = torch.tensor([list(tokens)], dtype=torch.long)
        start = len(self.tokens)
        pos = torch.arange(start, start + len(tokens)).unsqueeze(0)
        kwargs = {self._kw: self.cache, "use_cache": True, "position_ids": pos}
        if last_only:
            keep = 1
        if keep is not None and keep < len(tokens):
            kwargs["logits_to_keep"] = keep
        out = self.model(input_ids=ids, **kwargs)
        self.calls += 1
        self.tokens.extend(int(t) for t in tokens)
        return out.logits[0]

    def truncate(self, length: int) -> None:
        """Drop everything after the first `length` tokens (cache included)."""
        if length < 0 or length > len(self.tokens):
            raise GenerationError(f"cannot truncate a sequence of {len(self.tokens)} tokens to {length}")
        remove = len(self.tokens) - length
        if remove:
            self.cache.crop(-remove)
            del self.tokens[length:]

    def common_prefix(self, tokens: Sequence[int]) -> int:
        """Length of the longest common prefix of the cached tokens and `tokens`."""
        n = min(len(self.tokens), len(tokens))
        i = 0
        while i < n and self.tokens[i] == tokens[i]:
            i += 1
        return i

    def sync(self, context: Sequence[int]) -> torch.Tensor:
        """Make the cache hold exactly `context` and return the logits after its last token."""
        if not context:
            raise GenerationError("cannot run a model on an empty context")
        keep = min(self.common_prefix(context), len(context) - 1)
        self.truncate(keep)
        return self.feed(context[keep:], last_only=True)[-1]
