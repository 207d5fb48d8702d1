"""Entry points: ``grammar_from_json_schema`` and ``json_object_grammar``.

Documented choices (see also the module docstrings of numbers/formats/emit):

* Every keyword is enforced exactly, listed as an annotation, or refused
  (``UnsupportedKeywordError``; ``strict=False`` warns and relaxes *that*
  keyword to a superset).  ``x-*`` extension keywords are annotations.
* ``additionalProperties`` defaults to true (the spec); ``close_objects=True``
  makes the default false for generation.  Undeclared keys may repeat
  (duplicate detection among arbitrary keys is not context-free); declared
  keys appear at most once and required ones exactly once.
* ``property_order="any"`` (default): JSON objects are unordered, so every
  key order of a valid object is accepted, exactly (each declared key at most
  once, required ones present, min/maxProperties counted), for any number of
  properties: objects needing more than a few states become a lazy rule
  family whose states the parser materializes as it visits them (see
  anyorder.py).  ``"schema"``: declared properties in schema order (optional
  ones may be absent), with undeclared ones anywhere between them; the
  generation API uses it, so models write keys in the order the schema's
  author chose.  Constant objects follow the same policy (their keys are
  treated like required properties).
* Numbers: exponent notation only for unconstrained ``number``; see numbers.py.
* Draft-04 (``$schema`` ``.../draft-04/schema``): boolean ``exclusiveMinimum``/``exclusiveMaximum``
  qualify ``minimum``/``maximum``, ``id`` sets the base URI and ``$ref`` siblings are ignored;
  keywords added by later drafts (``const``, ``contains``, ``propertyNames``, ``if``...) are
  unknown to draft-04 validators, so they are refused (``strict=False``: ignored, as draft-04 does)
  rather than enforced with a meaning the declared draft does not give them.
* Strings: ``format`` is asserted (not just annotated); ``pattern`` uses
  ECMAScript search semantics.  Strings of a printable-ASCII format (date-time,
  date, time, duration, uuid, ipv4, ipv6, hostname) and undeclared property
  names are accepted in the spellings JSON serializers write: no ``\\u``
  escape of a printable ASCII character they always write raw (for those
  formats: the raw spelling only), as for declared property names; other
  string values accept every escape spelling.
"""
from __future__ import annotations

import json
from typing import Any

import jsonschema

from ..errors import SchemaError
from ..gcpolicy import gc_paused
from ..grammar.ir import Grammar
from .emit import Emitter
from .lower import Lowerer
from .metacheck import fast_metaschema_check
from .metaschema import metaschema_validator
from .nodes import ANY

DRAFTS = {"2020-12": jsonschema.Draft202012Validator, "2019-09": jsonschema.Draft201909Validator,
          "draft7": jsonschema.Draft7Validator, "draft4": jsonschema.Draft4Validator}


def detect_draft(schema: Any, draft: str | None) -> str:
    if draft is not None:
        if draft in ("7", "draft-07"):
            draft = "draft7"
        if draft in ("4", "draft-04"):
            draft = "draft4"
        if draft not in DRAFTS:
            raise SchemaError(f"unsupported draft {draft!r} (supported: {', '.join(DRAFTS)})", pointer="#/$schema")
        return draft
    uri = schema.get("$schema") if isinstance(schema, dict) else None
    if not uri:
        return "2020-12"
    if "2020-12" in uri:
        return "2020-12"
    if "2019-09" in uri:
        return "2019-09"
    if "draft-07" in uri or "draft-06" in uri:
        return "draft7"
    if "draft-04" in uri:
        return "draft4"
    raise SchemaError(f"unsupported $schema {uri!r} (supported: 2020-12, 2019-09, draft-07, draft-06, draft-04)",
                      pointer="#/$schema", keyword="$schema")


