"""MaskBench correctness on a fixed subset, through structgen with a real tokenizer.

Every MaskBench file holds a schema and instances labelled valid/invalid; a
schema that compiles must accept every valid instance (compact JSON, tokenized
canonically, each token allowed by the mask, EOS allowed at the end) and refuse
every invalid one.  Labels are cross-checked with ``jsonschema`` so the test
rests on an independent reference, not on the corpus alone.  Schemas that do
not compile must fail with a StructgenError naming the keyword.
"""
from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from structgen.engine import compile_grammar
from structgen.errors import SchemaError, StructgenError, UnsupportedKeywordError
from structgen.schema import grammar_from_json_schema

# varied: enum, pattern, date-time, $ref, anyOf, oneOf, min/max length/int/number, patternProperties,
# allOf, const, email, uri, multipleOf, minItems, draft-04/06/07/2020-12 documents
COMPILES = [
    "Github_easy---o12299.json", "Github_easy---o17692.json", "Github_easy---o10012.json",
    "Github_easy---o39141.json", "Github_easy---o25952.json", "Github_easy---o36641.json",
    "Github_easy---o9801.json", "Github_easy---o25191.json", "Github_easy---o81581.json",
    "Github_easy---o79443.json", "Github_easy---o21475.json",
    "Github_hard---o41232.json", "MCPspec---GetPromptRequest.json", "Github_easy---o44051.json",
    "Github_easy---o90072.json", "Github_easy---o43993.json",
    "Github_easy---o37615.json",  # carries a non-JSON-Schema keyword ("elements"): an annotation, warned
]
# (file, keyword the refusal must name)
REFUSED = [
    ("Github_easy---o81565.json", "dependencies"),
    ("JsonSchemaStore---drupal-breakpoints.json", "uniqueItems"),
    ("Github_easy---o21053.json", "pattern"),
    ("Github_medium---o39097.json", "if"),  # draft-04 document: `if` is not a draft-04 keyword
]

D4 = "http://json-schema.org/draft-04/schema#"


def _data(corpora, name: str) -> dict:
    return json.loads((corpora / "jsonschemabench" / "maskbench" / "data" / name).read_text())


def _bit(words: np.ndarray, t: int) -> bool:
    return bool((int(words[t >> 5]) >> (t & 31)) & 1)


def _replay(compiled, info, text: str) -> tuple[bool, int | None]:
    """(fully accepted with EOS allowed at the end, index of the refused token)."""
    m = compiled.matcher()
    ids = info.encode(text)
    for i, t in enumerate(ids):
        if not _bit(m.next_token_mask_words(), t) or not m.accept_token(t):
            return False, i
    words = m.next_token_mask_words()
    return any(_bit(words, e) for e in info.eos_ids), None


def _validator(schema):
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def smollm(real_tokenizer_info):
    return real_tokenizer_info("smollm2-135m")


@pytest.mark.parametrize("name", COMPILES)
@pytest.mark.filterwarnings("ignore:unknown keyword")
def test_maskbench_file_no_wrong_accepts_or_rejects(corpora, smollm, name):
    d = _data(corpora, name)
    compiled = compile_grammar(grammar_from_json_schema(d["schema"]), smollm, cache=False)
    v = _validator(d["schema"])
    assert d["tests"], name
    for i, t in enumerate(d["tests"]):
        assert v.is_valid(t["data"]) == t["valid"], f"{name}#{i}: corpus label disagrees with jsonschema"
        text = json.dumps(t["data"], separators=(",", ":"), ensure_ascii=False)
        ok, at = _replay(compiled, smollm, text)
        assert ok == t["valid"], (f"{name}#{i}: {'wrong reject at token ' + str(at) if t['valid'] else 'wrong accept'}"
                                  f" of {text[:200]}")


# the valid instances the last schema-order run refused because their keys were out of schema order
# (sp_378 writes 14 required keys in `required` order; wp_29 puts an undeclared key first)
KEY_ORDER = ["Github_medium---o10078.json", "Github_medium---o83391.json", "JsonSchemaStore---schema-app.json",
             "Snowplow---sp_378_Normalized.json", "WashingtonPost---wp_29_Normalized.json"]


@pytest.mark.parametrize("name", KEY_ORDER)
@pytest.mark.filterwarnings("ignore:unknown keyword")
def test_maskbench_out_of_schema_order_instances(corpora, smollm, name):
    d = _data(corpora, name)
    compiled = compile_grammar(grammar_from_json_schema(d["schema"]), smollm, cache=False)
    v = _validator(d["schema"])
    for i, t in enumerate(d["tests"]):
        assert v.is_valid(t["data"]) == t["valid"], f"{name}#{i}"
        text = json.dumps(t["data"], separators=(",", ":"), ensure_ascii=False)
        ok, at = _replay(compiled, smollm, text)
        assert ok == t["valid"], f"{name}#{i}: {'rejected at token ' + str(at) if t['valid'] else 'accepted'}"


