"""Compile entry point with a cache, and a byte-level acceptance check for tests/tools."""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from ..grammar.ir import Grammar
from .bounded_cache import BoundedCache
from .compiled import DEFAULT_MASK_CACHE_BYTES, DEFAULT_MAX_LINKED_STATES, CompiledGrammar

_CACHE: "OrderedDict[tuple, CompiledGrammar]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_SIZE = 64


def grammar_fingerprint(grammar: Grammar) -> str:
    text = grammar.to_text() + "\n%conflicts " + str(grammar.lexeme_conflicts) + " " + ",".join(sorted(grammar.keywords))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _tokenizer_key(tokenizer) -> str:
    fp = getattr(tokenizer, "fingerprint", None)
    return fp if isinstance(fp, str) else f"id:{id(tokenizer)}"


def compile_grammar(grammar: Grammar, tokenizer, *, cache: bool = True,
                    max_dfa_states: int = 100_000, parser: str = "auto",
                    mask_cache_bytes: int = DEFAULT_MASK_CACHE_BYTES,
                    max_linked_states: int = DEFAULT_MAX_LINKED_STATES,
                    mask_cache: BoundedCache | None = None) -> CompiledGrammar:
    """Compile ``grammar`` for ``tokenizer`` (a :class:`structgen.vocab.TokenizerInfo`).

    ``parser``: "earley" (persistent Earley sets), "glr" (LR(0) stacks, whole
    mask in one numba call; raises if the automaton exceeds its budget) or
    "auto" (GLR for grammars small enough to build it in milliseconds).  Both
    give identical masks.  Results are cached by grammar fingerprint,
    tokenizer fingerprint, parser choice and memory bounds.

    Memory: each compiled grammar keeps finished masks up to
    ``mask_cache_bytes`` (least recently used dropped first) and links at most
    about ``max_linked_states`` parser states through its transition memos
    (past that the memos are cut and unheld states freed).  A ``mask_cache``
    (:class:`~structgen.engine.bounded_cache.BoundedCache`) replaces the
    per-grammar budget with one shared by every grammar given it.  Masks are
    the same under any bounds; only how often they are recomputed changes.
    """
    options = dict(max_dfa_states=max_dfa_states, parser=parser, mask_cache_bytes=mask_cache_bytes,
                   max_linked_states=max_linked_states, mask_cache=mask_cache)
    if not cache:
        return CompiledGrammar(grammar, tokenizer, **options)
    key = (grammar_fingerprint(grammar), _tokenizer_key(tokenizer), parser, max_dfa_states, mask_cache_bytes,
           max_linked_states, None if mask_cache is None else id(mask_cache))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    compiled = CompiledGrammar(grammar, tokenizer, **options)
    with _CACHE_LOCK:
        _CACHE[key] = compiled
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return compiled


def byte_level_tokenizer():
    """256 one-byte tokens + EOS: lets the engine check raw text without a real tokenizer."""
    global _BYTE_TOKENIZER
    if _BYTE_TOKENIZER is None:
        from ..vocab import TokenizerInfo
        _BYTE_TOKENIZER = TokenizerInfo.from_token_bytes([bytes([i]) for i in range(256)] + [b""], eos_ids=[256])
    return _BYTE_TOKENIZER


_BYTE_TOKENIZER = None


def accepts_text(grammar: Grammar | CompiledGrammar, text: str | bytes) -> bool:
    """True iff ``text`` is a complete sentence of ``grammar`` (byte-level check)."""
    compiled = grammar if isinstance(grammar, CompiledGrammar) else compile_grammar(grammar, byte_level_tokenizer())
    m = compiled.matcher()
    return m.accept_string(text) and m.is_accepting()
