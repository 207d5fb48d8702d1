"""Public generation API against a tiny random Llama with the real SmolLM2 tokenizer.

The model is random, so only the grammar makes outputs valid: every check
below uses an independent reference (json + jsonschema, pydantic, Python re,
the lark library).
"""
from __future__ import annotations

import json
import os
import re

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jsonschema  # noqa: E402

from structgen.api import GrammarCache, default_cache, generate, stream  # noqa: E402
from structgen.errors import GenerationError, SchemaError  # noqa: E402

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 6},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"enum": ["dev", "ops", "pm"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "maxItems": 2},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}


def build_tiny_model(tokenizer, *, context: int = 512, seed: int = 0):
    """A 2-layer Llama over the real tokenizer's vocabulary; decisive random logits."""
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context,
                      initializer_range=0.3, tie_word_embeddings=True,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def tokenizer():
    from structgen.models import load_tokenizer
    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return build_tiny_model(tokenizer), tokenizer


def _valid(schema, value) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def test_schema_output_validates_with_jsonschema(tiny):
    r = generate(tiny, "Describe a person.", schema=PERSON, max_new_tokens=200)
    assert r.complete and r.finish_reason == "stop", r
    assert r.validation_error is None
    obj = json.loads(r.text)
    jsonschema.validate(obj, PERSON)
    assert r.value == obj
    assert r.usage.prompt_tokens > 5 and r.usage.completion_tokens == len(r.tokens) + 1  # + EOS
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.raise_for_incomplete() is r


def test_pydantic_model_in_instance_out(tiny):
    from typing import Literal
    from pydantic import BaseModel, Field

    class Pet(BaseModel):
        kind: Literal["cat", "dog"]
        legs: int = Field(ge=0, le=8)
        name: str = Field(max_length=5)

    r = generate(tiny, "A pet:", pydantic_model=Pet, max_new_tokens=120)
    assert r.complete, r
    assert isinstance(r.value, Pet)
    assert Pet.model_validate_json(r.text) == r.value


def test_regex_choices_and_grammars(tiny):
    pattern = r"[A-Z][a-z]{1,5}-[0-9]{2,3}"
    r = generate(tiny, "code?", regex=pattern, max_new_tokens=30)
    assert r.complete and re.fullmatch(pattern, r.text), r.text
    assert r.value == r.text

    choices = ["red", "green", "blue", "ultraviolet"]
    r = generate(tiny, "colour?", choices=choices, max_new_tokens=30)
    assert r.complete and r.text in choices

    lark_text = 'start: pair ("," pair)*\npair: KEY "=" NUM\nKEY: /[a-z]{1,3}/\nNUM: /[0-9]{1,2}/\n'
    r = generate(tiny, "pairs", grammar=lark_text, max_new_tokens=40)
    if r.complete:
        import lark
        lark.Lark(lark_text, parser="earley").parse(r.text)  # raises if not in the language
    else:  # the random model may keep adding pairs: every prefix must still be extendable
        assert r.finish_reason == "length" and r.value is None
        assert re.fullmatch(r"([a-z]{1,3}=[0-9]{1,2},)*[a-z]{0,3}(=[0-9]{0,2})?,?", r.text), r.text

    gbnf = 'root ::= "yes" | "no" | "n/a"\n'
    r = generate(tiny, "ok?", grammar=gbnf, max_new_tokens=10)
    assert r.complete and r.text in ("yes", "no", "n/a")


def test_incomplete_on_tiny_budget(tiny):
    r = generate(tiny, "Describe a person.", schema=PERSON, max_new_tokens=3)
    assert not r.complete
    assert r.finish_reason == "length"
    assert r.value is None
    assert len(r.tokens) == 3
    with pytest.raises(ValueError):
        json.loads(r.text)  # a prefix of an object, not something posing as valid JSON
    with pytest.raises(GenerationError, match="max_new_tokens"):
        r.raise_for_incomplete()


def test_batch_matches_single_sequences(tiny):
    prompts = ["Hi", "A much longer prompt that needs left padding in the batch.", "Describe a person."]
    batch = generate(tiny, prompts, schema=PERSON, max_new_tokens=120)
    assert isinstance(batch, list) and len(batch) == 3
    for p, r in zip(prompts, batch):
        assert r.complete and _valid(PERSON, json.loads(r.text))
        single = generate(tiny, p, schema=PERSON, max_new_tokens=120)
        assert single.text == r.text, (p, single.text, r.text)
        assert single.usage.prompt_tokens == r.usage.prompt_tokens


def test_streaming_pieces_concatenate_to_the_result(tiny):
    s = stream(tiny, "Describe a person.", schema=PERSON, max_new_tokens=200)
    pieces = list(s)
    assert len(pieces) > 3
    assert "".join(pieces) == s.result.text
    assert s.result.complete and _valid(PERSON, json.loads(s.result.text))
    assert s.result.timing.ttft <= s.result.timing.total


