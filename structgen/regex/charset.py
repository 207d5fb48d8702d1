"""Sets of Unicode scalar values as sorted, disjoint, inclusive ranges.

A ``CharSet`` is a plain tuple of ``(lo, hi)`` pairs so it is hashable (used
as a cache key and for deduplication) and cheap to build.  Surrogates
(U+D800..U+DFFF) are never members: they are not characters of a valid
string and have no UTF-8 encoding.
"""
from __future__ import annotations

import bisect
import functools
import unicodedata
from typing import Iterable

CharSet = tuple[tuple[int, int], ...]

MAX_CP = 0x10FFFF
SURR_LO, SURR_HI = 0xD800, 0xDFFF
ALL: CharSet = ((0, SURR_LO - 1), (SURR_HI + 1, MAX_CP))
EMPTY: CharSet = ()


def normalize(ranges: Iterable[tuple[int, int]]) -> CharSet:
    """Sort, merge and drop surrogates."""
    rs = sorted((lo, hi) for lo, hi in ranges if lo <= hi)
    out: list[list[int]] = []
    for lo, hi in rs:
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1][1] = hi
        else:
            out.append([lo, hi])
    res: list[tuple[int, int]] = []
    for lo, hi in out:
        if hi < SURR_LO or lo > SURR_HI:
            res.append((lo, hi))
        else:
            if lo < SURR_LO:
                res.append((lo, SURR_LO - 1))
            if hi > SURR_HI:
                res.append((SURR_HI + 1, hi))
    return tuple(res)


def single(cp: int) -> CharSet:
    return normalize([(cp, cp)])


def union(*sets: CharSet) -> CharSet:
    return normalize(r for s in sets for r in s)


def negate(s: CharSet) -> CharSet:
    """Complement within all Unicode scalar values."""
    out = []
    prev = 0
    for lo, hi in s:
        if lo > prev:
            out.append((prev, lo - 1))
        prev = hi + 1
    if prev <= MAX_CP:
        out.append((prev, MAX_CP))
    return normalize(out)


def intersect(a: CharSet, b: CharSet) -> CharSet:
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def subtract(a: CharSet, b: CharSet) -> CharSet:
    return intersect(a, negate(b))


def contains(s: CharSet, cp: int) -> bool:
    i = bisect.bisect_right(s, (cp, MAX_CP + 1)) - 1
    return i >= 0 and s[i][0] <= cp <= s[i][1]


def from_chars(chars: str) -> CharSet:
    return normalize((ord(c), ord(c)) for c in chars)


