"""TokenizerInfo: the exact bytes of every token id, and which ids are special or EOS.

Masks are computed on bytes, so every id needs its exact byte string. It is derived
from the vocabulary itself (not from decode(), which loses partial UTF-8 tokens).
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import StructgenError
from .bytes_map import byte_level_bytes, is_incomplete_utf8, sentencepiece_bytes

# Chat end-of-turn / end-of-text tokens that end generation when present in a vocabulary
# (they are the eos_token_id list of the generation configs of the models that use them).
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<eos>", "<|eot_id|>",
              "<|end_of_text|>", "<|end|>", "</s>")

# llama.cpp pads a GGUF vocabulary up to the logits size with tokens named "[PAD<id>]".
_PAD_PLACEHOLDER = re.compile(r"\[PAD(\d+)\]")


class VocabularyError(StructgenError):
    """A vocabulary is malformed or a text cannot be tokenized with it."""


class TokenizerInfo:
    """Exact token bytes plus special/EOS ids; see docs/ARCHITECTURE.md (Vocabulary)."""

    def __init__(self, token_bytes: Sequence[bytes], *, special_ids: Iterable[int],
                 eos_ids: Iterable[int], vocab_size: int | None = None,
                 hf_tokenizer: Any = None, kind: str = "synthetic"):
        size = len(token_bytes) if vocab_size is None else int(vocab_size)
        if size < len(token_bytes):
            raise VocabularyError(f"vocab_size {size} is smaller than the {len(token_bytes)} "
                                  "token byte strings given")
        tb = [bytes(b) for b in token_bytes] + [b""] * (size - len(token_bytes))
        special = set(int(i) for i in special_ids) | set(range(len(token_bytes), size))
        eos = frozenset(int(i) for i in eos_ids)
        bad = sorted(i for i in special | eos if not 0 <= i < size)
        if bad:
            raise VocabularyError(f"special/EOS token ids {bad[:5]} are outside the vocabulary "
                                  f"of size {size}")
        special |= eos
        for i in special:
            tb[i] = b""
        self.vocab_size: int = size
        self.token_bytes: list[bytes] = tb
        self.special_ids: frozenset[int] = frozenset(special)
        self.eos_ids: frozenset[int] = eos
        self.hf_tokenizer = hf_tokenizer
        self.kind = kind  # "byte_level" | "sentencepiece" | "synthetic"
        self.incomplete_utf8: np.ndarray = np.fromiter(
            (is_incomplete_utf8(b) for b in tb), dtype=bool, count=size)
        singles = {b[0] for i, b in enumerate(tb) if len(b) == 1 and i not in special}
        # Bytes with no one-byte token: texts containing them cannot be produced at all
        # (SmolLM2 lacks 21 of the 256 bytes, e.g. 0xF1 which starts U+40000..U+7FFFF).
        self.missing_bytes: frozenset[int] = frozenset(set(range(256)) - singles)
        self.non_canonical_encodes = 0   # encode() calls that fell back to greedy matching
        self._fingerprint: str | None = None
        self._encoder: Any = None
        self._greedy: tuple[dict[bytes, int], int] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_token_bytes(cls, token_bytes: Sequence[bytes], eos_ids: Iterable[int],
                         special_ids: Iterable[int] = ()) -> "TokenizerInfo":
        """A synthetic vocabulary for tests. EOS ids count as special; special ids get b"".
        `encode` is greedy longest-match over bytes."""
        return cls(list(token_bytes), special_ids=special_ids, eos_ids=eos_ids)

    @classmethod
    def from_huggingface(cls, tokenizer: Any, vocab_size: int | None = None, *,
                         extra_eos_ids: Iterable[int] = ()) -> "TokenizerInfo":
        """Build from a transformers tokenizer; `vocab_size` is the model's logits size
        (ids past the tokenizer get b"" and are special)."""
        n_tok = len(tokenizer)
        vocab = tokenizer.get_vocab()
        n = max(n_tok, max(vocab.values(), default=-1) + 1)
        size = n if vocab_size is None else max(int(vocab_size), n)
        kind, byte_fallback = _detect_kind(tokenizer)
        id_to_token: dict[int, str] = {i: t for t, i in vocab.items()}
        added = dict(getattr(tokenizer, "added_tokens_decoder", {}) or {})

        special: set[int] = set(getattr(tokenizer, "all_special_ids", []) or [])
        special |= {i for i, tok in added.items() if getattr(tok, "special", False)}
        token_bytes: list[bytes] = []
        for i in range(n):
            text = id_to_token.get(i)
            if text is None or i in special:
                special.add(i)
                token_bytes.append(b"")
                continue
            m = _PAD_PLACEHOLDER.fullmatch(text)
            if m and int(m.group(1)) == i:
                special.add(i)
                token_bytes.append(b"")
                continue
            if i in added:       # added text tokens are stored as plain text
                content = added[i].content
                data = (content.replace("\u2581", " ").encode("utf-8")
                        if kind == "sentencepiece" else content.encode("utf-8"))
            elif kind == "byte_level":
                data = byte_level_bytes(text)
                if data is None:
                    raise VocabularyError(f"token {i} ({text!r}) of a byte-level vocabulary has a "
                                          "character outside the byte table")
            else:
                data = sentencepiece_bytes(text, byte_fallback)
            token_bytes.append(data)

        eos: set[int] = set(int(e) for e in extra_eos_ids)
        if tokenizer.eos_token_id is not None:
            eos.add(int(tokenizer.eos_token_id))
        for name in END_TOKENS:
            tid = vocab.get(name)
            if tid is not None and tid in special:
                eos.add(tid)
        return cls(token_bytes, special_ids=special, eos_ids=eos, vocab_size=size,
                   hf_tokenizer=tokenizer, kind=kind)

    # ------------------------------------------------------------------ queries
    def encode(self, text: str) -> list[int]:
        """Canonical tokenization of `text`: no BOS/EOS added, and special-token
        spellings in the text are tokenized as ordinary text. The ids' bytes are always
        exactly the text's UTF-8; VocabularyError if the vocabulary cannot spell it."""
        if self.hf_tokenizer is None:
            return self._greedy_encode(text.encode("utf-8"))
        encoder = self._encoder
        if encoder is None:
            with self._lock:
                if self._encoder is None:
                    self._encoder = _text_only_encoder(self.hf_tokenizer)
                encoder = self._encoder
        ids = encoder(text)
        if self.decode_bytes(ids) != text.encode("utf-8"):
            # Never hand out ids whose bytes differ from the text; count it so tests can
            # tell that the tokenizer's own tokenization was not used.
            self.non_canonical_encodes += 1
            ids = self._greedy_encode(text.encode("utf-8"))
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Concatenated exact bytes of `ids` (special ids contribute nothing)."""
        return b"".join(self.token_bytes[i] for i in ids)

    @property
    def fingerprint(self) -> str:
        """sha256 over vocab size, every token's bytes, special and EOS ids."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f"{self.vocab_size}|".encode())
            for b in self.token_bytes:
                h.update(len(b).to_bytes(4, "little"))
                h.update(b)
            h.update(json.dumps([sorted(self.special_ids), sorted(self.eos_ids)]).encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (f"TokenizerInfo(kind={self.kind!r}, vocab_size={self.vocab_size}, "
                f"special={len(self.special_ids)}, eos={sorted(self.eos_ids)})")

    # ------------------------------------------------------------------ internals
    def _greedy_encode(self, data: bytes) -> list[int]:
        if self._greedy is None:
            table: dict[bytes, int] = {}
            for i, b in enumerate(self.token_bytes):
                if b and i not in self.special_ids:
                    table.setdefault(b, i)
            self._greedy = (table, max((len(b) for b in table), default=0))
        table, longest = self._greedy
        ids: list[int] = []
        pos = 0
        while pos < len(data):
            for ln in range(min(longest, len(data) - pos), 0, -1):
                tid = table.get(data[pos:pos + ln])
                if tid is not None:
                    ids.append(tid)
                    pos += ln
                    break
            else:
                char_at = len(data[:pos].decode("utf-8", errors="ignore"))
                raise VocabularyError(
                    f"byte {data[pos]:#04x} at byte offset {pos} (near character {char_at}) "
                    f"has no token in this vocabulary of {self.vocab_size} tokens "
                    f"({len(self.missing_bytes)} bytes cannot be spelt: "
                    f"{', '.join(f'{b:#04x}' for b in sorted(self.missing_bytes)[:8])}...)")
        return ids


def _detect_kind(tokenizer: Any) -> tuple[str, bool]:
    """("byte_level" | "sentencepiece", byte_fallback) from the tokenizer's decoder."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Only the decoder's JSON is needed; the whole tokenizer JSON is tens of MB.
        decoder = json.loads(backend.decoder.__getstate__()) if backend.decoder else None
        decoder_types = _types(decoder)
        byte_fallback = bool(getattr(backend.model, "byte_fallback", False))
        if "ByteLevel" in decoder_types:
            return "byte_level", False
        if {"Metaspace", "Replace", "ByteFallback"} & decoder_types:
            return "sentencepiece", byte_fallback or "ByteFallback" in decoder_types
    tokens = tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), 5000))))
    if any(isinstance(t, str) and "\u0120" in t for t in tokens):
        return "byte_level", False
    if any(isinstance(t, str) and "\u2581" in t for t in tokens):
        return "sentencepiece", True
    raise VocabularyError(f"cannot tell how {type(tokenizer).__name__} spells bytes "
                          "(neither byte-level BPE nor SentencePiece)")


def _types(node: Any) -> set[str]:
    if not isinstance(node, dict):
        return set()
    found = {node.get("type", "")}
    for child in node.get("decoders", []) or []:
        found |= _types(child)
    return found


_UNICODE_NORMALIZERS = {"NFC", "NFD", "NFKC", "NFKD"}


def _strip_unicode_normalization(node: Any) -> Any:
    """The normalizer JSON without NFC/NFKC/... steps (None if nothing is left)."""
    if not isinstance(node, dict) or node.get("type") in _UNICODE_NORMALIZERS:
        return None
    if node.get("type") == "Sequence":
        kept = [n for n in (_strip_unicode_normalization(c) for c in node["normalizers"]) if n]
        return {"type": "Sequence", "normalizers": kept} if kept else None
    return node


def _text_only_encoder(tokenizer: Any):
    """An encode function that never adds or recognises special tokens, and never
    rewrites the text.

    Qwen's tokenizer applies NFC first, which would change the bytes of a non-NFC text;
    the copy used here drops that step (NFC text tokenizes the same either way).
    Otherwise transformers' `split_special_tokens` is used: it sets the backend's
    `encode_special_tokens` flag on every call, so sharing the tokenizer is safe."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.normalizer is not None:
        norm = json.loads(backend.normalizer.__getstate__())
        if _types_norm(norm) & _UNICODE_NORMALIZERS:
            from tokenizers import Tokenizer
            spec = json.loads(backend.to_str())
            spec["normalizer"] = _strip_unicode_normalization(spec["normalizer"])
            copy = Tokenizer.from_str(json.dumps(spec))
            copy.encode_special_tokens = True
            copy.no_truncation()
            copy.no_padding()
            return lambda text: copy.encode(text, add_special_tokens=False).ids

    def encode(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))
    return encode


def _types_norm(node: Any) -> set[str]:
    if not isinstance(node, dict):
        return set()
    found = {node.get("type", "")}
    for child in node.get("normalizers", []) or []:
        found |= _types_norm(child)
    return found
