"""Chain runs in the GLR kernel: one-child trie paths of one-byte lexemes whose stacks come back
(SQL's `a * * * *`, `;;;;`, a run of ignored spaces) are followed without items (see the chain-run
block of ``lr_walk._glr_run``).  Masks must stay exactly Earley's and the per-token reference's,
including where a run must stop: the lexeme goes on (`**`), two terminals end on the byte, the
path branches or ends, or a step was not made yet."""
from __future__ import annotations

import random

import numpy as np
import pytest

from structgen.engine import compile_grammar
from structgen.grammar import grammar_from_lark
from structgen.vocab import TokenizerInfo

from test_engine import check_masks_against_reference, vocab_of_pieces
from test_engine_glr import CORPUS, assert_same_masks, assert_same_masks_along, walk_with_identical_masks
from test_engine_real_tokenizers import tokenizer_info

# `*` is both multiplication and an operand, so `a * * * *` alternates between two stacks
# (a 2-cycle); `;` after a statement list and an ignored single space give the same stacks back
# (1-cycles); `**` makes a `*` lexeme go on, where a run must not skip
STAR_GRAMMAR = r"""
start: stmts
stmts: stmts ";" | stmts stmt ";" | stmt ";"
stmt: expr
expr: expr "*" atom | expr "**" atom | expr "/" atom | atom
atom: NAME | "*" | "(" expr ")"
NAME: /[a-z]+/
%ignore " "
"""

# the same without `**`: every `*` is a whole lexeme
PLAIN_STAR_GRAMMAR = STAR_GRAMMAR.replace(' | expr "**" atom', "")

# `*` is a lexeme of two terminals (OP and STAR): a run must stop on it
TWO_TERMINAL_GRAMMAR = r"""
start: expr ";"
expr: expr OP atom | atom
atom: NAME | STAR
OP: /[*\/]/
STAR: "*"
NAME: /[a-z]+/
%ignore " "
"""


def run_vocab() -> TokenizerInfo:
    """Single bytes, plus runs as long as Qwen's (`*` x 80), runs that end in other bytes or
    branch, and runs behind a prefix."""
    pieces = {bytes([i]) for i in range(256)}
    for k in range(2, 41):
        for unit in (b"*", b" ", b";", b"* "):
            pieces.add(unit * k)
            pieces.add(b" " + unit * k)
            pieces.add(unit * k + b"/")
            pieces.add(unit * k + b")")
            pieces.add(unit * k + b"a")
        pieces.add(b"* " * k + b"**a")   # a run that meets a `**` lexeme: the run must stop there
    for k in (45, 46):
        pieces.add(b"* " * k + b"**a")   # ... also past the other runs, on a one-child path
    for k in (48, 64, 80):
        pieces.add(b"*" * k)
        pieces.add(b"*" * (k - 1) + b"/\n")
        pieces.add(b"/" + b"*" * k)
    pieces.update((b"a", b"ab", b"a *", b"a**", b"(a", b"a)", b"*(", b"*;", b"*/*"))
    return vocab_of_pieces(pieces)


@pytest.fixture(scope="module")
def vocab():
    return run_vocab()


@pytest.fixture(scope="module")
def qwen():
    return tokenizer_info("qwen2.5-coder-0.5b")


def glr_and_earley(grammar_text: str, vocab: TokenizerInfo):
    grammar = grammar_from_lark(grammar_text)
    return (compile_grammar(grammar, vocab, parser="glr", cache=False),
            compile_grammar(grammar, vocab, parser="earley", cache=False))


def assert_same_masks_after(prefixes, glr, earley, vocab: TokenizerInfo) -> None:
    """Both parsers accept every prefix and give the same mask after it."""
    for prefix in prefixes:
        mg, me = glr.matcher(), earley.matcher()
        for t in vocab.encode(prefix):
            assert mg.accept_token(t) and me.accept_token(t), prefix
        assert_same_masks(mg, me, f"after {prefix!r}")


PREFIXES = ["a", "a *", "a * *", "(a *", "*", "a;", "a ; ;", "a ** *", "a / *", "a  ", "a * * ;"]


