"""Resolve what the caller passed as ``model`` into (model, tokenizer, TokenizerInfo).

Accepts a registry name or path (loaded once and kept), a ``(model, tokenizer)``
pair, or a loaded transformers model plus ``tokenizer=``.  Also owns prompt
formatting (chat template) and the context-length check.
"""
from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from ..errors import GenerationError, ModelLoadError


@dataclass
class LoadedModel:
    """A causal LM ready for decoding, with its exact vocabulary description."""

    model: Any
    tokenizer: Any
    info: Any                      # structgen.vocab.TokenizerInfo
    name: str = "model"
    eos_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def context_length(self) -> int | None:
        return context_length(self.model)

    @property
    def device(self):
        return next(self.model.parameters()).device


_loaded: dict[str, LoadedModel] = {}
_load_lock = threading.Lock()
_infos: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_infos_by_id: dict[int, tuple[Any, Any]] = {}


def logits_size(model) -> int:
    """Width of the model's logits (the mask's vocabulary size)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        return int(head.weight.shape[0])
    return int(_text_config(model).vocab_size)


def _text_config(model):
    cfg = model.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def context_length(model) -> int | None:
    cfg = _text_config(model)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def tokenizer_info_for(tokenizer, model) -> Any:
    """The TokenizerInfo of this tokenizer at this model's logits width (cached per tokenizer)."""
    from ..vocab import TokenizerInfo

    size = logits_size(model)
    try:
        cached = _infos.get(tokenizer)
    except TypeError:
        cached = _infos_by_id.get(id(tokenizer), (None, None))[1]
    if cached is not None and cached.vocab_size == size:
        return cached
    info = TokenizerInfo.from_huggingface(tokenizer, vocab_size=size)
    try:
        _infos[tokenizer] = info
    except TypeError:
        _infos_by_id[id(tokenizer)] = (tokenizer, info)
    return info


def _eos_ids(model, tokenizer, info) -> frozenset[int]:
    ids = set(info.eos_ids)
    gen_cfg = getattr(model, "generation_config", None)
    eos = getattr(gen_cfg, "eos_token_id", None) if gen_cfg is not None else None
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(int(e) for e in eos)
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def wrap(model, tokenizer, name: str = "model") -> LoadedModel:
    """Wrap an already-loaded transformers model and tokenizer."""
    if tokenizer is None:
        raise ModelLoadError("a loaded model needs its tokenizer: pass tokenizer=... or a (model, tokenizer) pair")
    model.eval()
    info = tokenizer_info_for(tokenizer, model)
    return LoadedModel(model=model, tokenizer=tokenizer, info=info, name=name,
                       eos_ids=_eos_ids(model, tokenizer, info))


def resolve(model, tokenizer=None) -> LoadedModel:
    """Anything the public API accepts as ``model`` -> :class:`LoadedModel`."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, tuple) and len(model) == 2:
        m, t = model
        return _cached_wrap(m, t)
    if isinstance(model, (str, os.PathLike)):
        name = str(model)
        with _load_lock:
            if name not in _loaded:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from ..models import load_model
                m, t = load_model(name)
                _loaded[name] = wrap(m, tokenizer or t, name=name)
            return _loaded[name]
    if hasattr(model, "forward") and hasattr(model, "config"):
        return _cached_wrap(model, tokenizer)
    raise ModelLoadError(f"cannot use {type(model).__name__} as a model: pass a registry name, a path, "
                         "a (model, tokenizer) pair, or a transformers model with tokenizer=")


_wrapped: "weakref.WeakKeyDictionary[Any, LoadedModel]" = weakref.WeakKeyDictionary()


def _cached_wrap(model, tokenizer) -> LoadedModel:
    try:
        lm = _wrapped.get(model)
    except TypeError:
        lm = None
    if lm is not None and (tokenizer is None or lm.tokenizer is tokenizer):
        return lm
    name = getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
    lm = wrap(model, tokenizer, name=str(name))
    try:
        _wrapped[model] = lm
    except TypeError:
        pass
    return lm


def format_prompt(lm: LoadedModel, prompt, *, chat: bool = True, tools: list | None = None) -> list[int]:
    """Token ids of the prompt: chat template when asked and available, else raw text."""
    tok = lm.tokenizer
    has_template = bool(getattr(tok, "chat_template", None))
    if isinstance(prompt, (list, tuple)) and prompt and isinstance(prompt[0], dict):
        messages = list(prompt)
        if not has_template:
            text = "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages) + "\nassistant:"
            return _encode(tok, text)
    elif isinstance(prompt, str):
        if not (chat and has_template):
            return _encode(tok, prompt)
        messages = [{"role": "user", "content": prompt}]
    else:
        raise GenerationError(f"prompt must be a string or a list of chat messages, got {type(prompt).__name__}")
    kwargs: dict[str, Any] = {"add_generation_prompt": True, "tokenize": False}
    if tools:
        kwargs["tools"] = tools
    text = tok.apply_chat_template(messages, **kwargs)
    return list(tok(text, add_special_tokens=False)["input_ids"])


def _encode(tok, text: str) -> list[int]:
    return list(tok(text)["input_ids"])


def check_prompt_length(lm: LoadedModel, n_prompt: int, where: str = "prompt") -> None:
    """Refuse a prompt that does not leave room for a single new token."""
    ctx = lm.context_length
    if n_prompt == 0:
        raise GenerationError(f"{where} is empty after tokenization")
    if ctx is not None and n_prompt >= ctx:
        raise GenerationError(f"{where} is {n_prompt} tokens long but the model context is {ctx} tokens "
                              f"(no room for a single new token)")
