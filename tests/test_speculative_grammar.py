"""Speculative decoding with real grammars from structgen.engine (synthetic tiny vocabulary).

Greedy outputs must equal the baseline token for token, be accepted by the grammar
(checked independently with Python `re` / `json` + `jsonschema`), and the verification
must exercise drafts (forced JSON punctuation, repeated keys).
"""
from __future__ import annotations

import json
import random
import re

import jsonschema
import lark
import pytest
import torch

from structgen.engine import compile_grammar
from structgen.grammar import grammar_from_lark, grammar_from_regex
from structgen.schema import grammar_from_json_schema
from structgen.speculative import (AdaptiveTreeDrafter, DraftModelDrafter, GrammarTreeDrafter, JumpForwardDrafter, LayerSkipDrafter,
                                   PromptLookupDrafter,
                                   SamplingParams, TokenRecyclingDrafter, constrained_decode, speculative_decode)
from structgen.vocab import TokenizerInfo
from test_speculative_support import perturbed, tiny_model

PIECES = ([b"<pad>", b"<eos>"] + [bytes([c]) for c in b'{}[]:,"abcdefghijklmnopqrstuvwxyz0123456789 -.']
          + [b'{"', b'":', b'",', b'":"', b'name', b'age', b'tags', b'"}', b'true', b'false', b'null', b'ab', b'12'])
EOS_ID = 1
TOK = TokenizerInfo.from_token_bytes(PIECES, eos_ids=[EOS_ID], special_ids=[0])
V = len(PIECES)
TARGET = tiny_model(V, seed=21, layers=4, hidden=32, init=0.3)
DRAFT = perturbed(TARGET, 0.05, seed=22)

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                           "age": {"type": "integer"},
                                           "tags": {"type": "array", "items": {"enum": ["ab", "cd"]}, "maxItems": 3}},
          "required": ["name", "age", "tags"], "additionalProperties": False}
REGEX = r"(ab|cd)[0-9]{2,4}-[a-z]{3}"
# a context-free (nested, not regular) language; lark's own parser is the oracle for outputs
CFG = r"""
start: list
list: "[" [item ("," item)*] "]"
item: list | WORD | NUMBER
WORD: /[a-z]+/
NUMBER: /[0-9]+/
"""
CFG_ORACLE = lark.Lark(CFG, parser="earley")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def compiled():
    return {"schema": compile_grammar(grammar_from_json_schema(SCHEMA), TOK),
            "regex": compile_grammar(grammar_from_regex(REGEX), TOK),
            "cfg": compile_grammar(grammar_from_lark(CFG), TOK)}


DRAFTERS = {
    "draft-model": lambda: DraftModelDrafter(DRAFT, eos_token_ids=[EOS_ID]),
    "prompt-lookup": lambda: PromptLookupDrafter(),
    "token-recycling": lambda: TokenRecyclingDrafter(V, eos_token_ids=[EOS_ID]),
    "self-speculation": lambda: LayerSkipDrafter(TARGET, eos_token_ids=[EOS_ID]),
    "jump-forward": lambda: JumpForwardDrafter(),
    "jump-forward+draft-model": lambda: JumpForwardDrafter(DraftModelDrafter(DRAFT, eos_token_ids=[EOS_ID])),
    "adaptive-tree": lambda: AdaptiveTreeDrafter(),
    "tree(jump-forward+lookup)": lambda: GrammarTreeDrafter(JumpForwardDrafter(PromptLookupDrafter()),
                                                           lookup=PromptLookupDrafter(), branch_inner=True),
}


def text_of(tokens):
    return b"".join(PIECES[t] for t in tokens if t != EOS_ID).decode()


def check_output(kind, tokens, finished):
    text = text_of(tokens)
    if kind == "regex":
        assert finished and re.fullmatch(REGEX, text), text
    elif kind == "cfg":
        if finished:
            CFG_ORACLE.parse(text)          # raises on a string outside the language
    elif finished:
        jsonschema.validate(json.loads(text), SCHEMA)


@pytest.mark.parametrize("drafter_name", sorted(DRAFTERS))
@pytest.mark.parametrize("kind", ["schema", "regex", "cfg"])
def test_greedy_identical_and_grammatical(compiled, kind, drafter_name):
    rng = random.Random(5)
    accepted = 0
    for i in range(4):
        prompt = [rng.randrange(2, V) for _ in range(rng.randint(2, 10))]
        ref = constrained_decode(TARGET, prompt, compiled[kind].matcher(), 60, eos_token_ids=[EOS_ID])
        m = compiled[kind].matcher()
        got = speculative_decode(TARGET, prompt, m, DRAFTERS[drafter_name](), 60, num_draft_tokens=2 + i,
                                 eos_token_ids=[EOS_ID])
        assert got.tokens == ref.tokens
        check_output(kind, got.tokens, got.finish_reason == "eos")
        assert m.is_terminated() == (got.finish_reason == "eos")
        accepted += got.stats["accepted"]
    if drafter_name == "draft-model" or (kind == "schema" and drafter_name.startswith(("jump-forward", "adaptive"))):
        assert accepted > 0


def test_sampled_outputs_are_grammatical(compiled):
    gen = torch.Generator().manual_seed(0)
    for i in range(6):
        m = compiled["schema"].matcher()
        r = speculative_decode(TARGET, [5, 6, 7], m, JumpForwardDrafter(DraftModelDrafter(DRAFT, eos_token_ids=[EOS_ID])),
                               80, SamplingParams(do_sample=True, temperature=0.8), eos_token_ids=[EOS_ID],
                               generator=gen)
        check_output("schema", r.tokens, r.finish_reason == "eos")
        assert m.validate_tokens([]) == 0
