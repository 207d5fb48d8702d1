"""Drafting the grammar's end (held-back forced token + EOS) and integer progressions.

Synthetic vocabulary + tiny model for losslessness (greedy output equals constrained_decode
token for token, matchers handed back unchanged); the bundled SmolLM2 for the one property a
random model cannot show: a counting output gets its next terms drafted and accepted.
"""
from __future__ import annotations

import random

import pytest

from structgen.engine import compile_grammar
from structgen.grammar import grammar_from_lark
from structgen.schema import grammar_from_json_schema
from structgen.speculative import (AdaptiveTreeDrafter, ChainDrafter, GatedDrafter, GrammarTreeDrafter, JumpForwardDrafter,
                                   ProgressionDrafter, PromptLookupDrafter, constrained_decode, speculative_decode)
from structgen.speculative.drafters.forced import eos_guess, forced_draft
from structgen.speculative.drafters.progression import continue_progression
from structgen.vocab import TokenizerInfo
from test_speculative_support import tiny_model

PIECES = ([b"<pad>", b"<eos>", b"<end>"] + [bytes([c]) for c in b'{}[]:,"abcdefghijklmnopqrstuvwxyz0123456789 -.']
          + [b'{"', b'":', b'",', b'":"', b'}}', b'12'])
EOS_ID, END_ID = 1, 2
TOK = TokenizerInfo.from_token_bytes(PIECES, eos_ids=[EOS_ID, END_ID], special_ids=[0])
V = len(PIECES)
TARGET = tiny_model(V, seed=31, layers=4, hidden=32, init=0.3)
NESTED = {"type": "object", "properties": {"o": {"type": "object", "properties": {"a": {"type": "integer"}},
                                                 "required": ["a"], "additionalProperties": False}},
          "required": ["o"], "additionalProperties": False}
NUMBERS = r"""
start: "[" NUMBER ("," NUMBER)* "]"
NUMBER: /-?[0-9]+/
"""

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ids_of(text: str) -> list[int]:
    return TOK.encode(text)


def text_of(ids) -> str:
    return TOK.decode_bytes(ids).decode()


@pytest.mark.parametrize("text, expected", [
    ("[1,2,3,", "4,5,6"), ("[1,2,3,4", ",5,6"), ("[1,2,3,40,41,42,4", "3,44,45"), ("10, 20, 30, 4", "0, 50, 60"),
    ("a 5 7 9 ", "11 13 15"), ("[9,7,5,3,1,", "-1,-3,-5"), ("x [1,2,3,4,5,6,7,8,9,10,", "11,12,13"),
])
def test_progressions_continue(text, expected):
    out = continue_progression(text.encode(), length=len(expected)).decode()
    assert out.startswith(expected) and len(out) >= len(expected)


@pytest.mark.parametrize("text", ["[1,2,", "[1,2,4,", "[3,3,3,", "[1,2,3,5", "1.5, 2.5, 3.5, ", "2024-01-02", "[1,2,3",
                                  "abc", "", "[1;2,3,"])
def test_no_progression_no_draft(text):
    assert continue_progression(text.encode()) == b""


def test_progression_drafter_is_grammatical_and_leaves_the_matcher_unchanged():
    compiled = compile_grammar(grammar_from_lark(NUMBERS), TOK)
    m = compiled.matcher()
    prefix = ids_of("[1,2,3,")
    assert m.accept_tokens(prefix) == len(prefix)
    before = m.num_accepted_tokens
    draft = ProgressionDrafter().propose([5, 6] + prefix, m, 8).tokens
    assert text_of(draft) == "4,5,6,7,"
    assert m.num_accepted_tokens == before and m.validate_tokens(draft) == len(draft)
    # without a matcher the drafter reads the text through the tokenizer it is given (or drafts nothing)
    assert text_of(ProgressionDrafter(TOK).propose(prefix, None, 3).tokens) == "4,5"
    assert ProgressionDrafter().propose(prefix, None, 3).tokens == []
    # a progression the grammar forbids continuing (the array must close here) is cut to its valid part
    m2 = compile_grammar(grammar_from_lark('start: "[1,2,3," NUMBER "]"\nNUMBER: /[0-9]/'), TOK).matcher()
    assert m2.accept_tokens(prefix) == len(prefix)
    assert text_of(ProgressionDrafter().propose(prefix, m2, 8).tokens) == "4]"[:1]


