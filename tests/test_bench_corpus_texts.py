"""The texts bench_masks.py replays on shared-corpus grammars are sentences of those grammars.

A text structgen refuses would time a truncated replay, so every text must be accepted by
structgen (byte level) and, for Lark files, by Lark's own Earley parser, the reference for what
the grammar means.  Texts on which the two disagree are kept apart as ``disagreements`` and pinned
here as strict xfails: when structgen starts accepting one, move it into ``texts``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from structgen.engine import accepts_text, byte_level_tokenizer, compile_grammar
from structgen.grammar import grammar_from_gbnf, grammar_from_lark

ROOT = Path(__file__).resolve().parents[1]
CORPORA = Path(os.environ.get("STRUCTGEN_CORPORA", ROOT.parent / "shared" / "corpora"))
GRAMMARS = CORPORA / "grammars"
ENTRIES = json.loads((ROOT / "benchmarks" / "corpus_texts.json").read_text())

needs_corpus = pytest.mark.skipif(not GRAMMARS.is_dir(), reason="shared corpora not found (set STRUCTGEN_CORPORA)")


def _source(rel: str) -> str:
    path = GRAMMARS / rel
    if not path.is_file():
        pytest.skip(f"{rel} not in this corpus")
    return path.read_text(encoding="utf-8")


def _structgen(rel: str, entry: dict):
    src = _source(rel)
    if entry["kind"] == "lark":
        g = grammar_from_lark(src, start=entry.get("start", "start"))
    else:
        g = grammar_from_gbnf(src, start=entry.get("start", "root"))
    return compile_grammar(g, byte_level_tokenizer(), cache=False)


def _lark_parser(rel: str, entry: dict):
    """Lark's Earley parser with the dynamic lexer (what the grammar files are written for), or None
    for GBNF files and Lark files Lark cannot load."""
    if entry["kind"] != "lark":
        return None
    import lark
    try:
        return lark.Lark(_source(rel), parser="earley", lexer="dynamic", start=entry.get("start", "start"))
    except lark.exceptions.LarkError:
        return None


def test_entries_are_well_formed():
    for rel, entry in ENTRIES.items():
        assert entry["kind"] == ("lark" if rel.endswith(".lark") else "gbnf"), rel
        assert 3 <= len(entry["texts"]) <= 8, rel
    assert len({e["name"] for e in ENTRIES.values()}) == len(ENTRIES), "case names must be unique"


@needs_corpus
@pytest.mark.parametrize("rel", list(ENTRIES))
def test_every_text_is_accepted(rel):
    entry = ENTRIES[rel]
    compiled = _structgen(rel, entry)
    parser = _lark_parser(rel, entry)
    for text in entry["texts"]:
        assert accepts_text(compiled, text), f"structgen refuses {text!r}"
        if parser is not None:
            parser.parse(text)  # raises with the position if Lark refuses it


DISAGREEMENTS = [(rel, d["text"]) for rel, e in ENTRIES.items() for d in e.get("disagreements", [])]


@needs_corpus
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="structgen refuses a text Lark accepts (see the entry's note)")
@pytest.mark.parametrize("rel,text", DISAGREEMENTS)
def test_known_disagreement(rel, text):
    entry = ENTRIES[rel]
    parser = _lark_parser(rel, entry)
    if parser is None:
        pytest.fail(f"{rel}: Lark cannot load it, so there is no reference")
    parser.parse(text)  # Lark refusing it is a bad record (its error is not an xfail)
    assert accepts_text(_structgen(rel, entry), text)


DOTTXT = CORPORA / "regex" / "dottxt-benchmarks" / "src"


@pytest.mark.skipif(not (DOTTXT / "cases.json").is_file(), reason="dottxt regex cases not in this corpus")
def test_regex_case_texts_are_matches():
    """bench_masks replays on each dottxt regex only samples the regex matches: GSM8K's samples
    lack the regex's literal "A: " lead (none matched, so every engine was timed on first masks
    alone), and some URL and complex-string samples do not match at all."""
    import sys
    from structgen.grammar import grammar_from_regex
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_masks
    cases = {c["name"]: c for c in bench_masks.build_cases(True) if c["name"].startswith("regex: ")}
    assert len(cases) == 5
    for name, case in cases.items():
        regex = case["sources"]["structgen"][1]
        assert len(case["texts"]) == 10, name
        compiled = compile_grammar(grammar_from_regex(regex), byte_level_tokenizer(), cache=False)
        for text in case["texts"]:
            assert accepts_text(compiled, text), f"{name}: structgen refuses {text!r}"
    gsm = cases["regex: GSM8K"]
    raw = json.loads((DOTTXT / "samples" / "gsm8k.json").read_text())
    assert all(t.startswith("A: ") and t[3:] in raw for t in gsm["texts"])
    assert bench_masks.regex_samples(r"\d{3}", ["123", "12", "1234", "abc"]) == ["123"]
