"""Random strings derived from a Lark grammar, as a hypothesis strategy (a test oracle's input).

The derivation uses Lark's own reading of the grammar (``Lark.rules`` after its
EBNF expansion, ``Lark.terminals``, ``Lark.ignore_tokens``), not structgen's
front-end, so a front-end bug cannot hide itself.  Terminals are drawn with
``hypothesis.strategies.from_regex`` on Lark's regular expression for them.

A derived string is usually, not always, in the language: two adjacent lexemes
may lex differently once joined (``a`` ``b`` -> ``ab``), so tests ask Lark's
parser whether it is, and hold the matcher to Lark's answer either way.
"""
from __future__ import annotations

import re

import lark
from hypothesis import strategies as st
from lark.grammar import NonTerminal

# lexeme characters: code points up to plane 2 (lead byte 0xf0), no surrogates, no controls but
# tab and newlines (some vocabularies cannot spell those bytes); hypothesis favours ASCII, and
# multi-byte UTF-8 exercises token boundaries inside characters
ALPHABET = st.characters(max_codepoint=0x2FFFF, exclude_categories=("Cs", "Cc"), include_characters="\t\n\r")
SEPARATORS = ["", " ", " ", "  ", "\n", "\t"]


class LarkSampler:
    """Derivations of ``parser``'s start rule with at most ``max_depth`` nested rules."""

    def __init__(self, parser: lark.Lark, max_depth: int = 12, max_lexeme: int = 12):
        self.rules: dict[str, list[tuple]] = {}
        for r in parser.rules:
            self.rules.setdefault(r.origin.name, []).append(tuple(r.expansion))
        self.terminals = {t.name: t for t in parser.terminals}
        self.ignore = list(parser.ignore_tokens)
        self.start = parser.options.start[0]
        self.max_depth = max_depth
        self.max_lexeme = max_lexeme
        self._height = self._min_heights()
        self._lexeme_strategies: dict[str, st.SearchStrategy] = {}

    def _min_heights(self) -> dict[str, int]:
        """Fewest nested rules needed to finish each nonterminal (fixpoint); depth limits use it."""
        inf = 1 << 30
        h = {name: inf for name in self.rules}
        changed = True
        while changed:
            changed = False
            for name, alts in self.rules.items():
                for alt in alts:
                    need = 1 + max((h[s.name] for s in alt if isinstance(s, NonTerminal)), default=0)
                    if need < h[name]:
                        h[name] = need
                        changed = True
        return h

    def _alt_height(self, alt: tuple) -> int:
        return max((self._height[s.name] for s in alt if isinstance(s, NonTerminal)), default=0)

    def lexeme(self, name: str) -> st.SearchStrategy:
        got = self._lexeme_strategies.get(name)
        if got is None:
            pattern = self.terminals[name].pattern
            if pattern.type == "str" and "i" not in pattern.flags:
                got = st.just(pattern.value)
            elif pattern.type == "str":
                # a case-insensitive literal: any mix of cases
                got = st.tuples(*[st.sampled_from(sorted({c.lower(), c.upper()})) for c in pattern.value]).map("".join)
            else:
                got = st.from_regex(re.compile(pattern.to_regexp()), fullmatch=True, alphabet=ALPHABET).filter(
                    lambda s: len(s) <= self.max_lexeme)
            self._lexeme_strategies[name] = got
        return got

    def strings(self) -> st.SearchStrategy[str]:
        @st.composite
        def derive(draw) -> str:
            lexemes: list[str] = []
            stack: list[tuple[object, int]] = [(NonTerminal(self.start), 0)]
            while stack:
                sym, depth = stack.pop()
                if isinstance(sym, NonTerminal):
                    alts = self.rules[sym.name]
                    room = self.max_depth - depth
                    fitting = [a for a in alts if self._alt_height(a) < room] or \
                        [min(alts, key=self._alt_height)]
                    alt = draw(st.sampled_from(fitting))
                    stack.extend((s, depth + 1) for s in reversed(alt))
                else:
                    lexemes.append(draw(self.lexeme(sym.name)))
            if not self.ignore:
                return "".join(lexemes)
            # ignored text between lexemes: mostly one space, sometimes none (lexemes may merge:
            # Lark decides), sometimes more; only separators the grammar's %ignore matches
            ok = [s for s in SEPARATORS if s == "" or any(
                re.fullmatch(self.terminals[i].pattern.to_regexp(), s) for i in self.ignore)]
            out = lexemes[:1]
            for lx in lexemes[1:]:
                out.append(draw(st.sampled_from(ok)))
                out.append(lx)
            return "".join(out)

        return derive()
