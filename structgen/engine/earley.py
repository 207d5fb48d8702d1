"""A persistent Earley parser over lexemes.

Each :class:`EarleySet` is immutable once built and points at the sets its
items started in, so a parser state is just a reference to its latest set:
rollback and fork are free, and ``advance`` results are memoized on the set
(a step already explored while computing a mask is reused when the token is
actually accepted).  Nullable nonterminals use the Aycock-Horspool fix.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

from ..errors import GrammarError
from .intern import WeakInternTable


@dataclass(frozen=True)
class Production:
    lhs: int
    rhs: tuple[int, ...]  # nonterminal n >= 0, terminal t encoded as -(t + 1)


class LazyNonterminals:
    """Integer view of a grammar's lazy rule families (``Grammar.lazy``) for :class:`ParserTables`.

    Nonterminal ids of lazy names are allocated when a materialized production
    first names them; their productions are asked from the grammar when the
    parser first predicts them (see :meth:`ParserTables.materialize`).
    """

    def __init__(self, grammar, nt_ids: dict[str, int], terminal_ids: dict[str, int]):
        self.grammar = grammar
        self.nt_ids = nt_ids                     # shared with the caller; grows with lazy names
        self.terminal_ids = terminal_ids
        self.names: list[str | None] = [None] * len(nt_ids)
        for name, i in nt_ids.items():
            self.names[i] = name
        self.pending: set[int] = {i for name, i in nt_ids.items()
                                  if name not in grammar.rules and grammar.lazy_family(name) is not None}
        self.lazy_ids: set[int] = set(self.pending)   # pending or materialized

    def symbol(self, name: str) -> int:
        """Parser symbol of a name: nonterminal id (allocating one for a new lazy name) or -(terminal + 1)."""
        i = self.nt_ids.get(name)
        if i is not None:
            return i
        t = self.terminal_ids.get(name)
        if t is not None:
            return -(t + 1)
        if self.grammar.lazy_family(name) is None:
            raise GrammarError(f"lazy rule produced undefined symbol {name!r}", source=self.grammar.source)
        i = self.nt_ids[name] = len(self.names)
        self.names.append(name)
        self.pending.add(i)
        self.lazy_ids.add(i)
        return i

    def productions(self, nt: int) -> list[tuple[int, ...]]:
        return [tuple(self.symbol(s) for s in alt) for alt in self.grammar.alternatives(self.names[nt])]


class ParserTables:
    """Grammar in integer form plus what the parser precomputes.

    With ``lazy``, nonterminals of lazy rule families start without
    productions and are materialized when a prediction bundle first needs
    them; everything below treats materialized ones like static ones.
    """

    def __init__(self, productions: list[Production], n_nonterminals: int, start: int,
                 ignore: frozenset[int], terminal_priority: list[int] | None = None,
                 terminal_is_literal: list[bool] | None = None, resolve_conflicts: bool = False,
                 lazy: LazyNonterminals | None = None):
        self.lazy = lazy
        self._lazy_lock = threading.Lock()
        self.productions = productions
        self.start = start
        self.ignore = ignore
        self.rhs: list[tuple[int, ...]] = [p.rhs for p in productions]  # flat lists: faster than attributes
        self.lhs: list[int] = [p.lhs for p in productions]
        self.by_lhs: list[list[int]] = [[] for _ in range(n_nonterminals)]
        for i, p in enumerate(productions):
            self.by_lhs[p.lhs].append(i)
        self.nullable = self._nullable(n_nonterminals)
        self.own_items, self.pred_closure = self._prediction_bundles(n_nonterminals)
        self._bundles: dict[frozenset[int], PredictionBundle] = {}
        self.terminal_priority = terminal_priority
        self.terminal_is_literal = terminal_is_literal
        self.resolve_conflicts = resolve_conflicts
        # hash-consing: structurally equal sets are one object, so memoized
        # steps and mask caches are shared across different token paths
        self.interned = WeakInternTable()   # frozen item set -> EarleySet

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

    def _prediction_bundles(self, n: int):
        """What predicting a nonterminal adds to a set, computed once per grammar.

        Items that originate in the set being built depend only on which
        nonterminals it predicts, so for each nonterminal N we list its own
        items (every production of N, with the dot advanced over nullable
        prefixes) as (production, dot, symbol after the dot or None), and the
        nonterminals predicting N predicts in turn (N included).
        """
        own: list[list[tuple[int, int, int | None]]] = [[] for _ in range(n)]
        direct: list[set[int]] = [set() for _ in range(n)]
        for q in range(len(self.rhs)):
            self._own_items(q, own[self.lhs[q]], direct[self.lhs[q]])
        self._direct = direct
        closure: list[tuple[int, ...]] = [self._closure_of(a) for a in range(n)]
        return own, closure

    def _own_items(self, q: int, own: list, direct: set) -> None:
        """Production q's items with the dot after each nullable prefix, and what it predicts."""
        rhs = self.rhs[q]
        for d in range(len(rhs) + 1):
            if d == len(rhs):
                own.append((q, d, None))
                break
            sym = rhs[d]
            own.append((q, d, sym))
            if sym < 0 or not self.nullable[sym]:
                if sym >= 0:
                    direct.add(sym)
                break
            direct.add(sym)

    def _closure_of(self, a: int) -> tuple[int, ...]:
        """Nonterminals predicting ``a`` predicts (``a`` first); unmaterialized lazy ones are leaves."""
        direct = self._direct
        seen = [a]
        seen_set = {a}
        i = 0
        while i < len(seen):
            for b in sorted(direct[seen[i]]):
                if b not in seen_set:
                    seen_set.add(b)
                    seen.append(b)
            i += 1
        return tuple(seen)

    def materialize(self, nt: int) -> None:
        """Give lazy nonterminal ``nt`` its productions (once; thread-safe)."""
        lazy = self.lazy
        with self._lazy_lock:
            if nt not in lazy.pending:
                return
            alts = lazy.productions(nt)       # may allocate ids for new lazy names
            n_now = len(lazy.names)
            while len(self.by_lhs) < n_now:   # new ids: no productions yet, never nullable
                self.by_lhs.append([])
                self.nullable.append(False)
                self.own_items.append([])
                self._direct.append(set())
                self.pred_closure.append((len(self.pred_closure),))
            own: list = []
            direct: set = set()
            for rhs in alts:
                if all(s >= 0 and self.nullable[s] for s in rhs):
                    raise GrammarError(f"lazy nonterminal {lazy.names[nt]!r} derives the empty string "
                                       f"(lazy rule families must not)", source=lazy.grammar.source)
                q = len(self.productions)
                self.productions.append(Production(nt, rhs))
                self.rhs.append(rhs)
                self.lhs.append(nt)
                self.by_lhs[nt].append(q)
                self._own_items(q, own, direct)
            self._direct[nt] = direct
            self.own_items[nt] = own
            self.pred_closure[nt] = self._closure_of(nt)
            lazy.pending.discard(nt)

    def predicted_by(self, seeds) -> set[int]:
        """Every nonterminal predicting ``seeds`` predicts, materializing lazy ones on the way."""
        if self.lazy is None:
            out: set[int] = set()
            for sym in seeds:
                out.update(self.pred_closure[sym])
            return out
        # closures computed before a lazy nonterminal was materialized hold it as a leaf,
        # so every lazy nonterminal met is expanded through its own (current) closure
        pending, lazy_ids = self.lazy.pending, self.lazy.lazy_ids
        out = set()
        todo = list(seeds)
        expanded: set[int] = set()
        while todo:
            a = todo.pop()
            if a in expanded:
                continue
            expanded.add(a)
            if a in pending:
                self.materialize(a)
            for b in self.pred_closure[a]:
                out.add(b)
                if b in lazy_ids and b not in expanded:
                    todo.append(b)
        return out

    def bundle(self, seeds: frozenset[int]) -> "PredictionBundle":
        """The items a set predicts from nonterminals ``seeds``, shared by every such set."""
        b = self._bundles.get(seeds)
        if b is None:
            b = self._bundles[seeds] = PredictionBundle(self, seeds)
        return b

    def resolve(self, accepted: frozenset[int]) -> frozenset[int]:
        """Which of several terminals matching the same lexeme count (Lark-style priority)."""
        if not self.resolve_conflicts or len(accepted) < 2:
            return accepted
        pr = self.terminal_priority
        best = max(pr[t] for t in accepted)
        kept = [t for t in accepted if pr[t] == best]
        lits = [t for t in kept if self.terminal_is_literal[t]]
        return frozenset(lits or kept)


