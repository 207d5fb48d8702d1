"""An acceptance oracle for Lark grammars with structgen's documented lexing, built from parts
structgen does not use: Lark's LALR parser, and terminals matched by derivatives of Python's own
regex parse tree with ``re`` deciding every character (see ``_Regex``).

Why not ``lark.Lark(...).parse`` alone: Lark's contextual lexer offers the terminals of the
LALR state *before* its pending reductions, a merged lookahead set, so it may lex ``HAVING0``
as a NAME where no NAME can follow (and then fail), while structgen lexes among the terminals
the parser can really take next (exact).  Here that set comes from Lark's interactive parser
(``accepts()`` simulates every terminal, reductions included), and each lexeme is cut by
maximal munch without backtracking: it ends where the next character extends no live terminal
(ignored ones included), and must then be accepted by one of them.  When several accept it,
the highest priority wins, string literals first; a real terminal beats an ignored one.
A terminal written with a lazy quantifier (``/".*?"/``) ends where Python's ``re.match`` ends
it, as in Lark: alive up to that point, accepting exactly there.
"""
from __future__ import annotations

import re
from re import _constants as c, _parser

import lark
from lark.exceptions import LarkError
from lark.lexer import Token


_CATEGORY = {c.CATEGORY_DIGIT: r"\d", c.CATEGORY_NOT_DIGIT: r"\D", c.CATEGORY_WORD: r"\w",
             c.CATEGORY_NOT_WORD: r"\W", c.CATEGORY_SPACE: r"\s", c.CATEGORY_NOT_SPACE: r"\S"}
EMPTY, EPS = ("empty",), ("eps",)


def _cat(parts) -> tuple:
    out = []
    for t in parts:
        if t is EMPTY or t == EMPTY:
            return EMPTY
        if t == EPS:
            continue
        out.extend(t[1] if t[0] == "cat" else (t,))
    return EPS if not out else out[0] if len(out) == 1 else ("cat", tuple(out))


def _alt(parts) -> tuple:
    out = set()
    for t in parts:
        if t == EMPTY:
            continue
        out |= t[1] if t[0] == "alt" else {t}
    return EMPTY if not out else next(iter(out)) if len(out) == 1 else ("alt", frozenset(out))


class _Regex:
    """A Python regex as a Brzozowski-derivative matcher over characters.

    The structure comes from Python's own regex parser (``re._parser``); whether one character
    matches one atom is asked of ``re`` itself (the atom rewritten as a one-character pattern
    under the same flags), so Unicode classes, ``.`` and case folding mean what Lark's lexer
    means.  Lazy repetitions are greedy here (same language); the caller handles lexing.
    """

    def __init__(self, pattern: str):
        self.preds: list = []
        self.lazy = False
        tree = _parser.parse(pattern)
        self.start = self._term(list(tree), tree.state.flags)
        self._deriv: dict = {}

    # ---- from re's parse tree
    def _pred(self, source: str, flags: int) -> tuple:
        self.preds.append(re.compile(source, flags & (re.IGNORECASE | re.DOTALL | re.ASCII)))
        return ("chr", len(self.preds) - 1)

    @staticmethod
    def _char(code: int) -> str:
        return re.escape(chr(code))

    def _term(self, items, flags: int) -> tuple:
        return _cat([self._item(op, arg, flags) for op, arg in items])

    def _item(self, op, arg, flags: int) -> tuple:
        if op is c.LITERAL:
            return self._pred(self._char(arg), flags)
        if op is c.NOT_LITERAL:
            return self._pred(f"[^{self._char(arg)}]", flags)
        if op is c.ANY:
            return self._pred(".", flags)
        if op is c.IN:
            parts, neg = [], ""
            for iop, iarg in arg:
                if iop is c.NEGATE:
                    neg = "^"
                elif iop is c.LITERAL:
                    parts.append(self._char(iarg))
                elif iop is c.RANGE:
                    parts.append(f"{self._char(iarg[0])}-{self._char(iarg[1])}")
                elif iop is c.CATEGORY:
                    parts.append(_CATEGORY[iarg])
                else:
                    raise NotImplementedError(f"oracle: class item {iop}")
            return self._pred(f"[{neg}{''.join(parts)}]", flags)
        if op is c.SUBPATTERN:
            _group, add, remove, sub = arg
            return self._term(list(sub), (flags | add) & ~remove)
        if op is c.BRANCH:
            return _alt([self._term(list(b), flags) for b in arg[1]])
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):
            self.lazy |= op is c.MIN_REPEAT
            lo, hi, sub = arg
            return ("rep", self._term(list(sub), flags), lo, None if hi == c.MAXREPEAT else hi)
        raise NotImplementedError(f"oracle: regex construct {op}")

    # ---- derivatives
    def nullable(self, t) -> bool:
        k = t[0]
        if k == "eps":
            return True
        if k in ("empty", "chr"):
            return False
        if k == "cat":
            return all(self.nullable(x) for x in t[1])
        if k == "alt":
            return any(self.nullable(x) for x in t[1])
        return t[2] == 0 or self.nullable(t[1])

    def dead(self, t) -> bool:
        """No string continues ``t`` (atoms match some character)."""
        k = t[0]
        if k == "empty":
            return True
        if k in ("eps", "chr"):
            return False
        if k == "cat":
            return any(self.dead(x) for x in t[1])
        if k == "alt":
            return all(self.dead(x) for x in t[1])
        return t[2] > 0 and self.dead(t[1])

    def step(self, t, ch: str) -> tuple:
        key = (t, ch)
        got = self._deriv.get(key)
        if got is None:
            got = self._deriv[key] = self._step(t, ch)
        return got

    def _step(self, t, ch: str) -> tuple:
        k = t[0]
        if k in ("eps", "empty"):
            return EMPTY
        if k == "chr":
            return EPS if self.preds[t[1]].fullmatch(ch) else EMPTY
        if k == "cat":
            first, rest = t[1][0], _cat(t[1][1:])
            head = _cat([self.step(first, ch), rest])
            return _alt([head, self.step(rest, ch)]) if self.nullable(first) else head
        if k == "alt":
            return _alt([self.step(x, ch) for x in t[1]])
        inner, lo, hi = t[1], t[2], t[3]
        if hi == 0:
            return EMPTY
        return _cat([self.step(inner, ch), ("rep", inner, max(lo - 1, 0), None if hi is None else hi - 1)])


