"""Test doubles for speculative tests: tiny seeded models and tiny matchers.

`tiny_model` is a real transformers Llama; `micro_lm` is a one-file causal transformer
with the same calling convention (KV cache via DynamicCache, position_ids,
logits_to_keep, model.model.layers) but ~20x less Python per forward, for the
statistical tests that need tens of thousands of forwards.

The matchers implement the Matcher contract of docs/ARCHITECTURE.md for constraints
simple enough to check by hand. No tests live here.
"""
from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

EOS = 1


def tiny_model(vocab: int = 64, seed: int = 0, layers: int = 4, hidden: int = 32, init: float = 0.3,
               dtype=torch.float32) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, initializer_range=init, eos_token_id=EOS,
                      bos_token_id=0, pad_token_id=0, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).to(dtype).eval()
    return model


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class _MicroLayer(nn.Module):
    """Single-head causal self-attention + tanh MLP, residual; caches K/V in layer slot `idx`."""

    def __init__(self, hidden: int, idx: int) -> None:
        super().__init__()
        self.idx = idx
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.o = nn.Linear(hidden, hidden, bias=False)
        self.up = nn.Linear(hidden, 2 * hidden, bias=False)
        self.down = nn.Linear(2 * hidden, hidden, bias=False)

    def forward(self, hidden_states, cache=None, **kwargs):
        x = hidden_states                                            # [1, n, h]
        q, k, v = self.qkv(_rms(x)).chunk(3, dim=-1)
        if cache is not None:
            k, v = cache.update(k.unsqueeze(1), v.unsqueeze(1), self.idx)
            k, v = k.squeeze(1), v.squeeze(1)
        n, total = x.shape[1], k.shape[1]
        scores = q @ k.transpose(-1, -2) / math.sqrt(x.shape[-1])   # [1, n, total]
        if n > 1:
            future = torch.ones(n, total, dtype=torch.bool).triu(total - n + 1)
            scores = scores.masked_fill(future, float("-inf"))
        x = x + self.o(torch.softmax(scores, dim=-1) @ v)
        return x + self.down(torch.tanh(self.up(_rms(x))))


class MicroLM(nn.Module):
    """Minimal causal LM with the transformers calling convention used by structgen.speculative."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.generation_config = None
        h = config.hidden_size
        self.model = nn.Module()
        self.model.embed = nn.Embedding(config.vocab_size, h)
        self.model.pos = nn.Embedding(config.max_position_embeddings, h)
        self.model.layers = nn.ModuleList(_MicroLayer(h, i) for i in range(config.num_hidden_layers))
        self.lm_head = nn.Linear(h, config.vocab_size, bias=False)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(self, input_ids, past_key_values=None, use_cache: bool = True, position_ids=None,
                logits_to_keep: int = 0, attention_mask=None):
        if position_ids is None:
            start = past_key_values.get_seq_length() if past_key_values is not None else 0
            position_ids = torch.arange(start, start + input_ids.shape[1]).unsqueeze(0)
        x = self.model.embed(input_ids) + self.model.pos(position_ids)
        for layer in self.model.layers:
            x = layer(x, cache=past_key_values)
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        return SimpleNamespace(logits=self.lm_head(_rms(x)))


def micro_lm(vocab: int = 16, seed: int = 0, layers: int = 3, hidden: int = 16, init: float = 0.5) -> MicroLM:
    """Seeded MicroLM; `init` is the std of every weight (larger = peakier distributions)."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=256,
                      eos_token_id=EOS, bos_token_id=0, pad_token_id=0)
    model = MicroLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, init)
    return model.eval()


def perturbed(model, scale: float, seed: int = 1):
    """A copy of `model` with Gaussian noise on every weight: a draft model that agrees often."""
    torch.manual_seed(seed)
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * scale * p.std().clamp(min=1e-3))
    return other


