"""Set algebra on schema IR nodes: intersection (allOf), complement (not), disjointness (oneOf), membership.

Every operation is exact or raises :class:`Refused`; the compiler turns a
refusal into ``UnsupportedKeywordError`` (strict) or a warning plus a
documented relaxation (non-strict).
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Callable

from .nodes import (ANY, NEVER, AnyNode, Arr, Bool, Const, KINDS, NeverNode, Node, Null, Num, Obj, Ref,
                    Str, Union, canonical, const, kind_of, unconstrained, union)
from .numbers import NumberSpec, frac_lcm
from .strings import length_regex, not_in_set, quote

MAX_UNION = 512


class Refused(Exception):
    """The operation has no exact result representable in the IR."""


def to_fraction(x: Any) -> Fraction:
    return Fraction(repr(x)) if isinstance(x, float) else Fraction(x)


def py_search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error as e:
        raise Refused(f"pattern {pattern!r} cannot be evaluated on a fixed key ({e})") from None


class Algebra:
    """Algebra bound to a reference resolver (``resolve(key) -> Node``) and a depth bound."""

    def __init__(self, resolve: Callable[[str], Node], max_depth: int = 16):
        self.resolve = resolve
        self.max_depth = max_depth

    def _expand(self, node: Ref, depth: int) -> Node:
        if depth > self.max_depth:
            raise Refused(f"reference {node.key} nested deeper than max_depth={self.max_depth} in a combination")
        return self.resolve(node.key)

    # ------------------------------------------------------------ membership
    def member(self, v: Any, n: Node, depth: int = 0) -> bool:
        if isinstance(n, AnyNode):
            return True
        if isinstance(n, NeverNode):
            return False
        if isinstance(n, Ref):
            return self.member(v, self._expand(n, depth), depth + 1)
        if isinstance(n, Union):
            return any(self.member(v, o, depth) for o in n.options)
        if isinstance(n, Const):
            return canonical(v) == n.text
        if kind_of(v) != n.kind:
            return False
        if isinstance(n, (Null, Bool)):
            return True
        if isinstance(n, Num):
            return n.spec.contains(to_fraction(v))
        if isinstance(n, Str):
            if len(v) < n.min_len or (n.max_len is not None and len(v) > n.max_len):
                return False
            for r in n.regexes:
                try:
                    if re.fullmatch(r, v) is None:
                        return False
                except re.error as e:
                    raise Refused(f"cannot evaluate regex {r!r} on a constant ({e})") from None
            return True
        if isinstance(n, Arr):
            if len(v) < n.min_items or (n.max_items is not None and len(v) > n.max_items):
                return False
            for i, x in enumerate(v):
                s = n.prefix[i] if i < len(n.prefix) else n.items
                if not self.member(x, s, depth):
                    return False
            if n.contains is not None:
                c = sum(1 for x in v if self.member(x, n.contains, depth))
                if c < n.min_contains or (n.max_contains is not None and c > n.max_contains):
                    return False
            if n.unique and len({canonical(x) for x in v}) != len(v):
                return False
            return True
        if isinstance(n, Obj):
            if not n.required <= set(v):
                return False
            if len(v) < n.min_props or (n.max_props is not None and len(v) > n.max_props):
                return False
            for k, x in v.items():
                if not self.member(k, n.names, depth):
                    return False
                if not self.member(x, self.value_schema(n, k), depth):
                    return False
            return True
        raise AssertionError(n)

    def value_schema(self, o: Obj, key: str) -> Node:
        """The schema a value under ``key`` must satisfy in object ``o``."""
        declared = o.prop(key)
        if declared is not None:
            base = declared
            for p, s in o.pattern_props:
                if py_search(p, key):
                    base = self.intersect(base, s)
            return base
        matched = [s for p, s in o.pattern_props if py_search(p, key)]
        if not matched:
            return o.additional
        out: Node = ANY
        for s in matched:
            out = self.intersect(out, s)
        return out

    # ------------------------------------------------------------ intersection
    def intersect(self, a: Node, b: Node, depth: int = 0) -> Node:
        if isinstance(a, NeverNode) or isinstance(b, NeverNode):
            return NEVER
        if isinstance(a, AnyNode):
            return b
        if isinstance(b, AnyNode) or a == b:
            return a
        if isinstance(a, Ref):
            return self.intersect(self._expand(a, depth), b, depth + 1)
        if isinstance(b, Ref):
            return self.intersect(a, self._expand(b, depth), depth + 1)
        if isinstance(a, Union) or isinstance(b, Union):
            xs = a.options if isinstance(a, Union) else (a,)
            ys = b.options if isinstance(b, Union) else (b,)
            if len(xs) * len(ys) > MAX_UNION:
                raise Refused(f"intersection of unions with {len(xs)} x {len(ys)} branches is too large")
            return union([self.intersect(x, y, depth) for x in xs for y in ys])
        if isinstance(a, Const):
            return a if self.member(a.value, b, depth) else NEVER
        if isinstance(b, Const):
            return b if self.member(b.value, a, depth) else NEVER
        if a.kind != b.kind:
            return NEVER
        if isinstance(a, (Null, Bool)):
            return a
        if isinstance(a, Num):
            return self._num(a.spec, b.spec)  # type: ignore[attr-defined]
        if isinstance(a, Str):
            assert isinstance(b, Str)
            regs = tuple(dict.fromkeys(a.regexes + b.regexes))
            mx = a.max_len if b.max_len is None else (b.max_len if a.max_len is None else min(a.max_len, b.max_len))
            return norm(Str(max(a.min_len, b.min_len), mx, regs))
        if isinstance(a, Arr):
            return self._arr(a, b, depth)  # type: ignore[arg-type]
        if isinstance(a, Obj):
            return self._obj(a, b, depth)  # type: ignore[arg-type]
        raise AssertionError((a, b))

    def _num(self, x: NumberSpec, y: NumberSpec) -> Node:
        lo, lo_excl = x.lo, x.lo_excl
        if y.lo is not None and (lo is None or y.lo > lo or (y.lo == lo and y.lo_excl)):
            lo, lo_excl = y.lo, y.lo_excl
        hi, hi_excl = x.hi, x.hi_excl
        if y.hi is not None and (hi is None or y.hi < hi or (y.hi == hi and y.hi_excl)):
            hi, hi_excl = y.hi, y.hi_excl
        m = x.multiple if y.multiple is None else (y.multiple if x.multiple is None else frac_lcm(x.multiple, y.multiple))
        spec = NumberSpec(x.integer or y.integer, lo, lo_excl, hi, hi_excl, m, x.fractional or y.fractional)
        return NEVER if spec.is_empty() else Num(spec)

    def _arr(self, a: Arr, b: Arr, depth: int) -> Node:
        n = max(len(a.prefix), len(b.prefix))
        prefix = tuple(self.intersect(a.prefix[i] if i < len(a.prefix) else a.items,
                                      b.prefix[i] if i < len(b.prefix) else b.items, depth) for i in range(n))
        items = self.intersect(a.items, b.items, depth)
        contains, mnc, mxc = a.contains, a.min_contains, a.max_contains
        if b.contains is not None:
            if contains is not None and (b.contains, b.min_contains, b.max_contains) != (contains, mnc, mxc):
                raise Refused("two different 'contains' constraints on one array")
            contains, mnc, mxc = b.contains, b.min_contains, b.max_contains
        mx = a.max_items if b.max_items is None else (b.max_items if a.max_items is None else min(a.max_items, b.max_items))
        return norm(Arr(prefix, items, max(a.min_items, b.min_items), mx, contains, mnc, mxc, a.unique or b.unique))

    def _obj(self, a: Obj, b: Obj, depth: int) -> Node:
        if a.pattern_props and b.pattern_props and \
                [p for p, _ in a.pattern_props] != [p for p, _ in b.pattern_props]:
            raise Refused("allOf of objects with different patternProperties")
        keys = list(dict.fromkeys([k for k, _ in a.props] + [k for k, _ in b.props]))
        props = tuple((k, self.intersect(self.value_schema(a, k), self.value_schema(b, k), depth)) for k in keys)
        if a.pattern_props and b.pattern_props:
            pats = tuple((p, self.intersect(s, t, depth)) for (p, s), (_, t) in zip(a.pattern_props, b.pattern_props))
        elif a.pattern_props:
            pats = tuple((p, self.intersect(s, b.additional, depth)) for p, s in a.pattern_props)
        else:
            pats = tuple((p, self.intersect(s, a.additional, depth)) for p, s in b.pattern_props)
        mx = a.max_props if b.max_props is None else (b.max_props if a.max_props is None else min(a.max_props, b.max_props))
        return norm(Obj(props, a.required | b.required, pats, self.intersect(a.additional, b.additional, depth),
                        max(a.min_props, b.min_props), mx, self.intersect(a.names, b.names, depth)))

    # ------------------------------------------------------------ complement
    def negate(self, n: Node, depth: int = 0) -> Node:
        if isinstance(n, AnyNode):
            return NEVER
        if isinstance(n, NeverNode):
            return ANY
        if isinstance(n, Ref):
            return self.negate(self._expand(n, depth), depth + 1)
        if isinstance(n, Union):
            out: Node = ANY
            for o in n.options:
                out = self.intersect(out, self.negate(o, depth), depth)
            return out
        others = [unconstrained(k) for k in KINDS if k != n.kind]
        return union(others + [self._negate_within(n, depth)])

    def _negate_within(self, n: Node, depth: int) -> Node:
        """Values of n's kind that are not in n."""
        if isinstance(n, Const):
            v = n.value
            k = n.kind
            if k == "null":
                return NEVER
            if k == "bool":
                return const(not v)
            if k == "num":
                f = to_fraction(v)
                return union([Num(NumberSpec(hi=f, hi_excl=True)), Num(NumberSpec(lo=f, lo_excl=True))])
            if k == "str":
                return Str(regexes=(not_in_set([v]),))
            raise Refused("'not' of an array or object constant")
        if isinstance(n, (Null, Bool)):
            return NEVER
        if isinstance(n, Num):
            s = n.spec
            if s.multiple is not None or s.fractional:
                raise Refused("'not' of a multipleOf / non-integer constraint")
            parts: list[Node] = []
            if s.integer:
                parts.append(Num(NumberSpec(fractional=True)))
            if s.lo is not None:
                parts.append(Num(NumberSpec(hi=s.lo, hi_excl=not s.lo_excl)))
            if s.hi is not None:
                parts.append(Num(NumberSpec(lo=s.hi, lo_excl=not s.hi_excl)))
            return union(parts)
        if isinstance(n, Str):
            if n.regexes:
                raise Refused("'not' of a string pattern/format (regex complement is not supported)")
            parts = []
            if n.min_len > 0:
                parts.append(Str(max_len=n.min_len - 1))
            if n.max_len is not None:
                parts.append(Str(min_len=n.max_len + 1))
            return union(parts)
        if isinstance(n, Arr):
            if n == Arr():
                return NEVER
            if n.prefix == () and n.contains is None and not n.unique:
                parts = []
                if n.min_items > 0:
                    parts.append(Arr(max_items=n.min_items - 1))
                if n.max_items is not None:
                    parts.append(Arr(min_items=n.max_items + 1))
                if n.items is not ANY:
                    # some element violates items: needs 'contains not items'
                    parts.append(Arr(contains=self.negate(n.items, depth + 1)))
                return union(parts)
            raise Refused("'not' of an array schema with prefixItems/contains/uniqueItems")
        if isinstance(n, Obj):
            if n.pattern_props or n.additional is not ANY or n.names is not ANY:
                raise Refused("'not' of an object schema with additionalProperties/patternProperties/propertyNames")
            parts = []
            for r in sorted(n.required):
                parts.append(Obj(props=((r, NEVER),)))
            for k, v in n.props:
                if v is ANY:
                    continue
                parts.append(Obj(props=((k, self.negate(v, depth + 1)),), required=frozenset([k])))
            if n.min_props > 0:
                parts.append(Obj(max_props=n.min_props - 1))
            if n.max_props is not None:
                parts.append(Obj(min_props=n.max_props + 1))
            return union(parts)
        raise AssertionError(n)

    # ------------------------------------------------------------ disjointness
    def disjoint(self, a: Node, b: Node, depth: int = 0) -> bool:
        """True only when provably no value is in both."""
        if isinstance(a, NeverNode) or isinstance(b, NeverNode):
            return True
        if isinstance(a, AnyNode) or isinstance(b, AnyNode):
            return False
        if isinstance(a, Ref):
            return self.disjoint(self._expand(a, depth), b, depth + 1)
        if isinstance(b, Ref):
            return self.disjoint(a, self._expand(b, depth), depth + 1)
        if isinstance(a, Union):
            return all(self.disjoint(o, b, depth) for o in a.options)
        if isinstance(b, Union):
            return all(self.disjoint(a, o, depth) for o in b.options)
        if isinstance(a, Const):
            return not self.member(a.value, b, depth)
        if isinstance(b, Const):
            return not self.member(b.value, a, depth)
        if a.kind != b.kind:
            return True
        try:
            inter = self.intersect(a, b, depth)
        except Refused:
            inter = None
        if isinstance(inter, NeverNode):
            return True
        if isinstance(a, Obj) and isinstance(b, Obj):
            for k in a.required | b.required:
                va, vb = self.value_schema(a, k), self.value_schema(b, k)
                if k in a.required and k in b.required and self.disjoint(va, vb, depth + 1):
                    return True
                if (k in a.required and isinstance(vb, NeverNode)) or (k in b.required and isinstance(va, NeverNode)):
                    return True
        if isinstance(a, Arr) and isinstance(b, Arr):
            for i in range(min(a.min_items, b.min_items)):
                sa = a.prefix[i] if i < len(a.prefix) else a.items
                sb = b.prefix[i] if i < len(b.prefix) else b.items
                if self.disjoint(sa, sb, depth + 1):
                    return True
        return False


def norm(n: Node) -> Node:
    """Detect obviously empty nodes (the emitter prunes the rest)."""
    if isinstance(n, Str):
        if n.max_len is not None and n.min_len > n.max_len:
            return NEVER
    elif isinstance(n, Num):
        if n.spec.is_empty():
            return NEVER
    elif isinstance(n, Arr):
        if n.max_items is not None and n.min_items > n.max_items:
            return NEVER
        if n.contains is not None:
            if n.max_contains is not None and n.min_contains > n.max_contains:
                return NEVER
            if n.max_items is not None and n.min_contains > n.max_items:
                return NEVER
    elif isinstance(n, Obj):
        if n.max_props is not None and n.min_props > n.max_props:
            return NEVER
        if n.max_props is not None and len(n.required) > n.max_props:
            return NEVER
        for k, v in n.props:
            if k in n.required and isinstance(v, NeverNode):
                return NEVER
    return n


def str_const_regex(s: str) -> str:
    return quote(s)


__all__ = ["Algebra", "Refused", "norm", "to_fraction", "length_regex", "str_const_regex"]