class PredictionBundle:
    """Items born in a set (origin = that set) for a given set of predicted nonterminals.

    They depend only on the nonterminals predicted, never on the set, so they
    are stored once as (production, dot) pairs; the owning set stands in for
    the origin.  This keeps the per-set work proportional to the items that
    come from older sets.
    """
    __slots__ = ("wait", "scan", "expected", "completes_start", "_tables", "_completion")

    def __init__(self, tables: ParserTables, seeds: frozenset[int]):
        self._tables = tables
        self._completion: dict[int, tuple[list[tuple[int, int]], list[int]]] = {}
        predicted = tables.predicted_by(seeds)
        self.wait: dict[int, list[tuple[int, int]]] = {}
        self.scan: dict[int, list[tuple[int, int]]] = {}
        self.completes_start = False
        for nt in sorted(predicted):
            for q, d, nxt in tables.own_items[nt]:
                if nxt is None:
                    self.completes_start |= nt == tables.start
                elif nxt >= 0:
                    self.wait.setdefault(nxt, []).append((q, d))
                else:
                    self.scan.setdefault(-nxt - 1, []).append((q, d))
        self.expected = frozenset(self.scan)

    def completion(self, nt: int) -> tuple[list[tuple[int, int]], list[int]]:
        """What completing ``nt`` does to this bundle's items (same origin throughout).

        Returns the advanced items that are still pending, and every
        nonterminal completed along the way (``nt`` first): unit-production
        chains such as atom -> factor -> term -> expr are resolved once per
        bundle instead of once per parser state.
        """
        res = self._completion.get(nt)
        if res is not None:
            return res
        rhs_of = self._tables.rhs
        lhs_of = self._tables.lhs
        pending: list[tuple[int, int]] = []
        completed = [nt]
        seen = {nt}
        i = 0
        while i < len(completed):
            for (q, d) in self.wait.get(completed[i], ()):
                if d + 1 == len(rhs_of[q]):
                    lhs = lhs_of[q]
                    if lhs not in seen:
                        seen.add(lhs)
                        completed.append(lhs)
                else:
                    pending.append((q, d + 1))
            i += 1
        res = self._completion[nt] = (pending, completed)
        return res


