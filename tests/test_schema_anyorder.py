"""Objects in any key order (the compiler's default), exact, against jsonschema.

Small objects get their states as static rules; bigger ones a lazy rule
family (structgen/schema/anyorder.py) whose states the Earley parser
materializes on demand.  Both are checked here: every key order of a valid
object is accepted, duplicated declared keys and missing required ones are
refused, min/maxProperties count every member, random and mutated instances
agree with jsonschema (an independent validator), and token masks equal the
pure-Python per-token reference.
"""
from __future__ import annotations

import itertools
import json
import random

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from structgen.engine import accepts_text, compile_grammar
from structgen.schema import emit, grammar_from_json_schema

from test_engine import reference_mask, synthetic_vocab
from test_schema_reference import accepts as reference_accepts


@pytest.fixture(params=["eager", "lazy"])
def encoding(request, monkeypatch):
    """'lazy' forces the lazy family even for small objects, 'eager' static rules for these sizes."""
    monkeypatch.setattr(emit, "EAGER_OBJECT_STATES", 0 if request.param == "lazy" else 100_000)
    return request.param


def _compile(schema, encoding, **kw):
    g = grammar_from_json_schema(schema, **kw)
    g.validate()  # the compiler's output is a valid grammar (the engine validates it again)
    has_objects = "properties" in json.dumps(schema)
    assert g.has_lazy_rules() == (encoding == "lazy" and has_objects), g.to_text()[:300]
    return g


def _text(pairs) -> str:
    """Compact JSON object text from (key, value) pairs, duplicates kept as written."""
    return "{" + ",".join(json.dumps(k) + ":" + json.dumps(v, separators=(",", ":")) for k, v in pairs) + "}"


def _valid(schema, text: str) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(json.loads(text))


FIVE = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"},
                                         "d": {"type": "null"}, "e": {"type": "array", "items": {"type": "integer"}}},
        "required": ["b", "d"], "additionalProperties": False}
VALUES = {"a": 1, "b": "s", "c": True, "d": None, "e": [1, 2]}


def test_every_key_order_of_every_subset(encoding):
    g = _compile(FIVE, encoding)
    n = 0
    for r in range(0, 6):
        for keys in itertools.combinations("abcde", r):
            for perm in itertools.permutations(keys):
                text = _text((k, VALUES[k]) for k in perm)
                expected = {"b", "d"} <= set(keys)
                assert _valid(FIVE, text) is expected
                assert accepts_text(g, text) is expected, text
                n += expected
    assert n == 2 + 3 * 6 + 3 * 24 + 120  # every order of every subset containing b and d


def test_duplicates_missing_required_and_wrong_values_refused(encoding):
    g = _compile(FIVE, encoding)
    for pairs in ([("b", "s"), ("d", None), ("b", "t")],            # declared key twice
                  [("d", None), ("b", "s"), ("d", None)],
                  [("b", "s"), ("a", 1), ("d", None), ("a", 1)],
                  [("b", "s"), ("a", 1)],                           # required d missing
                  [("a", 1), ("c", False), ("e", [])],
                  [("d", None), ("b", 3)],                          # wrong value type
                  [("d", None), ("b", "s"), ("z", 1)]):             # undeclared key, closed object
        assert not accepts_text(g, _text(pairs)), pairs
        assert not reference_accepts(g, _text(pairs)), pairs


COUNTED = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"},
                                            "c": {"type": "integer"}},
           "required": ["c"], "additionalProperties": {"type": "boolean"}, "minProperties": 2, "maxProperties": 4}


def test_min_and_max_properties_count_declared_and_undeclared_members(encoding):
    g = _compile(COUNTED, encoding)
    keys = ["a", "b", "c", "x", "y"]
    val = {"a": 1, "b": 2, "c": 3, "x": True, "y": False}
    checked = 0
    for r in range(0, 6):
        for perm in itertools.permutations(keys, r):
            text = _text((k, val[k]) for k in perm)
            assert accepts_text(g, text) is _valid(COUNTED, text), text
            checked += 1
    assert checked == 326


