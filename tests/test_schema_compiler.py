"""Compiler behaviour: refusals, bad input, options, and a hypothesis round trip against jsonschema."""
from __future__ import annotations

import json
import warnings

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from hypothesis_jsonschema import from_schema

from structgen.errors import CompileLimitError, SchemaError, UnsupportedKeywordError
from structgen.schema import grammar_from_json_schema, json_object_grammar

from test_schema_reference import accepts


def test_unknown_keyword_refused_or_warned():
    # a near-miss of a real keyword is a typo: refused in strict mode, naming both
    with pytest.raises(UnsupportedKeywordError, match="maxLength") as e:
        grammar_from_json_schema({"type": "string", "maxLenght": 3})
    assert e.value.keyword == "maxLenght" and e.value.pointer == "#/maxLenght"
    with pytest.warns(UserWarning, match="maxLenght"):
        g = grammar_from_json_schema({"type": "string", "maxLenght": 3}, strict=False)
    assert accepts(g, '"xxxxx"')
    # other unknown keywords are annotations for validators (jsonschema ignores them): warned, not refused
    with pytest.warns(UserWarning, match="frobnicate.*annotation"):
        g = grammar_from_json_schema({"type": "string", "frobnicate": 1, "maxLength": 2})
    assert accepts(g, '"xy"') and not accepts(g, '"xyz"')
    # annotations and x- extensions are not refused
    grammar_from_json_schema({"type": "string", "title": "t", "description": "d", "x-kind": 1, "examples": ["a"]})


def test_unknown_format_refused():
    with pytest.raises(UnsupportedKeywordError, match="iri"):
        grammar_from_json_schema({"type": "string", "format": "iri"})


def test_bad_schema_and_empty_languages():
    with pytest.raises(SchemaError, match="metaschema"):
        grammar_from_json_schema({"type": "strin"})
    with pytest.raises(SchemaError, match="resolve"):
        grammar_from_json_schema({"$ref": "#/$defs/missing"})
    for s in [{"type": "integer", "minimum": 5, "maximum": 4}, {"enum": []} if False else {"not": {}},
              {"type": "object", "required": ["a"], "properties": {"a": False}},
              {"type": "array", "minItems": 3, "maxItems": 2}]:
        with pytest.raises(SchemaError, match="empty language"):
            grammar_from_json_schema(s)


def test_flexible_whitespace_is_bounded():
    g = grammar_from_json_schema({"type": "array", "items": {"type": "integer"}}, whitespace="flexible",
                                 max_whitespace=2)
    assert accepts(g, "[1,  2]")
    assert accepts(g, "[ 1 ,\n2 ]")
    assert not accepts(g, "[1,   2]")
    assert not accepts(grammar_from_json_schema({"type": "array"}), "[1, 2]")


def test_close_objects_and_property_order():
    s = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["b"]}
    open_g = grammar_from_json_schema(s)
    closed = grammar_from_json_schema(s, close_objects=True, property_order="schema")
    any_order = grammar_from_json_schema(s, close_objects=True)  # the default: any order
    assert accepts(open_g, '{"a":1,"b":"x","zz":[]}') and not accepts(closed, '{"a":1,"b":"x","zz":[]}')
    assert accepts(open_g, '{"zz":[],"b":"x","a":1}')
    assert accepts(closed, '{"a":1,"b":"x"}') and not accepts(closed, '{"b":"x","a":1}')
    assert accepts(any_order, '{"b":"x","a":1}') and not accepts(any_order, '{"a":1}')
    assert not accepts(any_order, '{"b":"x","b":"y"}')
    assert grammar_from_json_schema(s, property_order="any").to_text() == open_g.to_text()
    with pytest.raises(ValueError, match="property_order"):
        grammar_from_json_schema(s, property_order="sorted")