@pytest.mark.parametrize("name,keyword", REFUSED)
def test_maskbench_refusals_name_the_keyword(corpora, name, keyword):
    d = _data(corpora, name)
    with pytest.raises(StructgenError) as ei:
        grammar_from_json_schema(d["schema"])
    assert isinstance(ei.value, SchemaError)
    assert ei.value.keyword == keyword
    assert repr(keyword) in str(ei.value) and "#" in str(ei.value)


# ---------------------------------------------------------------- draft-04 (half of MaskBench declares it)

def _accepts(schema, text: str) -> bool:
    from structgen.engine.compile import accepts_text
    return accepts_text(grammar_from_json_schema(schema), text)


@pytest.mark.parametrize("schema,texts", [
    ({"$schema": D4, "type": "integer", "minimum": 3, "exclusiveMinimum": True, "maximum": 9,
      "exclusiveMaximum": False}, ["2", "3", "4", "9", "10"]),
    ({"$schema": D4, "type": "number", "maximum": 1.5, "exclusiveMaximum": True}, ["1.5", "1.49", "-3", "2"]),
    ({"$schema": D4, "type": "integer", "minimum": 0, "exclusiveMinimum": False}, ["-5", "0", "7"]),
    # draft-04: siblings of $ref are ignored
    ({"$schema": D4, "type": "object", "properties": {"a": {"$ref": "#/definitions/x", "type": "string"}},
      "definitions": {"x": {"type": "integer"}}}, ['{"a":1}', '{"a":"s"}']),
    # draft-04 `id` sets the base URI of a subschema
    ({"$schema": D4, "id": "http://example.com/root.json", "type": "object",
      "properties": {"p": {"id": "sub/", "type": "object", "properties": {"q": {"$ref": "item.json"}}}},
      "definitions": {"i": {"id": "http://example.com/sub/item.json", "type": "boolean"}}},
     ['{"p":{"q":true}}', '{"p":{"q":1}}']),
])
def test_draft4_matches_jsonschema(schema, texts):
    v = jsonschema.Draft4Validator(schema)
    for text in texts:
        assert _accepts(schema, text) == v.is_valid(json.loads(text)), text


@pytest.mark.parametrize("keyword,schema", [
    ("const", {"$schema": D4, "type": "object", "properties": {"a": {"const": 1}}}),
    ("if", {"$schema": D4, "type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}),
    ("propertyNames", {"$schema": D4, "type": "object", "propertyNames": {"maxLength": 2}}),
])
def test_draft4_later_keywords_refused_or_ignored_like_draft4(keyword, schema):
    """Draft-04 validators ignore these keywords: strict refuses by name, non-strict matches draft-04."""
    with pytest.raises(UnsupportedKeywordError) as ei:
        grammar_from_json_schema(schema)
    assert ei.value.keyword == keyword and "draft-04" in str(ei.value)
    from structgen.engine.compile import accepts_text
    with pytest.warns(UserWarning):
        g = grammar_from_json_schema(schema, strict=False)
    v = jsonschema.Draft4Validator(schema)
    for text in ['{"a":2}', '{"a":1}', '{"abc":1}', '{"a":1,"b":2}']:
        assert accepts_text(g, text) == v.is_valid(json.loads(text)), text


def test_draft4_metaschema_errors_are_schema_errors():
    with pytest.raises(SchemaError) as ei:
        grammar_from_json_schema({"$schema": D4, "type": "integer", "minimum": 1, "exclusiveMinimum": 3})
    assert "exclusiveMinimum" in str(ei.value)


def test_unsupported_draft_is_refused_by_name():
    with pytest.raises(SchemaError, match="draft-03"):
        grammar_from_json_schema({"$schema": "http://json-schema.org/draft-03/schema#", "type": "string"})


def test_unknown_keyword_is_refused_naming_it():
    with pytest.raises(UnsupportedKeywordError, match="minimun"):
        grammar_from_json_schema({"type": "integer", "minimun": 3})


def test_long_bounded_array_compiles_without_recursion_error():
    """MaskBench Github_medium---o9782: maxItems 1000 used to raise RecursionError (one Python
    frame per array position in the emitter); it must compile and count exactly."""
    from structgen.engine.compile import accepts_text
    g = grammar_from_json_schema({"type": "array", "items": {"type": "integer"}, "maxItems": 1500, "minItems": 2})
    assert accepts_text(g, "[" + ",".join(["7"] * 1500) + "]")
    assert not accepts_text(g, "[" + ",".join(["7"] * 1501) + "]")
    assert not accepts_text(g, "[7]")
