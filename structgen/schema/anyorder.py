"""JSON objects whose members may come in any order, exactly, as a lazy rule family.

An object's language in any order needs one parser state per *set* of
declared keys already seen (so that no key repeats and every required one
comes), times the member count when ``minProperties``/``maxProperties``
count: 2^n states for n declared keys.  Building them all is exponential, but
a parse visits one state per member, so the states are generated on demand
(:class:`structgen.grammar.ir.LazyRules`): the Earley parser asks for a
state's alternatives the first time it predicts it.

States, for U = bitmask of the declared keys seen and c = members so far
(capped once the count no longer matters):

* ``R(U, c)``: after ``{`` (c = 0) or after a member: ``}`` if the object may
  end here, else (c > 0) ``,`` then ``M(U, c)``; at c = 0 the members of
  ``M(U, 0)`` directly (no separator before the first member);
* ``M(U, c)``: one member (a declared key not in U, or an undeclared key whose
  terminal excludes every declared name), then ``R`` of the successor state.

``}`` is part of ``R`` so no family nonterminal is nullable: Earley sets stay
constant-size while the object grows, and the completion chain runs once,
when the object closes.  Only states from which a valid end is reachable are
ever named (no dead ends, so masks stay exact).
"""
from __future__ import annotations

import hashlib

from ..grammar.ir import LazyRules, Symbol

INF = 1 << 60


class AnyOrderObject(LazyRules):
    """The members of one object (between ``{`` and ``}``, ``}`` included) in any order."""

    def __init__(self, prefix_hint: str, keys: list[str], members: list[Symbol | None], required: frozenset[str],
                 extra: Symbol | None, min_props: int, max_props: int | None, sep: Symbol, close: Symbol):
        self.keys = list(keys)
        self.members: list[Symbol | None] = list(members)
        self.required_mask = sum(1 << i for i, k in enumerate(self.keys) if k in required)
        self.extra = extra
        self.min_props, self.max_props = min_props, max_props
        self.cap = max_props if max_props is not None else max(min_props, 1)
        self.sep, self.close = sep, close
        self._alts: dict[str, list[tuple[Symbol, ...]]] = {}
        digest = hashlib.sha1(self._body().encode("utf-8")).hexdigest()[:10]
        self.prefix = f"{prefix_hint}.{digest}"
        self._avail = self._avail_mask(self.members)

    # ------------------------------------------------------------ state algebra
    @staticmethod
    def _avail_mask(members: list[Symbol | None]) -> int:
        return sum(1 << i for i, m in enumerate(members) if m is not None)

    def _next_count(self, c: int) -> int | None:
        if self.max_props is not None and c + 1 > self.max_props:
            return None
        return min(c + 1, self.cap)

    def _productive(self, used: int, c: int, avail: int, extra: bool) -> bool:
        """Some valid end is reachable from (used, c) with the members in ``avail``."""
        missing = self.required_mask & ~used
        if missing & ~avail:
            return False
        lo = max(bin(missing).count("1"), self.min_props - c)
        hi = INF if self.max_props is None else self.max_props - c
        more = INF if extra else bin(avail & ~used).count("1")
        return lo <= min(hi, more)

    def _accepting(self, used: int, c: int) -> bool:
        return (self.required_mask & ~used) == 0 and c >= self.min_props

    def _name(self, kind: str, used: int, c: int) -> str:
        return f"{self.prefix}/{kind}{used:x}.{c}"

    def _parse(self, name: str) -> tuple[str, int, int]:
        body = name.split("/", 1)[1]
        kind, rest = body[0], body[1:]
        used, c = rest.split(".")
        return kind, int(used, 16), int(c)

    # ------------------------------------------------------------ LazyRules
    def entry(self) -> Symbol | None:
        """The state after ``{``; None if no valid object exists."""
        if not self._productive(0, 0, self._avail, self.extra is not None):
            return None
        return self._name("R", 0, 0)

    def alternatives(self, name: Symbol) -> list[tuple[Symbol, ...]]:
        alts = self._alts.get(name)
        if alts is None:
            kind, used, c = self._parse(name)
            alts = self._r_alts(used, c) if kind == "R" else self._m_alts(used, c)
            self._alts[name] = alts
        return alts

    def _r_alts(self, used: int, c: int) -> list[tuple[Symbol, ...]]:
        alts: list[tuple[Symbol, ...]] = []
        if self._accepting(used, c):
            alts.append((self.close,))
        if c == 0:
            alts += self._m_alts(used, c)
        elif self._m_alts(used, c):
            alts.append((self.sep, self._name("M", used, c)))
        return alts

    def _m_alts(self, used: int, c: int) -> list[tuple[Symbol, ...]]:
        nc = self._next_count(c)
        if nc is None:
            return []
        alts: list[tuple[Symbol, ...]] = []
        avail, extra = self._avail, self.extra is not None
        for i, m in enumerate(self.members):
            bit = 1 << i
            if m is not None and not used & bit and self._productive(used | bit, nc, avail, extra):
                alts.append((m, self._name("R", used | bit, nc)))
        if extra and self._productive(used, nc, avail, extra):
            alts.append((self.extra, self._name("R", used, nc)))
        return alts

    def static_symbols(self) -> set[Symbol]:
        out = {m for m in self.members if m is not None} | {self.sep, self.close}
        if self.extra is not None:
            out.add(self.extra)
        return out

    def productive(self, name: Symbol, productive: set[Symbol]) -> bool:
        _, used, c = self._parse(name)
        avail = self._avail_mask([m if m in productive else None for m in self.members])
        return self._productive(used, c, avail, self.extra is not None and self.extra in productive)

    def restrict(self, productive: set[Symbol]) -> None:
        self.members = [m if m is not None and m in productive else None for m in self.members]
        if self.extra is not None and self.extra not in productive:
            self.extra = None
        self._avail = self._avail_mask(self.members)
        self._alts.clear()

    def _body(self) -> str:
        return (f"any-order object keys={self.keys!r} members={self.members!r} required_mask={self.required_mask} "
                f"extra={self.extra!r} min={self.min_props} max={self.max_props} sep={self.sep} close={self.close}")

    def describe(self) -> str:
        return self._body()

    def eager_states(self, budget: int) -> int | None:
        """Number of states a static (eager) encoding would need, or None past ``budget``."""
        n_avail = bin(self._avail).count("1")
        if self.max_props is None and n_avail > 1 and 2 << n_avail > budget:
            return None   # every subset of the available keys is an R and an M state: too many
        seen = set()
        todo = [("R", 0, 0)] if self.entry() is not None else []
        while todo:
            st = todo.pop()
            if st in seen:
                continue
            seen.add(st)
            if len(seen) > budget:
                return None
            for alt in (self._r_alts(st[1], st[2]) if st[0] == "R" else self._m_alts(st[1], st[2])):
                last = alt[-1]
                if "/" in last and last.startswith(self.prefix + "/"):
                    todo.append(self._parse(last))
        return len(seen)
