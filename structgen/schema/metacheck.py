"""A fast yes/no metaschema check: the metaschema compiled into closures.

Why: ``jsonschema`` spends ~20 us per keyword it visits (validator evolution,
reference lookups), 0.3-0.5 s on a 200 kB Kubernetes or GitHub schema, most
of the compile time of those schemas.  Metaschemas use a dozen keywords
(type, enum, properties, additionalProperties, propertyNames, items,
minItems, uniqueItems, minimum, exclusiveMinimum, pattern, anyOf, allOf,
dependencies, local $ref), so they compile here into plain Python closures
interpreted with the metaschema's own draft semantics (draft-04 integers
exclude 1.0, its exclusiveMinimum is a boolean modifier; before 2019-09
``$ref`` hides its siblings).  The answer is only used one way: ``True``
skips ``jsonschema``; on ``False`` the compiler runs ``jsonschema`` for its
error message (and trusts its verdict).  tests/test_schema_metaschema.py
checks the verdicts agree on every corpus schema and on mutated ones.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Callable

Check = Callable[[Any], bool]


class Unsupported(Exception):
    """The metaschema uses a keyword this compiler does not know (the caller uses jsonschema)."""


IGNORED = frozenset({"$schema", "$id", "id", "title", "description", "default", "$comment", "format",
                     "definitions", "$defs", "examples", "deprecated", "readOnly", "writeOnly"})


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def equal(a: Any, b: Any) -> bool:
    """JSON equality as jsonschema has it: booleans are not numbers, 1 == 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(equal(a[k], b[k]) for k in a))
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(equal, a, b))
    return type(a) is type(b) and a == b if isinstance(a, str) or isinstance(b, str) else a == b


