"""The decode loop: one batched forward per step, one matcher (mask) per sequence.

Prompts are left-padded; every step fills each live sequence's row of the
token bitmask from its matcher, masks the logits, samples, and advances the
matcher.  Output text is rebuilt from the exact token bytes, so what the
grammar accepted is byte-for-byte what the caller gets.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from ..errors import GenerationError
from .cache import GrammarCache, default_cache
from .constraints import Constraint, make_constraint
from .modelio import LoadedModel, check_prompt_length, format_prompt, resolve
from .result import GenerationResult, Timing, Usage
from .sampling import SamplingParams, sample
from .textstream import IncrementalText


@dataclass
class _Seq:
    prompt_ids: list[int]
    limit: int
    matcher: Any = None
    text: IncrementalText = None
    tokens: list[int] = field(default_factory=list)
    sampled: int = 0
    finish_reason: str | None = None
    first_token_at: float | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


def _take_token(s: _Seq, tok: int, lm: LoadedModel, now: float, where: str) -> str:
    """Advance one sequence by a decided token: matcher, EOS / stop-sequence / length ends.

    Returns the new text piece.  Shared by the plain loop and the speculative path, so both
    end and count a sequence the same way.
    """
    if s.matcher is not None and not s.matcher.accept_token(tok):
        raise GenerationError(f"matcher refused token {tok} that its own mask allowed ({where}); "
                              f"this is an engine bug")
    s.sampled += 1
    if s.first_token_at is None:
        s.first_token_at = now
    if s.matcher.is_terminated() if s.matcher is not None else tok in lm.eos_ids:
        s.finish_reason = "stop"
        return s.text.finish()
    s.tokens.append(tok)
    piece = s.text.push(lm.info.token_bytes[tok])
    if s.text.stopped:
        s.finish_reason = "stop_sequence"
    elif len(s.tokens) >= s.limit:
        s.finish_reason = "length"
        piece += s.text.finish()
    return piece


def _limits(lm: LoadedModel, prompts: list[list[int]], max_new_tokens: int) -> list[int]:
    if max_new_tokens < 1:
        raise GenerationError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    ctx = lm.context_length
    out = []
    for i, p in enumerate(prompts):
        check_prompt_length(lm, len(p), where="prompt" if len(prompts) == 1 else f"prompt #{i}")
        out.append(max_new_tokens if ctx is None else min(max_new_tokens, ctx - len(p)))
    return out


def _pad_id(lm: LoadedModel) -> int:
    pad = getattr(lm.tokenizer, "pad_token_id", None)
    if pad is None or pad >= lm.info.vocab_size:
        pad = min(lm.eos_ids) if lm.eos_ids else 0
    return int(pad)


def _forward_kwargs(model) -> tuple[str, bool]:
    """Name of the KV-cache argument (transformers renamed it) and whether logits_to_keep exists."""
    import inspect
    params = inspect.signature(model.forward).parameters
    return ("cache" if "cache" in params else "past_key_values"), "logits_to_keep" in params


def decode_iter(lm: LoadedModel, prompts: list[list[int]], compiled, params: SamplingParams,
                max_new_tokens: int, stop: list[str] | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(sequence index, new text)``; the generator's return value is the list of _Seq."""
    limits = _limits(lm, prompts, max_new_tokens)
    info = lm.info
    vocab = info.vocab_size
    seqs = [_Seq(prompt_ids=list(p), limit=lim, text=IncrementalText(stop)) for p, lim in zip(prompts, limits)]
    if compiled is not None:
        from ..engine import allocate_token_bitmask, apply_token_bitmask_inplace
        for s in seqs:
            s.matcher = compiled.matcher()
        bitmask = allocate_token_bitmask(len(seqs), vocab)
    generator = params.generator()
    device = lm.device
    batch = len(seqs)
    width = max(len(p) for p in prompts)
    pad = _pad_id(lm)
    ids = torch.full((batch, width), pad, dtype=torch.long)
    attn = torch.zeros((batch, width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        attn[i, width - len(p):] = 1
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    past = None
    step_ids, step_pos = ids, positions
    cache_kw, keep_last = _forward_kwargs(lm.model)
    with torch.inference_mode():
        while True:
            kwargs = dict(input_ids=step_ids.to(device), position_ids=step_pos.to(device), use_cache=True)
            kwargs[cache_kw] = past
            if keep_last:
                kwargs["logits_to_keep"] = 1
            if batch > 1:
                kwargs["attention_mask"] = attn.to(device)
            out = lm.model(**kwargs)
            past = getattr(out, "cache", None) if cache_kw == "cache" else out.past_key_values
            logits = out.logits[:, -1, :].float().cpu()
            if logits.shape[-1] > vocab:
                logits = logits[:, :vocab].contiguous()
            elif logits.shape[-1] < vocab:
                raise GenerationError(f"model logits have {logits.shape[-1]} entries but the tokenizer "
                                      f"info has vocab_size {vocab}")
            if compiled is not None:
                bitmask.fill_(-1)
                for i, s in enumerate(seqs):
                    if not s.done:
                        s.matcher.fill_next_token_bitmask(bitmask, i)
                apply_token_bitmask_inplace(logits, bitmask)
            chosen = sample(logits, params, generator).tolist()
            now = time.perf_counter()
            for i, s in enumerate(seqs):
                if s.done:
                    continue
                tok = int(chosen[i])
                if compiled is not None and torch.isneginf(logits[i]).all():
                    raise GenerationError(f"the grammar allows no token after {s.text.text[-60:]!r} "
                                          f"(sequence #{i}); this is an engine bug")
                piece = _take_token(s, tok, lm, now, f"sequence #{i}")
                if piece:
                    yield i, piece
            if all(s.done for s in seqs):
                break
            step_ids = torch.tensor([[int(c) if not s.done else pad] for c, s in zip(chosen, seqs)],
                                    dtype=torch.long)
            step_pos = positions[:, -1:] + 1
            positions = step_pos
            attn = torch.cat([attn, torch.ones((batch, 1), dtype=torch.long)], dim=1)
    return seqs


def _finish(s: _Seq, constraint: Constraint | None, compiled, info, started: float,
            ended: float) -> GenerationResult:
    text = s.text.text
    usage = Usage(prompt_tokens=len(s.prompt_ids), completion_tokens=s.sampled)
    timing = Timing(ttft=(s.first_token_at or ended) - started, total=ended - started, output_tokens=s.sampled)
    if constraint is None:
        return GenerationResult(text=text, value=text if s.finish_reason != "length" else None, tokens=s.tokens,
                                finish_reason=s.finish_reason, complete=s.finish_reason != "length",
                                usage=usage, timing=timing)
    if s.finish_reason == "stop":
        complete = True
    elif s.finish_reason == "length":
        complete = s.matcher.is_accepting()
    else:  # stop_sequence: does the cut text still belong to the language?
        fresh = compiled.matcher()
        ids = info.encode(text)
        complete = fresh.accept_tokens(ids) == len(ids) and fresh.is_accepting()
    value, error = None, None
    if complete:
        chk = constraint.check(text)
        value, error = (chk.value, None) if chk.ok else (None, chk.error)
    return GenerationResult(text=text, value=value, tokens=s.tokens, finish_reason=s.finish_reason,
                            complete=complete, usage=usage, validation_error=error, timing=timing,
                            constrained=True)


def _is_batch(prompt) -> bool:
    if isinstance(prompt, str):
        return False
    if isinstance(prompt, (list, tuple)):
        if not prompt:
            raise GenerationError("empty list of prompts")
        return not isinstance(prompt[0], dict)
    raise GenerationError(f"prompt must be a string, chat messages, or a list of those, got {type(prompt).__name__}")


def _prepare(model, prompt, tokenizer, chat, constraint_kwargs, cache):
    lm = resolve(model, tokenizer)
    constraint = make_constraint(**constraint_kwargs)
    batch = _is_batch(prompt)
    prompts = list(prompt) if batch else [prompt]
    ids = [format_prompt(lm, p, chat=chat) for p in prompts]
    return lm, constraint, ids, batch


def _compiled(constraint, lm, cache):
    if constraint is None:
        return None
    return (cache if cache is not None else default_cache).get(constraint, lm.info)


def run_ids(lm: LoadedModel, prompt_ids: list[list[int]], constraint: Constraint | None, *,
            max_new_tokens: int = 256, params: SamplingParams = SamplingParams(), stop: list[str] | None = None,
            cache: GrammarCache | None = None) -> list[GenerationResult]:
    """Generate for already-tokenized prompts (used by the server and the pipeline)."""
    compiled = _compiled(constraint, lm, cache)
    started = time.perf_counter()
    it = decode_iter(lm, prompt_ids, compiled, params, max_new_tokens, stop)
    seqs = _drain(it)
    ended = time.perf_counter()
    return [_finish(s, constraint, compiled, lm.info, started, ended) for s in seqs]


def _default_drafter(info):
    """Grammar-forced tokens, then integer progressions and prompt lookup, asked for drafts only
    while they pay (model-free; the best JSON-extraction drafter in benchmarks/bench_speculative.py)."""
    from ..speculative import ChainDrafter, GatedDrafter, JumpForwardDrafter, ProgressionDrafter, PromptLookupDrafter
    return JumpForwardDrafter(GatedDrafter(ChainDrafter([ProgressionDrafter(info), PromptLookupDrafter()])))


def run_speculative(lm: LoadedModel, prompt_ids: list[int], constraint: Constraint | None, *, drafter=None,
                    max_new_tokens: int = 256, params: SamplingParams = SamplingParams(),
                    stop: list[str] | None = None, cache: GrammarCache | None = None,
                    num_draft_tokens: int = 8) -> GenerationResult:
    """One prompt through the speculative core (``structgen.speculative``).

    Greedy output is token for token what :func:`run_ids` gives; sampling follows the same
    distribution (speculative rejection sampling on the masked distributions).  Stop
    sequences cut the text exactly where the plain loop would stop.
    """
    from ..speculative import SamplingParams as SpecParams, speculative_decode
    [limit] = _limits(lm, [prompt_ids], max_new_tokens)
    compiled = _compiled(constraint, lm, cache)
    matcher = compiled.matcher() if compiled is not None else None
    if params.temperature == 0:
        spec = SpecParams()
    else:
        spec = SpecParams(do_sample=True, temperature=params.temperature,
                          top_k=params.top_k or None, top_p=params.top_p if params.top_p < 1.0 else None)
    started = time.perf_counter()
    with torch.inference_mode():
        res = speculative_decode(lm.model, prompt_ids, matcher, drafter if drafter is not None else _default_drafter(lm.info),
                                 limit, spec, num_draft_tokens=num_draft_tokens, eos_token_ids=lm.eos_ids,
                                 generator=params.generator())
    ended = time.perf_counter()
    # replay the decided tokens through the same text/stop bookkeeping as the plain loop
    seq = _Seq(prompt_ids=list(prompt_ids), limit=limit, text=IncrementalText(stop))
    seq.matcher = compiled.matcher() if compiled is not None else None
    first = started + res.stats.get("first_call_seconds", ended - started)
    for tok in res.tokens:
        _take_token(seq, tok, lm, first, "speculative output")
        if seq.done:
            break
    if seq.finish_reason is None:
        seq.finish_reason = "length"
        seq.text.finish()
    result = _finish(seq, constraint, compiled, lm.info, started, ended)
    result.speculative = {"target_calls": res.target_calls, "steps": res.stats.get("steps"),
                          "drafted": res.stats.get("drafted"), "accepted": res.stats.get("accepted")}
    return result


def _drain(it):
    while True:
        try:
            next(it)
        except StopIteration as stop:
            return stop.value


def generate(model, prompt, *, schema=None, regex: str | None = None, grammar=None, choices=None,
             pydantic_model=None, json_object: bool = False, tokenizer=None, chat: bool = True,
             max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
             seed: int | None = None, stop: str | list[str] | None = None, whitespace: str = "compact",
             strict: bool = True, close_objects: bool | None = None, grammar_syntax: str = "auto",
             cache: GrammarCache | None = None, speculative=False):
    """Generate text that follows the given constraint.

    ``prompt`` may be a string, a list of chat messages, or a list of either
    (a batch: one result per prompt, decoded together).  Returns a
    :class:`GenerationResult` (or a list for a batch).

    ``speculative=True`` decodes one prompt with the speculative core (grammar-forced
    tokens, integer progressions and prompt lookup as drafts, verified in one target pass): the same greedy
    output in fewer model calls.  A :class:`structgen.speculative.Drafter` instance picks
    the drafter (e.g. ``DraftModelDrafter(small_model)`` sharing the tokenizer).
    """
    ckw = dict(schema=schema, regex=regex, grammar=grammar, choices=choices, pydantic_model=pydantic_model,
               json_object=json_object, strict=strict, whitespace=whitespace, close_objects=close_objects,
               grammar_syntax=grammar_syntax)
    lm, constraint, ids, batch = _prepare(model, prompt, tokenizer, chat, ckw, cache)
    params = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k, seed=seed)
    stops = [stop] if isinstance(stop, str) else stop
    if speculative is not False and speculative is not None:
        from ..speculative import Drafter
        if speculative is not True and not isinstance(speculative, Drafter):
            raise GenerationError(f"speculative must be True, False or a structgen.speculative.Drafter, "
                                  f"got {type(speculative).__name__}")
        if batch:
            raise GenerationError("speculative decoding takes one prompt at a time; got a batch of "
                                  f"{len(ids)} prompts (pass them one by one, or speculative=False)")
        drafter = None if speculative is True else speculative
        return run_speculative(lm, ids[0], constraint, drafter=drafter, max_new_tokens=max_new_tokens,
                               params=params, stop=stops, cache=cache)
    results = run_ids(lm, ids, constraint, max_new_tokens=max_new_tokens, params=params, stop=stops, cache=cache)
    return results if batch else results[0]


class GenerationStream:
    """Iterate for text pieces; ``.result`` holds the :class:`GenerationResult` once exhausted."""

    def __init__(self, lm, ids, constraint, compiled, params, max_new_tokens, stop):
        self._lm, self._constraint, self._compiled = lm, constraint, compiled
        self._it = decode_iter(lm, ids, compiled, params, max_new_tokens, stop)
        self._started = time.perf_counter()
        self.result: GenerationResult | None = None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.result is not None:
            raise StopIteration
        try:
            _, piece = next(self._it)
            return piece
        except StopIteration as stop:
            seq = stop.value[0]
            self.result = _finish(seq, self._constraint, self._compiled, self._lm.info, self._started,
                                  time.perf_counter())
            raise StopIteration from None


def stream(model, prompt, **kwargs) -> GenerationStream:
    """Like :func:`generate` for one prompt, but yields text pieces as they are decoded."""
    cache = kwargs.pop("cache", None)
    tokenizer = kwargs.pop("tokenizer", None)
    chat = kwargs.pop("chat", True)
    max_new_tokens = kwargs.pop("max_new_tokens", 256)
    stop = kwargs.pop("stop", None)
    params = SamplingParams(temperature=kwargs.pop("temperature", 0.0), top_p=kwargs.pop("top_p", 1.0),
                            top_k=kwargs.pop("top_k", 0), seed=kwargs.pop("seed", None))
    lm, constraint, ids, batch = _prepare(model, prompt, tokenizer, chat, kwargs, cache)
    if batch:
        raise GenerationError("stream() takes one prompt; use generate() for batches")
    compiled = _compiled(constraint, lm, cache)
    return GenerationStream(lm, ids, constraint, compiled, params, max_new_tokens,
                            [stop] if isinstance(stop, str) else stop)
