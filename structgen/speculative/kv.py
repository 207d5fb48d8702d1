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


_TREE_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral"})


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

    @property
    def supports_trees(self) -> bool:
        """True when the model takes a 4-D additive attention mask and exposes its hidden states.

        The transformers decoder-only models listed in `_TREE_MODEL_TYPES` compute
        `logits = lm_head(decoder(...).last_hidden_state)`, so logits rows can be computed
        lazily, one row at a time, from the hidden states.
        """
        return (getattr(self.model.config, "model_type", None) in _TREE_MODEL_TYPES
                and hasattr(self.model, "lm_head") and callable(getattr(self.model, "model", None)))

    @torch.inference_mode()
    def feed_tree(self, tokens: Sequence[int], parents: Sequence[int], tail: int) -> torch.Tensor:
        """Append `tokens`: the first `tail` are a causal run, the rest a draft tree; return hidden states [n, H].

        `parents[i]` is the index (into the tree part) of tree node i's parent, -1 for a child of the
        last tail token; parents precede children. A tree node attends to the cache, the tail and its
        own ancestors and sits at position len(cache) + tail + depth.
        """
        n_tree = len(tokens) - tail
        if tail < 1 or n_tree != len(parents):
            raise GenerationError(f"feed_tree: {len(tokens)} tokens, tail {tail}, {len(parents)} parents")
        base = len(self.tokens)
        n = len(tokens)
        depth = [0] * n_tree
        if all(p == i - 1 for i, p in enumerate(parents)):
            return self._feed_hidden(tokens, None, list(range(base, base + n)))
        allow = torch.zeros(n, base + n, dtype=torch.bool)
        allow[:, :base] = True
        allow[:tail, base:base + tail] = torch.ones(tail, tail, dtype=torch.bool).tril()
        allow[tail:, base:base + tail] = True
        for i, p in enumerate(parents):
            if not -1 <= p < i:
                raise GenerationError(f"feed_tree: node {i} has parent {p}; parents must precede their children")
            row = allow[tail + i]
            if p >= 0:
                depth[i] = depth[p] + 1
                row[base + tail:] = allow[tail + p, base + tail:]
            row[base + tail + i] = True
        mask = torch.zeros(1, 1, n, base + n).masked_fill_(~allow, float("-inf"))
        return self._feed_hidden(tokens, mask, list(range(base, base + tail)) + [base + tail + d for d in depth])

    @torch.inference_mode()
    def feed_hidden(self, tokens: Sequence[int]) -> torch.Tensor:
        """Append a causal run of tokens; return their final hidden states [n, H] (no lm-head)."""
        if not tokens:
            raise GenerationError("KVSequence.feed_hidden needs at least one token")
        return self._feed_hidden(tokens, None, list(range(len(self.tokens), len(self.tokens) + len(tokens))))

    def _feed_hidden(self, tokens: Sequence[int], mask: torch.Tensor | None, positions: list[int]) -> torch.Tensor:
        """Decoder pass without the lm-head (a chain needs no mask: the model's causal one is exact)."""
        ids = torch.tensor([list(tokens)], dtype=torch.long)
        kwargs = {self._kw: self.cache, "use_cache": True, "position_ids": torch.tensor([positions])}
        if mask is not None:
            kwargs["attention_mask"] = mask
        out = self.model.model(input_ids=ids, **kwargs)
        self.calls += 1
        self.tokens.extend(int(t) for t in tokens)
        return out.last_hidden_state[0]

    @torch.inference_mode()
    def logits_of(self, hidden: torch.Tensor) -> torch.Tensor:
        """lm-head rows for hidden states [n, H] (or one [H]); what `feed` would have returned for them."""
        return self.model.lm_head(hidden)

    def keep_positions(self, length: int, rows: Sequence[int]) -> None:
        """Keep the first `length` cached tokens plus those at `length + r` for r in `rows` (increasing).

        Used after a tree pass: the accepted branch is not contiguous in the cache.
        """
        rows = list(rows)
        if rows == list(range(len(rows))):
            self.truncate(length + len(rows))
            return
        if any(b <= a for a, b in zip(rows, rows[1:])) or (rows and (rows[0] < 0 or length + rows[-1] >= len(self.tokens))):
            raise GenerationError(f"keep_positions: rows {rows} are not increasing positions after {length}")
        idx = torch.tensor(list(range(length)) + [length + r for r in rows])
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(-2, idx)
            layer.values = layer.values.index_select(-2, idx)
        self.tokens = self.tokens[:length] + [self.tokens[length + r] for r in rows]

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
