"""Registry of bundled GGUF models found in site-packages, and their loaders."""
from .assemble import cache_dir
from .loader import (gguf_path, load_model, load_tokenizer, load_tokenizer_info,
                     model_vocab_size, resolve)
from .registry import DEFAULT_MODEL, MODELS, ModelSpec, list_models

__all__ = ["DEFAULT_MODEL", "MODELS", "ModelSpec", "cache_dir", "gguf_path", "list_models",
           "load_model", "load_tokenizer", "load_tokenizer_info", "model_vocab_size", "resolve"]