def test_the_end_of_the_grammar_is_drafted_with_the_eos_the_context_uses():
    compiled = compile_grammar(grammar_from_json_schema(NESTED, property_order="schema"), TOK)
    m = compiled.matcher()
    text = '{"o":{"a":5}'
    assert m.accept_tokens(ids_of(text)) == len(ids_of(text))
    before = m.num_accepted_tokens
    assert list(m.forced_tokens()) == []              # the engine holds the last forced token back
    assert forced_draft(m, 8) == ids_of("}") + [EOS_ID]
    assert forced_draft(m, 8, [7, END_ID, 9]) == ids_of("}") + [END_ID]     # the context's end-of-turn id
    assert forced_draft(m, 1) == ids_of("}")
    assert m.num_accepted_tokens == before
    assert eos_guess(m, [END_ID]) is None             # no EOS before the closing brace
    m.accept_tokens(ids_of("}"))
    assert eos_guess(m, [END_ID, 5]) == END_ID and eos_guess(m) == EOS_ID
    # mid-object the held-back token stays held back (what follows may merge with it)
    m2 = compiled.matcher()
    assert forced_draft(m2, 8) == list(m2.forced_tokens())


DRAFTERS = {
    "jump-forward": lambda: JumpForwardDrafter(),
    "jf+progression|lookup": lambda: JumpForwardDrafter(ChainDrafter([ProgressionDrafter(), PromptLookupDrafter()])),
    "jf+gated(progression|lookup)": lambda: JumpForwardDrafter(GatedDrafter(ChainDrafter([ProgressionDrafter(),
                                                                                           PromptLookupDrafter()]))),
    "adaptive-tree": lambda: AdaptiveTreeDrafter(),
    "tree(jf)": lambda: GrammarTreeDrafter(JumpForwardDrafter(), lookup=PromptLookupDrafter()),
}


@pytest.mark.parametrize("drafter_name", sorted(DRAFTERS))
@pytest.mark.parametrize("kind", ["nested", "numbers"])
def test_greedy_identical(drafter_name, kind):
    grammar = grammar_from_json_schema(NESTED, property_order="schema") if kind == "nested" else grammar_from_lark(NUMBERS)
    compiled = compile_grammar(grammar, TOK)
    rng = random.Random(3)
    for i in range(4):
        prompt = [rng.randrange(3, V) for _ in range(rng.randint(2, 8))] + ids_of("[1,2,3,4,")
        ref = constrained_decode(TARGET, prompt, compiled.matcher(), 40, eos_token_ids=[EOS_ID, END_ID])
        m = compiled.matcher()
        got = speculative_decode(TARGET, prompt, m, DRAFTERS[drafter_name](), 40, num_draft_tokens=2 + 2 * i,
                                 eos_token_ids=[EOS_ID, END_ID])
        assert got.tokens == ref.tokens
        assert m.is_terminated() == (got.finish_reason == "eos")


@pytest.fixture(scope="module")
def smollm2():
    from structgen.models import load_model
    model, tokenizer = load_model("smollm2-135m")
    return model, tokenizer, TokenizerInfo.from_huggingface(tokenizer, vocab_size=int(model.lm_head.weight.shape[0]))


def test_counting_output_is_drafted_and_accepted_on_a_real_model(smollm2):
    model, tokenizer, info = smollm2
    schema = {"type": "object", "properties": {"numbers": {"type": "array", "items": {"type": "integer"}}},
              "required": ["numbers"], "additionalProperties": False}
    compiled = compile_grammar(grammar_from_json_schema(schema, property_order="schema"), info)
    msgs = [{"role": "user", "content": "List the numbers from 1 to 100 as JSON: {\"numbers\": [...]}"}]
    prompt = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    ref = constrained_decode(model, prompt, compiled.matcher(), 48)
    assert "4,5,6" in tokenizer.decode(ref.tokens).replace(" ", "")          # the premise: the model counts
    for make in (AdaptiveTreeDrafter, lambda: JumpForwardDrafter(GatedDrafter(ChainDrafter([ProgressionDrafter(),
                                                                                          PromptLookupDrafter()])))):
        got = speculative_decode(model, prompt, compiled.matcher(), make(), 48)
        assert got.tokens == ref.tokens
        assert got.target_calls * 3 <= ref.target_calls     # ~8 counted tokens accepted per call