def test_streaming_never_splits_utf8(tiny):
    choices = ["日本語のテキスト", "Ünïcödé wörds", "emoji 🎉🎉"]
    s = stream(tiny, "pick", choices=choices, max_new_tokens=40)
    pieces = list(s)
    assert "".join(pieces) in choices
    assert all("\ufffd" not in p for p in pieces)


def test_compiled_grammar_cache_hits(tiny, monkeypatch):
    import structgen.api.cache as cache_mod
    calls = []
    real = cache_mod._compile
    monkeypatch.setattr(cache_mod, "_compile", lambda c, t, *rest: calls.append(c.key) or real(c, t, *rest))
    cache = GrammarCache(maxsize=2)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    a = generate(tiny, "one", schema=schema, cache=cache, max_new_tokens=20)
    # the same schema with keys in another order is the same grammar
    b = generate(tiny, "two", schema=dict(reversed(list(schema.items()))), cache=cache, max_new_tokens=20)
    assert a.complete and b.complete
    assert len(calls) == 1 and cache.stats.misses == 1 and cache.stats.hits == 1
    generate(tiny, "three", schema=schema, strict=False, cache=cache, max_new_tokens=20)  # other options
    generate(tiny, "four", regex="[ab]{3}", cache=cache, max_new_tokens=20)
    assert len(calls) == 3 and cache.stats.evictions == 1 and len(cache) == 2


def test_grammar_cache_shares_one_mask_budget(tiny):
    """GrammarCache(mask_cache_bytes=...): every grammar's masks go into one store within one budget."""
    mask_bytes = (tiny[0].config.vocab_size + 31) // 32 * 4
    budget = 5 * mask_bytes
    cache = GrammarCache(maxsize=4, mask_cache_bytes=budget)
    a = generate(tiny, "one", regex="[ab]{12}", cache=cache, max_new_tokens=20)
    b = generate(tiny, "two", schema={"type": "array", "items": {"type": "integer"}, "maxItems": 3},
                 cache=cache, max_new_tokens=30)
    assert a.complete and len(a.text) == 12
    compiled = [entry[0] for entry in cache._items.values()]
    assert len(compiled) == 2 and compiled[0]._masks is compiled[1]._masks is cache.masks
    assert compiled[0].mask_words * 4 == mask_bytes
    assert 0 < cache.masks.nbytes <= budget and cache.masks.evictions > 0
    with pytest.raises(ValueError, match="budget"):
        GrammarCache(mask_cache_bytes=-1)


def test_default_cache_is_used(tiny):
    before = default_cache.stats.hits
    generate(tiny, "x", regex="(yes|no)", max_new_tokens=5)
    generate(tiny, "y", regex="(yes|no)", max_new_tokens=5)
    assert default_cache.stats.hits >= before + 1
    # its grammars share one bounded mask store
    from structgen.api import make_constraint
    from structgen.api.modelio import resolve
    compiled = default_cache.get(make_constraint(regex="(yes|no)"), resolve(tiny).info)
    assert default_cache.masks is not None and compiled._masks is default_cache.masks
    assert default_cache.masks.budget == 512 << 20


def test_prompt_longer_than_context_names_lengths(tiny):
    with pytest.raises(GenerationError, match=r"\d+ tokens long but the model context is 512"):
        generate(tiny, "word " * 600, regex="[0-9]", max_new_tokens=5)


def test_sampling_is_seeded_and_stays_in_language(tiny):
    kw = dict(regex=r"[a-z]{2,8}", temperature=1.0, top_p=0.9, top_k=50, max_new_tokens=12)
    a = [generate(tiny, "w", seed=s, **kw).text for s in range(4)]
    b = [generate(tiny, "w", seed=s, **kw).text for s in range(4)]
    assert a == b
    assert all(re.fullmatch(r"[a-z]{2,8}", t) for t in a if t)


def test_unconstrained_and_stop_sequence(tiny):
    r = generate(tiny, "Tell me", max_new_tokens=15)
    assert r.finish_reason in ("stop", "length") and not r.constrained
    assert len(r.tokens) <= 15
    # a stop string drawn from the free output itself must cut it there
    if len(r.text) > 4:
        stop = r.text[2:4]
        cut = generate(tiny, "Tell me", max_new_tokens=15, stop=[stop])
        assert cut.finish_reason == "stop_sequence" and cut.text == r.text[:r.text.find(stop)]


def test_stop_sequence_under_grammar_checks_completeness(tiny):
    r = generate(tiny, "n", regex=r"[0-9]{1,3}(;[0-9]{1,3}){0,5}", max_new_tokens=30, stop=[";"])
    assert r.finish_reason in ("stop_sequence", "stop", "length")
    if r.finish_reason == "stop_sequence":
        assert ";" not in r.text and r.complete and re.fullmatch(r"[0-9]{1,3}", r.text)


