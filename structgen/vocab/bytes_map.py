"""Token-string -> exact-bytes decoding for the two vocabulary spellings in use.

Byte-level BPE (GPT-2, SmolLM2, Qwen) spells every byte as one printable unicode
character; SentencePiece-style BPE (Gemma, Llama 2) spells a space as U+2581 and
bytes it cannot spell as `<0xNN>`.
"""
from __future__ import annotations

import re

SPIECE_SPACE = "\u2581"
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _gpt2_byte_to_char() -> dict[int, str]:
    """The GPT-2 table: printable Latin-1 bytes stand for themselves, the rest are
    numbered upward from U+0100 in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table: dict[int, str] = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_CHAR: dict[int, str] = _gpt2_byte_to_char()
CHAR_TO_BYTE: dict[str, int] = {c: b for b, c in BYTE_TO_CHAR.items()}


def byte_level_bytes(token: str) -> bytes | None:
    """Bytes of a byte-level BPE token, or None if a character is outside the table."""
    try:
        return bytes(CHAR_TO_BYTE[c] for c in token)
    except KeyError:
        return None


def sentencepiece_bytes(token: str, byte_fallback: bool = True) -> bytes:
    """Bytes of a SentencePiece-style token: `<0xNN>` is one byte, U+2581 a space."""
    if byte_fallback:
        m = _BYTE_FALLBACK.fullmatch(token)
        if m:
            return bytes([int(m.group(1), 16)])
    return token.replace(SPIECE_SPACE, " ").encode("utf-8")


def is_incomplete_utf8(data: bytes) -> bool:
    """True for a non-empty byte string that is not valid UTF-8 on its own
    (a cut multi-byte sequence, a lone continuation byte, or a never-valid byte)."""
    if not data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
