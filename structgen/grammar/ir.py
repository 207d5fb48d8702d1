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
    (language intersection, e.g. ``pattern`` together with ``maxLength``);
    ``not_match`` lists full-match patterns the text must *not* match
    (complements, e.g. object keys that no ``patternProperties`` pattern finds).
    ``dialect``: how ``regex`` reads (``structgen.regex.parse``): "ecmascript" (JSON Schema,
    GBNF, the regex front-end) or "python" (Lark's terminals, compiled by Python's ``re``).
    ``shortest=True``: ``regex`` has a lazy quantifier and is read as a lexer reads it: the
    lexeme ends where the lazy part first matches (Lark's ``/".*?"/`` is a string up to its
    first closing quote); see ``structgen.regex.shortest`` for the forms this covers.
    ``canonical=True`` (with ``json_string``): the spellings JSON serializers
    write: a character they never escape (printable ASCII other than
    ``" \\ / < > & '``) is never accepted as a ``\\u`` escape (``\\u0041`` for
    ``A``); every other spelling stays.  For formats whose characters are all
    such (date-time, uuid, ...) that is the raw spelling only, and their DFA is
    about six times smaller; for "any key but these" terminals the escape
    paths no longer depend on the excluded keys' letters.
    """

    regex: str | None = None
    literal: str | None = None
    json_string: bool = False
    also_match: tuple[str, ...] = ()
    not_match: tuple[str, ...] = ()
    priority: int = 0
    canonical: bool = False
    shortest: bool = False
    dialect: str = "ecmascript"

    def __post_init__(self) -> None:
        if (self.regex is None) == (self.literal is None):
            raise ValueError("Terminal needs exactly one of regex= or literal=")

    def describe(self) -> str:
        body = repr(self.literal) if self.literal is not None else f"/{self.regex}/"
        if self.json_string:
            body = f"json_string{'_canonical' if self.canonical else ''}({body})"
        if self.also_match:
            body += " & " + " & ".join(f"/{p}/" for p in self.also_match)
        if self.not_match:
            body += " & " + " & ".join(f"!/{p}/" for p in self.not_match)
        if self.dialect != "ecmascript":
            body = f"{self.dialect}{body}"
        if self.shortest:
            body = f"shortest({body})"
        return body


Symbol = str  # a nonterminal name or a terminal name


class LazyRules:
    """A family of nonterminals whose alternatives are generated when the parser first predicts them.

    Why: some exact languages need one nonterminal per combination of facts,
    e.g. "the rest of an object, given the set of keys already seen" (a JSON
    object whose keys may come in any order).  Building every combination is
    exponential; a parse only ever visits a few, so they are materialized on
    demand (the Earley parser calls :meth:`alternatives` once per visited name).

    Every nonterminal of the family is named ``prefix + "/" + state``; ``prefix``
    must not contain ``"/"``.  Contract for subclasses:

    * :meth:`alternatives` is deterministic and uses only names of this
      family and the static symbols listed by :meth:`static_symbols`;
    * no family nonterminal derives the empty string (the parser checks);
    * after :meth:`restrict`, every family nonterminal an alternative names
      derives some finite string (no dead ends: masks stay exact);
    * :meth:`describe` determines the family's language completely (it feeds
      grammar fingerprints and caches).
    """

    prefix: str = "lazy"

    def alternatives(self, name: Symbol) -> list[tuple[Symbol, ...]]:
        raise NotImplementedError

    def static_symbols(self) -> set[Symbol]:
        """Every static rule or terminal name an alternative may use."""
        raise NotImplementedError

    def productive(self, name: Symbol, productive: set[Symbol]) -> bool:
        """Whether ``name`` derives a finite string when the static rules in ``productive`` do."""
        raise NotImplementedError

    def restrict(self, productive: set[Symbol]) -> None:
        """Stop using static symbols outside ``productive`` (called once the grammar is pruned)."""

    def describe(self) -> str:
        raise NotImplementedError


@dataclass
class Grammar:
    """Rules (BNF, no EBNF operators: use :class:`GrammarBuilder` helpers).

    ``rules[name]`` is a list of alternatives, each a tuple of symbol names;
    an empty tuple is the empty string.  Every name is either a key of
    ``rules`` (nonterminal), a name of a ``lazy`` rule family (nonterminal
    whose alternatives are generated on demand, see :class:`LazyRules`), or a
    key of ``terminals``.  Engines that need every production up front (an LR
    automaton) must check :meth:`has_lazy_rules` first.
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
    # rule families materialized on demand, by prefix (see LazyRules)
    lazy: dict[str, LazyRules] = field(default_factory=dict)

    # ------------------------------------------------------------ lazy rule families
    def has_lazy_rules(self) -> bool:
        """True if some nonterminals get their productions only when the parser reaches them."""
        return bool(self.lazy)

    def lazy_family(self, name: Symbol) -> LazyRules | None:
        if not self.lazy or "/" not in name:
            return None
        return self.lazy.get(name.split("/", 1)[0])

    def is_nonterminal(self, name: Symbol) -> bool:
        return name in self.rules or self.lazy_family(name) is not None

    def alternatives(self, name: Symbol) -> list[tuple[Symbol, ...]]:
        """The alternatives of a static or lazy nonterminal."""
        alts = self.rules.get(name)
        if alts is not None:
            return alts
        fam = self.lazy_family(name)
        if fam is None:
            raise KeyError(name)
        return fam.alternatives(name)

    def lazy_entries(self) -> list[Symbol]:
        """Lazy nonterminals named by static rules (where parsing enters a family), in rule order."""
        if not self.lazy:
            return []
        out: dict[Symbol, None] = {}
        for alts in self.rules.values():
            for alt in alts:
                for s in alt:
                    if s not in self.rules and s not in self.terminals and self.lazy_family(s) is not None:
                        out[s] = None
        return list(out)

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
                    if sym not in self.rules and sym not in self.terminals and self.lazy_family(sym) is None:
                        raise GrammarError(f"rule {name!r} uses undefined symbol {sym!r}", source=where)
        for prefix, fam in self.lazy.items():
            if "/" in prefix or fam.prefix != prefix:
                raise GrammarError(f"lazy rule family {prefix!r}: prefix mismatch or '/' in it", source=where)
            if prefix in self.rules or prefix in self.terminals:
                raise GrammarError(f"lazy rule family {prefix!r} clashes with a rule or terminal", source=where)
            for sym in fam.static_symbols():
                if sym not in self.rules and sym not in self.terminals:
                    raise GrammarError(f"lazy rule family {prefix!r} uses undefined symbol {sym!r}", source=where)
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
        """Static rules that derive some finite string (lazy nonterminals answer for themselves,
        given the static rules found productive so far: a monotone fixpoint)."""
        productive: set[str] = set()
        lazy_ok: set[str] = set()

        def ok(s: str) -> bool:
            if s in self.terminals or s in productive or s in lazy_ok:
                return True
            fam = self.lazy_family(s) if s not in self.rules else None
            if fam is not None and fam.productive(s, productive):
                lazy_ok.add(s)
                return True
            return False

        changed = True
        while changed:
            changed = False
            for name, alts in self.rules.items():
                if name in productive:
                    continue
                for alt in alts:
                    if all(ok(s) for s in alt):
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

    def terminal_followers(self) -> dict[str, set[str]]:
        """For each terminal, the terminals that can come right after it in a rule ('' = end of
        input; ignored terminals, which may come anywhere, are not added).  Static rules only."""
        nullable = self.nullable_rules()
        first: dict[str, set[str]] = {t: {t} for t in self.terminals}
        for n in self.rules:
            first[n] = set()
        changed = True
        while changed:
            changed = False
            for name, alts in self.rules.items():
                for alt in alts:
                    for s in alt:
                        before = len(first[name])
                        first[name] |= first[s]
                        changed |= len(first[name]) != before
                        if s not in nullable:
                            break
        follow: dict[str, set[str]] = {s: set() for s in list(self.rules) + list(self.terminals)}
        follow[self.start].add("")
        changed = True
        while changed:
            changed = False
            for name, alts in self.rules.items():
                for alt in alts:
                    for i, s in enumerate(alt):
                        before = len(follow[s])
                        rest_nullable = True
                        for s2 in alt[i + 1:]:
                            follow[s] |= first[s2]
                            if s2 not in nullable:
                                rest_nullable = False
                                break
                        if rest_nullable:
                            follow[s] |= follow[name]
                        changed |= len(follow[s]) != before
        return {t: follow[t] for t in self.terminals}

    def reachable_rules(self) -> set[str]:
        """Static rules reachable from the start (through lazy families: every symbol they may use)."""
        seen = {self.start}
        todo = [self.start]
        families: set[str] = set()
        while todo:
            for alt in self.rules[todo.pop()]:
                for s in alt:
                    if s in self.rules:
                        if s not in seen:
                            seen.add(s)
                            todo.append(s)
                    elif s not in self.terminals:
                        fam = self.lazy_family(s)
                        if fam is not None and fam.prefix not in families:
                            families.add(fam.prefix)
                            for t in fam.static_symbols():
                                if t in self.rules and t not in seen:
                                    seen.add(t)
                                    todo.append(t)
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
        for prefix in sorted(self.lazy):
            lines.append(f"%lazy {prefix}/* ::= {self.lazy[prefix].describe()}")
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
