"""An acceptance oracle for Lark grammars with structgen's documented lexing, built from parts
structgen does not use: Lark's LALR parser and interegular's regex automata.

Why not ``lark.Lark(...).parse`` alone: Lark's contextual lexer offers the terminals of the
LALR state *before* its pending reductions, a merged lookahead set, so it may lex ``HAVING0``
as a NAME where no NAME can follow (and then fail), while structgen lexes among the terminals
the parser can really take next (exact).  Here that set comes from Lark's interactive parser
(``accepts()`` simulates every terminal, reductions included), and each lexeme is cut by
maximal munch without backtracking: it ends where the next character extends no live terminal
(ignored ones included), and must then be accepted by one of them.  When several accept it,
the highest priority wins, string literals first; a real terminal beats an ignored one.
"""
from __future__ import annotations

import interegular
import lark
from lark.exceptions import LarkError
from lark.lexer import Token


class _Automaton:
    """One terminal's FSM, stepped a character at a time (None: dead)."""

    def __init__(self, pattern: str):
        fsm = interegular.parse_pattern(pattern).to_fsm()
        self.initial = fsm.initial
        self.finals = fsm.finals
        self.map = fsm.map
        self.alphabet = fsm.alphabet

    def step(self, state, ch: str):
        sym = self.alphabet[ch] if ch in self.alphabet else self.alphabet[interegular.fsm.anything_else]
        return self.map.get(state, {}).get(sym)


class ContextualMunchOracle:
    """``accepts(text)`` for an LALR-compatible Lark grammar (see the module docstring)."""

    def __init__(self, grammar_text: str):
        self.parser = lark.Lark(grammar_text, parser="lalr")
        self.terms = {t.name: t for t in self.parser.terminals}
        self.automata = {name: _Automaton(t.pattern.to_regexp()) for name, t in self.terms.items()}
        self.ignore = set(self.parser.ignore_tokens)

    def _resolve(self, names: list[str]) -> str:
        best = max(self.terms[n].priority for n in names)
        kept = sorted(n for n in names if self.terms[n].priority == best)
        literals = [n for n in kept if self.terms[n].pattern.type == "str"]
        if len(literals or kept) > 1:
            raise AssertionError(f"the oracle cannot choose between {literals or kept}")
        return (literals or kept)[0]

    def accepts(self, text: str) -> bool:
        ip = self.parser.parse_interactive("")
        i, n = 0, len(text)
        while i < n:
            expected = {t for t in ip.accepts() if t in self.terms}
            live = {name: self.automata[name].initial for name in expected | self.ignore}
            j = i
            while j < n:
                nxt = {}
                for name, state in live.items():
                    s2 = self.automata[name].step(state, text[j])
                    if s2 is not None:
                        nxt[name] = s2
                if not nxt:
                    break
                live = nxt
                j += 1
            if j == i:
                return False
            done = [name for name, state in live.items() if state in self.automata[name].finals]
            real = [name for name in done if name in expected]
            if real:
                try:
                    ip.feed_token(Token(self._resolve(real), text[i:j]))
                except LarkError:
                    return False
            elif not done:
                return False   # an ignored lexeme only: skipped
            i = j
        try:
            ip.feed_eof()
        except LarkError:
            return False
        return True
