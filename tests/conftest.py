"""Shared fixtures: real tokenizers of the bundled models, tiny random models, corpora.

Nothing here downloads: real tokenizers come from installed model packages (a test
that needs one is skipped, with the install command, when the package is missing),
and tiny models are built from a config with a fixed seed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import pytest  # noqa: E402

from structgen.errors import ModelLoadError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REAL_TOKENIZER_MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b", "gemma-3-270m")

_INFO_CACHE: dict[str, object] = {}
_TINY_CACHE: dict[tuple, object] = {}


def get_real_tokenizer_info(name: str):
    """TokenizerInfo of a bundled model (cached for the session); skips if not installed."""
    if name not in _INFO_CACHE:
        from structgen.models import MODELS, load_tokenizer_info
        spec = MODELS.get(name)
        if spec is not None and not spec.installed:
            pytest.skip(f"model {name!r} not installed; install with: {spec.install_command}")
        try:
            _INFO_CACHE[name] = load_tokenizer_info(name)
        except ModelLoadError as exc:
            if spec is not None and not spec.installed:
                pytest.skip(str(exc))
            raise
    return _INFO_CACHE[name]


def build_tiny_model(vocab_size: int, *, family: str = "llama", seed: int = 0,
                     layers: int = 2, hidden: int = 64, context: int = 1024,
                     eos_token_id: int | None = None):
    """A randomly initialised, seeded tiny causal LM with the given logits size (eval mode)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    common = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                  num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=context, tie_word_embeddings=True,
                  eos_token_id=eos_token_id)
    torch.manual_seed(seed)
    if family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    elif family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        raise ValueError(f"unknown tiny model family {family!r} (llama or qwen2)")
    return model.eval()


@pytest.fixture(scope="session")
def real_tokenizer_info() -> Callable[[str], object]:
    """Factory: `real_tokenizer_info("gemma-3-270m")` -> TokenizerInfo (skips if not installed)."""
    return get_real_tokenizer_info


@pytest.fixture(scope="session")
def tokenizer_info(real_tokenizer_info) -> Callable[[str], object]:
    """Alias of `real_tokenizer_info`."""
    return real_tokenizer_info


@pytest.fixture(scope="session")
def tiny_model(real_tokenizer_info) -> Callable[..., object]:
    """Factory: `tiny_model("qwen2.5-coder-0.5b")` -> random 2-layer Qwen2ForCausalLM (Llama for
    other names) whose logits size is that model's vocab size; `tiny_model(300)` gives one
    for a synthetic vocabulary of 300 ids. Shared per session: do not modify it."""
    def make(name: str | int, seed: int = 0):
        key = (name, seed)
        if key not in _TINY_CACHE:
            if isinstance(name, int):
                _TINY_CACHE[key] = build_tiny_model(name, seed=seed)
            else:
                info = real_tokenizer_info(name)
                family = "qwen2" if name.startswith("qwen") else "llama"
                eos = min(info.eos_ids) if info.eos_ids else None
                if info.hf_tokenizer is not None and info.hf_tokenizer.eos_token_id is not None:
                    eos = info.hf_tokenizer.eos_token_id
                _TINY_CACHE[key] = build_tiny_model(info.vocab_size, family=family, seed=seed,
                                                    eos_token_id=eos)
        return _TINY_CACHE[key]
    return make


@pytest.fixture(scope="session")
def corpora() -> Path:
    """The shared test corpora ($STRUCTGEN_CORPORA, default <root>/../shared/corpora)."""
    path = Path(os.environ.get("STRUCTGEN_CORPORA", ROOT.parent / "shared" / "corpora"))
    if not path.is_dir():
        pytest.skip(f"test corpora not found at {path} (set STRUCTGEN_CORPORA)")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run ~15x faster on one thread on this shared CPU (thread start-up dominates)."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