def test_many_properties_materialize_only_visited_states():
    schema = {"type": "object", "properties": {f"k{i}": {"type": "integer"} for i in range(30)},
              "required": ["k29", "k0"], "additionalProperties": False}
    g = grammar_from_json_schema(schema)
    assert g.has_lazy_rules() and len(g.lazy) == 1
    compiled = compile_grammar(g, synthetic_vocab(), cache=False)
    m = compiled.matcher()
    text = _text([("k29", 1), ("k7", 2), ("k0", 3), ("k13", 4)])
    assert m.accept_string(text) and m.is_accepting()
    lazy = compiled.parser.lazy
    # 2^30 subsets exist; a 4-member parse materializes one R and one M state per member (the
    # successors a materialized M state names get ids, but no productions until predicted)
    materialized = lazy.lazy_ids - lazy.pending
    assert 4 <= len(materialized) <= 12, len(materialized)
    assert len(lazy.lazy_ids) <= 5 * 31, len(lazy.lazy_ids)
    assert accepts_text(g, _text([("k0", 1)] + [(f"k{i}", i) for i in range(29, 0, -1)]))
    assert not accepts_text(g, _text([("k0", 1)] + [(f"k{i}", i) for i in range(28, 0, -1)]))


def test_sp378_shape_required_listed_out_of_schema_order():
    """MaskBench Snowplow sp_378's shape: keys written in `required` order, not `properties` order."""
    props = [f"p{i:02d}" for i in range(19)]
    req = props[::-1][:14]
    schema = {"type": "object", "properties": {p: {"type": "string"} for p in props}, "required": req,
              "additionalProperties": False}
    g = grammar_from_json_schema(schema)
    text = _text([(p, "v") for p in req + props[:5][::-1]])
    assert _valid(schema, text) and accepts_text(g, text)
    assert not accepts_text(grammar_from_json_schema(schema, property_order="schema"), text)


def test_nested_and_recursive_objects_any_order(encoding):
    s = {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"}, "tag": {"type": "string"},
                                                             "kids": {"type": "array",
                                                                      "items": {"$ref": "#/$defs/node"}}},
                            "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/node"}
    g = _compile(s, encoding)
    for text in ['{"kids":[{"v":2},{"tag":"t","v":3,"kids":[]}],"v":1}', '{"tag":"x","v":1}']:
        assert _valid(s, text) and accepts_text(g, text) and reference_accepts(g, text)
    for text in ['{"kids":[{"tag":"t"}],"v":1}', '{"v":1,"kids":[],"v":2}']:
        assert not accepts_text(g, text) and not reference_accepts(g, text)


def test_unproductive_member_is_never_offered(encoding):
    """A property whose schema has no finite instance must not be a dead end in the grammar."""
    s = {"$defs": {"inf": {"type": "object", "properties": {"x": {"$ref": "#/$defs/inf"}}, "required": ["x"]}},
         "type": "object", "properties": {"a": {"$ref": "#/$defs/inf"}, "b": {"type": "integer"},
                                          "c": {"type": "integer"}},
         "additionalProperties": False}
    g = _compile(s, encoding)
    compiled = compile_grammar(g, synthetic_vocab(), cache=False)
    m = compiled.matcher()
    assert m.accept_string('{"c":1,') and not m.fork().accept_string('"a"')
    assert m.accept_string('"b":2}') and m.is_accepting()


def test_const_object_in_any_order(encoding):
    s = {"const": {"x": 1, "y": [True], "z": {"q": None, "r": "s"}}}
    g = grammar_from_json_schema(s)
    for perm in itertools.permutations(["x", "y", "z"]):
        for inner in (["q", "r"], ["r", "q"]):
            z = "{" + ",".join(f'"{k}":' + json.dumps(s["const"]["z"][k]) for k in inner) + "}"
            text = "{" + ",".join(f'"{k}":' + (z if k == "z" else json.dumps(s["const"][k], separators=(",", ":")))
                                  for k in perm) + "}"
            assert accepts_text(g, text), text
    assert not accepts_text(g, '{"x":1,"y":[true]}')


def test_fingerprints_tell_lazy_families_apart(monkeypatch):
    monkeypatch.setattr(emit, "EAGER_OBJECT_STATES", 0)
    base = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    g1 = grammar_from_json_schema(dict(base, required=["a"]))
    g2 = grammar_from_json_schema(dict(base, required=["b"]))
    assert g1.has_lazy_rules() and g2.has_lazy_rules()
    assert g1.to_text() != g2.to_text()
    assert repr(g1.rules) != repr(g2.rules)  # the API's Grammar cache key sees the family too
    assert accepts_text(g1, '{"a":1}') and not accepts_text(g2, '{"a":1}')