# ----------------------------------------------------------------- escapes
DIGIT = from_chars("0123456789")
WORD = normalize([(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A), (0x5F, 0x5F)])
# ECMAScript WhiteSpace + LineTerminator (what JSON Schema `pattern` uses).
SPACE = normalize([(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
                   (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000),
                   (0xFEFF, 0xFEFF)])
DOT = negate(from_chars("\n\r\u2028\u2029"))

# Python ``re`` (str patterns: Lark's terminals) means other sets by the same escapes: Unicode
# digits, word characters and whitespace, and ``.`` is anything but "\n".
PY_DOT = negate(from_chars("\n"))


@functools.cache
def python_class(letter: str) -> CharSet:
    """Python re's ``\\d``, ``\\w`` or ``\\s`` (Unicode, str patterns), read off ``re`` itself over
    every code point, so it is exact for this Python.  Scanning takes ~0.1 s a class, so the
    ranges are kept in a small file per Python and Unicode version ($STRUCTGEN_CACHE or
    ~/.cache/structgen); where that cannot be written they are recomputed per process."""
    import json
    import os
    import re
    import sys
    from pathlib import Path

    env = os.environ.get("STRUCTGEN_CACHE")
    path = (Path(env) if env else Path.home() / ".cache" / "structgen") / (
        f"python-re-class-{letter}-{sys.version_info[0]}.{sys.version_info[1]}-{unicodedata.unidata_version}.json")
    try:
        return normalize(tuple(r) for r in json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        pass
    every = "".join(map(chr, range(MAX_CP + 1)))
    ranges = normalize((m.start(), m.end() - 1) for m in re.finditer(f"\\{letter}+", every))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps([list(r) for r in ranges]))
        os.replace(tmp, path)
    except OSError:
        pass
    return ranges


# ------------------------------------------------------ unicode categories
_LONG_NAMES = {
    "letter": "L", "cased_letter": "LC", "uppercase_letter": "Lu", "lowercase_letter": "Ll",
    "titlecase_letter": "Lt", "modifier_letter": "Lm", "other_letter": "Lo", "mark": "M",
    "combining_mark": "M", "nonspacing_mark": "Mn", "spacing_mark": "Mc", "enclosing_mark": "Me",
    "number": "N", "decimal_number": "Nd", "digit": "Nd", "letter_number": "Nl", "other_number": "No",
    "punctuation": "P", "punct": "P", "connector_punctuation": "Pc", "dash_punctuation": "Pd",
    "open_punctuation": "Ps", "close_punctuation": "Pe", "initial_punctuation": "Pi",
    "final_punctuation": "Pf", "other_punctuation": "Po", "symbol": "S", "math_symbol": "Sm",
    "currency_symbol": "Sc", "modifier_symbol": "Sk", "other_symbol": "So", "separator": "Z",
    "space_separator": "Zs", "line_separator": "Zl", "paragraph_separator": "Zp", "other": "C",
    "control": "Cc", "cntrl": "Cc", "format": "Cf", "surrogate": "Cs", "private_use": "Co",
    "unassigned": "Cn",
}


@functools.lru_cache(maxsize=1)
def _category_table() -> dict[str, CharSet]:
    """Two-letter general category -> ranges (built once from unicodedata)."""
    cat = unicodedata.category
    runs: dict[str, list[tuple[int, int]]] = {}
    start, cur = 0, cat("\0")
    for cp in range(1, MAX_CP + 1):
        c = cat(chr(cp))
        if c != cur:
            runs.setdefault(cur, []).append((start, cp - 1))
            start, cur = cp, c
    runs.setdefault(cur, []).append((start, MAX_CP))
    return {k: normalize(v) for k, v in runs.items()}


def unicode_property(name: str) -> CharSet | None:
    """The set for ``\\p{name}``, or None when the property is not supported."""
    key = name.strip()
    for prefix in ("General_Category=", "general_category=", "gc=", "Gc="):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    low = key.lower().replace(" ", "_").replace("-", "_")
    if low == "any":
        return ALL
    if low == "ascii":
        return ((0, 0x7F),)
    if low in _LONG_NAMES:
        key = _LONG_NAMES[low]
    table = _category_table()
    if key in ("LC", "L&"):
        return union(table.get("Lu", ()), table.get("Ll", ()), table.get("Lt", ()))
    if low == "assigned":
        return negate(table.get("Cn", ()))
    if len(key) == 2 and key[0].isupper() and key in table:
        return table[key]
    if len(key) == 2 and key[0].isupper() and key[1].islower():
        return EMPTY if key in _KNOWN_2 else None
    if len(key) == 1 and key.isupper():
        sets = [v for k, v in table.items() if k[0] == key]
        return union(*sets) if sets else None
    return None


_KNOWN_2 = {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe",
            "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"}


# ------------------------------------------------------------ case folding
@functools.lru_cache(maxsize=1)
def _case_table() -> tuple[list[int], list[tuple[int, ...]]]:
    """Sorted cased codepoints and, for each, its case-equivalence class.

    Classes join c with its single-character lower/upper mappings
    (transitively), which matches Python ``re.IGNORECASE`` for practical
    purposes (including K/KELVIN SIGN and s/LONG S).
    """
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for cp in range(0x20000):
        if SURR_LO <= cp <= SURR_HI:
            continue
        ch = chr(cp)
        for other in (ch.lower(), ch.upper()):
            if len(other) == 1 and other != ch:
                a, b = find(cp), find(ord(other))
                if a != b:
                    parent[a] = b
    groups: dict[int, list[int]] = {}
    for cp in list(parent):
        groups.setdefault(find(cp), []).append(cp)
    keys = sorted(parent)
    return keys, [tuple(sorted(groups[find(k)])) for k in keys]


def casefold_closure(s: CharSet) -> CharSet:
    """Add every case variant of every member."""
    keys, classes = _case_table()
    extra: list[tuple[int, int]] = []
    for lo, hi in s:
        i = bisect.bisect_left(keys, lo)
        j = bisect.bisect_right(keys, hi)
        for k in range(i, j):
            extra.extend((c, c) for c in classes[k])
    return union(s, normalize(extra)) if extra else s
