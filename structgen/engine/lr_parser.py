"""A persistent GLR parser state over lexemes: a set of hash-consed LR stacks.

This is the per-token side of the GLR mask path (``lr_walk.py`` computes
masks from the same state in one numba call).  :class:`LRSet` offers the
interface of :class:`~structgen.engine.earley.EarleySet` (``advance``,
``expected``, ``accepting``, ``lexer_start``, ``forget_transitions``), so the lexer
glue, the matcher and jump-forward work on either parser unchanged.

Stacks are linked lists of interned :class:`StackNode` objects, so equal
stacks are one object, a set of stacks is a hashable value, rollback and fork
are free, and whatever is memoized on a node or set is shared across token
paths.  Every set also remembers one lexeme path that reached it (``via``),
which is enough to rebuild an equivalent Earley set on demand: the future
language of a parser state depends only on its stacks, so any path to them
gives the same masks.  That is the exact fallback when a state is too
ambiguous for the GLR path (more than ``MAX_STACKS`` stacks).
"""
from __future__ import annotations


from .earley import _MISSING, STATE_SERIALS, EarleySet, ParserTables
from .intern import WeakInternTable
from .lr_tables import LRTables

MAX_STACKS = 64
MAX_SIM_NODES = 4096   # nodes one reduction search may visit (cyclic nullable grammars grow stacks)


class LRFallback(Exception):
    """This state needs the Earley parser (too many stacks or an unbounded reduction search)."""


class StackNode:
    __slots__ = ("state", "parent", "depth", "shift_memo", "expected", "accepting", "__weakref__")

    def __init__(self, state: int, parent: "StackNode | None"):
        self.state = state
        self.parent = parent
        self.depth = 0 if parent is None else parent.depth + 1
        self.shift_memo: dict[int, tuple[StackNode, ...] | None] = {}
        self.expected: frozenset[int] | None = None
        self.accepting: bool | None = None

    def forget_transitions(self) -> None:
        """Drop the shift memo: it is what keeps successor nodes alive (see CompiledGrammar.cut_memos)."""
        self.shift_memo = {}

    def states(self) -> list[int]:
        """LR states from the bottom of the stack to this node."""
        out = []
        n = self
        while n is not None:
            out.append(n.state)
            n = n.parent
        out.reverse()
        return out


class GLRContext:
    """Tables plus the intern pools shared by every state of one compiled grammar."""

    def __init__(self, lr: LRTables, earley: ParserTables):
        self.lr = lr
        self.earley = earley
        self.nodes = WeakInternTable()   # (state, id(parent)) -> StackNode
        self.sets = WeakInternTable()    # sorted ids of the stacks -> LRSet
        self.root = self.node(0, None)
        # candidate terminals per state: everything a state can shift (a reduction
        # search visits other states, so a node's candidates are collected per search)
        self._shift = lr.shift
        self._goto = lr.goto
        self._reductions = lr.reductions
        self._follow = lr.follow_sets
        self._lhs = lr.prod_lhs.tolist()
        self._len = lr.prod_len.tolist()
        self._follow_bits = [sum(1 << t for t in f) for f in lr.follow_sets]

    def node(self, state: int, parent: StackNode | None) -> StackNode:
        key = (state, id(parent))
        ref = self.nodes.data.get(key)   # WeakInternTable.get inlined: this runs on every GLR step
        n = None if ref is None else ref()
        if n is None:
            n = StackNode(state, parent)
            self.nodes.put(key, n)
        return n

    # ----- the reference GLR step ---------------------------------------------------
    def _reduce(self, n: StackNode, p: int) -> StackNode | None:
        """The stack after reducing production ``p`` on top of ``n`` (None: no goto)."""
        anc = n
        for _ in range(self._len[p]):
            anc = anc.parent
        g = self._goto[anc.state].get(self._lhs[p])
        return None if g is None else self.node(g, anc)

    def _reduce_closure(self, start: StackNode, t: int | None) -> list[StackNode]:
        """Every configuration reachable from ``start`` by reductions allowed before ``t``.

        ``t=None`` ignores lookaheads (used to collect candidate terminals).
        """
        seen = {id(start): start}
        todo = [start]
        follow = self._follow
        while todo:
            n = todo.pop()
            for p in self._reductions[n.state]:
                a = self._lhs[p]
                if t is not None and t not in follow[a]:
                    continue
                if p == 0:
                    continue  # accepting: only meaningful for END, see can_accept
                nxt = self._reduce(n, p)
                if nxt is None:
                    continue
                if id(nxt) not in seen:
                    seen[id(nxt)] = nxt
                    todo.append(nxt)
                    if len(seen) > MAX_SIM_NODES:
                        raise LRFallback("reduction search too large")
        return list(seen.values())

    def shift(self, n: StackNode, t: int) -> tuple[StackNode, ...]:
        """Stacks after shifting terminal ``t`` onto ``n`` (empty: ``t`` cannot come next)."""
        got = n.shift_memo.get(t)
        if got is not None:
            return got
        out: dict[int, StackNode] = {}
        for c in self._reduce_closure(n, t):
            s2 = self._shift[c.state].get(t)
            if s2 is not None:
                m = self.node(s2, c)
                out[id(m)] = m
        res = tuple(sorted(out.values(), key=id))
        n.shift_memo[t] = res
        return res

    def expected(self, n: StackNode) -> frozenset[int]:
        """Terminals that can be shifted next on stack ``n``, exactly.

        One reduction search in which every configuration carries the
        lookaheads still allowed on the way to it (FOLLOW sets intersected, as
        an int bitset); a terminal is expected iff a configuration shifts it
        with its bit set.  Configurations reached again with new bits are
        explored again (intersection distributes over union, so this is exact).
        """
        if n.expected is None:
            if not self._reductions[n.state]:
                n.expected = frozenset(self._shift[n.state])   # nothing to reduce: every shift is exact
            else:
                fb = self._follow_bits
                carried = {id(n): -1}
                keep = {id(n): n}
                todo = [n]
                out: set[int] = set()
                while todo:
                    x = todo.pop()
                    bits = carried[id(x)]
                    for t in self._shift[x.state]:
                        if (bits >> t) & 1:
                            out.add(t)
                    for p in self._reductions[x.state]:
                        if p == 0:
                            continue
                        a = self._lhs[p]
                        c = bits & fb[a]
                        if not c:
                            continue
                        y = self._reduce(x, p)
                        if y is None:
                            continue
                        old = carried.get(id(y), 0)
                        if c & ~old:
                            carried[id(y)] = old | c
                            keep[id(y)] = y
                            todo.append(y)
                            if len(keep) > MAX_SIM_NODES:
                                raise LRFallback("reduction search too large")
                n.expected = frozenset(out)
        return n.expected

    def can_accept(self, n: StackNode) -> bool:
        """The input may end here (production 0 reducible on end-of-input)."""
        if n.accepting is None:
            end = self.lr.end
            ok = False
            for c in self._reduce_closure(n, end):
                if 0 in self._reductions[c.state] and end in self._follow[self._lhs[0]]:
                    ok = True
                    break
            n.accepting = ok
        return n.accepting

    def initial(self) -> "LRSet":
        return self.make_set((self.root,), None, None)

    def make_set(self, stacks: tuple[StackNode, ...], prev: "LRSet | None", via: frozenset[int] | None) -> "LRSet":
        key = tuple(sorted(id(s) for s in stacks))
        got = self.sets.get(key)
        if got is None:
            got = LRSet(self, tuple(sorted(stacks, key=id)), prev, via)
            self.sets.put(key, got)
        return got


