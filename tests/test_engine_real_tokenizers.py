"""Exactness of grammar masks under the three real tokenizers (SmolLM2, Qwen2.5, Gemma 3).

Lark is the oracle for what a grammar accepts; texts are tokenized the way
the model would tokenize them, then replayed token by token with the mask
checked before every token.
"""
from __future__ import annotations

import json
import random
import zlib

import lark
import numpy as np
import pytest

from structgen.engine import compile_grammar
from structgen.errors import ModelLoadError
from structgen.grammar import grammar_from_file, shipped_grammar_path

from test_engine import random_json_value, reference_mask

TOKENIZERS = ["smollm2-135m", "qwen2.5-coder-0.5b", "gemma-3-270m"]

_INFOS: dict = {}


def tokenizer_info(name: str):
    if name not in _INFOS:
        from structgen.models import load_tokenizer_info
        try:
            _INFOS[name] = load_tokenizer_info(name)
        except ModelLoadError as exc:
            pytest.skip(f"{name} not installed: {exc}")
    return _INFOS[name]


def bit(words: np.ndarray, t: int) -> bool:
    return bool((int(words[t >> 5]) >> (t & 31)) & 1)


def replay(compiled, ids) -> tuple[bool, int]:
    """Replay with the mask checked before each token; returns (fully accepted incl. EOS, position)."""
    m = compiled.matcher()
    for i, t in enumerate(ids):
        words = m.next_token_mask_words()
        allowed = bit(words, t)
        accepted = m.accept_token(t)
        assert allowed == accepted, f"mask and accept_token disagree on token {t} at {i}"
        if not accepted:
            return False, i
    words = m.next_token_mask_words()
    eos_ok = any(bit(words, e) for e in compiled.tokenizer.eos_ids)
    assert eos_ok == m.is_accepting()
    return eos_ok, len(ids)


def random_arith(rng: random.Random, depth: int = 0) -> str:
    if depth > 3 or rng.random() < 0.3:
        return str(rng.choice([1, 22, 3.5, 100]))
    e = f"{random_arith(rng, depth + 1)}{rng.choice([' ', ''])}{rng.choice('+-*/^')} {random_arith(rng, depth + 1)}"
    return f"({e})" if rng.random() < 0.4 else e


SQL = [
    "SELECT name, age FROM users WHERE age > 30 ORDER BY name DESC",
    "select count(*) from orders o join customers c on o.customer_id = c.id group by c.country",
    "INSERT INTO items (id, label) VALUES (1, 'first'), (2, 'it''s')",
    "UPDATE accounts SET balance = balance - 100 WHERE id = 7;",
    "DELETE FROM sessions WHERE expires_at < 1700000000",
]


def texts_for(grammar: str, rng: random.Random) -> list[str]:
    if grammar == "json":
        return [json.dumps(random_json_value(rng), ensure_ascii=rng.random() < 0.5,
                           indent=rng.choice([None, 2])) for _ in range(12)]
    if grammar == "arithmetic":
        return [random_arith(rng) for _ in range(15)]
    if grammar == "sql":
        return SQL
    raise KeyError(grammar)


@pytest.mark.parametrize("tok_name", TOKENIZERS)
@pytest.mark.parametrize("grammar", ["json", "arithmetic", "sql"])
def test_valid_texts_accepted_and_mutants_follow_lark(tok_name, grammar):
    info = tokenizer_info(tok_name)
    compiled = compile_grammar(grammar_from_file(grammar), info)
    oracle = lark.Lark(shipped_grammar_path(grammar).read_text(), parser="lalr")
    rng = random.Random(zlib.crc32(f"{tok_name}/{grammar}".encode()))
    texts = texts_for(grammar, rng)
    for text in texts:
        oracle.parse(text)  # the sample really is in the language
        ok, pos = replay(compiled, info.encode(text))
        assert ok, (text, pos)
    for text in texts:
        for _ in range(4):
            pos = rng.randrange(len(text) + 1)
            mutated = text[:pos] + rng.choice('{}[]",:0 a(+*;\'') + text[pos + 1:]
            try:
                oracle.parse(mutated)
                lark_ok = True
            except lark.exceptions.LarkError:
                lark_ok = False
            ok, _ = replay(compiled, info.encode(mutated))
            assert ok == lark_ok, (mutated, lark_ok)


@pytest.mark.parametrize("tok_name", TOKENIZERS)
def test_numba_mask_equals_reference_on_real_vocab(tok_name):
    """Trie walk == per-token pure-Python simulation over the full real vocabulary."""
    info = tokenizer_info(tok_name)
    compiled = compile_grammar(grammar_from_file("json"), info)
    text = '{"key": [1, -2.5e3, "caf\\u00e9 \u00e9\U0001F600", true], "n": null}'
    ids = info.encode(text)
    m = compiled.matcher()
    checkpoints = {0, 1, len(ids) // 2, len(ids)}
    for i in range(len(ids) + 1):
        if i in checkpoints:
            fast = m.allowed_mask()
            ref = reference_mask(m)
            diff = np.nonzero(fast != ref)[0]
            assert len(diff) == 0, [(int(t), info.token_bytes[t]) for t in diff[:8]]
        if i < len(ids):
            assert m.accept_token(ids[i])
    assert m.is_accepting()


@pytest.mark.parametrize("tok_name", TOKENIZERS)
def test_special_tokens_never_allowed(tok_name):
    info = tokenizer_info(tok_name)
    compiled = compile_grammar(grammar_from_file("json"), info)
    m = compiled.matcher()
    allowed = set(m.allowed_token_ids().tolist())
    assert not (allowed & (set(info.special_ids) - set(info.eos_ids)))
    m.accept_tokens(info.encode("[1]"))
    allowed = set(m.allowed_token_ids().tolist())
    assert set(info.eos_ids) <= allowed
    assert not (allowed & (set(info.special_ids) - set(info.eos_ids)))
