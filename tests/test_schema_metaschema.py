"""The merged 2020-12 / 2019-09 metaschemas give the official metaschemas' verdicts.

Checked on the JSON-Schema-Test-Suite schemas (draft2020-12), a 1/20 sample of
the MaskBench schemas, and hand-made invalid schemas in keyword, nested and
legacy-keyword positions.
"""
from __future__ import annotations

import json
import os
import pathlib

import jsonschema
import pytest

from structgen.errors import SchemaError
from structgen.schema import grammar_from_json_schema
from structgen.schema.compiler import DRAFTS
from structgen.schema.metaschema import flat_metaschema, metaschema_validator

CORPORA = pathlib.Path(os.environ.get("STRUCTGEN_CORPORA",
                                      pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "corpora"))
SUITE = CORPORA / "json-schema-test-suite" / "tests" / "draft2020-12"
MASKBENCH = CORPORA / "jsonschemabench" / "maskbench" / "data"

INVALID = [
    {"type": "strin"}, {"minLength": -1}, {"properties": {"a": {"type": 3}}}, {"items": {"maxItems": "x"}},
    {"$defs": {"a": {"enum": "x"}}}, {"definitions": {"a": {"required": "a"}}},
    {"dependencies": {"a": 3}}, {"dependencies": {"a": {"minimum": "0"}}}, {"allOf": []},
    {"anyOf": [{"type": "integer"}, {"pattern": 1}]}, {"prefixItems": [{"multipleOf": 0}]},
    {"additionalProperties": {"not": {"const": 1, "uniqueItems": 1}}}, {"$ref": 5}, {"$anchor": "1a"},
    {"contentSchema": {"type": []}}, {"unevaluatedProperties": {"maxProperties": -2}}, {"deprecated": "no"},
    {"$recursiveRef": 1}, {"patternProperties": {"^a": {"format": 3}}}, {"dependentRequired": {"a": [1]}},
]


def _official(draft: str):
    cls = DRAFTS[draft]
    return cls(cls.META_SCHEMA)


def _schemas():
    out = []
    if SUITE.exists():
        for f in sorted(SUITE.rglob("*.json")):
            for group in json.loads(f.read_text()):
                out.append(group["schema"])
    if MASKBENCH.exists():
        for f in sorted(MASKBENCH.glob("*.json"))[::20]:
            out.append(json.loads(f.read_text())["schema"])
    return out


@pytest.mark.skipif(not SUITE.exists(), reason=f"corpus missing: {SUITE}")
@pytest.mark.parametrize("draft", ["2020-12", "2019-09"])
def test_same_verdict_as_official_metaschema(draft: str) -> None:
    official = _official(draft)
    fast = metaschema_validator(draft, DRAFTS[draft])
    schemas = _schemas() + INVALID
    n_invalid = 0
    for schema in schemas:
        want = official.is_valid(schema)
        assert fast.is_valid(schema) == want, json.dumps(schema)[:300]
        n_invalid += not want
    if draft == "2020-12":
        assert n_invalid >= len(INVALID)


def _keywords(node, out: set) -> set:
    """Every keyword used in schema positions (property names of name maps are not keywords)."""
    if isinstance(node, dict):
        for k, v in node.items():
            out.add(k)
            if k in ("properties", "$defs", "patternProperties") and isinstance(v, dict):
                for sub in v.values():
                    _keywords(sub, out)
            else:
                _keywords(v, out)
    elif isinstance(node, list):
        for v in node:
            _keywords(v, out)
    return out


def test_no_dynamic_references_left() -> None:
    for draft in ("2020-12", "2019-09"):
        used = _keywords(flat_metaschema(draft), set())
        assert not used & {"$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor"}
    jsonschema.Draft202012Validator.check_schema(flat_metaschema("2020-12"))


@pytest.mark.parametrize("schema", INVALID[:6])
def test_compiler_refuses_invalid_schema_with_pointer(schema: dict) -> None:
    with pytest.raises(SchemaError, match="not valid against its metaschema"):
        grammar_from_json_schema(schema)


# ------------------------------------------------------------------ the closure-compiled fast check
INVALID_LEGACY = [
    {"type": "strin"}, {"minLength": -1}, {"minLength": 1.5}, {"properties": {"a": {"type": 3}}},
    {"items": [{"maxItems": "x"}]}, {"definitions": {"a": {"required": []}}}, {"enum": []},
    {"exclusiveMinimum": True}, {"multipleOf": 0}, {"dependencies": {"a": 3}}, {"required": ["a", "a"]},
    {"type": ["string", "string"]}, {"additionalItems": 1}, {"not": []},
]


def _mutations(schema, rng, n: int) -> list:
    """Schemas with one keyword value replaced by a value of another JSON type (often invalid)."""
    import random as _r  # noqa: F401 - rng is a random.Random
    values = [None, True, 0, -1, 1.5, "x", [], [1, 1], {}, {"type": "nope"}]
    paths = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                paths.append(path + (k,))
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + (i,))
    walk(schema, ())
    out = []
    for _ in range(min(n, len(paths))):
        path = rng.choice(paths)
        mutant = json.loads(json.dumps(schema))
        node = mutant
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = rng.choice(values)
        out.append(mutant)
    return out


@pytest.mark.skipif(not SUITE.exists() or not MASKBENCH.exists(), reason=f"corpus missing: {CORPORA}")
@pytest.mark.parametrize("draft", ["2020-12", "2019-09", "draft7", "draft4"])
def test_fast_check_gives_the_official_verdict(draft: str) -> None:
    import random
    from structgen.schema.metacheck import fast_metaschema_check
    quick = fast_metaschema_check(draft)
    assert quick is not None
    official = _official(draft)
    rng = random.Random(draft)
    base = _schemas() + INVALID + INVALID_LEGACY
    schemas = base + [m for s in base[::7] for m in _mutations(s, rng, 3)]
    verdicts = {True: 0, False: 0}
    for schema in schemas:
        want = official.is_valid(schema)
        assert quick(schema) == want, (draft, json.dumps(schema)[:300])
        verdicts[want] += 1
    assert verdicts[False] >= len(INVALID) and verdicts[True] >= 100, verdicts


def test_fast_check_semantics_of_legacy_drafts() -> None:
    from structgen.schema.metacheck import equal, fast_metaschema_check
    assert fast_metaschema_check("draft4")({"minLength": 1}) and not fast_metaschema_check("draft4")({"minLength": 1.0})
    assert fast_metaschema_check("draft7")({"minLength": 1.0})
    assert not fast_metaschema_check("draft4")({"multipleOf": 0}) and fast_metaschema_check("draft4")({"multipleOf": 2})
    assert equal(1, 1.0) and not equal(True, 1) and not equal([0], [False]) and equal({"a": [1]}, {"a": [1.0]})