class LRSet:
    """One parser state: the stacks alive after the lexemes so far (usually one)."""

    __slots__ = ("ctx", "stacks", "_expected", "_accepting", "memo", "lexer_start",
                 "kernel_input", "kernel_stacks", "_prev", "_via", "_earley", "serial", "__weakref__")

    def __init__(self, ctx: GLRContext, stacks: tuple[StackNode, ...], prev: "LRSet | None",
                 via: frozenset[int] | None):
        self.ctx = ctx
        self.stacks = stacks
        self.memo: dict[frozenset[int], object] = {}
        self.serial = next(STATE_SERIALS)
        self.lexer_start: int | None = None
        self.kernel_input = None   # packed stacks for the mask kernel (CompiledGrammar._glr_inputs)
        self.kernel_stacks = None  # the complete stacks, packed (CompiledGrammar._full_stacks)
        self._prev = prev
        self._via = via
        self._earley: EarleySet | None = None
        self._expected: frozenset[int] | None = None
        self._accepting: bool | None = None

    @property
    def expected(self) -> frozenset[int]:
        """Terminals some stack can shift next (computed on first use: EOS checks never need it)."""
        if self._expected is None:
            try:
                exp: set[int] = set()
                for s in self.stacks:
                    exp |= self.ctx.expected(s)
                self._expected = frozenset(exp)
            except LRFallback:
                self._expected = self.earley().expected
        return self._expected

    @property
    def accepting(self) -> bool:
        if self._accepting is None:
            try:
                self._accepting = any(self.ctx.can_accept(s) for s in self.stacks)
            except LRFallback:
                self._accepting = self.earley().accepting
        return self._accepting

    def advance(self, terminals: frozenset[int]):
        """The state after a lexeme matched by ``terminals`` (same rules as ``EarleySet.advance``).

        Returns an :class:`LRSet`, or an :class:`EarleySet` when the result is
        too ambiguous for the GLR path, or None when no terminal fits.
        """
        memo = self.memo
        got = memo.get(terminals, _MISSING)   # one lookup: another thread may cut the memos between two
        if got is not _MISSING:
            return got
        ctx = self.ctx
        tables = ctx.earley
        chosen = tables.resolve(frozenset(t for t in terminals if t in self.expected))
        if self._earley is not None and self._expected is self._earley.expected:
            nxt = self._earley.advance(terminals)   # this state already fell back to Earley
        elif chosen:
            try:
                out: dict[int, StackNode] = {}
                for s in self.stacks:
                    for t in chosen:
                        for m in ctx.shift(s, t):
                            out[id(m)] = m
                if len(out) > MAX_STACKS:
                    raise LRFallback("too many stacks")
                nxt = ctx.make_set(tuple(out.values()), self, chosen)
            except LRFallback:
                nxt = self.earley().advance(terminals)
        elif terminals & tables.ignore:
            nxt = self
        else:
            nxt = None
        memo[terminals] = nxt
        return nxt

    def forget_transitions(self) -> None:
        """Drop the lexeme memo: it is what keeps successor sets alive (see CompiledGrammar.cut_memos)."""
        self.memo = {}

    def earley(self) -> EarleySet:
        """An Earley set with the same future language (rebuilt along ``via``)."""
        if self._earley is None:
            chain = []
            s: LRSet | None = self
            while s is not None and s._earley is None:
                chain.append(s)
                s = s._prev
            cur = s._earley if s is not None else None
            for node in reversed(chain):
                if node._prev is None:
                    cur = EarleySet.initial(node.ctx.earley)
                else:
                    cur = cur.advance(node._via)
                    if cur is None:  # cannot happen for an exact parser
                        raise AssertionError("GLR and Earley parsers disagree on a lexeme path")
                node._earley = cur
        return self._earley

    @property
    def depth(self) -> int:
        return max(s.depth for s in self.stacks)