class _Compiler:
    def __init__(self, root: dict, draft: str):
        self.root = root
        self.legacy_ref = draft in ("draft4", "draft7")
        self.draft4 = draft == "draft4"
        self.refs: dict[str, Check] = {}

    def types(self, name: str) -> Check:
        if name == "object":
            return lambda x: isinstance(x, dict)
        if name == "array":
            return lambda x: isinstance(x, list)
        if name == "string":
            return lambda x: isinstance(x, str)
        if name == "boolean":
            return lambda x: isinstance(x, bool)
        if name == "null":
            return lambda x: x is None
        if name == "number":
            return _is_number
        if name == "integer":
            if self.draft4:
                return lambda x: isinstance(x, int) and not isinstance(x, bool)
            return lambda x: (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())
        raise Unsupported(f"type {name!r}")

    def ref(self, ref: str) -> Check:
        if ref not in self.refs:
            if not ref.startswith("#"):
                raise Unsupported(f"$ref {ref!r}")
            target: Any = self.root
            for part in ref[1:].split("/")[1:] if ref != "#" else []:
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise Unsupported(f"$ref {ref!r}")
                target = target[part]
            self.refs[ref] = lambda x: False  # placeholder while compiling (recursion)
            holder: list[Check] = []
            self.refs[ref] = lambda x: holder[0](x)
            holder.append(self.compile(target))
        return self.refs[ref]

    def compile(self, s: Any) -> Check:
        if s is True:
            return lambda x: True
        if s is False:
            return lambda x: False
        if not isinstance(s, dict):
            raise Unsupported("schema is not an object")
        if "$ref" in s and self.legacy_ref:
            return self.ref(s["$ref"])
        checks: list[Check] = []
        for k, v in s.items():
            if k in IGNORED:
                continue
            checks.append(self.keyword(k, v, s))
        if not checks:
            return lambda x: True
        if len(checks) == 1:
            return checks[0]
        if len(checks) == 2:
            c0, c1 = checks
            return lambda x: c0(x) and c1(x)

        def check_all(x: Any) -> bool:
            for c in checks:
                if not c(x):
                    return False
            return True
        return check_all

    def keyword(self, k: str, v: Any, s: dict) -> Check:
        if k == "$ref":
            return self.ref(v)
        if k == "type":
            names = [v] if isinstance(v, str) else list(v)
            tests = [self.types(t) for t in names]
            if len(tests) == 1:
                return tests[0]
            return lambda x: any(t(x) for t in tests)
        if k == "enum":
            vals = list(v)
            return lambda x: any(equal(x, e) for e in vals)
        if k == "properties":
            props = {name: self.compile(sub) for name, sub in v.items()}

            def check_props(x: Any) -> bool:
                if isinstance(x, dict):
                    get = props.get
                    for key, val in x.items():
                        c = get(key)
                        if c is not None and not c(val):
                            return False
                return True
            return check_props
        if k == "additionalProperties":
            sub = self.compile(v)
            declared = set(s.get("properties", {}))
            if "patternProperties" in s:
                raise Unsupported("patternProperties")
            return lambda x: not isinstance(x, dict) or all(sub(val) for key, val in x.items() if key not in declared)
        if k == "propertyNames":
            sub = self.compile(v)
            return lambda x: not isinstance(x, dict) or all(sub(key) for key in x)
        if k == "items":
            if isinstance(v, list):
                subs = [self.compile(t) for t in v]
                return lambda x: not isinstance(x, list) or all(c(i) for c, i in zip(subs, x))
            sub = self.compile(v)
            return lambda x: not isinstance(x, list) or all(sub(i) for i in x)
        if k == "minItems":
            return lambda x: not isinstance(x, list) or len(x) >= v
        if k == "uniqueItems":
            if not v:
                return lambda x: True
            return lambda x: not isinstance(x, list) or _unique(x)
        if k == "minimum":
            if self.draft4 and s.get("exclusiveMinimum") is True:
                return lambda x: not _is_number(x) or x > v
            return lambda x: not _is_number(x) or x >= v
        if k == "exclusiveMinimum":
            if self.draft4:
                if not isinstance(v, bool):
                    raise Unsupported("draft-04 exclusiveMinimum")
                return lambda x: True  # a modifier of minimum
            return lambda x: not _is_number(x) or x > v
        if k == "pattern":
            rx = re.compile(v)
            return lambda x: not isinstance(x, str) or rx.search(x) is not None
        if k in ("anyOf", "allOf"):
            subs = [self.compile(t) for t in v]
            if k == "anyOf":
                return lambda x: any(c(x) for c in subs)
            return lambda x: all(c(x) for c in subs)
        if k == "dependencies":
            deps: list[tuple[str, Any]] = []
            for name, dep in v.items():
                if isinstance(dep, list):
                    deps.append((name, list(dep)))
                else:
                    deps.append((name, self.compile(dep)))

            def check(x: Any) -> bool:
                if not isinstance(x, dict):
                    return True
                for name, dep in deps:
                    if name in x:
                        if isinstance(dep, list):
                            if not all(d in x for d in dep):
                                return False
                        elif not dep(x):
                            return False
                return True
            return check
        raise Unsupported(f"keyword {k!r}")


def _unique(items: list) -> bool:
    keys = set()
    for x in items:   # scalars: hash them (1 and 1.0 collide as they should, True and 1 must not)
        if isinstance(x, (dict, list)):
            break
        keys.add((isinstance(x, bool), isinstance(x, str), x))
    else:
        return len(keys) == len(items)
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if equal(items[i], items[j]):
                return False
    return True


@functools.lru_cache(maxsize=None)
def fast_metaschema_check(draft: str) -> Check | None:
    """``check(schema) -> bool`` for ``draft``'s metaschema; None if it uses an unknown keyword."""
    from .compiler import DRAFTS
    from .metaschema import _BASES, flat_metaschema
    root = flat_metaschema(draft) if draft in _BASES else DRAFTS[draft].META_SCHEMA
    try:
        return _Compiler(root, draft).compile(root)
    except (Unsupported, re.error):
        return None