def grammar_from_json_schema(schema: dict | str | bool, *, strict: bool = True, whitespace: str = "compact",
                             max_whitespace: int = 4, property_order: str = "any",
                             close_objects: bool = False, max_depth: int = 16, draft: str | None = None,
                             remotes: dict[str, Any] | None = None, max_rules: int = 200_000) -> Grammar:
    """Compile a JSON Schema into a :class:`Grammar` whose language is exactly the valid JSON texts
    (modulo the documented spelling restrictions), or raise a :class:`SchemaError` subclass.

    The cyclic garbage collector is paused while compiling: lowering allocates many
    short-lived objects, and with a tokenizer loaded a full collection scans millions of
    vocabulary objects (measured: about 0.4 s per full pass on the MaskBench worker),
    which used to land on random schemas.  Collection resumes afterwards (deferred, not skipped).
    """
    with gc_paused():
        return _grammar_from_json_schema(schema, strict=strict, whitespace=whitespace,
                                         max_whitespace=max_whitespace, property_order=property_order,
                                         close_objects=close_objects, max_depth=max_depth, draft=draft,
                                         remotes=remotes, max_rules=max_rules)


def _grammar_from_json_schema(schema, *, strict, whitespace, max_whitespace, property_order, close_objects,
                              max_depth, draft, remotes, max_rules) -> Grammar:
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as e:
            raise SchemaError(f"schema is not valid JSON: {e}", pointer="#") from None
    if property_order not in ("schema", "any"):
        raise ValueError("property_order must be 'schema' or 'any'")
    if max_whitespace < 1:
        raise ValueError("max_whitespace must be >= 1")
    d = detect_draft(schema, draft)
    cls = DRAFTS[d]
    # metaschema check without the 'regex' format check: jsonschema tests patterns with Python re,
    # which rejects valid ECMAScript such as \p{Letter}; patterns are checked when compiled.
    # the closure-compiled metaschema answers "valid" in a fraction of jsonschema's time; jsonschema
    # gives the verdict (and the error message) whenever it does not
    quick = fast_metaschema_check(d)
    err = None if quick is not None and quick(schema) else \
        jsonschema.exceptions.best_match(metaschema_validator(d, cls).iter_errors(schema))
    if err is not None:
        e = err
        ptr = "#" + "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in e.absolute_path)
        raise SchemaError(f"schema is not valid against its metaschema: {e.message}", pointer=ptr,
                          keyword=str(e.validator)) from None
    low = Lowerer(schema, draft=d, strict=strict, close_objects=close_objects, max_depth=max_depth,
                  remotes=remotes)
    root = low.lower(schema, low.root_uri, "#", at_resource=True)
    em = Emitter(low.algebra, low.resolve, low.refuse, whitespace=whitespace, max_whitespace=max_whitespace,
                 property_order=property_order, max_rules=max_rules)
    return em.finish(em.emit(root))


def json_object_grammar(*, object_only: bool = True, whitespace: str = "compact", max_whitespace: int = 4) -> Grammar:
    """Any JSON object (``response_format={"type": "json_object"}``), or any JSON value."""
    schema: dict = {"type": "object"} if object_only else {}
    if object_only:
        from .lower import Lowerer as _L  # noqa: F401  (kept simple: compile the schema)
        return grammar_from_json_schema(schema, whitespace=whitespace, max_whitespace=max_whitespace)
    em = Emitter(None, lambda k: ANY, lambda *a: None, whitespace=whitespace,  # type: ignore[arg-type]
                 max_whitespace=max_whitespace, property_order="schema")
    return em.finish(em.json_any())


def load_remotes(directory: str, base: str = "http://localhost:1234/") -> dict[str, Any]:
    """Remote documents for the JSON-Schema-Test-Suite (``remotes/`` served at localhost:1234)."""
    import pathlib
    out: dict[str, Any] = {}
    root = pathlib.Path(directory)
    for p in root.rglob("*.json"):
        out[base + p.relative_to(root).as_posix()] = json.loads(p.read_text())
    return out