@pytest.mark.parametrize("order", ["schema", "any"])
def test_undeclared_keys_may_come_between_declared_ones(order):
    s = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
         "required": ["b"], "additionalProperties": {"type": "boolean"}, "maxProperties": 3}
    g = grammar_from_json_schema(s, property_order=order)
    validator = jsonschema.Draft202012Validator(s)
    cases = {
        '{"x":true,"a":1,"b":"s"}': True,      # undeclared first
        '{"a":1,"y":false,"b":"s"}': True,     # between declared keys
        '{"b":"s","z":true}': True,            # after (as before)
        '{"x":1,"b":"s"}': False,              # undeclared value must match additionalProperties
        '{"a":1,"x":true,"y":true,"b":"s"}': False,   # maxProperties counts undeclared keys too
        '{"b":"s","a":1}': order == "any",     # declared keys out of schema order: valid JSON Schema
        '{"x":true,"a":1}': False,             # required b missing
        '{"b":"s","b":"t"}': False,            # a declared key twice
    }
    for text, expected in cases.items():
        assert accepts(g, text) is expected, text
        assert validator.is_valid(json.loads(text)) or not expected, text
    closed = grammar_from_json_schema({"type": "object", "properties": {"a": {"type": "integer"}},
                                       "additionalProperties": False}, property_order=order)
    assert accepts(closed, '{"a":1}') and not accepts(closed, '{"x":true,"a":1}')


