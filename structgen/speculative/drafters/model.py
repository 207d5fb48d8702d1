"""Draft with a small causal LM that shares the target's tokenizer.

Drafts autoregressively under the grammar mask: the matcher is advanced along the
draft and rolled back afterwards. Greedy drafts are point masses; sampled drafts
report the masked draft distribution they were drawn from (needed for exact
speculative sampling). The draft model keeps its own KV cache across steps and
crops it to the verified context each time.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from structgen.errors import GenerationError

from ..kv import KVSequence, eos_ids_of, model_vocab_size
from ..sampling import GREEDY, SamplingParams, allowed_mask, distribution, greedy_token, masked_logits, sample
from .base import DraftLength, DraftProposal, Drafter
from .payoff import PayoffGate

_MODES = ("auto", "greedy", "sample")


class AutoregressiveDrafter(Drafter):
    """Shared loop for drafters that run a model token by token (draft model, layer skipping)."""

    def __init__(self, length: DraftLength = DraftLength(), mode: str = "auto",
                 eos_token_ids: Sequence[int] | None = None, payoff_gate: bool = True) -> None:
        if mode not in _MODES:
            raise GenerationError(f"draft mode must be one of {_MODES}, got {mode!r}")
        self.length, self.mode = length, mode
        self._eos = frozenset(eos_token_ids) if eos_token_ids is not None else None
        # drafting pauses while it measurably loses time (see payoff.py); False: always draft
        self.gate = PayoffGate() if payoff_gate else None

    def reset(self, prompt_ids, sampling: SamplingParams = GREEDY, generator=None) -> None:
        super().reset(prompt_ids, sampling, generator)
        if self.gate is not None:
            self.gate.reset()

    def observe(self, new_tokens, accepted: int, fed: int = 0, seconds: float = 0.0) -> None:
        if self.gate is not None:
            self.gate.observe(len(new_tokens), fed, seconds)

    def _sequence(self) -> KVSequence:
        raise NotImplementedError

    def _vocab(self) -> int:
        raise NotImplementedError

    def _eos_ids(self) -> frozenset[int]:
        return self._eos if self._eos is not None else frozenset()

    def propose(self, context_ids: Sequence[int], matcher, k: int) -> DraftProposal:
        k = min(k, self.length.max_tokens)
        if k <= 0:
            return DraftProposal([])
        if self.gate is None:
            return self._draft(context_ids, matcher, k)
        return self.gate.draft(lambda: self._draft(context_ids, matcher, k))

    def _draft(self, context_ids: Sequence[int], matcher, k: int) -> DraftProposal:
        seq = self._sequence()
        vocab = self._vocab()
        sampling = getattr(self, "sampling", None)
        do_sample = self.mode == "sample" or (self.mode == "auto" and sampling is not None and sampling.do_sample)
        logits = seq.sync(list(context_ids))
        tokens: list[int] = []
        rows: list[torch.Tensor] = []
        masks: list[torch.Tensor | None] = []
        survival = 1.0
        eos = self._eos_ids()
        need_conf = self.length.threshold is not None
        advanced = 0
        try:
            for i in range(k):
                mask = None
                tok = -1
                if matcher is not None and not do_sample and not need_conf:
                    r = int(torch.argmax(logits))           # allowed raw arg-max = masked arg-max
                    if r < matcher.vocab_size and matcher.accept_token(r):
                        tok = r
                        advanced += 1
                if tok < 0:
                    mask = allowed_mask(matcher, vocab) if matcher is not None else None
                    if mask is not None and not bool(mask.any()):
                        break
                    if do_sample:
                        probs = distribution(logits, mask, sampling)
                        tok = sample(probs, self.generator)
                        rows.append(probs)
                        survival *= float(probs[tok])
                    else:
                        tok = greedy_token(logits, mask)
                        if need_conf:
                            survival *= float(torch.softmax(masked_logits(logits, mask), -1)[tok])
                    if matcher is not None and tok not in eos:
                        if not matcher.accept_token(tok):
                            rows = rows[: len(tokens)]
                            break
                        advanced += 1
                tokens.append(tok)
                masks.append(mask)
                if tok in eos or (matcher is not None and matcher.is_terminated()):
                    break
                if i + 1 < k and not self.length.should_stop(survival):
                    logits = seq.feed([tok], last_only=True)[-1]
                else:
                    break
        finally:
            if matcher is not None and advanced:
                matcher.rollback(advanced)
        return DraftProposal(tokens, torch.stack(rows) if do_sample and rows else None,
                             masks if matcher is not None else None)


class DraftModelDrafter(AutoregressiveDrafter):
    """A smaller model with the same vocabulary (e.g. qwen2.5-coder-0.5b for -1.5b)."""

    name = "draft-model"

    def __init__(self, draft_model, length: DraftLength = DraftLength(), mode: str = "auto",
                 eos_token_ids: Sequence[int] | None = None, payoff_gate: bool = True) -> None:
        super().__init__(length, mode, eos_token_ids, payoff_gate)
        self.model = draft_model
        self._seq = KVSequence(draft_model)
        if self._eos is None:
            self._eos = eos_ids_of(draft_model)

    def reset(self, prompt_ids, sampling: SamplingParams = GREEDY, generator=None) -> None:
        super().reset(prompt_ids, sampling, generator)
        self._seq = KVSequence(self.model)

    def _sequence(self) -> KVSequence:
        return self._seq

    def _vocab(self) -> int:
        return model_vocab_size(self.model)
