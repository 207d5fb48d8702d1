"""CLI commands generate / run / demo via typer's CliRunner on an app built with register().

The model is a tiny random Llama saved with the real SmolLM2 tokenizer to a
temporary directory and passed by path, as a user would.
"""
from __future__ import annotations

import json
import os
import re

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jsonschema  # noqa: E402
import typer  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from structgen.api.commands import register  # noqa: E402
from test_api import build_tiny_model  # noqa: E402

# finite languages (no numbers: "-0.000..." is a valid integer of unbounded length), so that even
# a random model must finish within the token budget
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}, "mode": {"enum": ["a", "b", "c"]}},
          "required": ["ok", "mode"], "additionalProperties": False}
OTHER = {"type": "object", "properties": {"colour": {"enum": ["red", "blue"]}}, "required": ["colour"],
         "additionalProperties": False}


@pytest.fixture(scope="module")
def app():
    a = typer.Typer()
    register(a)
    return a


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from structgen.models import load_tokenizer
    tok = load_tokenizer("smollm2-135m")
    d = tmp_path_factory.mktemp("tiny-model")
    build_tiny_model(tok).save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


def _invoke(app, args):
    return CliRunner().invoke(app, args, catch_exceptions=False)


def test_generate_with_schema_prints_valid_json(app, model_dir, tmp_path):
    schema_file = tmp_path / "s.json"
    schema_file.write_text(json.dumps(SCHEMA))
    r = _invoke(app, ["generate", "--schema", str(schema_file), "--prompt", "status?", "--model", model_dir,
                      "--max-new-tokens", "80"])
    assert r.exit_code == 0, r.output
    first = r.stdout.splitlines()[0]
    jsonschema.validate(json.loads(first), SCHEMA)
    assert "valid" in r.stderr


def test_generate_regex_choices_grammar(app, model_dir, tmp_path):
    r = _invoke(app, ["generate", "--regex", "[0-9]{3}-[a-z]{2}", "--prompt", "id", "--model", model_dir])
    assert r.exit_code == 0 and re.fullmatch("[0-9]{3}-[a-z]{2}", r.stdout.splitlines()[0])
    r = _invoke(app, ["generate", "--choices", "alpha,beta,gamma", "--prompt", "pick", "--model", model_dir])
    assert r.exit_code == 0 and r.stdout.splitlines()[0] in ("alpha", "beta", "gamma")
    g = tmp_path / "g.gbnf"
    g.write_text('root ::= "on" | "off"\n')
    r = _invoke(app, ["generate", "--grammar", str(g), "--prompt", "switch", "--model", model_dir])
    assert r.exit_code == 0 and r.stdout.splitlines()[0] in ("on", "off")
    lk = tmp_path / "g.lark"
    lk.write_text('start: "x" DIGIT\nDIGIT: /[0-9]/\n')
    r = _invoke(app, ["generate", "--grammar", str(lk), "--prompt", "x?", "--model", model_dir])
    assert r.exit_code == 0 and re.fullmatch("x[0-9]", r.stdout.splitlines()[0])


def test_generate_reports_incomplete_and_bad_input(app, model_dir, tmp_path):
    schema_file = tmp_path / "s.json"
    schema_file.write_text(json.dumps(SCHEMA))
    r = _invoke(app, ["generate", "--schema", str(schema_file), "--prompt", "x", "--model", model_dir,
                      "--max-new-tokens", "2"])
    assert r.exit_code == 3 and "INCOMPLETE" in r.stderr
    r = _invoke(app, ["generate", "--regex", "a", "--choices", "a", "--prompt", "x", "--model", model_dir])
    assert r.exit_code == 2 and "at most one" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    r = _invoke(app, ["generate", "--schema", str(bad), "--prompt", "x", "--model", model_dir])
    assert r.exit_code == 1 and "bad.json" in r.stderr and "not valid JSON" in r.stderr
    r = _invoke(app, ["generate", "--regex", "a", "--prompt", "x", "--model", str(tmp_path / "missing")])
    assert r.exit_code == 1 and "missing" in r.stderr


def _inputs(tmp_path, n=5):
    lines = []
    for i in range(n):
        rec = {"id": f"r{i}", "prompt": f"item {i}"}
        if i == 2:
            rec["schema"] = OTHER
        lines.append(json.dumps(rec))
    lines.insert(3, "{broken json")
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _check_output(out_path, n_ok=5):
    rows = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert out_path.read_text().endswith("\n")
    by_key = {r["key"]: r for r in rows}
    assert len(by_key) == len(rows) == n_ok + 1  # + the broken line, reported as an error
    for r in rows:
        if r["status"] == "error":
            assert "not valid JSON" in r["error"] and r["line"] == 3
            continue
        schema = OTHER if r["id"] == "r2" else SCHEMA
        assert r["status"] == "valid"
        jsonschema.validate(json.loads(r["output"]), schema)
    return rows


