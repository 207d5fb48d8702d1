"""Character DFAs built directly for a few huge but simply structured regexes.

``char_dfa(pattern)`` looks patterns up here first (like the finite-set
complements of :mod:`.words`): a registered builder returns the minimal DFA
of exactly the pattern's language, without parsing the pattern, running the
Glushkov construction on tens of thousands of positions or minimizing a
26k-state subset DFA.  Builders are checked against the regex path in
``tests/test_regex_direct.py`` (language equality).

Also here: :func:`from_char_table`, which turns a DFA over single characters
into a :class:`CharDFA` over character classes (characters with identical
columns share a class) and minimizes it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import charset as cs
from .automaton import CharDFA

_BUILDERS: dict[str, Callable[[], CharDFA]] = {}


def register(pattern: str, builder: Callable[[], CharDFA]) -> None:
    """Make ``char_dfa(pattern)`` call ``builder`` (which must return the pattern's minimal DFA)."""
    _BUILDERS[pattern] = builder


def known(pattern: str) -> Callable[[], CharDFA] | None:
    return _BUILDERS.get(pattern)


def from_char_table(chars: str, rows: list[dict[str, int]], accept: list[bool]) -> CharDFA:
    """Minimal DFA from per-state {character: target} maps over the alphabet ``chars`` (state 0 = start)."""
    from .fastmin import minimize_arrays
    col = {c: i for i, c in enumerate(chars)}
    src, dst, ch = [], [], []
    for s, row in enumerate(rows):
        for c, t in row.items():
            src.append(s)
            ch.append(col[c])
            dst.append(t)
    table = np.full((len(rows), len(chars)), -1, dtype=np.int32)
    table[np.asarray(src, dtype=np.int64), np.asarray(ch, dtype=np.int64)] = np.asarray(dst, dtype=np.int32)
    # characters no state tells apart share a class
    groups: dict[bytes, list[int]] = {}
    for i in range(len(chars)):
        groups.setdefault(table[:, i].tobytes(), []).append(i)
    keep = [idx[0] for idx in groups.values()]
    classes = [cs.normalize((ord(chars[i]), ord(chars[i])) for i in idx) for idx in groups.values()]
    trans, acc = minimize_arrays(np.ascontiguousarray(table[:, keep]), np.array(accept, dtype=np.bool_))
    return CharDFA(classes, trans.tolist(), acc.tolist())


class _Builder:
    """States as per-state {char: target} dicts; states keyed by a name are created once."""

    def __init__(self) -> None:
        self.rows: list[dict[str, int]] = []
        self.accept: list[bool] = []
        self.named: dict[object, int] = {}

    def new(self, accepting: bool = False) -> int:
        self.rows.append({})
        self.accept.append(accepting)
        return len(self.rows) - 1

    def get(self, key: object, accepting: bool = False) -> int:
        s = self.named.get(key)
        if s is None:
            s = self.named[key] = self.new(accepting)
        return s

    def edge(self, s: int, chars: str, t: int) -> None:
        for c in chars:
            self.rows[s][c] = t

    def literal(self, text: str, end: int) -> int:
        """State reading exactly ``text`` then continuing in ``end`` (shared by suffix)."""
        if not text:
            return end
        s = self.get(("lit", text, end))
        if not self.rows[s]:
            self.edge(s, text[0], self.literal(text[1:], end))
        return s


DIGITS = "0123456789"


def _two_digit(b: _Builder, s: int, hi: int, end: int, tag: str) -> None:
    """From ``s``, two digits 00..hi (hi = 23 or 59), then ``end``; intermediate states shared by tag."""
    tens_max, last_max = divmod(hi, 10)
    for d in range(tens_max + 1):
        units = DIGITS if d < tens_max else DIGITS[:last_max + 1]
        mid = b.get((tag, units, end))
        b.edge(mid, units, end)
        b.edge(s, str(d), mid)


def _offset(b: _Builder, s: int, end: int) -> None:
    """RFC 3339 time-offset from ``s``: Z / z / +hh:mm / -hh:mm."""
    b.edge(s, "Zz", end)
    sign = b.get(("off-sign", end))
    b.edge(s, "+-", sign)
    colon = b.get(("off-colon", end))
    _two_digit(b, sign, 23, colon, "off-h")
    mins = b.get(("off-min", end))
    b.edge(colon, ":", mins)
    _two_digit(b, mins, 59, end, "off-m")


def time_dfa(prefix: CharDFA | None = None, separator: str = "") -> CharDFA:
    """RFC 3339 ``full-time`` with the leap-second rule (hh:mm:60 only when hh:mm - offset = 23:59 UTC).

    The language is that of ``schema.formats._time()``: ``hh:mm:ss[.frac]offset`` with ss 00-59, or
    ``hh:mm:60[.frac]`` followed by the one ``+`` and one ``-`` offset that map hh:mm to 23:59 UTC
    (``Z``/``z`` too for 23:59).  With ``prefix`` (a DFA whose accepted strings all have no
    continuation in it, such as the fixed-length full-date) and ``separator`` characters, the DFA of
    ``prefix separator time`` (RFC 3339 date-time).
    """
    b = _Builder()
    start = b.new()
    acc = b.new(accepting=True)
    time_start = start
    if prefix is not None:
        time_start = b.new()
        _embed_prefix(b, prefix, start, separator, time_start)
    # shared plain-seconds tail: ss (00-59) [.digits] offset
    sec2 = b.new()
    after_sec = b.new()
    b.edge(sec2, DIGITS, after_sec)
    frac0, frac1 = b.new(), b.new()
    b.edge(after_sec, ".", frac0)
    b.edge(frac0, DIGITS, frac1)
    b.edge(frac1, DIGITS, frac1)
    _offset(b, after_sec, acc)
    _offset(b, frac1, acc)
    utc = 23 * 60 + 59
    for h in range(24):
        for m in range(60):
            hh, mm = f"{h:02d}", f"{m:02d}"
            # trie over "hh:mm"
            s1 = b.get(("h1", hh[0]))
            b.edge(time_start, hh[0], s1)
            s2 = b.get(("h2", hh))
            b.edge(s1, hh[1], s2)
            s3 = b.get(("c1", hh))
            b.edge(s2, ":", s3)
            s4 = b.get(("m1", hh, mm[0]))
            b.edge(s3, mm[0], s4)
            s5 = b.get(("m2", hh, mm))
            b.edge(s4, mm[1], s5)
            sec1 = b.get(("c2", hh, mm))
            b.edge(s5, ":", sec1)
            b.edge(sec1, "012345", sec2)
            # leap second: hh:mm:60[.frac] then the offsets putting hh:mm at 23:59 UTC
            six = b.get(("six", hh, mm))
            b.edge(sec1, "6", six)
            leap = b.get(("leap", hh, mm))
            b.edge(six, "0", leap)
            lf0, lf1 = b.get(("lf0", hh, mm)), b.get(("lf1", hh, mm))
            b.edge(leap, ".", lf0)
            b.edge(lf0, DIGITS, lf1)
            b.edge(lf1, DIGITS, lf1)
            local = h * 60 + m
            plus = (local - utc) % 1440     # local = utc + offset
            minus = (utc - local) % 1440    # local = utc - offset
            for tail in (leap, lf1):
                b.edge(tail, "+", b.literal("%02d:%02d" % divmod(plus, 60), acc))
                b.edge(tail, "-", b.literal("%02d:%02d" % divmod(minus, 60), acc))
                if local == utc:
                    b.edge(tail, "Zz", acc)
    chars = DIGITS + ":.+-Zz" + "".join(sorted(set(separator) | _prefix_chars(prefix)))
    return from_char_table("".join(dict.fromkeys(chars)), b.rows, b.accept)


def _prefix_chars(prefix: CharDFA | None) -> set[str]:
    if prefix is None:
        return set()
    out: set[str] = set()
    for klass in prefix.classes:
        for lo, hi in klass:
            if hi - lo > 256:
                raise ValueError("time_dfa prefix must use a small explicit alphabet")
            out.update(chr(c) for c in range(lo, hi + 1))
    return out


def _embed_prefix(b: _Builder, prefix: CharDFA, start: int, separator: str, after: int) -> None:
    """Copy ``prefix`` (state 0 -> ``start``); its accepting states continue with a separator to ``after``."""
    ids = [start] + [b.new() for _ in range(prefix.n_states - 1)]
    for s, row in enumerate(prefix.trans):
        if prefix.accept[s] and any(t >= 0 for t in row):
            raise ValueError("time_dfa prefix: an accepting state has a continuation")
        for c, t in enumerate(row):
            if t >= 0:
                for lo, hi in prefix.classes[c]:
                    b.edge(ids[s], "".join(chr(x) for x in range(lo, hi + 1)), ids[t])
        if prefix.accept[s]:
            b.edge(ids[s], separator, after)