@pytest.mark.parametrize("grammar_text", [STAR_GRAMMAR, PLAIN_STAR_GRAMMAR], ids=["with-pow", "plain"])
def test_chain_runs_keep_masks_equal_to_earley(grammar_text, vocab):
    """After prefixes that end inside every kind of run, and along random walks, the GLR kernel's
    masks (with chain runs) equal the Earley parser's; the runs were really taken."""
    glr, earley = glr_and_earley(grammar_text, vocab)
    assert_same_masks_after(PREFIXES, glr, earley, vocab)
    rng = random.Random(11)
    for i in range(12):
        walk_with_identical_masks(glr, earley, rng, steps=12, where=f"walk {i}")
    assert glr.stats["chain_steps"] > 200, glr.stats


def test_runs_stop_where_two_terminals_end_on_the_byte(vocab):
    """`a * * * *` read as OP STAR OP STAR, with `*` a lexeme of both: masks equal Earley's after
    prefixes inside star runs and along random walks."""
    glr, earley = glr_and_earley(TWO_TERMINAL_GRAMMAR, vocab)
    assert_same_masks_after(["a", "a *", "a * *", "a / *", "a  *  "], glr, earley, vocab)
    rng = random.Random(3)
    for i in range(8):
        walk_with_identical_masks(glr, earley, rng, steps=10, where=f"walk {i}")


def test_chain_runs_allow_exactly_the_reference_tokens(vocab):
    """The per-token pure-Python simulation agrees with every mask on random walks."""
    compiled = compile_grammar(grammar_from_lark(STAR_GRAMMAR), vocab, parser="glr", cache=False)
    check_masks_against_reference(compiled, random.Random(5), walks=6, steps=12)
    assert compiled.stats["chain_steps"] > 0


def test_long_star_runs_follow_the_two_stack_cycle(vocab):
    """After `a *` the stars of a run alternate operand, operator, operand...: every run is
    allowed, a run followed by a name only when it has an even number of stars (it then ends on
    an operator), and never one followed by `)` (none is open)."""
    glr, earley = glr_and_earley(PLAIN_STAR_GRAMMAR, vocab)
    mg, me = glr.matcher(), earley.matcher()
    for t in vocab.encode("a *"):
        assert mg.accept_token(t) and me.accept_token(t)
    mask = assert_same_masks(mg, me, "after 'a *'")
    bits = np.unpackbits(mask.view(np.uint8), bitorder="little")
    tb = vocab.token_bytes
    for k in (2, 17, 40, 48, 64, 80):
        assert bits[tb.index(b"*" * k)], k
    for k in range(2, 41):
        for unit in (b"*", b"* "):
            assert bits[tb.index(unit * k + b"a")] == (k % 2 == 0), (unit, k)
            assert bits[tb.index(unit * k)], (unit, k)
            assert not bits[tb.index(unit * k + b")")], (unit, k)
    assert glr.stats["chain_steps"] > 0


SYNCODE_SQL = CORPUS / "grammars" / "syncode" / "syncode" / "parsers" / "grammars" / "sql_grammar.lark"


@pytest.mark.skipif(not SYNCODE_SQL.exists(), reason="needs ../shared/corpora (the syncode grammars)")
def test_star_runs_of_a_real_vocabulary_keep_syncode_sql_masks(qwen):
    """Qwen has runs of up to 80 `*` (behind `*`, ` *`, `/*`, ` /*`); syncode's SQL grammar reads
    `a * * * *` as alternating product and operand.  Along real queries the GLR kernel's masks,
    taken through chain runs, equal the Earley parser's."""
    glr, earley = glr_and_earley(SYNCODE_SQL.read_text(encoding="utf-8"), qwen)
    texts = ["SELECT name, age FROM users WHERE age * 2 > 30 ORDER BY name LIMIT 10",
             "SELECT c.country, COUNT(*) AS n FROM orders o GROUP BY c.country HAVING COUNT(*) > 5"]
    assert_same_masks_along(texts, glr, earley, qwen)
    assert glr.stats["chain_steps"] > 1000, glr.stats
