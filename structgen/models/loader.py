"""Load a model and its tokenizer from a registry name, a .gguf file or an HF directory.

Turning a GGUF vocabulary into a transformers tokenizer takes seconds and de-quantizing
its weights tens of seconds, so both results are saved once with `save_pretrained` into
the cache (keyed by the GGUF's path, size and mtime) and reloaded from there;
tokenizers are also kept per process.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .assemble import cache_dir, check_gguf_header, gguf_path_for
from .registry import DEFAULT_MODEL, MODELS, get_spec

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_TOKENIZERS: dict[str, Any] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelSource:
    """Where to load from: an HF directory, optionally with a GGUF file inside it."""

    directory: Path
    gguf_file: str | None

    @property
    def gguf(self) -> Path | None:
        return self.directory / self.gguf_file if self.gguf_file else None

    def describe(self) -> str:
        return str(self.gguf or self.directory)


def gguf_path(name: str) -> Path:
    """GGUF file of a registered model (assembling split packages once into the cache)."""
    spec = get_spec(name)
    if spec is None:
        raise ModelLoadError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return gguf_path_for(spec)


def resolve(name_or_path: str | os.PathLike = DEFAULT_MODEL) -> ModelSource:
    """Map a registry name, a .gguf path or an HF model directory to a ModelSource."""
    key = os.fspath(name_or_path)
    if key in MODELS:
        path = gguf_path(key)
        return ModelSource(path.parent, path.name)
    path = Path(key).expanduser()
    if path.is_file():
        check_gguf_header(path)
        return ModelSource(path.resolve().parent, path.name)
    if path.is_dir():
        if (path / "config.json").is_file() or (path / "tokenizer.json").is_file() \
                or (path / "tokenizer_config.json").is_file():
            return ModelSource(path.resolve(), None)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            check_gguf_header(ggufs[0])
            return ModelSource(path.resolve(), ggufs[0].name)
        raise ModelLoadError(f"directory {path} holds neither config.json nor exactly one .gguf "
                             f"file ({len(ggufs)} found)")
    raise ModelLoadError(f"{key!r} is neither a known model ({', '.join(MODELS)}) "
                         "nor an existing .gguf file or model directory")


def _tokenizer_cache_dir(gguf: Path) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "tokenizers" / f"{gguf.stem}-{key}"


def _load_tokenizer_uncached(source: ModelSource) -> Any:
    from transformers import AutoTokenizer
    gguf = source.gguf
    if gguf is None:
        try:
            return AutoTokenizer.from_pretrained(source.directory)
        except Exception as exc:  # transformers raises many types for a bad directory
            raise ModelLoadError(f"cannot load tokenizer from {source.directory}: {exc}") from exc
    saved = _tokenizer_cache_dir(gguf)
    if (saved / "tokenizer_config.json").is_file():
        try:
            return AutoTokenizer.from_pretrained(saved)
        except Exception:  # a damaged cache entry: rebuild it below
            shutil.rmtree(saved, ignore_errors=True)
    try:
        tok = AutoTokenizer.from_pretrained(source.directory, gguf_file=source.gguf_file)
    except Exception as exc:
        raise ModelLoadError(f"cannot read the tokenizer of GGUF file {gguf}: {exc}") from exc
    tmp = saved.with_name(f".{saved.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tok.save_pretrained(tmp)
        saved.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, saved)
    except OSError:
        pass  # another process won the race, or the cache is read-only: keep the live tokenizer
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tok


def load_tokenizer(name_or_path: str | os.PathLike = DEFAULT_MODEL) -> Any:
    """The transformers tokenizer of a model, cached in-process and on disk."""
    source = resolve(name_or_path)
    key = source.describe()
    with _LOCK:
        tok = _TOKENIZERS.get(key)
        if tok is None:
            tok = _load_tokenizer_uncached(source)
            _TOKENIZERS[key] = tok
    return tok


def _converted_dir(gguf: Path, dtype: Any) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "converted" / f"{gguf.stem}-{key}-{str(dtype).replace('torch.', '')}"


def _load_gguf_weights(source: ModelSource, dtype: Any, cache: bool) -> Any:
    """De-quantizing a GGUF in transformers takes ~20 s even for 135M parameters, so the
    converted weights are saved once as safetensors and reloaded from there (~1 s)."""
    from transformers import AutoModelForCausalLM
    gguf = source.gguf
    assert gguf is not None
    saved = _converted_dir(gguf, dtype)
    if cache and (saved / "config.json").is_file():
        try:
            return AutoModelForCausalLM.from_pretrained(saved, dtype=dtype)
        except Exception:  # a damaged cache entry: rebuild it below
            shutil.rmtree(saved, ignore_errors=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source.directory, gguf_file=source.gguf_file, dtype=dtype)
    except Exception as exc:
        raise ModelLoadError(f"cannot load model weights from GGUF file {gguf}: "
                             f"{type(exc).__name__}: {exc}") from exc
    if cache and os.environ.get("STRUCTGEN_NO_MODEL_CACHE") != "1":
        tmp = saved.with_name(f".{saved.name}.{os.getpid()}.tmp")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            _save_dequantized(model, tmp)
            saved.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, saved)
        except OSError:
            pass  # another process won the race, or the disk is full: the model is loaded anyway
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return model


def _save_dequantized(model: Any, directory: Path) -> None:
    """save_pretrained refuses GGUF-loaded models, but transformers has already
    de-quantized every weight to a plain tensor: drop the GGUF marker and save."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(directory)


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL, dtype: Any = None, *,
               cache: bool = True) -> tuple[Any, Any]:
    """(model, tokenizer) for a registry name, .gguf file or HF directory; eval mode, CPU.

    GGUF weights are de-quantized to `dtype` (default torch.float32); with `cache` the
    de-quantized weights are kept in the cache directory (STRUCTGEN_NO_MODEL_CACHE=1
    turns writing them off).
    """
    import torch
    from transformers import AutoModelForCausalLM
    if dtype is None:
        dtype = torch.float32
    source = resolve(name_or_path)
    tokenizer = load_tokenizer(name_or_path)
    if source.gguf is not None:
        model = _load_gguf_weights(source, dtype, cache)
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(source.directory, dtype=dtype)
        except Exception as exc:
            raise ModelLoadError(f"cannot load model weights from {source.directory}: "
                                 f"{type(exc).__name__}: {exc}") from exc
    model.eval()
    return model, tokenizer


