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
