"""LRU cache of compiled grammars, so repeated calls never recompile.

Key = (constraint's canonical hash, tokenizer fingerprint).  The front-end
grammar build and the engine compile both happen once per key.
"""
from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class GrammarCache:
    """Thread-safe LRU: ``get(constraint, tokenizer_info) -> CompiledGrammar``.

    ``mask_cache_bytes``: one budget for the finished masks of every grammar in
    this cache (least recently used dropped first, whichever grammar they
    belong to), instead of each grammar's own default budget; what a server
    with many schemas needs to bound its memory.
    """

    def __init__(self, maxsize: int = 128, mask_cache_bytes: int | None = None):
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        from ..engine.bounded_cache import BoundedCache
        self.masks = None if mask_cache_bytes is None else BoundedCache(mask_cache_bytes)
        self.maxsize = maxsize
        self.stats = CacheStats()
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def key(self, constraint, tokenizer_info) -> tuple[str, str]:
        return (constraint.key, str(tokenizer_info.fingerprint))

    def __contains__(self, item) -> bool:
        constraint, tokenizer_info = item
        return self.key(constraint, tokenizer_info) in self._items

    def get(self, constraint, tokenizer_info):
        """The compiled grammar for this constraint and tokenizer (compiling on a miss)."""
        return self.get_with_warnings(constraint, tokenizer_info)[0]

    def get_with_warnings(self, constraint, tokenizer_info) -> tuple[Any, tuple[str, ...]]:
        """(compiled grammar, warnings its build raised), the warnings kept for cache hits too:
        a relaxed (strict=False) keyword must stay visible to every request that uses it."""
        key = self.key(constraint, tokenizer_info)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.stats.hits += 1
                return self._items[key]
        entry = _compile(constraint, tokenizer_info, self.masks)  # outside the lock: compiles may be slow
        with self._lock:
            self.stats.misses += 1
            self._items[key] = entry
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
                self.stats.evictions += 1
        return entry

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.stats = CacheStats()


def _compile(constraint, tokenizer_info, masks=None) -> tuple[Any, tuple[str, ...]]:
    from ..engine import compile_grammar
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = compile_grammar(constraint.grammar(), tokenizer_info, mask_cache=masks)
    for w in caught:  # still shown to library users, under their own warning filters
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return compiled, tuple(dict.fromkeys(str(w.message) for w in caught))


#: memory for the cached masks of all grammars in :data:`default_cache` (27k masks of a 152k vocabulary)
DEFAULT_SHARED_MASK_BYTES = 512 << 20

#: the process-wide cache used by :func:`structgen.api.generate` unless one is passed; its
#: grammars share one mask budget, so a process serving many schemas stays bounded
default_cache = GrammarCache(mask_cache_bytes=DEFAULT_SHARED_MASK_BYTES)
