"""Format strings: exact values, raw spelling for printable-ASCII formats, fast cold compiles.

Values are checked against an independent definition (RFC 3339 arithmetic
written here for time-offsets and leap seconds, and jsonschema's format
checker); the spelling rule against the reference recognizer and the engine.
"""
from __future__ import annotations

import json
import random
import time

import jsonschema
import pytest

from structgen.engine import accepts_text
from structgen.regex import clear_caches
from structgen.schema import grammar_from_json_schema

from test_schema_reference import accepts as reference_accepts


def _leap_ok(hh: int, mm: int, offset: str) -> bool:
    """RFC 3339: second 60 only at 23:59 UTC; local = UTC + offset."""
    if offset in "Zz":
        return (hh, mm) == (23, 59)
    sign = 1 if offset[0] == "+" else -1
    oh, om = int(offset[1:3]), int(offset[4:6])
    utc = (hh * 60 + mm - sign * (oh * 60 + om)) % 1440
    return utc == 23 * 60 + 59


def test_leap_seconds_exact_against_rfc3339_arithmetic():
    g = grammar_from_json_schema({"type": "string", "format": "time"})
    rng = random.Random(5)
    offsets = ["Z", "z", "+00:00", "-00:00", "+01:00", "-01:00", "+23:59", "-23:59", "+05:30", "-12:01"]
    cases = [(23, 59, o) for o in offsets] + [(h, m, o) for h in (0, 12, 22, 23) for m in (0, 58, 59)
                                              for o in offsets]
    cases += [(rng.randrange(24), rng.randrange(60), f"{rng.choice('+-')}{rng.randrange(24):02d}:{rng.randrange(60):02d}")
              for _ in range(300)]
    for hh, mm, off in cases:
        for frac in ("", ".5", ".123456"):
            text = f'"{hh:02d}:{mm:02d}:60{frac}{off}"'
            assert accepts_text(g, text) is _leap_ok(hh, mm, off), text
        assert accepts_text(g, f'"{hh:02d}:{mm:02d}:59{off}"'), (hh, mm, off)
    for bad in ['"24:00:00Z"', '"23:60:00Z"', '"23:59:61Z"', '"23:59:59+24:00"', '"23:59:59"', '"1:00:00Z"',
                '"23:59:59.Z"', '"23:59:59+0100"']:
        assert not accepts_text(g, bad), bad


@pytest.mark.parametrize("fmt,value", [("date-time", "2016-12-31T23:59:59.5+01:00"), ("date", "2024-02-29"),
                                       ("time", "08:30:06.283185+05:30"), ("uuid", "2eb8aa08-aa98-11ea-b4aa-73b441d16380"),
                                       ("ipv4", "192.168.0.1"), ("ipv6", "::ffff:192.168.0.1"),
                                       ("hostname", "www.example-host.com"), ("duration", "P4DT12H30M5S")])
def test_printable_ascii_formats_take_the_raw_spelling_only(fmt, value):
    schema = {"type": "string", "format": fmt}
    g = grammar_from_json_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert validator.is_valid(value)
    raw = json.dumps(value)
    assert raw == json.dumps(value, ensure_ascii=False)  # the one canonical spelling
    assert accepts_text(g, raw) and reference_accepts(g, raw)
    escaped = '"\\u%04x' % ord(value[0]) + raw[2:]
    assert json.loads(escaped) == value
    assert not accepts_text(g, escaped) and not reference_accepts(g, escaped)


def test_other_strings_keep_every_escape_spelling():
    for schema in ({"type": "string"}, {"type": "string", "pattern": "^[a-z]+$"}, {"type": "string", "format": "uri"},
                   {"type": "string", "format": "email"}):
        g = grammar_from_json_schema(schema)
        text = {"uri": '"\\u0068ttp:\\/\\/x.org"', "email": '"\\u0061@b.org"'}.get(schema.get("format"), '"\\u0061bc"')
        assert accepts_text(g, text), (schema, text)


def test_hostname_compiles_and_agrees_with_length_rules():
    g = grammar_from_json_schema({"type": "string", "format": "hostname"})
    label = "a" * 63
    ok = ".".join([label] * 3) + "." + "b" * 61            # 253 characters
    assert len(ok) == 253 and accepts_text(g, json.dumps(ok))
    assert not accepts_text(g, json.dumps(ok + "b"))       # 254 characters
    assert not accepts_text(g, json.dumps("a" * 64 + ".com"))
    assert not accepts_text(g, '"-a.com"') and not accepts_text(g, '"a-.com"') and not accepts_text(g, '"a..b"')


def test_date_time_compiles_cold_in_well_under_a_second():
    """Regression guard for the direct DFA builder (it took 3-7 s through the regex path)."""
    clear_caches()
    from structgen.engine import compile_grammar
    from structgen.engine.compile import byte_level_tokenizer
    t0 = time.perf_counter()
    compile_grammar(grammar_from_json_schema({"type": "string", "format": "date-time"}), byte_level_tokenizer(),
                    cache=False)
    assert time.perf_counter() - t0 < 2.0


def test_undeclared_keys_take_the_spellings_serializers_write():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}}
    g = grammar_from_json_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for key in ["b", "caf\u00e9", "<tag>&'", "x/y", 'quote"d', "tab\t", "\U0001F600", "a b"]:
        for ensure_ascii in (True, False):
            text = json.dumps({key: "v", "a": 1}, ensure_ascii=ensure_ascii, separators=(",", ":"))
            assert validator.is_valid(json.loads(text))
            assert accepts_text(g, text) and reference_accepts(g, text), text
    for text in ['{"x\\/y":"v"}', '{"\\u003ctag\\u003e":"v"}', '{"\\u00e9":"v"}']:  # PHP, Go, ensure_ascii
        assert accepts_text(g, text) and reference_accepts(g, text), text
    # a \u escape of a character serializers write raw: not a spelling any of them produce
    for text in ['{"\\u0062":"v"}', '{"b\\u0063":"v"}', '{"\\u0061":1}']:
        assert not accepts_text(g, text) and not reference_accepts(g, text), text
    # and the declared key never passes as an undeclared one, raw or escaped
    assert not accepts_text(g, '{"a":"v"}') and not accepts_text(g, '{"\\u0061":"v"}')