_MISSING = object()   # memo.get default: a memoized None means "no such lexeme here"
# Serial numbers of parser states (Earley and GLR sets), never reused: what mask caches key by, so
# that a cached mask neither keeps its state alive nor gives the GC a container to traverse
STATE_SERIALS = itertools.count(1)


class EarleySet:
    __slots__ = ("tables", "bundle", "waiting", "scan_index", "expected", "accepting",
                 "memo", "lexer_start", "depth", "_pending", "serial", "__weakref__")

    def __init__(self, tables: ParserTables, kernel: list[tuple[int, int, "EarleySet"]], depth: int,
                 seeds: tuple[int, ...] = ()):
        self.tables = tables
        # items from older sets, indexed by the symbol after the dot
        self.waiting: dict[int, list[tuple[int, int, EarleySet]]] = {}
        self.scan_index: dict[int, list[tuple[int, int, EarleySet]]] = {}
        self.memo: dict[frozenset[int], EarleySet | None] = {}
        self.serial = next(STATE_SERIALS)
        self.lexer_start: int | None = None
        self.depth = depth
        self._pending: list[tuple[int, int, int]] = []   # pending items from older sets, as keys
        self._closure(kernel, seeds)

    @classmethod
    def initial(cls, tables: ParserTables) -> "EarleySet":
        return cls(tables, [], 0, seeds=(tables.start,))

    def _closure(self, kernel, seeds) -> None:
        """Complete the items that come from older sets; predictions come as one shared bundle."""
        tables = self.tables
        rhs_of = tables.rhs
        lhs_of = tables.lhs
        nullable = tables.nullable
        start = tables.start
        waiting = self.waiting
        scan_index = self.scan_index
        pending = self._pending
        predicted_from = set(seeds)
        keys: set[tuple[int, int, int]] = set()
        agenda: list = []
        accepting = False
        for item in kernel:
            key = (item[0], item[1], id(item[2]))
            if key not in keys:
                keys.add(key)
                agenda.append(item)
        while agenda:
            item = agenda.pop()
            p, dot, origin = item
            rhs = rhs_of[p]
            if dot == len(rhs):
                bundle_pending, completed = origin.bundle.completion(lhs_of[p])
                if start in completed and origin.depth == 0:
                    accepting = True
                owaiting = origin.waiting
                if owaiting:
                    for c in completed:
                        for (wp, wd, wo) in owaiting.get(c, ()):
                            key = (wp, wd + 1, id(wo))
                            if key not in keys:
                                keys.add(key)
                                agenda.append((wp, wd + 1, wo))
                oid = id(origin)
                for (wp, wd) in bundle_pending:
                    key = (wp, wd, oid)
                    if key not in keys:
                        keys.add(key)
                        agenda.append((wp, wd, origin))
                continue
            pending.append((p, dot, id(origin)))
            sym = rhs[dot]
            if sym >= 0:
                w = waiting.get(sym)
                if w is None:
                    waiting[sym] = [item]
                else:
                    w.append(item)
                predicted_from.add(sym)
                if nullable[sym]:
                    key = (p, dot + 1, id(origin))
                    if key not in keys:
                        keys.add(key)
                        agenda.append((p, dot + 1, origin))
            else:
                t = -sym - 1
                lst = scan_index.get(t)
                if lst is None:
                    scan_index[t] = [item]
                else:
                    lst.append(item)
        self.bundle = bundle = tables.bundle(frozenset(predicted_from))
        self.expected = bundle.expected.union(scan_index) if scan_index else bundle.expected
        self.accepting = accepting or (bundle.completes_start and self.depth == 0)

    def forget_transitions(self) -> None:
        """Drop the lexeme memo: it is what keeps successor sets alive (see CompiledGrammar.cut_memos)."""
        self.memo = {}

    def structural_key(self) -> tuple:
        """Equal keys = equal pending items (those born here are the bundle's)."""
        return (frozenset(self._pending), id(self.bundle), self.accepting)

    def advance(self, terminals: frozenset[int]) -> "EarleySet | None":
        """The set after a lexeme matched by ``terminals``; None if none is expected.

        Terminals listed in the grammar's ``ignore`` leave the parser unchanged
        when no parser terminal matched the lexeme.
        """
        memo = self.memo
        got = memo.get(terminals, _MISSING)   # one lookup: another thread may cut the memos between two
        if got is not _MISSING:
            return got
        tables = self.tables
        expected = self.expected
        chosen = tables.resolve(frozenset(t for t in terminals if t in expected))
        kernel = []
        bscan = self.bundle.scan
        for t in chosen:
            for (p, d, o) in self.scan_index.get(t, ()):
                kernel.append((p, d + 1, o))
            for (q, d) in bscan.get(t, ()):
                kernel.append((q, d + 1, self))
        if kernel:
            # (a lookup by kernel before the closure hits only 1-6% of the time on
            # json/arithmetic/sql replays: not worth its hashing on every miss)
            fresh = EarleySet(tables, kernel, self.depth + 1)
            # completed items only matter through the completions already done,
            # so sets equal on their pending items behave identically from here on
            skey = fresh.structural_key()
            nxt = tables.interned.get(skey)
            if nxt is None:
                nxt = fresh
                tables.interned.put(skey, nxt)
        elif terminals & tables.ignore:
            nxt = self
        else:
            nxt = None
        memo[terminals] = nxt
        return nxt
