"""A compiled grammar's caches stay within their bounds and never change a mask.

A server keeps one compiled grammar for every request with the same schema, so
the masks it caches (``mask_cache_bytes``) and the parser states its memos
link (``max_linked_states``) must stop growing; tiny bounds force evictions
and memo cuts on every few tokens, and the masks must still equal those of a
grammar compiled with no practical bound.
"""
from __future__ import annotations

import gc
import json
import random

import numpy as np
import pytest

from structgen.engine import compile_grammar
from structgen.engine.bounded_cache import BoundedCache
from structgen.grammar import grammar_from_file

from test_engine import random_json_value, synthetic_vocab
from test_engine_real_tokenizers import random_arith

UNBOUNDED = dict(mask_cache_bytes=1 << 40, max_linked_states=1 << 40)


def test_bounded_cache_evicts_least_recently_used_by_bytes():
    c = BoundedCache(100)
    c.put("a", 1, 40)
    c.put("b", 2, 40)
    assert c.get("a") == 1          # "a" is now the most recent
    c.put("c", 3, 40)               # 120 bytes: the least recent ("b") goes
    assert c.get("b") is None and c.get("a") == 1 and c.get("c") == 3
    assert c.nbytes == 80 and c.evictions == 1
    c.put("a", 4, 10)               # replacing re-charges the entry
    assert c.get("a") == 4 and c.nbytes == 50
    c.put("huge", 5, 101)           # larger than the whole budget: not kept, nothing evicted
    assert c.get("huge") is None and len(c) == 2
    with pytest.raises(ValueError, match="budget"):
        BoundedCache(-1)


def test_bounded_cache_under_threads_stays_within_budget():
    """Lock-free gets racing locked puts and evictions: no error, never over budget, values intact."""
    import threading
    c = BoundedCache(50)
    errors = []

    def work(seed):
        rng = random.Random(seed)
        try:
            for _ in range(20_000):
                k = rng.randrange(40)
                if rng.random() < 0.5:
                    c.put(k, ("v", k), 7)
                else:
                    v = c.get(k)
                    assert v is None or v == ("v", k)
                assert c.nbytes <= 50
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:1]
    assert c.nbytes == 7 * len(c) <= 50 and c.evictions > 0


@pytest.fixture(scope="module")
def synth():
    return synthetic_vocab(seed=3)


def _texts(name: str, rng: random.Random, n: int) -> list[str]:
    if name == "json":
        return [json.dumps(random_json_value(rng), ensure_ascii=True) for _ in range(n)]
    return [random_arith(rng) for _ in range(n)]


@pytest.mark.parametrize("parser", ["glr", "earley"])
@pytest.mark.parametrize("name", ["json", "arithmetic"])
def test_tiny_bounds_keep_every_mask_and_stop_growth(name, parser, synth):
    grammar = grammar_from_file(name)
    mask_bytes = (synth.vocab_size + 31) // 32 * 4
    budget = 6 * mask_bytes
    bounded = compile_grammar(grammar, synth, parser=parser, cache=False, mask_cache_bytes=budget,
                              max_linked_states=40)
    reference = compile_grammar(grammar, synth, parser=parser, cache=False, **UNBOUNDED)
    rng = random.Random(7)
    peak_linked = 0
    for text in _texts(name, rng, 25):
        ids = synth.encode(text)
        mb, mr = bounded.matcher(), reference.matcher()
        for i, t in enumerate(ids + [None]):
            assert np.array_equal(mb.next_token_mask_words(), mr.next_token_mask_words()), \
                f"{text!r} before token {i}"
            assert mb.is_accepting() == mr.is_accepting()
            if t is not None:
                assert mb.accept_token(t) and mr.accept_token(t)
            assert bounded._masks.nbytes <= budget
            peak_linked = max(peak_linked, bounded.linked_states())
        # a matcher rolled back and re-run after cuts sees the same masks again
        mb.rollback(len(ids) // 2)
        mr.rollback(len(ids) // 2)
        assert np.array_equal(mb.next_token_mask_words(), mr.next_token_mask_words())
    assert bounded._masks.evictions > 0, "the mask budget never filled: the test bounds nothing"
    assert bounded.stats["memo_cuts"] > 0, "no memo cut happened: the test bounds nothing"
    assert reference.stats["memo_cuts"] == 0 and reference._masks.evictions == 0
    # what the memos link stays near the bound (the live matchers' states and their
    # ancestors stay alive on purpose)
    assert peak_linked < reference.linked_states(), (peak_linked, reference.linked_states())


def test_cut_frees_states_nothing_holds(synth):
    """Without matchers, a cut leaves only the initial state alive: cached masks do not pin states."""
    compiled = compile_grammar(grammar_from_file("arithmetic"), synth, parser="glr", cache=False)
    rng = random.Random(11)
    for text in _texts("arithmetic", rng, 10):
        m = compiled.matcher()
        for t in synth.encode(text):
            m.next_token_mask_words()
            assert m.accept_token(t)
    del m
    gc.collect()
    before = compiled.linked_states()
    assert before > 50   # the memos kept every state of the ten texts
    masks_before = len(compiled._masks)
    compiled.cut_memos()
    after = compiled.linked_states()
    assert after <= 3, (before, after)   # the root node, the initial set and at most its Earley twin
    assert len(compiled._masks) == masks_before > 50   # the masks stay cached, keyed by state serials
    # and the grammar still works from scratch
    m = compiled.matcher()
    assert m.accept_tokens(synth.encode("(1 + 22) * 3")) == len(synth.encode("(1 + 22) * 3"))
    assert m.is_accepting()


def test_bad_bounds_are_refused(synth):
    with pytest.raises(ValueError, match="budget"):
        compile_grammar(grammar_from_file("json"), synth, cache=False, mask_cache_bytes=-5)
    with pytest.raises(ValueError, match="max_linked_states"):
        compile_grammar(grammar_from_file("json"), synth, cache=False, max_linked_states=0)
