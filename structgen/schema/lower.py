"""JSON Schema (draft 2020-12 / 2019-09 / 7 / 4) -> IR nodes, keyword by keyword.

Every keyword is either enforced (turned into IR constraints), listed as an
annotation (no effect on validity), or refused through ``self.refuse`` which
raises :class:`UnsupportedKeywordError` in strict mode and warns otherwise
(the keyword is then relaxed, i.e. the accepted language becomes larger).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable
from urllib.parse import urldefrag, urljoin

import jsonschema
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable

from ..errors import SchemaError, UnsupportedKeywordError
from .algebra import Algebra, Refused, norm, to_fraction
from .formats import format_regexes
from .nodes import (ANY, NEVER, AnyNode, Arr, Bool, NeverNode, Node, Null, Num, Obj, Ref, Str, const, union)
from .numbers import NumberSpec
from .strings import PatternRefused, search_regex

ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly",
    "contentMediaType", "contentEncoding", "contentSchema", "$schema", "$id", "$anchor", "$defs",
    "definitions", "$vocabulary", "$dynamicAnchor", "$recursiveAnchor", "id",
})
HANDLED = frozenset({
    "type", "enum", "const", "properties", "required", "additionalProperties", "patternProperties",
    "propertyNames", "minProperties", "maxProperties", "items", "prefixItems", "additionalItems",
    "minItems", "maxItems", "contains", "minContains", "maxContains", "uniqueItems", "minLength",
    "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "$ref",
    "unevaluatedProperties", "unevaluatedItems", "dependentRequired", "dependentSchemas", "dependencies",
    "$dynamicRef", "$recursiveRef",
})
# validation keywords added after draft-04: under draft-04 they are unknown keywords
NOT_IN_DRAFT4 = frozenset({
    "const", "contains", "propertyNames", "if", "then", "else", "prefixItems", "minContains", "maxContains",
    "dependentRequired", "dependentSchemas", "unevaluatedProperties", "unevaluatedItems", "$dynamicRef",
    "$recursiveRef",
})
NUM_KEYS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
STR_KEYS = {"minLength", "maxLength", "pattern", "format"}
ARR_KEYS = {"items", "prefixItems", "additionalItems", "minItems", "maxItems", "contains", "minContains",
            "maxContains", "uniqueItems", "unevaluatedItems"}
OBJ_KEYS = {"properties", "required", "additionalProperties", "patternProperties", "propertyNames",
            "minProperties", "maxProperties", "unevaluatedProperties", "dependentRequired",
            "dependentSchemas", "dependencies"}
TYPE_KIND = {"null": "null", "boolean": "bool", "integer": "num", "number": "num", "string": "str",
             "array": "arr", "object": "obj"}
ROOT_URI = "urn:structgen:root"


APPLICATORS = ("allOf", "anyOf", "oneOf", "$ref", "if", "not", "dependentSchemas", "$dynamicRef", "$recursiveRef")


def _has_applicator(s: dict) -> bool:
    return any(k in s for k in APPLICATORS)


def _child(ptr: str, *parts: Any) -> str:
    for p in parts:
        ptr += "/" + str(p).replace("~", "~0").replace("/", "~1")
    return ptr


class Lowerer:
    """Lowers one root schema; owns the ``$ref`` registry and the table of referenced targets."""

    def __init__(self, root: Any, *, draft: str, strict: bool, close_objects: bool, max_depth: int,
                 remotes: dict[str, Any] | None = None):
        self.root, self.draft, self.strict = root, draft, strict
        self.close_objects = close_objects
        self.algebra = Algebra(self.resolve, max_depth)
        self.validator_cls = (jsonschema.Draft7Validator if draft == "draft7" else
                              jsonschema.Draft4Validator if draft == "draft4" else
                              jsonschema.Draft201909Validator if draft == "2019-09" else
                              jsonschema.Draft202012Validator)
        # drafts 4 and 7: siblings of $ref are ignored; draft 4 names its identifier "id"
        self.legacy_ref = draft in ("draft7", "draft4")
        self.id_key = "id" if draft == "draft4" else "$id"
        from referencing.jsonschema import DRAFT4, DRAFT7, DRAFT201909, DRAFT202012
        self.spec = {"draft7": DRAFT7, "draft4": DRAFT4, "2019-09": DRAFT201909}.get(draft, DRAFT202012)
        root_id = root.get("$id") or root.get("id") if isinstance(root, dict) else None
        self.root_uri = urldefrag(root_id)[0] if isinstance(root_id, str) and root_id else ROOT_URI
        resources = [(self.root_uri, Resource.from_contents(root, default_specification=self.spec))]
        for uri, doc in (remotes or {}).items():
            resources.append((uri, Resource.from_contents(doc, default_specification=self.spec)))
        from jsonschema_specifications import REGISTRY as METASCHEMAS
        self.registry = METASCHEMAS.with_resources(resources).crawl()
        self.targets: dict[str, tuple[Any, str, str]] = {}
        self.lowered: dict[str, Node] = {}
        self.in_progress: set[str] = set()
        self.warnings: list[str] = []
        self._unknown_seen: set[str] = set()

    # ------------------------------------------------------------ refusal
    def refuse(self, message: str, pointer: str, keyword: str) -> None:
        """Strict: raise.  Otherwise warn; the caller then relaxes the keyword."""
        if self.strict:
            raise UnsupportedKeywordError(message, pointer=pointer, keyword=keyword)
        text = f"{message} (keyword {keyword!r} at {pointer or '#'}); relaxed: the grammar accepts a superset"
        self.warnings.append(text)
        warnings.warn(text, stacklevel=4)

    def unknown_keyword(self, keyword: str, pointer: str) -> None:
        """A keyword of no JSON Schema vocabulary: validators ignore it (the spec makes it an
        annotation), so the language is unchanged; say so loudly once, since it is often a typo."""
        import difflib
        # "_uniqueItems"-style prefixes are a common way to switch a keyword off on purpose
        close = ([] if keyword[:1] in "_$@" else
                 difflib.get_close_matches(keyword, sorted(HANDLED), n=1, cutoff=0.8))
        if close:  # "minimun", "maxLenght": a constraint the author meant to set
            self.refuse(f"unknown keyword {keyword!r} (did you mean {close[0]!r}?)", pointer, keyword)
            return
        if keyword in self._unknown_seen:
            return
        self._unknown_seen.add(keyword)
        text = (f"unknown keyword {keyword!r} at {pointer or '#'} is not part of JSON Schema; treated as an "
                "annotation, as validators do (check for a typo)")
        self.warnings.append(text)
        warnings.warn(text, stacklevel=4)

    # ------------------------------------------------------------ references
    def ref(self, ref: str, base: str, pointer: str, keyword: str = "$ref") -> Node:
        try:
            resolved = self.registry.resolver(base_uri=base).lookup(ref)
        except (Unresolvable, Exception) as e:  # referencing raises several types
            raise SchemaError(f"cannot resolve $ref {ref!r} (base {base}): {e}", pointer=pointer,
                              keyword=keyword) from None
        target_base = resolved.resolver._base_uri  # noqa: SLF001 - the only way to learn the scope
        contents = resolved.contents
        key = f"{target_base}|{id(contents)}|{urljoin(base, ref)}"
        # one key per target object (several spellings of the same target share it)
        for k, (c, _, _) in self.targets.items():
            if c is contents and k.split("|")[0] == target_base:
                key = k
                break
        else:
            self.targets[key] = (contents, target_base, f"{pointer} -> {ref}")
        return Ref(key)

    def resolve(self, key: str) -> Node:
        if key in self.lowered:
            return self.lowered[key]
        if key in self.in_progress:
            raise Refused(f"recursive reference {self.targets[key][2]} combined with sibling keywords")
        contents, base, where = self.targets[key]
        self.in_progress.add(key)
        try:
            node = self.lower(contents, base, where, at_resource=True)
        finally:
            self.in_progress.discard(key)
        self.lowered[key] = node
        return node

    # ------------------------------------------------------------ validation of constants
    def validates(self, value: Any, schema: Any, base: str) -> bool:
        v = self.validator_cls(schema, registry=self.registry,
                               format_checker=self.validator_cls.FORMAT_CHECKER)
        v = v.evolve(_resolver=self.registry.resolver(base_uri=base))
        return v.is_valid(value)

    # ------------------------------------------------------------ main
    def lower(self, s: Any, base: str, ptr: str, at_resource: bool = False) -> Node:
        """``at_resource``: ``base`` is already this schema's own base URI (ref targets, the root)."""
        if s is True:
            return ANY
        if s is False:
            return NEVER
        if not isinstance(s, dict):
            raise SchemaError(f"a schema must be an object or a boolean, got {type(s).__name__}", pointer=ptr)
        for k in s:
            if self.draft == "draft4" and k in NOT_IN_DRAFT4:
                self.refuse(f"keyword {k!r} does not exist in draft-04 (draft-04 validators ignore it); "
                            "declare a later \"$schema\" to have it enforced", _child(ptr, k), k)
                continue
            if k in ANNOTATIONS or k in HANDLED or k.startswith("x-"):
                continue
            self.unknown_keyword(k, _child(ptr, k))
        if self.draft == "draft4" and not NOT_IN_DRAFT4.isdisjoint(s):
            s = {k: v for k, v in s.items() if k not in NOT_IN_DRAFT4}  # relaxed (non-strict): as draft-04 does
        ident = s.get(self.id_key)
        if isinstance(ident, str) and not at_resource and not ident.startswith("#") and not (self.legacy_ref and "$ref" in s):
            base = urldefrag(urljoin(base, ident))[0]
        if self.legacy_ref and "$ref" in s:
            return self.ref(s["$ref"], base, ptr)  # drafts 4-7: siblings of $ref are ignored by the spec
        if "enum" in s or "const" in s:
            return self._enum(s, base, ptr)
        node = self._types(s, base, ptr)
        A = self.algebra

        def combine(n: Node, what: str, make: Callable[[], Node]) -> Node:
            try:
                return A.intersect(n, make())
            except Refused as e:
                self.refuse(str(e), _child(ptr, what), what)
                return n

        if "$ref" in s:
            r = self.ref(s["$ref"], base, _child(ptr, "$ref"))
            node = combine(node, "$ref", lambda: r)
        for kw in ("$dynamicRef", "$recursiveRef"):
            if kw in s:
                self.refuse(f"{kw} (dynamic scope) is not supported", _child(ptr, kw), kw)
        for i, sub in enumerate(s.get("allOf", [])):
            sub_node = self.lower(sub, base, _child(ptr, "allOf", i))
            node = combine(node, "allOf", lambda: sub_node)
        if "anyOf" in s:
            opts = [self.lower(x, base, _child(ptr, "anyOf", i)) for i, x in enumerate(s["anyOf"])]
            node = combine(node, "anyOf", lambda: union(opts))
        if "oneOf" in s:
            node = self._one_of(node, s, base, ptr)
        if "not" in s:
            sub_node = self.lower(s["not"], base, _child(ptr, "not"))
            try:
                node = A.intersect(node, A.negate(sub_node))
            except Refused as e:
                self.refuse(str(e), _child(ptr, "not"), "not")
        if "if" in s and ("then" in s or "else" in s):
            node = self._if(node, s, base, ptr)
        return node

    def _enum(self, s: dict, base: str, ptr: str) -> Node:
        values: list[Any] = []
        if "const" in s:
            values.append(s["const"])
        if "enum" in s:
            if not isinstance(s["enum"], list):
                raise SchemaError("enum must be an array", pointer=_child(ptr, "enum"), keyword="enum")
            values.extend(s["enum"] if "const" not in s else [])
        kept = [v for v in values if self.validates(v, s, base)]
        return union([const(v) for v in kept])

    # ------------------------------------------------------------ per-type pieces
    def _types(self, s: dict, base: str, ptr: str) -> Node:
        t = s.get("type")
        if t is None:
            relevant = set(s) & (NUM_KEYS | STR_KEYS | ARR_KEYS | OBJ_KEYS)
            # closing objects applies to objects this schema describes; when the shape comes
            # from applicators (anyOf/$ref/...), the local part must not add a closed {} of its own
            if not relevant and (not self.close_objects or _has_applicator(s)):
                return ANY
            names = list(TYPE_KIND)
        else:
            names = [t] if isinstance(t, str) else list(t)
        kinds: dict[str, bool] = {}  # kind -> integer-only
        for name in names:
            if name not in TYPE_KIND:
                raise SchemaError(f"unknown type {name!r}", pointer=_child(ptr, "type"), keyword="type")
            k = TYPE_KIND[name]
            integer = name == "integer"
            kinds[k] = kinds.get(k, True) and integer if k == "num" else False
        pieces: list[Node] = []
        for k, integer in kinds.items():
            if k == "null":
                pieces.append(Null())
            elif k == "bool":
                pieces.append(Bool())
            elif k == "num":
                pieces.append(self._num(s, ptr, integer))
            elif k == "str":
                pieces.append(self._str(s, ptr))
            elif k == "arr":
                pieces.append(self._arr(s, base, ptr))
            elif k == "obj":
                pieces.append(self._obj(s, base, ptr))
        return union(pieces)

    def _num(self, s: dict, ptr: str, integer: bool) -> Node:
        def num(key: str) -> Any:
            v = s.get(key)
            if isinstance(v, bool) or (v is not None and not isinstance(v, (int, float))):
                raise SchemaError(f"{key} must be a number", pointer=_child(ptr, key), keyword=key)
            return None if v is None else to_fraction(v)
        spec = NumberSpec(integer=integer)
        lo, lo_excl, hi, hi_excl = num("minimum"), False, num("maximum"), False
        if self.draft == "draft4":  # boolean modifiers of minimum/maximum
            lo_excl = lo is not None and s.get("exclusiveMinimum") is True
            hi_excl = hi is not None and s.get("exclusiveMaximum") is True
            emin = emax = None
        else:
            emin, emax = num("exclusiveMinimum"), num("exclusiveMaximum")
        if emin is not None and (lo is None or emin >= lo):
            lo, lo_excl = emin, True
        if emax is not None and (hi is None or emax <= hi):
            hi, hi_excl = emax, True
        m = num("multipleOf")
        if m is not None and m <= 0:
            raise SchemaError("multipleOf must be > 0", pointer=_child(ptr, "multipleOf"), keyword="multipleOf")
        spec = NumberSpec(integer, lo, lo_excl, hi, hi_excl, m)
        return norm(Num(spec))

    def _str(self, s: dict, ptr: str) -> Node:
        regexes: list[str] = []
        if "pattern" in s:
            try:
                regexes.append(search_regex(s["pattern"]))
            except PatternRefused as e:
                self.refuse(str(e), _child(ptr, "pattern"), "pattern")
        if "format" in s:
            f = format_regexes(s["format"])
            if f is None:
                self.refuse(f"format {s['format']!r} is not supported", _child(ptr, "format"), "format")
            else:
                regexes.extend(f)
        return norm(Str(int(s.get("minLength", 0)), s.get("maxLength"), tuple(regexes)))

    def _arr(self, s: dict, base: str, ptr: str) -> Node:
        prefix: list[Node] = []
        items: Node = ANY
        if self.draft == "2020-12":
            prefix = [self.lower(x, base, _child(ptr, "prefixItems", i)) for i, x in enumerate(s.get("prefixItems", []))]
            if "items" in s:
                items = self.lower(s["items"], base, _child(ptr, "items"))
        else:
            it = s.get("items")
            if isinstance(it, list):
                prefix = [self.lower(x, base, _child(ptr, "items", i)) for i, x in enumerate(it)]
                if "additionalItems" in s:
                    items = self.lower(s["additionalItems"], base, _child(ptr, "additionalItems"))
            elif it is not None:
                items = self.lower(it, base, _child(ptr, "items"))
        if "unevaluatedItems" in s and s["unevaluatedItems"] is not True:
            has_app = any(k in s for k in ("allOf", "anyOf", "oneOf", "$ref", "if", "not", "contains"))
            if has_app:
                self.refuse("unevaluatedItems with applicators", _child(ptr, "unevaluatedItems"), "unevaluatedItems")
            elif items is ANY and not ("items" in s and self.draft == "2020-12"):
                items = self.lower(s["unevaluatedItems"], base, _child(ptr, "unevaluatedItems"))
        contains = None
        mnc, mxc = 1, None
        if "contains" in s:
            contains = self.lower(s["contains"], base, _child(ptr, "contains"))
            if self.draft not in ("draft7", "draft4"):
                mnc = int(s.get("minContains", 1))
                mxc = s.get("maxContains")
            if mnc == 0 and mxc is None:
                contains = None
        return norm(Arr(tuple(prefix), items, int(s.get("minItems", 0)), s.get("maxItems"), contains, mnc,
                        mxc, bool(s.get("uniqueItems", False))))

    def _obj(self, s: dict, base: str, ptr: str) -> Node:
        props = tuple((k, self.lower(v, base, _child(ptr, "properties", k))) for k, v in s.get("properties", {}).items())
        pats = tuple((p, self.lower(v, base, _child(ptr, "patternProperties", p)))
                     for p, v in s.get("patternProperties", {}).items())
        if "additionalProperties" in s:
            add = self.lower(s["additionalProperties"], base, _child(ptr, "additionalProperties"))
        elif self.close_objects and not (_has_applicator(s) and "properties" not in s
                                         and "patternProperties" not in s):
            add = NEVER
        else:
            add = ANY
        if "unevaluatedProperties" in s and s["unevaluatedProperties"] is not True:
            has_app = any(k in s for k in ("allOf", "anyOf", "oneOf", "$ref", "if", "not", "dependentSchemas"))
            if has_app:
                self.refuse("unevaluatedProperties with applicators", _child(ptr, "unevaluatedProperties"),
                            "unevaluatedProperties")
            elif "additionalProperties" not in s:
                add = self.lower(s["unevaluatedProperties"], base, _child(ptr, "unevaluatedProperties"))
        names: Node = ANY
        if "propertyNames" in s:
            names = self.lower(s["propertyNames"], base, _child(ptr, "propertyNames"))
        for kw in ("dependentRequired", "dependentSchemas", "dependencies"):
            if kw in s and s[kw]:
                self.refuse(f"{kw} is not supported", _child(ptr, kw), kw)
        req = s.get("required", [])
        return norm(Obj(props, frozenset(req), pats, add, int(s.get("minProperties", 0)), s.get("maxProperties"),
                        names))

    # ------------------------------------------------------------ combinators
    def _one_of(self, node: Node, s: dict, base: str, ptr: str) -> Node:
        A = self.algebra
        opts = [self.lower(x, base, _child(ptr, "oneOf", i)) for i, x in enumerate(s["oneOf"])]
        try:
            scoped = [A.intersect(node, o) for o in opts]
            scoped = [o for o in scoped if not isinstance(o, NeverNode)]
            if all(A.disjoint(a, b) for i, a in enumerate(scoped) for b in scoped[i + 1:]):
                return union(scoped)
            # exactly-one semantics via complements: S_i minus every other S_j
            exact = []
            for i, a in enumerate(scoped):
                part = a
                for j, b in enumerate(scoped):
                    if i != j:
                        part = A.intersect(part, A.negate(b))
                exact.append(part)
            return union(exact)
        except Refused as e:
            self.refuse(f"oneOf branches are not provably disjoint ({e})", _child(ptr, "oneOf"), "oneOf")
            try:
                return A.intersect(node, union(opts))
            except Refused:
                return node

    def _if(self, node: Node, s: dict, base: str, ptr: str) -> Node:
        A = self.algebra
        cond = self.lower(s["if"], base, _child(ptr, "if"))
        then = self.lower(s.get("then", True), base, _child(ptr, "then"))
        other = self.lower(s.get("else", True), base, _child(ptr, "else"))
        try:
            return A.intersect(node, union([A.intersect(cond, then), A.intersect(A.negate(cond), other)]))
        except Refused as e:
            self.refuse(f"if/then/else condition cannot be complemented ({e})", _child(ptr, "if"), "if")
            try:
                return A.intersect(node, union([then, other]))
            except Refused:
                return node


__all__ = ["Lowerer", "ANNOTATIONS", "HANDLED"]
