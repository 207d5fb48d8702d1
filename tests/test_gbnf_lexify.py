"""Lexified GBNF grammars accept exactly the language of the character-level grammar.

For every GBNF/EBNF grammar of the shared corpus (and the shipped json.gbnf):
strings sampled from *each* version by random matcher walks, plus random
mutations of them, must be accepted by both versions or by neither.
"""
from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import pytest

from structgen.engine import accepts_text, compile_grammar
from structgen.engine.compile import byte_level_tokenizer
from structgen.errors import StructgenError
from structgen.grammar import grammar_from_gbnf, shipped_grammar_path

from test_engine import random_walk

CORPORA = Path(os.environ.get("STRUCTGEN_CORPORA", Path(__file__).resolve().parents[2] / "shared" / "corpora"))
GBNF_FILES = sorted(p for ext in ("*.gbnf", "*.ebnf") for p in (CORPORA / "grammars").rglob(ext))


def _load(text: str, lexify: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return grammar_from_gbnf(text, lexify=lexify)


def _samples(grammar, rng: random.Random, n: int) -> list[bytes]:
    compiled = compile_grammar(grammar, byte_level_tokenizer())
    out = []
    for _ in range(n):
        ids = random_walk(compiled.matcher(), rng, max_steps=80, eos_bias=0.05)
        out.append(bytes(t for t in ids if t < 256))
    return out


def _mutants(data: bytes, rng: random.Random, k: int) -> list[bytes]:
    out = []
    for _ in range(k):
        if not data:
            break
        i = rng.randrange(len(data))
        op = rng.random()
        if op < 0.4:
            out.append(data[:i] + data[i + 1:])
        elif op < 0.7:
            out.append(data[:i] + bytes([data[i]]) + data[i:])
        else:
            out.append(data[:i] + bytes([rng.choice(data)]) + data[i + 1:])
    return out


def _check_same_language(text: str, seed: int, n: int = 12) -> int:
    char = _load(text, lexify=False)
    lexed = _load(text, lexify=True)
    new_terminals = [t for t in lexed.terminals if t.startswith("lex:")]
    rng = random.Random(seed)
    strings = _samples(char, rng, n) + _samples(lexed, rng, n)
    strings += [m for s in strings for m in _mutants(s, rng, 3)]
    for s in strings:
        assert accepts_text(char, s) == accepts_text(lexed, s), (s, new_terminals)
    return len(new_terminals)


def test_json_gbnf_is_lexified_and_keeps_its_language():
    text = shipped_grammar_path("json.gbnf").read_text()
    assert _check_same_language(text, seed=1, n=25) >= 2  # strings and numbers become terminals
    lexed = _load(text, lexify=True)
    for ok in ['{"a": [1, -2.5e+3, "x\\u00e9\\n"], "b": null}', "[]", '  "s"  ', "-0.0E-0"]:
        assert accepts_text(lexed, ok), ok
    for bad in ['{"a" 1}', "01", '"\\x"', "[1,]", '"a\nb"', "1.", "--1"]:
        assert not accepts_text(lexed, bad), bad


@pytest.mark.parametrize("path", GBNF_FILES, ids=lambda p: str(p.relative_to(CORPORA / "grammars")))
def test_corpus_gbnf_lexified_language_unchanged(path):
    text = path.read_text(encoding="utf-8")
    try:
        _load(text, lexify=False)
    except StructgenError:
        # refused by the front-end (reasons are tested in test_grammar_corpus): lexify must not change that
        with pytest.raises(StructgenError):
            _load(text, lexify=True)
        return
    _check_same_language(text, seed=len(text))


def test_lexify_refuses_a_rule_that_maximal_munch_would_break():
    # word followed by a letter: as one terminal, [a-z]+ would swallow the final "x"
    text = 'root ::= word "x"\nword ::= [a-z] [a-z]*\n'
    lexed = _load(text, lexify=True)
    assert not any(t.startswith("lex:") for t in lexed.terminals)
    assert accepts_text(lexed, "abx") and accepts_text(lexed, "xx") and not accepts_text(lexed, "x")
    # followed by a digit instead: safe, so it becomes one terminal
    text2 = 'root ::= word "1"\nword ::= [a-z] [a-z]*\n'
    lexed2 = _load(text2, lexify=True)
    assert "lex:r:word" in lexed2.terminals
    assert accepts_text(lexed2, "abc1") and not accepts_text(lexed2, "1")


def test_keywords_and_identifiers_lexified_together_keep_the_language():
    """C-like statements (llama.cpp c.gbnf's shape): identifiers, a type keyword with its
    whitespace, keywords glued to punctuation.  Lexified, "int = 5;" must stay an assignment
    to a variable named int (a two-state looping identifier DFA once skipped the conflict
    search, so "int " was lexed as the type), and identifiers and keywords become terminals."""
    text = ('root ::= stmt+\n'
            'stmt ::= type name ws "=" ws num ";" | name ws "=" ws num ";" | "while(" name ")" "{" stmt* "}" '
            '| "return" ws num ";"\n'
            'type ::= "int" ws | "char" ws\nname ::= [a-zA-Z_] [a-zA-Z_0-9]*\nnum ::= [0-9]+\nws ::= [ ]+\n')
    lexed = _load(text, lexify=True)
    assert {"lex:r:name", "lex:r:num"} <= set(lexed.terminals), sorted(lexed.terminals)
    assert any(t.regex and "return" in t.regex for n, t in lexed.terminals.items() if n.startswith("lex:"))
    for ok in ["int = 5;", "int x = 5;", "return 1;", "returnx = 2;", "while(x){int = 1;}", "whilex = 1;",
               "char  c = 3;"]:
        assert accepts_text(lexed, ok), ok
    for bad in ["intx = ;", "return1;", "while (x){}", "int  = ;"]:
        assert not accepts_text(lexed, bad), bad
    _check_same_language(text, seed=3, n=40)


@pytest.mark.parametrize("x_pattern", ["a", "[ab]", "ab", "a|abc", "b[ab]?", "[ab]+"])
@pytest.mark.parametrize("y_pattern", ["abc", "a[bc]d", "[ab]+", "ba", "c"])
def test_conflict_continuations_match_brute_force(x_pattern, y_pattern):
    import itertools

    import numpy as np

    from structgen.grammar.lexify import _after_one_byte, _continuations
    from structgen.regex import compile_regex

    x, y = compile_regex(x_pattern), compile_regex(y_pattern)
    got = _continuations(x, y, _after_one_byte(y))
    expected = np.zeros(256, dtype=bool)
    for n in range(1, 5):  # strings of x up to 4 bytes over a, b, c reach every pair of states here
        for w in itertools.product(b"abc", repeat=n):
            sx = sy = 0
            for byte in w:
                sx = int(x.transitions[sx, byte]) if sx >= 0 else -1
                sy = int(y.transitions[sy, byte]) if sy >= 0 else -1
            if sx >= 0 and x.accepting[sx] and sy >= 0:
                expected |= y.transitions[sy] >= 0
    assert np.array_equal(got, expected)
