"""Strings derived from each shipped Lark grammar, checked token by token under the three real
tokenizers against an oracle built on Lark's parser: accepted exactly when the oracle accepts,
and so are one-character mutations of them.  Conflict-free corpus grammars get the same check
at the byte level.

The derivations come from Lark's reading of the grammar (see lark_sampler.py), so they reach
rules and terminals that hand-written samples miss.  The oracle (lark_oracle.py) is Lark's
LALR parser fed by a lexer with structgen's documented semantics, its terminals matched with
Python's own regex machinery; csv, which is not LALR(1), is parsed by Lark's Earley parser with its basic lexer
(csv's lexemes never compete, so lexing semantics cannot differ).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import lark
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lark_oracle import ContextualMunchOracle
from lark_sampler import LarkSampler
from structgen.engine import accepts_text, compile_grammar
from structgen.grammar import grammar_from_file, shipped_grammar_path
from test_engine_real_tokenizers import TOKENIZERS, replay, tokenizer_info

GRAMMARS = ["arithmetic", "csv", "json", "python", "sql"]
MUTATION_CHARS = ' "\'(),.:;[]{}+-*/=<>0a\n'
EXAMPLES = 60


class EarleyOracle:
    def __init__(self, grammar_text: str):
        self.parser = lark.Lark(grammar_text, parser="earley", lexer="basic")

    def accepts(self, text: str) -> bool:
        try:
            self.parser.parse(text)
            return True
        except lark.exceptions.LarkError:
            return False


def hold_to_oracle(oracle, sampler: LarkSampler, accepts, examples: int, min_share: int) -> None:
    """Derived strings and one-character mutants of them: ``accepts(text)`` -> (accepted, where it
    stopped) must say what ``oracle.accepts`` says; at least 1/``min_share`` of the derived
    strings must be in the language, or the test checks little."""
    seen = {"in_language": 0, "total": 0}

    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(text=sampler.strings(), where=st.floats(0, 1), char=st.sampled_from(MUTATION_CHARS))
    def check(text, where, char):
        seen["total"] += 1
        expected = oracle.accepts(text)
        seen["in_language"] += expected
        ok, pos = accepts(text)
        assert ok == expected, (text, "oracle accepts" if expected else "oracle refuses", pos)
        i = int(where * len(text))
        mutant = text[:i] + char + text[i + 1:]
        ok, pos = accepts(mutant)
        assert ok == oracle.accepts(mutant), (mutant, pos)

    check()
    assert seen["in_language"] >= seen["total"] // min_share, seen


@pytest.mark.parametrize("tok_name", TOKENIZERS)
@pytest.mark.parametrize("grammar", GRAMMARS)
def test_sampled_strings_and_mutants_follow_lark(tok_name, grammar):
    info = tokenizer_info(tok_name)
    compiled = compile_grammar(grammar_from_file(grammar), info)
    text = shipped_grammar_path(grammar).read_text()
    oracle = EarleyOracle(text) if grammar == "csv" else ContextualMunchOracle(text)
    hold_to_oracle(oracle, LarkSampler(oracle.parser), lambda t: replay(compiled, info.encode(t)), EXAMPLES, 2)


CORPORA = Path(os.environ.get("STRUCTGEN_CORPORA", Path(__file__).resolve().parents[2] / "shared" / "corpora"))
# corpus Lark grammars whose LALR tables have no conflict (Lark's parser is then their exact
# language) and whose terminals the oracle reads: the rest (syncode go/java/sql/prover9 and
# others resolve shift/reduce conflicts by shifting) have no oracle here
CORPUS_LALR = ["syncode/syncode/parsers/grammars/c_grammar.lark", "syncode/syncode/parsers/grammars/json_grammar.lark",
               "syncode/syncode/parsers/grammars/calc_grammar.lark", "syncode/syncode/parsers/grammars/tiny_grammar.lark",
               "lark/extracted_inline/turtle_dsl.lark", "lark/extracted_inline/calc.lark",
               "outlines/src/outlines/grammars/arithmetic.lark"]


@pytest.mark.parametrize("rel", CORPUS_LALR)
def test_corpus_grammar_strings_follow_the_oracle(rel):
    """Byte level (no tokenizer): derived strings and mutants of real grammars, incl. lazy
    comment terminals, Unicode classes under Python's re semantics and priorities."""
    path = CORPORA / "grammars" / rel
    if not path.exists():
        pytest.skip("shared corpora not found (set STRUCTGEN_CORPORA)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # unreachable rules of the corpus files
        grammar = grammar_from_file(path)
    oracle = ContextualMunchOracle(path.read_text(encoding="utf-8"))
    hold_to_oracle(oracle, LarkSampler(oracle.parser, max_depth=10), lambda t: (accepts_text(grammar, t), None),
                   120, 3)