class _Base:
    """History-based matcher: subclasses define allowed(history) -> set of ids."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.history: list[int] = []

    def allowed(self, history: list[int]) -> set[int]:
        raise NotImplementedError

    def accept_token(self, token_id: int) -> bool:
        if self.is_terminated() or int(token_id) not in self.allowed(self.history):
            return False
        self.history.append(int(token_id))
        return True

    def accept_tokens(self, ids) -> int:
        n = 0
        for t in ids:
            if not self.accept_token(t):
                break
            n += 1
        return n

    def fill_next_token_bitmask(self, bitmask, index: int = 0) -> None:
        words = np.zeros((self.vocab_size + 31) // 32, dtype=np.uint32)
        if not self.is_terminated():
            for t in self.allowed(self.history):
                words[t // 32] |= np.uint32(1 << (t % 32))
        vals = words.view(np.int32)
        if isinstance(bitmask, torch.Tensor):
            bitmask[index, : len(vals)] = torch.from_numpy(vals.copy())
        else:
            bitmask[index, : len(vals)] = vals

    def allowed_token_ids(self) -> np.ndarray:
        return np.array(sorted(self.allowed(self.history)) if not self.is_terminated() else [], dtype=np.int64)

    def rollback(self, n: int) -> None:
        assert 0 <= n <= len(self.history)
        if n:
            del self.history[-n:]

    def validate_tokens(self, ids) -> int:
        f = self.fork()
        return f.accept_tokens(ids)

    def fork(self):
        other = copy.copy(self)
        other.history = list(self.history)
        return other

    def is_terminated(self) -> bool:
        return bool(self.history) and self.history[-1] == EOS

    def reset(self) -> None:
        self.history = []


class TemplateMatcher(_Base):
    """Free tokens from `free` except every `period`-th position is the token `sep`;
    EOS allowed once at least `min_len` tokens are out and a period is complete."""

    def __init__(self, vocab_size: int, free=None, period: int = 4, sep: int = 3, min_len: int = 4) -> None:
        super().__init__(vocab_size)
        self.free = set(free) if free is not None else {t for t in range(2, vocab_size, 2)}
        self.period, self.sep, self.min_len = period, sep, min_len

    def allowed(self, history):
        n = len(history)
        if n % self.period == self.period - 1:
            return {self.sep}
        out = set(self.free)
        if n >= self.min_len and n % self.period == 0:
            out.add(EOS)
        return out

    def forced_tokens(self) -> list[int]:
        return [self.sep] if not self.is_terminated() and len(self.history) % self.period == self.period - 1 else []

    def is_accepting(self) -> bool:
        return EOS in self.allowed(self.history)


class TrieMatcher(_Base):
    """Exactly one of a fixed set of token sequences, then EOS."""

    def __init__(self, vocab_size: int, sequences) -> None:
        super().__init__(vocab_size)
        self.sequences = [tuple(s) for s in sequences]

    def allowed(self, history):
        n = len(history)
        h = tuple(history)
        out = {s[n] for s in self.sequences if len(s) > n and s[:n] == h}
        if h in self.sequences:
            out.add(EOS)
        return out

    def forced_tokens(self) -> list[int]:
        f = self.fork()
        out = []
        while not f.is_terminated():
            a = f.allowed(f.history)
            if len(a) != 1 or EOS in a:
                break
            (t,) = a
            out.append(t)
            f.history.append(t)
        return out

    def is_accepting(self) -> bool:
        return tuple(self.history) in self.sequences


def assert_crop_matches_fresh(model, vocab: int, seed: int, steps: int, max_new: int) -> None:
    """Random feeds and crops of a KVSequence give the logits of a cache-less forward."""
    import random

    from structgen.speculative.kv import KVSequence
    rng = random.Random(seed)
    seq, tokens = KVSequence(model), []
    for _ in range(steps):
        if tokens and rng.random() < 0.4:
            n = rng.randint(0, len(tokens))
            seq.truncate(n)
            tokens = tokens[:n]
        new = [rng.randrange(vocab) for _ in range(rng.randint(1, max_new))]
        logits = seq.feed(new)
        tokens += new
        with torch.inference_mode():
            fresh = model(torch.tensor([tokens])).logits[0, -len(new):]
        assert seq.tokens == tokens
        assert torch.allclose(logits, fresh, atol=1e-4), f"after {tokens}"
        assert seq.cache.get_seq_length() == len(tokens)


@torch.inference_mode()
def reference_greedy(model, prompt: list[int], matcher, max_new: int) -> list[int]:
    """Cache-less greedy decoding with a fully masked (float64) logits row at every step."""
    vocab = model.config.vocab_size
    out: list[int] = []
    for _ in range(max_new):
        row = model(input_ids=torch.tensor([prompt + out]), use_cache=False).logits[0, -1].double()
        if matcher is not None:
            mask = torch.zeros(vocab, dtype=torch.bool)
            mask[matcher.allowed_token_ids()] = True
            row[~mask] = float("-inf")
        tok = int(torch.argmax(row))
        out.append(tok)
        if matcher is not None:
            assert matcher.accept_token(tok)
        if tok == EOS or (matcher is not None and matcher.is_terminated()):
            break
    return out
