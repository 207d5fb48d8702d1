"""Regex text for literal characters: the one escaping every front-end and the schema compiler share."""
from __future__ import annotations

_SPECIAL = frozenset("\\.^$|?*+()[]{}/-")
_CLASS_SPECIAL = frozenset("\\]^-[")


def escape_char(c: str, *, in_class: bool = False) -> str:
    """``c`` as regex text matching exactly it, outside or inside a ``[...]`` class.

    Controls, line/paragraph separators and lone surrogates are written as
    ``\\uXXXX`` so the text stays printable and valid for the regex parser.
    """
    if c in (_CLASS_SPECIAL if in_class else _SPECIAL):
        return "\\" + c
    o = ord(c)
    if o < 0x20 or o == 0x7F or 0x2028 <= o <= 0x2029 or 0xD800 <= o <= 0xDFFF:
        return "\\u%04x" % o
    return c


def quote(text: str) -> str:
    """Regex matching exactly ``text``."""
    return "".join(escape_char(c) for c in text)
