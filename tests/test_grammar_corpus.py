"""Real-world grammars from ../shared/corpora/grammars: each loads or is refused with a precise reason."""
from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest

from structgen.engine import accepts_text, byte_level_tokenizer, compile_grammar
from structgen.errors import GrammarError, RegexError, StructgenError
from structgen.grammar import grammar_from_file, grammar_from_lark
from structgen.grammar.lark_frontend import _LOOKAROUND_REWRITES

CORPORA = Path(os.environ.get("STRUCTGEN_CORPORA", Path(__file__).resolve().parents[2] / "shared" / "corpora"))
GRAMMARS = CORPORA / "grammars"
FILES = sorted(p for ext in ("*.lark", "*.gbnf", "*.ebnf") for p in GRAMMARS.rglob(ext))

# grammars that must load (a regression here is a real loss of coverage)
MUST_LOAD = [
    "llama.cpp/grammars/json.gbnf", "llama.cpp/grammars/arithmetic.gbnf", "llama.cpp/grammars/c.gbnf",
    "llama.cpp/grammars/chess.gbnf", "llama.cpp/grammars/list.gbnf", "llama.cpp/grammars/japanese.gbnf",
    "llguidance/sample_parser/data/from-llama.cpp/vllm-sql.gbnf",
    "lark/examples/composition/json.lark", "lark/extracted_inline/calc.lark", "lark/extracted_inline/json_parser.lark",
    "lark/extracted_inline/turtle_dsl.lark", "syncode/syncode/parsers/grammars/go_grammar.lark",
    "syncode/syncode/parsers/grammars/sql_grammar.lark", "syncode/syncode/parsers/grammars/java_grammar.lark",
    "transformers-cfg/examples/grammars/json.ebnf",
]


@pytest.mark.skipif(not FILES, reason="shared corpora not found (set STRUCTGEN_CORPORA)")
def test_every_corpus_grammar_loads_or_is_refused_with_a_reason():
    loaded, refused = [], []
    for path in FILES:
        rel = str(path.relative_to(GRAMMARS))
        try:
            g = grammar_from_file(path)
            m = compile_grammar(g, byte_level_tokenizer(), cache=False).matcher()
            assert len(m.allowed_token_ids()) > 0, f"{rel}: no first byte allowed"
            loaded.append(rel)
        except (GrammarError, RegexError) as exc:
            msg = str(exc)
            assert len(msg) > 20, f"{rel}: refusal without a reason: {msg!r}"
            refused.append((rel, msg))
    missing = [p for p in MUST_LOAD if p not in loaded and (GRAMMARS / p).exists()]
    assert not missing, f"must load: {missing}; refusals: {[r for r in refused if r[0] in missing]}"
    assert len(loaded) >= 70, (len(loaded), refused)


def test_lazy_terminal_outside_the_delimiter_form_is_refused_by_name():
    """llguidance's lark.lark: REGEXP /\/(\\\/|\\\\|[^\/])+?\/[imslux]*/ has a lazy body whose ``[^/]``
    also starts the escape ``\/``; Python's re backtracks into it (``/a\/`` at the end of the input
    is a whole regex literal, ``/a\/ b/`` one too), which no maximal-munch lexer reproduces."""
    path = GRAMMARS / "llguidance/sample_parser/data/lark.lark"
    if not path.exists():
        pytest.skip("corpus missing")
    with pytest.raises(GrammarError, match=r"terminal REGEXP: a lazy quantifier is supported only in the delimiter"):
        grammar_from_file(path)


@pytest.mark.parametrize("original", list(_LOOKAROUND_REWRITES))
def test_lookaround_rewrites_match_lark_lexing(original):
    """The rewrite accepts exactly the lexemes Lark's lexer (re.match, lazy) would produce."""
    rewrite = _LOOKAROUND_REWRITES[original]
    rng = random.Random(0)
    for _ in range(20000):
        s = "".join(rng.choice('"\\a*/\n') for _ in range(rng.randint(0, 9)))
        m = re.match(original, s)
        lark_whole_lexeme = m is not None and m.end() == len(s)
        assert lark_whole_lexeme == (re.fullmatch(rewrite, s) is not None), repr(s)


def test_lark_json_with_escaped_string_accepts_escapes():
    path = GRAMMARS / "lark/examples/composition/json.lark"
    if not path.exists():
        pytest.skip("corpus missing")
    g = grammar_from_file(path)
    assert accepts_text(g, '{"a\\"b": ["x", 1]}')
    assert accepts_text(g, '["x", -2.5e3, true, null]')
    assert not accepts_text(g, '{"a"b": 1}')
    assert not accepts_text(g, '["x",]')


def test_missing_start_rule_is_named():
    with pytest.raises(GrammarError, match="start"):
        grammar_from_lark("expr: NUMBER\n%import common.NUMBER")


def test_gbnf_corpus_grammar_accepts_sample():
    path = GRAMMARS / "llama.cpp/grammars/arithmetic.gbnf"
    if not path.exists():
        pytest.skip("corpus missing")
    g = grammar_from_file(path)
    assert accepts_text(g, "x1 = (2*(3+y)) \n")
    assert not accepts_text(g, "x1=2*(3+y) \n")  # right of = is a single term
    assert accepts_text(g, "a=1\nb=2\n")
    assert not accepts_text(g, "a=1+*2\n")
    assert not accepts_text(g, "a=1")


def test_unreachable_lark_rules_are_reported():
    with pytest.warns(UserWarning, match=r"rules never reached from 'start': unused, also"):
        g = grammar_from_lark('start: "x" _pair{NUMBER}\nunused: "y"\nalso: unused\n_pair{a}: a "," a\n'
                              '%import common.NUMBER')
    assert accepts_text(g, "x1,2")
