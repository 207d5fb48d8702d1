"""The one grammar representation every front-end compiles to.

A context-free grammar whose terminals are regular languages.  Front-ends
(regex, Lark, GBNF, JSON Schema, choice) build a :class:`Grammar`; the engine
compiles it once per tokenizer into token masks.

Lexing semantics: the text is split into lexemes by *maximal munch* among the
terminals the parser can accept at that point (a contextual lexer), and
``ignore`` terminals may appear between any two lexemes.  Front-ends choose
terminals so that maximal munch is exact for their language (JSON lexemes
are self-delimiting; GBNF is lowered to one-character terminals).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..errors import GrammarError


@dataclass(frozen=True)
class Terminal:
    """A regular language over characters, matched against whole lexemes.

    Exactly one of ``regex`` / ``literal`` is set.  ``regex`` is a full-match
    pattern in structgen's regex syntax (Python ``re`` / ECMAScript subset).
    With ``json_string=True`` the terminal matches ``"`` + the JSON-escaped
    encoding of a string whose *decoded* characters fully match the pattern
    (and every pattern in ``also_match``) + ``"``.
    ``also_match`` lists extra full-match patterns the text must match too
    (language intersection, e.g. ``pattern`` together with ``maxLength``).
    """

    regex: str | None = None
    literal: str | None = None
    json_string: bool = False
    also_match: tuple[str, ...] = ()
    priority: int = 0

    def __post_init__(self) -> None:
        if (self.regex is None) == (self.literal is None):
            raise ValueError("Terminal needs exactly one of regex= or literal=")

    def describe(self) -> str:
        body = repr(self.literal) if self.literal is not None else f"/{self.regex}/"
        if self.json_string:
            body = f"json_string({body})"
        if self.also_match:
            body += " & " + " & ".join(f"/{p}/" for p in self.also_match)
        return body


Symbol = str  # a nonterminal name or a terminal name


@dataclass
class Grammar:
    """Rules (BNF, no EBNF operators: use :class:`GrammarBuilder` helpers).

    ``rules[name]`` is a list of alternatives, each a tuple of symbol names;
    an empty tuple is the empty string.  Every name is either a key of
    ``rules`` (nonterminal) or of ``terminals``.
    """

    start: str
    rules: dict[str, list[tuple[Symbol, ...]]] = field(default_factory=dict)
    terminals: dict[str, Terminal] = field(default_factory=dict)
    ignore: list[str] = field(default_factory=list)
    source: str | None = None  # file name or front-end, for error messages
    # when several terminals match the same lexeme: "union" keeps them all
    # (exact CFG semantics), "priority" keeps the highest priority, literals
    # first (Lark's lexer behaviour; used by the Lark front-end)
    lexeme_conflicts: str = "union"
    # terminals that count as keywords in "priority" resolution besides literals
    # (e.g. Lark's case-insensitive strings, which become regexes)
    keywords: frozenset = frozenset()

    def validate(self) -> None:
        """Reject undefined symbols, unreachable or unproductive rules, empty languages."""
        where = self.source or "grammar"
        if self.start not in self.rules:
            raise GrammarError(f"start rule {self.start!r} is not defined", source=where)
        for name in self.rules:
            if name in self.terminals:
                raise GrammarError(f"{name!r} is both a rule and a terminal", source=where)
        for name, alts in self.rules.items():
            for alt in alts:
                for sym in alt:
                    if sym not in self.rules and sym not in self.terminals:
                        raise GrammarError(f"rule {name!r} uses undefined symbol {sym!r}", source=where)
        for name in self.ignore:
            if name not in self.terminals:
                raise GrammarError(f"%ignore names undefined terminal {name!r}", source=where)
        productive = self.productive_rules()
        if self.start not in productive:
            raise GrammarError(f"the language of {where} is empty: start rule {self.start!r} derives no string",
                               source=where)
        reachable = self.reachable_rules()
        unproductive = sorted(n for n in reachable if n not in productive)
        if unproductive:
            raise GrammarError("rules that can never finish (no finite string derives from them): "
                               + ", ".join(unproductive), source=where)

    def productive_rules(self) -> set[str]:
        productive: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, alts in self.rules.items():
                if name in productive:
                    continue
                for alt in alts:
                    if all(s in self.terminals or s in productive for s in alt):
                        productive.add(name)
                        changed = True
                        break
        return productive

    def nullable_rules(self) -> set[str]:
        """Rules that derive the empty string."""
        nullable: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, alts in self.rules.items():
                if name not in nullable and any(all(s in nullable for s in alt) for alt in alts):
                    nullable.add(name)
                    changed = True
        return nullable

    def reachable_rules(self) -> set[str]:
        seen = {self.start}
        todo = [self.start]
        while todo:
            for alt in self.rules[todo.pop()]:
                for s in alt:
                    if s in self.rules and s not in seen:
                        seen.add(s)
                        todo.append(s)
        return seen

    def unreachable_rules(self) -> list[str]:
        reach = self.reachable_rules()
        return sorted(n for n in self.rules if n not in reach)

    def warn_unreachable(self, display=lambda name: name) -> None:
        """Report rules the start rule never reaches (usually a typo in a user grammar)."""
        unreachable = [display(n) for n in self.unreachable_rules() if "#" not in n]
        if unreachable:
            import warnings
            warnings.warn(f"{self.source or 'grammar'}: rules never reached from {display(self.start)!r}: "
                          + ", ".join(unreachable[:20]), UserWarning, stacklevel=3)

    def to_text(self) -> str:
        """Human-readable dump (debugging, error reports)."""
        lines = [f"start: {self.start}"]
        for name, alts in self.rules.items():
            lines.append(f"{name} ::= " + " | ".join(" ".join(a) or "ε" for a in alts))
        for name, t in self.terminals.items():
            lines.append(f"{name} = {t.describe()}")
        if self.ignore:
            lines.append("%ignore " + " ".join(self.ignore))
        return "\n".join(lines)


class GrammarBuilder:
    """Helpers for front-ends: fresh names, deduplicated terminals, EBNF operators."""

    def __init__(self, source: str | None = None):
        self.rules: dict[str, list[tuple[Symbol, ...]]] = {}
        self.terminals: dict[str, Terminal] = {}
        self.ignore: list[str] = []
        self.source = source
        self._term_by_def: dict[Terminal, str] = {}
        self._counter = 0

    def fresh(self, hint: str = "r") -> str:
        self._counter += 1
        return f"{hint}#{self._counter}"

    def terminal(self, term: Terminal, name: str | None = None) -> str:
        """Register a terminal (deduplicated by definition) and return its name."""
        if name is None and term in self._term_by_def:
            return self._term_by_def[term]
        name = name or self.fresh("T")
        self.terminals[name] = term
        self._term_by_def.setdefault(term, name)
        return name

    def literal(self, text: str) -> str:
        return self.terminal(Terminal(literal=text))

    def regex(self, pattern: str) -> str:
        return self.terminal(Terminal(regex=pattern))

    def rule(self, name: str | None, alternatives: Iterable[Sequence[Symbol]]) -> str:
        name = name or self.fresh()
        self.rules.setdefault(name, []).extend(tuple(a) for a in alternatives)
        return name

    def seq(self, *symbols: Symbol) -> str:
        return self.rule(None, [symbols])

    def alt(self, *symbols: Symbol) -> str:
        return self.rule(None, [(s,) for s in symbols])

    def opt(self, symbol: Symbol) -> str:
        return self.rule(None, [(symbol,), ()])

    def star(self, symbol: Symbol) -> str:
        name = self.fresh("star")
        self.rules[name] = [(name, symbol), ()]  # left recursion: cheap in Earley
        return name

    def plus(self, symbol: Symbol) -> str:
        name = self.fresh("plus")
        self.rules[name] = [(name, symbol), (symbol,)]
        return name

    def separated(self, item: Symbol, sep: Symbol, min_items: int = 0) -> str:
        """``item (sep item)*`` (or empty when ``min_items == 0``)."""
        tail = self.star(self.seq(sep, item))
        one = self.seq(item, tail)
        return one if min_items >= 1 else self.opt(one)

    def build(self, start: str) -> Grammar:
        g = Grammar(start=start, rules=self.rules, terminals=self.terminals,
                    ignore=list(self.ignore), source=self.source)
        g.validate()
        return g