class _Automaton:
    """One terminal, stepped a character at a time (None: dead)."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        self.regex = _Regex(pattern)
        self.lazy = self.regex.lazy
        self.initial = self.regex.start

    def step(self, state, ch: str):
        nxt = self.regex.step(state, ch)
        return None if self.regex.dead(nxt) else nxt

    def accepting(self, state) -> bool:
        return self.regex.nullable(state)


class NotLALR(Exception):
    """Lark's LALR tables for the grammar resolve a shift/reduce conflict (by shifting), so its
    parser accepts less than the grammar's language: no oracle for that grammar."""


def _lalr_without_conflicts(grammar_text: str) -> lark.Lark:
    import logging
    seen: list[str] = []

    class _Catch(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = _Catch(level=logging.WARNING)
    level, propagate, others = lark.logger.level, lark.logger.propagate, list(lark.logger.handlers)
    for h in others:   # lark's own handler would print every conflict
        lark.logger.removeHandler(h)
    lark.logger.addHandler(handler)
    lark.logger.setLevel(logging.WARNING)   # lark keeps its logger at CRITICAL
    lark.logger.propagate = False
    try:
        parser = lark.Lark(grammar_text, parser="lalr", debug=True)
    finally:
        lark.logger.removeHandler(handler)
        for h in others:
            lark.logger.addHandler(h)
        lark.logger.setLevel(level)
        lark.logger.propagate = propagate
    conflicts = [m for m in seen if "Shift/Reduce" in m]
    if conflicts:
        raise NotLALR(conflicts[0])
    return parser


class ContextualMunchOracle:
    """``accepts(text)`` for an LALR-compatible Lark grammar (see the module docstring)."""

    def __init__(self, grammar_text: str):
        self.parser = _lalr_without_conflicts(grammar_text)
        self.terms = {t.name: t for t in self.parser.terminals}
        self.automata = {name: _Automaton(t.pattern.to_regexp()) for name, t in self.terms.items()}
        self.ignore = set(self.parser.ignore_tokens)

    def _resolve(self, names: list[str]) -> list[str]:
        """The terminals a lexeme counts as: highest priority, string literals first; several
        left (a true lexical ambiguity) are all scanned, each by its own parse."""
        best = max(self.terms[n].priority for n in names)
        kept = sorted(n for n in names if self.terms[n].priority == best)
        literals = [n for n in kept if self.terms[n].pattern.type == "str"]
        return literals or kept

    def accepts(self, text: str) -> bool:
        parsers = [self.parser.parse_interactive("")]   # one per way of reading the lexemes so far
        i, n = 0, len(text)
        while i < n:
            expected = {t for ip in parsers for t in ip.accepts() if t in self.terms}
            live = {name: self.automata[name].initial for name in expected | self.ignore}
            # a lazy terminal stops where re.match stops it (its FSM, greedy, would go on)
            lazy_end = {}
            for name in live:
                if self.automata[name].lazy:
                    m = re.match(self.automata[name].pattern, text[i:])
                    lazy_end[name] = None if m is None else i + m.end()
            j = i
            while j < n:
                nxt = {}
                for name, state in live.items():
                    end = lazy_end.get(name)
                    if end is not None and j >= end:
                        continue
                    s2 = self.automata[name].step(state, text[j])
                    if s2 is not None:
                        nxt[name] = s2
                if not nxt:
                    break
                live = nxt
                j += 1
            if j == i:
                return False
            done = [name for name, state in live.items() if self.automata[name].accepting(state)
                    and lazy_end.get(name, j) == j]
            real = [name for name in done if name in expected]
            if real:
                parsers = [p for p in (self._fed(ip, t, text[i:j]) for ip in parsers for t in self._resolve(real))
                           if p is not None]
                if not parsers:
                    return False
                if len(parsers) > 64:
                    raise AssertionError("the oracle's parses multiply past 64")
            elif not done:
                return False   # else an ignored lexeme only: skipped
            i = j
        for ip in parsers:
            try:
                ip.feed_eof()
                return True
            except LarkError:
                pass
        return False

    @staticmethod
    def _fed(ip, terminal: str, value: str):
        ip = ip.copy()
        try:
            ip.feed_token(Token(terminal, value))
        except LarkError:
            return None
        return ip