def test_run_pipeline_validates_and_summarizes(app, model_dir, tmp_path):
    schema_file = tmp_path / "s.json"
    schema_file.write_text(json.dumps(SCHEMA))
    inp, out = _inputs(tmp_path), tmp_path / "out.jsonl"
    r = _invoke(app, ["run", str(inp), "--schema", str(schema_file), "-o", str(out), "--model", model_dir,
                      "--max-new-tokens", "80"])
    assert r.exit_code == 0, r.output
    _check_output(out)
    assert "valid" in r.stdout and "tokens/s" in r.stdout
    row = next(line for line in r.stdout.splitlines() if re.search(r"\b6\b.*\b0\b.*\b5\b", line))
    assert row  # lines=6, resumed=0, valid=5 in the summary table


def test_run_resumes_after_interruption_without_redoing(model_dir, tmp_path, monkeypatch):
    import structgen.api.pipeline as pipeline
    inp, out = _inputs(tmp_path), tmp_path / "out.jsonl"
    calls = []
    real = pipeline.generate

    def counting(*a, **k):
        calls.append(a[1])
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "generate", counting)
    seen = []

    def interrupt_after_two(rec):
        seen.append(rec["key"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    s = pipeline.run_pipeline(model_dir, inp, out, schema=SCHEMA, max_new_tokens=80, on_record=interrupt_after_two)
    assert s.interrupted and len(out.read_text().splitlines()) == 2
    first_two = out.read_text()
    assert calls == ["item 0", "item 1"]
    s = pipeline.run_pipeline(model_dir, inp, out, schema=SCHEMA, max_new_tokens=80)
    assert not s.interrupted and s.skipped == 2 and s.valid == 3 and s.errors == 1
    assert calls == ["item 0", "item 1", "item 2", "item 3", "item 4"]  # nothing redone
    assert out.read_text().startswith(first_two)
    _check_output(out)
    s = pipeline.run_pipeline(model_dir, inp, out, schema=SCHEMA, max_new_tokens=80)
    assert s.skipped == 6 and len(calls) == 5


def test_run_drops_torn_trailing_line(model_dir, tmp_path, monkeypatch):
    import structgen.api.pipeline as pipeline
    inp, out = _inputs(tmp_path), tmp_path / "out.jsonl"
    pipeline.run_pipeline(model_dir, inp, out, schema=SCHEMA, max_new_tokens=80)
    full = out.read_text().splitlines(keepends=True)
    # a crash in the middle of writing the 4th record
    out.write_text("".join(full[:3]) + full[3][: len(full[3]) // 2])
    torn_key = json.loads(full[3])["key"]
    calls = []
    real = pipeline.generate
    monkeypatch.setattr(pipeline, "generate", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    s = pipeline.run_pipeline(model_dir, inp, out, schema=SCHEMA, max_new_tokens=80)
    redone = {json.loads(line)["key"] for line in out.read_text().splitlines()[3:]}
    assert torn_key in redone and s.skipped == 3
    assert len(calls) == sum(1 for line in full[3:] if json.loads(line)["status"] != "error")
    rows = _check_output(out)
    assert sorted(r["key"] for r in rows) == sorted(json.loads(line)["key"] for line in full)


def test_repair_output_keeps_complete_lines(tmp_path):
    from structgen.api.pipeline import repair_output
    p = tmp_path / "o.jsonl"
    p.write_bytes(b'{"key": "a"}\n{"key": "b"}\n{"key": "c", "outp')
    assert repair_output(p) == {"a", "b"}
    assert p.read_bytes() == b'{"key": "a"}\n{"key": "b"}\n'
    assert repair_output(tmp_path / "none.jsonl") == set()


@pytest.mark.slow
def test_demo_with_bundled_model(app):
    r = _invoke(app, ["demo"])
    assert r.exit_code == 0, r.output
    out_line = next(line for line in r.stdout.splitlines() if line.startswith("output: "))
    from structgen.api.commands import DEMO_SCHEMA
    jsonschema.validate(json.loads(out_line[len("output: "):]), DEMO_SCHEMA)
    assert "validated" in r.stdout
