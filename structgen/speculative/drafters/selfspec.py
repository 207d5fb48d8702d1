"""Self-speculation (SWIFT-style): the target with some decoder layers skipped drafts for itself.

The skipped layers are replaced by the identity during the draft forward only; the
draft keeps its own DynamicCache (skipped layers' cache slots stay empty). Layer 0 and
the last layer are always kept. With `calibrate=True` the skip set is chosen on the
first prompt: a few candidate sets at the requested skip ratio are scored by how often
the layer-skipped model's top-1 agrees with the full model's top-1 on the prompt
(the full-model logits come from the verifier's prefill, so it costs no extra full pass).
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence

import torch

from structgen.errors import GenerationError

from ..kv import KVSequence, eos_ids_of, model_vocab_size
from ..sampling import GREEDY, SamplingParams
from .base import DraftLength, StepFeedback
from .model import AutoregressiveDrafter


def decoder_layers(model) -> torch.nn.ModuleList:
    """The decoder layer list of a transformers causal LM (Llama/Qwen/Mistral layout)."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise GenerationError(f"{type(model).__name__} has no model.layers; layer skipping needs a decoder-only LM")
    return layers


def _identity(hidden_states, *args, **kwargs):
    return hidden_states


@contextlib.contextmanager
def skipping(model, skip: Sequence[int]):
    """Temporarily make the given decoder layers the identity."""
    layers = decoder_layers(model)
    for i in skip:
        layers[i].forward = _identity
    try:
        yield
    finally:
        for i in skip:
            del layers[i].forward


class _SkipSequence(KVSequence):
    def __init__(self, model, skip: Sequence[int]) -> None:
        super().__init__(model)
        self.skip = tuple(skip)

    def feed(self, tokens, last_only: bool = False, keep: int | None = None):
        with skipping(self.model, self.skip):
            return super().feed(tokens, last_only, keep)


def candidate_skip_sets(n_layers: int, ratio: float, n_random: int = 3, seed: int = 0) -> list[tuple[int, ...]]:
    """Skip sets of size round(ratio * (n_layers - 2)) over the middle layers."""
    middle = list(range(1, n_layers - 1))
    m = max(1, min(len(middle), round(ratio * len(middle)))) if middle else 0
    if m == 0:
        return [()]
    cands = {
        tuple(middle[::2][:m]) if len(middle[::2]) >= m else tuple(middle[:m]),   # alternate
        tuple(middle[-m:]),                                                        # late block
        tuple(middle[(len(middle) - m) // 2:(len(middle) - m) // 2 + m]),          # centre block
    }
    rng = random.Random(seed)
    for _ in range(n_random):
        cands.add(tuple(sorted(rng.sample(middle, m))))
    return sorted(cands)


class LayerSkipDrafter(AutoregressiveDrafter):
    name = "self-speculation"
    needs_feedback = True

    def __init__(self, model, skip_layers: Sequence[int] | None = None, skip_ratio: float = 0.5,
                 length: DraftLength = DraftLength(max_tokens=6, threshold=0.7), mode: str = "auto",
                 calibrate: bool = True, calibration_tokens: int = 256,
                 eos_token_ids: Sequence[int] | None = None, payoff_gate: bool = True) -> None:
        super().__init__(length, mode, eos_token_ids, payoff_gate)
        self.model = model
        n = len(decoder_layers(model))
        if skip_layers is not None:
            bad = [i for i in skip_layers if not 0 < i < n - 1]
            if bad:
                raise GenerationError(f"cannot skip layers {bad}: only layers 1..{n - 2} of {n} may be skipped")
        self.skip = tuple(sorted(set(skip_layers))) if skip_layers is not None else None
        self.skip_ratio, self.calibrate = skip_ratio, calibrate and skip_layers is None
        self.calibration_tokens = calibration_tokens
        if self.skip is None:
            self.skip = candidate_skip_sets(n, skip_ratio)[0]
        self._calibrated = False
        self._prompt: list[int] = []
        self._seq = _SkipSequence(model, self.skip)
        if self._eos is None:
            self._eos = eos_ids_of(model)
        self.calibration_scores: dict[tuple[int, ...], float] = {}

    def reset(self, prompt_ids, sampling: SamplingParams = GREEDY, generator=None) -> None:
        super().reset(prompt_ids, sampling, generator)
        self._prompt = list(prompt_ids)
        self._seq = _SkipSequence(self.model, self.skip)

    @torch.inference_mode()
    def _score(self, skip: tuple[int, ...], tokens: list[int], full_top1: torch.Tensor) -> float:
        seq = _SkipSequence(self.model, skip)
        top1 = seq.feed(tokens).argmax(-1)
        return float((top1 == full_top1).double().mean())

    def update(self, feedback: StepFeedback) -> None:
        if not self.calibrate or self._calibrated or len(feedback.fed_tokens) < 4:
            return
        # first feedback is the prefill over the prompt: choose the skip set on it
        tokens = feedback.fed_tokens[-self.calibration_tokens:]
        full_top1 = feedback.logits[-len(tokens):].argmax(-1)
        n = len(decoder_layers(self.model))
        self.calibration_scores = {s: self._score(s, tokens, full_top1) for s in candidate_skip_sets(n, self.skip_ratio)}
        self.skip = max(self.calibration_scores, key=self.calibration_scores.get)
        self._seq = _SkipSequence(self.model, self.skip)
        self._calibrated = True

    def _sequence(self) -> KVSequence:
        return self._seq

    def _vocab(self) -> int:
        return model_vocab_size(self.model)
