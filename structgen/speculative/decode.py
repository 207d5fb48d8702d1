"""Non-speculative constrained decoding: the reference the speculative loop must match.

One target forward per token with a KV cache; the grammar mask (if any) is applied
to every step's logits, then the token is chosen greedily or sampled.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

from structgen.errors import GenerationError

from .head import GreedyHead
from .kv import KVSequence, eos_ids_of, model_vocab_size
from .sampling import GREEDY, SamplingParams, allowed_mask, choose_token


@dataclass
class DecodeResult:
    """Generated ids (prompt excluded, EOS included when emitted) and counters."""

    tokens: list[int]
    finish_reason: str                 # "eos" | "length"
    target_calls: int
    elapsed: float
    stats: dict = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return len(self.tokens) / self.elapsed if self.elapsed > 0 else float("inf")


def prompt_ids(input_ids) -> list[int]:
    """Accept a list of ids or a [n] / [1, n] tensor; refuse empty or batched input."""
    if isinstance(input_ids, torch.Tensor):
        if input_ids.dim() == 2:
            if input_ids.shape[0] != 1:
                raise GenerationError(f"only batch size 1 is supported, got input_ids of shape {tuple(input_ids.shape)}")
            input_ids = input_ids[0]
        ids = [int(t) for t in input_ids.tolist()]
    else:
        ids = [int(t) for t in input_ids]
    if not ids:
        raise GenerationError("the prompt is empty: at least one input id is needed")
    return ids


def resolve_eos(model, eos_token_ids: Iterable[int] | None) -> frozenset[int]:
    return frozenset(eos_token_ids) if eos_token_ids is not None else eos_ids_of(model)


def constrained_decode(model, input_ids, matcher=None, max_new_tokens: int = 64,
                       sampling: SamplingParams = GREEDY, *,
                       eos_token_ids: Iterable[int] | None = None,
                       generator: torch.Generator | None = None) -> DecodeResult:
    """Decode token by token; `matcher=None` means unconstrained.

    The matcher is advanced along the output (it ends in the state after the last token).
    Stops at an EOS id (model's by default, or `eos_token_ids`) or after `max_new_tokens`.
    """
    prompt: Sequence[int] = prompt_ids(input_ids)
    eos = resolve_eos(model, eos_token_ids)
    vocab = model_vocab_size(model)
    seq = KVSequence(model)
    t0 = time.perf_counter()
    if not sampling.do_sample and seq.supports_trees:
        # greedy on hidden states: `GreedyHead` computes only the logits the masked arg-max
        # needs (same decisions as a full masked row; the tree verifier uses the same head)
        head = GreedyHead(seq.model, vocab)
        state = seq.feed_hidden(prompt)[-1]

        def pick(h, step: int) -> int:
            return head.pick(h, matcher, f"output token {step}")[0]

        def feed(tok: int):
            return seq.feed_hidden([tok])[-1]
    else:
        state = seq.feed(prompt, last_only=True)[-1]

        def pick(logits, step: int) -> int:
            mask = allowed_mask(matcher, vocab) if matcher is not None else None
            return choose_token(logits, mask, sampling, generator, where=f"output token {step}")

        def feed(tok: int):
            return seq.feed([tok], last_only=True)[-1]
    out: list[int] = []
    finish = "length"
    first = 0.0
    for step in range(max_new_tokens):
        tok = pick(state, step)
        out.append(tok)
        if step == 0:
            first = time.perf_counter() - t0
        if matcher is not None and not matcher.accept_token(tok):
            raise GenerationError(f"the matcher refused token {tok} it allowed at output token {step}")
        if tok in eos or (matcher is not None and matcher.is_terminated()):
            finish = "eos"
            break
        if step + 1 < max_new_tokens:
            state = feed(tok)
    return DecodeResult(out, finish, seq.calls, time.perf_counter() - t0,
                        {"first_call_seconds": first, "first_call_tokens": 1})
