"""The compiler's internal schema IR: one node kind per JSON type, plus unions and refs.

Why an IR: ``allOf``, ``not``, ``if/then/else`` and ``oneOf`` disjointness are
decided by set algebra on these nodes (see :mod:`.algebra`), where each node
is a precise language of JSON values.  Nodes are immutable and hashable, so
the emitter can share one nonterminal per distinct node.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .numbers import NumberSpec


class Node:
    """Base class; ``kind`` is the JSON type family or a combinator."""
    kind = "?"


@dataclass(frozen=True)
class AnyNode(Node):
    kind = "any"


@dataclass(frozen=True)
class NeverNode(Node):
    kind = "never"


ANY = AnyNode()
NEVER = NeverNode()
KINDS = ("null", "bool", "num", "str", "arr", "obj")


@dataclass(frozen=True)
class Null(Node):
    kind = "null"


@dataclass(frozen=True)
class Bool(Node):
    kind = "bool"


@dataclass(frozen=True)
class Num(Node):
    spec: NumberSpec = NumberSpec()
    kind = "num"


@dataclass(frozen=True)
class Str(Node):
    """Decoded-content constraints; ``regexes`` are full-match (our syntax) and intersected."""
    min_len: int = 0
    max_len: int | None = None
    regexes: tuple[str, ...] = ()
    kind = "str"


@dataclass(frozen=True)
class Const(Node):
    """One JSON value, stored as canonical JSON text (hashable)."""
    text: str = "null"

    @property
    def value(self) -> Any:
        return json.loads(self.text)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return kind_of(self.value)


@dataclass(frozen=True)
class Arr(Node):
    prefix: tuple[Node, ...] = ()
    items: Node = ANY
    min_items: int = 0
    max_items: int | None = None
    contains: Node | None = None
    min_contains: int = 1
    max_contains: int | None = None
    unique: bool = False
    kind = "arr"


@dataclass(frozen=True)
class Obj(Node):
    props: tuple[tuple[str, Node], ...] = ()
    required: frozenset[str] = frozenset()
    pattern_props: tuple[tuple[str, Node], ...] = ()  # (ECMAScript pattern, schema)
    additional: Node = ANY
    min_props: int = 0
    max_props: int | None = None
    names: Node = ANY  # propertyNames: Str / Const-strings / union of those
    kind = "obj"

    def prop(self, key: str) -> Node | None:
        for k, v in self.props:
            if k == key:
                return v
        return None


@dataclass(frozen=True)
class Union(Node):
    options: tuple[Node, ...] = ()
    kind = "union"


@dataclass(frozen=True)
class Ref(Node):
    """A referenced schema, by absolute URI key; resolved lazily (recursion)."""
    key: str = ""
    kind = "ref"


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "num"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "arr"
    return "obj"


def canonical(value: Any) -> str:
    """Canonical JSON text of a value (numbers normalised so 1 == 1.0)."""
    return json.dumps(_norm(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _norm(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 63:
        return int(v)
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def const(value: Any) -> Const:
    return Const(canonical(value))


def union(options: list[Node] | tuple[Node, ...]) -> Node:
    """Flattened, deduplicated union; ANY absorbs, NEVER vanishes."""
    out: list[Node] = []
    seen: set[Node] = set()
    stack = list(options)
    flat: list[Node] = []
    while stack:
        o = stack.pop(0)
        if isinstance(o, Union):
            stack[0:0] = list(o.options)
        else:
            flat.append(o)
    for o in flat:
        if o is ANY or isinstance(o, AnyNode):
            return ANY
        if isinstance(o, NeverNode) or o in seen:
            continue
        seen.add(o)
        out.append(o)
    if not out:
        return NEVER
    if len(out) == 1:
        return out[0]
    return Union(tuple(out))


def unconstrained(kind: str) -> Node:
    return {"null": Null(), "bool": Bool(), "num": Num(), "str": Str(), "arr": Arr(), "obj": Obj()}[kind]


__all__ = ["Node", "ANY", "NEVER", "Null", "Bool", "Num", "Str", "Const", "Arr", "Obj", "Union", "Ref",
           "union", "const", "canonical", "kind_of", "unconstrained", "KINDS", "field"]