# ------------------------------------------------------------------ random and mutated instances vs jsonschema
RANDOM_SCHEMAS = [
    FIVE,
    COUNTED,
    {"type": "object", "properties": {k: {"type": "integer", "minimum": 0} for k in "abcdefghij"},
     "required": ["c", "h"], "patternProperties": {"^x": {"type": "string"}}, "additionalProperties": False,
     "maxProperties": 6},
    {"type": "object", "properties": {"a": {"type": "object", "properties": {k: {"type": "boolean"} for k in "pqrs"},
                                            "required": ["s"]},
                                      "b": {"enum": [1, 2]}, "c": {"type": "string"}},
     "required": ["a"], "minProperties": 2},
]
KEYS = list("abcdefghijpqrs") + ["x1", "xy", "z"]
LEAF = st.none() | st.booleans() | st.integers(-2, 3) | st.sampled_from(["", "s", "xy"])
VALUE = st.recursive(LEAF, lambda ch: st.lists(ch, max_size=2) | st.lists(st.tuples(st.sampled_from(KEYS), ch),
                                                                             max_size=4).map(dict), max_leaves=6)


@pytest.mark.parametrize("schema", RANDOM_SCHEMAS, ids=range(len(RANDOM_SCHEMAS)))
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(pairs=st.lists(st.tuples(st.sampled_from(KEYS), VALUE), max_size=8), seed=st.integers(0, 2**16))
def test_random_and_mutated_instances_agree_with_jsonschema(schema, pairs, seed):
    g = grammar_from_json_schema(schema)
    rng = random.Random(seed)
    # start from a valid-looking object often: required keys with valid values
    if rng.random() < 0.6:
        for k in schema.get("required", []):
            pairs.append((k, {"a": {"s": True}}.get(k, 1) if schema is not FIVE else VALUES[k]))
        rng.shuffle(pairs)
    seen: dict = {}
    for k, v in pairs:
        seen.setdefault(k, v)
    unique = list(seen.items())
    text = _text(unique)
    expected = _valid(schema, text)
    assert accepts_text(g, text) is expected, text
    assert reference_accepts(g, text) is expected, text
    if unique:  # mutation: repeat a key -> refused when the key is declared (duplicates are not exact JSON)
        k, v = rng.choice(unique)
        dup = unique + [(k, v)]
        rng.shuffle(dup)
        if k in schema["properties"]:
            assert not accepts_text(g, _text(dup)), _text(dup)


# ------------------------------------------------------------------ masks against the per-token reference
def _check_masks(compiled, info, text: str) -> int:
    m = compiled.matcher()
    ids = info.encode(text)
    for i in range(len(ids) + 1):
        fast = m.allowed_mask()
        ref = reference_mask(m)
        diff = np.nonzero(fast != ref)[0]
        assert len(diff) == 0, (text, i, [info.token_bytes[t] for t in diff[:8]])
        if i < len(ids):
            assert m.accept_token(ids[i]), (text, i)
    assert m.is_accepting()
    return len(ids)


def test_masks_equal_reference_on_synthetic_vocabulary(encoding):
    info = synthetic_vocab(seed=3)
    schema = COUNTED
    compiled = compile_grammar(_compile(schema, encoding), info, cache=False)
    rng = random.Random(0)
    val = {"a": 1, "b": 22, "c": 0, "x": True, "y": False}
    texts = []
    for _ in range(6):
        keys = ["c"] + rng.sample(["a", "b", "x", "y"], rng.randint(1, 3))
        rng.shuffle(keys)
        texts.append(_text((k, val[k]) for k in keys))
    assert sum(_check_masks(compiled, info, t) for t in texts) > 60


def test_masks_equal_reference_on_real_tokenizer(real_tokenizer_info, monkeypatch):
    monkeypatch.setattr(emit, "EAGER_OBJECT_STATES", 0)
    info = real_tokenizer_info("smollm2-135m")
    compiled = compile_grammar(grammar_from_json_schema(FIVE), info, cache=False)
    _check_masks(compiled, info, _text([("d", None), ("a", 12), ("b", "hi there"), ("e", [3])]))