def test_recursive_schema():
    s = {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                                                             "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                            "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/node"}
    g = grammar_from_json_schema(s)
    assert accepts(g, '{"v":1,"kids":[{"v":2,"kids":[]},{"v":3}]}')
    assert not accepts(g, '{"v":1,"kids":[{"kids":[]}]}')


def test_oneof_exact_or_refused():
    disjoint = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    assert accepts(grammar_from_json_schema(disjoint), "3")
    overlapping = {"oneOf": [{"type": "string", "pattern": "a"}, {"type": "string", "pattern": "b"}]}
    with pytest.raises(UnsupportedKeywordError):
        grammar_from_json_schema(overlapping)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        g = grammar_from_json_schema(overlapping, strict=False)
    assert w and accepts(g, '"ab"')  # relaxed to anyOf, with a warning


def test_json_object_grammar():
    g = json_object_grammar()
    assert accepts(g, '{"a":[1,2,{"b":null}]}') and not accepts(g, "[1]")
    assert accepts(json_object_grammar(object_only=False), "[1]")


def test_compile_limit():
    # a bounded array needs one state per position: past the state budget it is refused loudly
    with pytest.raises(CompileLimitError):
        grammar_from_json_schema({"type": "array", "items": {"type": "integer"}, "minItems": 60_000})
    # any-order objects have no size limit any more (their states are generated lazily)
    g = grammar_from_json_schema({"type": "object", "properties": {f"p{i}": {} for i in range(40)}})
    assert g.has_lazy_rules()
    assert accepts(g, '{"p39":1,"p0":[],"p17":null}') and not accepts(g, '{"p3":1,"p3":2}')


def _has_exponent(v) -> bool:
    if isinstance(v, float):
        return "e" in repr(v).lower()
    if isinstance(v, list):
        return any(_has_exponent(x) for x in v)
    if isinstance(v, dict):
        return any(_has_exponent(x) for x in v.values())
    return False


SCHEMAS = [
    {"type": "object", "properties": {"id": {"type": "integer", "minimum": -50, "maximum": 1000},
                                      "name": {"type": "string", "minLength": 1, "maxLength": 8},
                                      "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]},
                                               "uniqueItems": True, "maxItems": 3},
                                      "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1.5},
                                      "ok": {"type": "boolean"}},
     "required": ["id", "name"], "additionalProperties": False},
    {"$schema": "http://json-schema.org/draft-07/schema#", "type": "array",
     "items": [{"const": "x"}, {"type": "null"}], "additionalItems": {"type": "integer", "multipleOf": 5},
     "minItems": 2, "maxItems": 5},
    {"anyOf": [{"type": "string", "pattern": "^[a-f]+$"}, {"type": "integer", "exclusiveMaximum": 7}]},
    {"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "number", "minimum": 0}},
     "required": ["kind"], "if": {"properties": {"kind": {"const": "circle"}}}, "then": {"required": ["r"]},
     "additionalProperties": False},
    {"type": "string", "format": "date"},
    # patternProperties with different schemas: keys split by which patterns find them ("x_id" is
    # found by both, whose schemas contradict: no value fits), the rest get additionalProperties
    {"type": "object", "properties": {"id": {"type": "integer"}},
     "patternProperties": {"^x": {"type": "integer", "minimum": 0}, "_id$": {"type": "string"}},
     "additionalProperties": {"type": "boolean"}, "maxProperties": 4},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hypothesis_instances_accepted(schema, data):
    g = grammar_from_json_schema(schema)
    inst = data.draw(from_schema(schema))
    # hypothesis-jsonschema predates 2020-12 (e.g. prefixItems): keep only instances jsonschema calls valid
    cls = jsonschema.validators.validator_for(schema)
    v = cls(schema, format_checker=cls.FORMAT_CHECKER)
    assume(v.is_valid(inst))
    if _has_exponent(inst):
        return  # exponent spellings of bounded numbers are documented as refused (numbers.py)
    # the default accepts hypothesis' key order as is; property order "schema" needs keys in schema order
    assert accepts(g, json.dumps(inst, separators=(",", ":"), ensure_ascii=False)), inst
    if isinstance(inst, dict) and "properties" in schema:
        order = list(schema["properties"])
        inst = dict(sorted(inst.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    text = json.dumps(inst, separators=(",", ":"), ensure_ascii=False)
    assert accepts(grammar_from_json_schema(schema, property_order="schema"), text), text


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.recursive(st.none() | st.booleans() | st.integers(-100, 2000) | st.sampled_from(
    ["a", "b", "c", "x", "circle", "abc", "2024-02-29", "2023-02-29", "", "kind", "r"]) | st.floats(-2, 3, allow_nan=False),
    lambda ch: st.lists(ch, max_size=5) | st.dictionaries(st.sampled_from(["id", "name", "tags", "score", "ok", "kind", "r", "z",
                                                                           "x1", "a_id", "x_id", "xx"]), ch, max_size=5),
    max_leaves=8))
def test_accepted_strings_validate(schema, value):
    """Whatever the grammar accepts is valid per jsonschema (with format assertion)."""
    g = grammar_from_json_schema(schema)
    text = json.dumps(value, separators=(",", ":"))
    if accepts(g, text):
        cls = jsonschema.validators.validator_for(schema)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        assert validator.is_valid(json.loads(text)), text


def test_close_objects_with_shape_from_applicators():
    """Regression (BFCL multiple_64): closing objects must not turn an anyOf-only schema into an
    empty language by intersecting the branches with a closed empty object."""
    from structgen.engine import accepts_text
    schema = {"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}]}
    g = grammar_from_json_schema(schema, close_objects=True)
    assert accepts_text(g, '{"a":1}')
    assert not accepts_text(g, '{"a":1,"b":2}')  # the branch itself is closed
    assert not accepts_text(g, "{}")
    ref = {"$defs": {"o": {"type": "object", "properties": {"x": {"type": "string"}}}}, "$ref": "#/$defs/o"}
    g = grammar_from_json_schema(ref, close_objects=True)
    assert accepts_text(g, '{"x":"y"}') and not accepts_text(g, '{"z":1}')


def test_many_pattern_properties_refused_by_name():
    pats = {f"^{c}": {"type": "integer", "minimum": i} for i, c in enumerate("abcde")}
    schema = {"type": "object", "patternProperties": pats}
    with pytest.raises(UnsupportedKeywordError) as e:
        grammar_from_json_schema(schema)
    assert e.value.keyword == "patternProperties" and "2^5" in str(e.value)
    with pytest.warns(UserWarning, match="patternProperties"):
        g = grammar_from_json_schema(schema, strict=False)          # relaxed loudly: a superset
    assert accepts(g, '{"a":0,"e":4}')
    four = {"type": "object", "patternProperties": dict(list(pats.items())[:4])}
    g4 = grammar_from_json_schema(four)
    assert accepts(g4, '{"a":0,"d":3,"z":"free"}') and not accepts(g4, '{"d":2}')
