"""Find where cutting lexemes per byte differs from cutting them per character.

The lexer ends a lexeme when the next *byte* extends no live terminal.  A terminal X that
has matched and can go on with some characters starting with lead byte ``b``, but not with a
character ``c`` that also starts with ``b``, reads ``c``'s first bytes and then dies inside
``c``: the lexeme can no longer end before ``c``.  Python's ``re`` (Lark) and a character-level
reading would end it there and let a terminal Y start with ``c`` (``\\w+`` then the fullwidth
comma ``，``: both ``0xEF 0xBC ...``).  Those texts are refused, so grammars where it can happen
are reported when they are compiled, never silently.
"""
from __future__ import annotations

import numpy as np

from ..regex import ByteDFA

_LEADS = range(0xC2, 0xF5)


def _continuation_ranges(lead: int) -> list[tuple[int, int]]:
    """Byte ranges of the continuation bytes after ``lead`` (UTF-8, no surrogates/overlongs)."""
    n = 1 if lead < 0xE0 else 2 if lead < 0xF0 else 3
    first = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}.get(lead, (0x80, 0xBF))
    return [first] + [(0x80, 0xBF)] * (n - 1)


def _trap_char(x: ByteDFA, s: int, y: ByteDFA, lead: int) -> str | None:
    """A character starting with ``lead`` that X (from accepting state ``s``) starts but cannot
    finish, while Y can start a lexeme with it; None if there is none."""
    xt, yt = x.transitions, y.transitions
    frontier = {(int(xt[s, lead]), int(yt[0, lead])): bytes([lead])}
    for lo, hi in _continuation_ranges(lead):
        nxt: dict[tuple[int, int], bytes] = {}
        for (xs, ys), seen in frontier.items():
            for byte in range(lo, hi + 1):
                y2 = int(yt[ys, byte])
                if y2 < 0:
                    continue
                x2 = int(xt[xs, byte]) if xs >= 0 else -1
                nxt.setdefault((x2, y2), seen + bytes([byte]))
        frontier = nxt
    for (xs, _ys), data in frontier.items():
        if xs < 0:
            return data.decode("utf-8")
    return None


def lead_byte_traps(names: list[str], dfas: list[ByteDFA], followers=None,
                    limit: int = 5) -> list[tuple[str, str, str]]:
    """Up to ``limit`` (X, Y, character) triples as described in the module docstring; with
    ``followers`` (X's name -> names that may come right after X), Y is one of those."""
    starts = {lead: [i for i, d in enumerate(dfas) if d.transitions[0, lead] >= 0] for lead in _LEADS}
    if not any(starts.values()):
        return []   # no terminal starts with a multi-byte character
    out: list[tuple[str, str, str]] = []
    follow = None
    for xi, x in enumerate(dfas):
        acc = np.nonzero(x.accepting)[0]
        if not len(acc):
            continue
        cont = x.transitions[acc][:, _LEADS.start:_LEADS.stop] >= 0
        if not cont.any():
            continue
        if followers is not None and follow is None:
            follow = followers()   # computed only for grammars with a candidate X
        for row, col in np.argwhere(cont):
            lead = _LEADS.start + int(col)
            for yi in starts[lead]:
                if follow is not None and names[yi] not in follow.get(names[xi], ()):
                    continue
                c = _trap_char(x, int(acc[row]), dfas[yi], lead)
                if c is not None:
                    out.append((names[xi], names[yi], c))
                    break
            if out and out[-1][0] == names[xi]:
                break   # one example per X is enough
        if len(out) >= limit:
            break
    return out


def warn_lead_byte_traps(grammar, names: list[str], dfas: list[ByteDFA]) -> None:
    """Warn (once per compiled grammar) when a text can be refused by the per-byte lexeme cut."""
    if grammar.has_lazy_rules():
        return

    def followers() -> dict[str, set[str]]:
        out = {x: ys | set(grammar.ignore) for x, ys in grammar.terminal_followers().items()}
        for x in grammar.ignore:
            out[x] = set(names)
        return out

    traps = lead_byte_traps(names, dfas, followers)
    if traps:
        import warnings
        shown = "; ".join(f"{x} then {y} starting with {c!r} (U+{ord(c):04X})" for x, y, c in traps)
        warnings.warn(
            f"{grammar.source or 'grammar'}: lexemes are cut per byte, and these terminals can run into the "
            f"first bytes of a character they cannot finish, so a text where one is directly followed by such "
            f"a character is refused (Python's re would end the lexeme before it): {shown}", UserWarning,
            stacklevel=4)
