"""An independent reference recognizer for schema grammars (Earley over the IR, terminals via Python ``re``).

Why: it checks the compiler's grammars without the engine or the regex
module, so a bug in either side shows up as a disagreement.  It explores
*all* lexings (not maximal munch); for JSON lexemes the two coincide.
Also used by test_schema_suite.py when the engine is unavailable.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache

from structgen.grammar.ir import Grammar, Terminal


@lru_cache(maxsize=4096)
def _rx(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _json_string_end(text: str, i: int) -> int | None:
    if i >= len(text) or text[i] != '"':
        return None
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            return j + 1
        j += 1
    return None


NEVER_ESCAPED = {chr(c) for c in range(0x20, 0x7F)} - set('"\\/<>&\'')


def _escapes_never_escaped(lexeme: str) -> bool:
    """A \\uXXXX escape in the lexeme spells a printable ASCII character serializers write raw."""
    k = 0
    while k < len(lexeme):
        if lexeme[k] == "\\":
            hex4 = lexeme[k + 2:k + 6]
            if lexeme[k + 1:k + 2] == "u" and len(hex4) == 4 and all(c in "0123456789abcdefABCDEF" for c in hex4) \
                    and chr(int(hex4, 16)) in NEVER_ESCAPED:
                return True
            k += 2
            continue
        k += 1
    return False


def terminal_ends(term: Terminal, text: str, i: int) -> list[int]:
    """Every j such that text[i:j] is a lexeme of ``term``."""
    if term.literal is not None:
        return [i + len(term.literal)] if term.literal and text.startswith(term.literal, i) else []
    pats = (term.regex,) + tuple(term.also_match)
    if term.json_string:
        j = _json_string_end(text, i)
        if j is None:
            return []
        if term.canonical and _escapes_never_escaped(text[i:j]):
            return []  # canonical spellings: no \\u escape of a character serializers write raw
        try:
            content = json.loads(text[i:j])
        except json.JSONDecodeError:
            return []
        ok = all(_rx(p).fullmatch(content) for p in pats) and not any(_rx(p).fullmatch(content)
                                                                       for p in term.not_match)
        return [j] if ok else []
    out = []
    for j in range(i + 1, len(text) + 1):
        if all(_rx(p).fullmatch(text, i, j) for p in pats) and not any(_rx(p).fullmatch(text, i, j)
                                                                          for p in term.not_match):
            out.append(j)
    return out


def accepts(g: Grammar, text: str) -> bool:
    """Earley recognition with Aycock-Horspool nullable handling.

    Lazy rule families (``Grammar.lazy``) are expanded through ``Grammar.alternatives``
    as the chart meets them; they never derive the empty string (their contract).
    """
    nullable: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, alts in g.rules.items():
            if name not in nullable and any(all(s in nullable for s in a) for a in alts):
                nullable.add(name)
                changed = True
    alts_of: dict[str, list] = {}

    def rules(name: str) -> list:
        got = alts_of.get(name)
        if got is None:
            got = alts_of[name] = g.alternatives(name)
        return got
    n = len(text)
    charts: list[dict] = [dict() for _ in range(n + 1)]  # item -> None (ordered set)
    term_cache: dict[tuple[str, int], list[int]] = {}

    def add(k: int, item: tuple) -> None:
        charts[k].setdefault(item, None)

    for ai, _ in enumerate(rules(g.start)):
        add(0, (g.start, ai, 0, 0))
    for k in range(n + 1):
        chart = charts[k]
        done = 0
        items = list(chart)
        while done < len(items):
            name, ai, dot, origin = items[done]
            done += 1
            alt = rules(name)[ai]
            if dot == len(alt):
                for (n2, a2, d2, o2) in list(charts[origin]):
                    alt2 = rules(n2)[a2]
                    if d2 < len(alt2) and alt2[d2] == name:
                        it = (n2, a2, d2 + 1, o2)
                        if it not in chart:
                            chart[it] = None
                            items.append(it)
                continue
            sym = alt[dot]
            if sym not in g.terminals:
                for bi, _ in enumerate(rules(sym)):
                    it = (sym, bi, 0, k)
                    if it not in chart:
                        chart[it] = None
                        items.append(it)
                if sym in nullable:
                    it = (name, ai, dot + 1, origin)
                    if it not in chart:
                        chart[it] = None
                        items.append(it)
            else:
                key = (sym, k)
                if key not in term_cache:
                    term_cache[key] = terminal_ends(g.terminals[sym], text, k)
                for j in term_cache[key]:
                    add(j, (name, ai, dot + 1, origin))
        # items completed at k whose origin is k were handled by the nullable trick
    return any(name == g.start and dot == len(rules(name)[ai]) and origin == 0
               for (name, ai, dot, origin) in charts[n])


# ---------------------------------------------------------------- self-tests of the reference
def test_reference_recognizer_basics():
    from structgen.grammar.ir import GrammarBuilder
    b = GrammarBuilder()
    num = b.regex(r"[0-9]+")
    lst = b.separated(num, b.literal(","), min_items=0)
    start = b.seq(b.literal("["), lst, b.literal("]"))
    g = b.build(start)
    assert accepts(g, "[1,22,333]")
    assert accepts(g, "[]")
    assert not accepts(g, "[1,]")
    assert not accepts(g, "[1 2]")
    s = GrammarBuilder()
    t = s.terminal(Terminal(regex=r"a[\s\S]*", json_string=True, also_match=(r"[\s\S]{2,3}",)))
    g2 = s.build(s.seq(t))
    assert accepts(g2, '"ab"') and accepts(g2, '"\\u0061b"') and not accepts(g2, '"abcd"')
    assert not accepts(g2, '"ba"')
