"""A persistent Earley parser over lexemes.

Each :class:`EarleySet` is immutable once built and points at the sets its
items started in, so a parser state is just a reference to its latest set:
rollback and fork are free, and ``advance`` results are memoized on the set
(a step already explored while computing a mask is reused when the token is
actually accepted).  Nullable nonterminals use the Aycock-Horspool fix.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass


@dataclass(frozen=True)
class Production:
    lhs: int
    rhs: tuple[int, ...]  # nonterminal n >= 0, terminal t encoded as -(t + 1)


class ParserTables:
    """Grammar in integer form plus what the parser precomputes."""

    def __init__(self, productions: list[Production], n_nonterminals: int, start: int,
                 ignore: frozenset[int], terminal_priority: list[int] | None = None,
                 terminal_is_literal: list[bool] | None = None, resolve_conflicts: bool = False):
        self.productions = productions
        self.start = start
        self.ignore = ignore
        self.rhs: list[tuple[int, ...]] = [p.rhs for p in productions]  # flat lists: faster than attributes
        self.lhs: list[int] = [p.lhs for p in productions]
        self.by_lhs: list[list[int]] = [[] for _ in range(n_nonterminals)]
        for i, p in enumerate(productions):
            self.by_lhs[p.lhs].append(i)
        self.nullable = self._nullable(n_nonterminals)
        self.terminal_priority = terminal_priority
        self.terminal_is_literal = terminal_is_literal
        self.resolve_conflicts = resolve_conflicts
        # hash-consing: structurally equal sets are one object, so memoized
        # steps and mask caches are shared across different token paths
        self.interned: "weakref.WeakValueDictionary[frozenset, EarleySet]" = weakref.WeakValueDictionary()

    def _nullable(self, n: int) -> list[bool]:
        nullable = [False] * n
        changed = True
        while changed:
            changed = False
            for p in self.productions:
                if not nullable[p.lhs] and all(s >= 0 and nullable[s] for s in p.rhs):
                    nullable[p.lhs] = True
                    changed = True
        return nullable

    def resolve(self, accepted: frozenset[int]) -> frozenset[int]:
        """Which of several terminals matching the same lexeme count (Lark-style priority)."""
        if not self.resolve_conflicts or len(accepted) < 2:
            return accepted
        pr = self.terminal_priority
        best = max(pr[t] for t in accepted)
        kept = [t for t in accepted if pr[t] == best]
        lits = [t for t in kept if self.terminal_is_literal[t]]
        return frozenset(lits or kept)


class EarleySet:
    __slots__ = ("tables", "items", "_keys", "waiting", "scan_index", "expected", "accepting",
                 "memo", "lexer_start", "depth", "mask_cache", "__weakref__")

    def __init__(self, tables: ParserTables, kernel: list[tuple[int, int, "EarleySet"]], depth: int):
        self.tables = tables
        self.items: list[tuple[int, int, EarleySet]] = []
        self._keys: set[tuple[int, int, int]] = set()
        self.waiting: dict[int, list[tuple[int, int, EarleySet]]] = {}
        self.scan_index: dict[int, list[tuple[int, int, EarleySet]]] = {}
        self.memo: dict[frozenset[int], EarleySet | None] = {}
        self.lexer_start: int | None = None
        self.mask_cache: dict = {}
        self.depth = depth
        self._closure(kernel)
        self.expected = frozenset(self.scan_index)
        start = tables.start
        self.accepting = any(
            tables.productions[p].lhs == start and d == len(tables.productions[p].rhs) and o.depth == 0
            for p, d, o in self.items)

    @classmethod
    def initial(cls, tables: ParserTables) -> "EarleySet":
        s = cls.__new__(cls)
        # items of the initial set originate in the set itself
        s.tables = tables
        s.items, s._keys, s.waiting, s.scan_index, s.memo = [], set(), {}, {}, {}
        s.lexer_start = None
        s.mask_cache = {}
        s.depth = 0
        s._closure([(p, 0, s) for p in tables.by_lhs[tables.start]])
        s.expected = frozenset(s.scan_index)
        s.accepting = any(tables.productions[p].lhs == tables.start and d == len(tables.productions[p].rhs)
                          for p, d, o in s.items)
        return s

    def _closure(self, kernel) -> None:
        tables = self.tables
        rhs_of = tables.rhs
        lhs_of = tables.lhs
        nullable = tables.nullable
        by_lhs = tables.by_lhs
        keys = self._keys
        items = self.items
        waiting = self.waiting
        scan_index = self.scan_index
        agenda: list = []

        def add(item):
            key = (item[0], item[1], id(item[2]))
            if key not in keys:
                keys.add(key)
                items.append(item)
                agenda.append(item)

        for it in kernel:
            add(it)
        predicted: set[int] = set()
        while agenda:
            item = agenda.pop()
            p, dot, origin = item
            rhs = rhs_of[p]
            if dot == len(rhs):
                if origin is self:
                    continue  # empty derivation: handled by the nullable shortcut
                for (wp, wd, wo) in origin.waiting.get(lhs_of[p], ()):
                    add((wp, wd + 1, wo))
                continue
            sym = rhs[dot]
            if sym >= 0:
                w = waiting.get(sym)
                if w is None:
                    waiting[sym] = [item]
                else:
                    w.append(item)
                if sym not in predicted:
                    predicted.add(sym)
                    for q in by_lhs[sym]:
                        add((q, 0, self))
                if nullable[sym]:
                    add((p, dot + 1, origin))
            else:
                t = -sym - 1
                lst = scan_index.get(t)
                if lst is None:
                    scan_index[t] = [item]
                else:
                    lst.append(item)

    def structural_key(self) -> frozenset:
        rhs_of = self.tables.rhs
        key = {(p, d, 0 if o is self else id(o)) for (p, d, o) in self.items if d < len(rhs_of[p])}
        key.add(("accepting", self.accepting))
        return frozenset(key)

    def advance(self, terminals: frozenset[int]) -> "EarleySet | None":
        """The set after a lexeme matched by ``terminals``; None if none is expected.

        Terminals listed in the grammar's ``ignore`` leave the parser unchanged
        when no parser terminal matched the lexeme.
        """
        if terminals in self.memo:
            return self.memo[terminals]
        tables = self.tables
        chosen = tables.resolve(frozenset(t for t in terminals if t in self.scan_index))
        kernel = []
        for t in chosen:
            for (p, d, o) in self.scan_index[t]:
                kernel.append((p, d + 1, o))
        if kernel:
            kkey = frozenset((p, d, id(o)) for (p, d, o) in kernel)
            nxt = tables.interned.get(kkey)
            if nxt is None:
                fresh = EarleySet(tables, kernel, self.depth + 1)
                # completed items only matter through the completions already done,
                # so sets equal on their pending items behave identically from here on
                skey = fresh.structural_key()
                nxt = tables.interned.get(skey)
                if nxt is None:
                    nxt = fresh
                    tables.interned[skey] = nxt
                tables.interned[kkey] = nxt
        elif terminals & tables.ignore:
            nxt = self
        else:
            nxt = None
        self.memo[terminals] = nxt
        return nxt