def model_vocab_size(name_or_path: str | os.PathLike = DEFAULT_MODEL) -> int:
    """Logits dimension of a model without loading its weights."""
    key = os.fspath(name_or_path)
    spec = get_spec(key)
    if spec is not None:
        return spec.vocab_size
    source = resolve(key)
    if source.gguf is not None:
        return _gguf_vocab_size(source.gguf)
    from transformers import AutoConfig
    return int(AutoConfig.from_pretrained(source.directory).vocab_size)


def _gguf_vocab_size(path: Path) -> int:
    from gguf import GGUFReader
    try:
        reader = GGUFReader(path)
    except Exception as exc:
        raise ModelLoadError(f"cannot parse GGUF file {path}: {exc}") from exc
    for tensor in reader.tensors:
        if tensor.name == "token_embd.weight":
            return int(max(tensor.shape))
    raise ModelLoadError(f"GGUF file {path} has no token_embd.weight tensor")


_INFOS: dict[str, Any] = {}


def load_tokenizer_info(name_or_path: str | os.PathLike = DEFAULT_MODEL):
    """TokenizerInfo of a model, sized to its logits dimension; cached per process."""
    from ..vocab import TokenizerInfo
    key = resolve(name_or_path).describe()
    info = _INFOS.get(key)
    if info is None:
        info = TokenizerInfo.from_huggingface(load_tokenizer(name_or_path),
                                              vocab_size=model_vocab_size(name_or_path))
        _INFOS[key] = info
    return info