def test_bad_constraint_arguments(tiny):
    from structgen.api import ConstraintSpecError
    with pytest.raises(ConstraintSpecError, match="at most one"):
        generate(tiny, "x", regex="a", choices=["a"])
    with pytest.raises(SchemaError, match="objekt"):
        generate(tiny, "x", schema={"type": "objekt"})


def test_logits_processor_in_hf_generate(tiny):
    from transformers import LogitsProcessorList
    from structgen.api import StructgenLogitsProcessor, make_constraint
    from structgen.api.modelio import resolve
    model, tok = tiny
    lm = resolve(tiny)
    compiled = default_cache.get(make_constraint(schema=PERSON), lm.info)
    prompts = ["Describe a person.", "Hi"]
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    proc = StructgenLogitsProcessor(compiled, batch_size=2)
    out = model.generate(**enc, logits_processor=LogitsProcessorList([proc]), do_sample=False,
                         max_new_tokens=150, pad_token_id=tok.pad_token_id, eos_token_id=sorted(lm.info.eos_ids))
    new = out[:, enc["input_ids"].shape[1]:]
    for row in range(2):
        ids = [int(t) for t in new[row] if int(t) not in lm.info.eos_ids and int(t) != tok.pad_token_id]
        text = b"".join(lm.info.token_bytes[t] for t in ids).decode("utf-8")
        assert _valid(PERSON, json.loads(text)), text
        m = proc.matchers[row]  # transformers does not call processors after the final EOS
        assert m.is_terminated() or m.is_accepting()
    # same masks as structgen's own loop: greedy outputs agree
    mine = generate(tiny, "Describe a person.", schema=PERSON, chat=False, max_new_tokens=150)
    ids0 = [int(t) for t in new[0] if int(t) not in lm.info.eos_ids and int(t) != tok.pad_token_id]
    assert b"".join(lm.info.token_bytes[t] for t in ids0).decode() == mine.text


@pytest.mark.parametrize("kwargs", [
    {"schema": PERSON},
    {"regex": r"(cat|dog)s? [0-9]{2,4}"},
    {"grammar": 'start: "(" NUM ("+" NUM)* ")"\nNUM: /[0-9]+/'},
    {"stop": "\n"},
])
def test_speculative_generate_equals_plain_greedy(tiny, kwargs):
    """speculative=True gives the plain loop's greedy text, tokens and finish reason, in fewer
    model calls when the grammar forces text (jump-forward)."""
    model, tok = tiny
    prompt = "Describe a person as JSON: Ada, 36, dev."
    plain = generate(model, prompt, tokenizer=tok, max_new_tokens=40, **kwargs)
    spec = generate(model, prompt, tokenizer=tok, max_new_tokens=40, speculative=True, **kwargs)
    assert spec.text == plain.text and spec.tokens == plain.tokens
    assert spec.finish_reason == plain.finish_reason and spec.complete == plain.complete
    assert spec.value == plain.value and spec.usage.completion_tokens == plain.usage.completion_tokens
    assert plain.speculative is None and spec.speculative["target_calls"] >= 1
    if "schema" in kwargs:
        assert spec.speculative["target_calls"] < plain.usage.completion_tokens   # forced keys cost no call


def test_speculative_generate_with_a_drafter_and_sampling(tiny):
    from structgen.speculative import JumpForwardDrafter, TokenRecyclingDrafter
    model, tok = tiny
    drafter = JumpForwardDrafter(TokenRecyclingDrafter(len(tok)))
    a = generate(model, "x", tokenizer=tok, schema=PERSON, max_new_tokens=60, speculative=drafter,
                 temperature=0.8, seed=3)
    b = generate(model, "x", tokenizer=tok, schema=PERSON, max_new_tokens=60, speculative=True,
                 temperature=0.8, seed=3)
    from structgen.api import default_cache
    for r in (a, b):
        assert r.tokens and r.speculative["target_calls"] >= 1
        if r.complete:
            assert _valid(PERSON, json.loads(r.text))
        else:                                      # cut by the token limit: still a prefix of the language
            from structgen.api.constraints import make_constraint
            from structgen.api.modelio import resolve
            m = default_cache.get(make_constraint(schema=PERSON), resolve((model, tok)).info).matcher()
            assert m.accept_tokens(r.tokens) == len(r.tokens)


def test_speculative_generate_refuses_batches_and_bad_values(tiny):
    model, tok = tiny
    with pytest.raises(GenerationError, match="one prompt at a time"):
        generate(model, ["a", "b"], tokenizer=tok, regex="[ab]", speculative=True)
    with pytest.raises(GenerationError, match="speculative must be"):
        generate(model, "a", tokenizer=tok, regex="[ab]", speculative="fast")
