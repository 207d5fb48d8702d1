"""Item results of the GLR mask kernel (lr_walk._record_item_results / _find_item_result).

An item's tokens are cached under its walk and the top stack states its searches read, and
reused whole by later items with the same walk on stacks with those top states.  The kernel
must give the same masks with and without them, on stacks that share top states but differ
below (nested brackets, SQL subqueries, Go blocks), where a result keyed by too few states
would be wrong.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from structgen.engine import compile_grammar
from structgen.grammar import grammar_from_file, grammar_from_lark

from test_engine_glr import SQL_TEXTS, assert_same_masks_along
from test_engine_real_tokenizers import tokenizer_info

CORPUS = Path(os.environ.get("STRUCTGEN_CORPORA", Path(__file__).resolve().parents[2] / "shared" / "corpora"))
GO_GRAMMAR = CORPUS / "grammars" / "syncode" / "syncode" / "parsers" / "grammars" / "go_grammar.lark"

ARITH_TEXTS = [
    "((1+2)*(3+(4*5)))",
    "(((((1))+2)*3)+((4)))",
    "1+(2*(3+(4*(5+(6*(7+8))))))",
    "((((((((9))))))))+(((1+2)))*((3))",
    "(1+(2+(3+(4+(5+(6+(7+(8+9))))))))",
]
GO_TEXTS = [
    "package main\n\nfunc main() {\n\tx := foo(1, bar(2, baz(3)))\n\tif x > 0 {\n\t\tfmt.Println(x)\n\t}\n}\n",
    "package main\n\nfunc f(a int, b int) int {\n\tfor i := 0; i < a; i++ {\n\t\tb = b + g(i)\n\t}\n"
    "\treturn b\n}\n",
]


def without_item_results(compiled):
    """The same compiled grammar with the kernel's item results turned off."""
    kernel = compiled._kernel or compiled._kernel_resources()
    kernel.result_depth = 0
    kernel._bind()
    return compiled


@pytest.mark.parametrize("name, texts", [("arithmetic", ARITH_TEXTS), ("sql", SQL_TEXTS)])
def test_item_results_keep_masks_on_shipped_grammars(name, texts):
    info = tokenizer_info("qwen2.5-coder-0.5b")
    grammar = grammar_from_file(name)
    with_results = compile_grammar(grammar, info, parser="glr", cache=False)
    without = without_item_results(compile_grammar(grammar, info, parser="glr", cache=False))
    assert_same_masks_along(texts, with_results, without, info)
    # the path under test ran: results were made and reused, and none exist with them off
    assert with_results.stats["item_results_made"] > 0 and with_results.stats["item_results_used"] > 0
    assert without.stats["item_results_made"] == 0 == without.stats["item_results_used"]


@pytest.mark.skipif(not GO_GRAMMAR.exists(), reason="shared corpora not found (set STRUCTGEN_CORPORA)")
def test_item_results_keep_masks_on_nested_go_code():
    info = tokenizer_info("qwen2.5-coder-0.5b")
    with pytest.warns(UserWarning):   # the grammar has rules never reached from start
        grammar = grammar_from_lark(GO_GRAMMAR.read_text(encoding="utf-8"))
    with_results = compile_grammar(grammar, info, parser="glr", cache=False)
    without = without_item_results(compile_grammar(grammar, info, parser="glr", cache=False))
    assert_same_masks_along(GO_TEXTS, with_results, without, info)
    assert with_results.stats["item_results_used"] > 0



def test_results_stop_being_recorded_when_they_do_not_pay(monkeypatch):
    """Past a trial, a grammar whose results are not used enough records them only on probe calls
    (one in RESULT_PROBE); masks stay equal to the kernel's without results."""
    from structgen.engine import lr_walk
    monkeypatch.setattr(lr_walk, "RESULT_TRIAL", 4)
    monkeypatch.setattr(lr_walk, "RESULT_MIN_USE", 0)   # 0 * used < made: no use rate is enough, only probes record
    monkeypatch.setattr(lr_walk, "RESULT_PROBE", 5)
    decisions = []
    decide = lr_walk.GLRKernel._record_results

    def spy(kernel):
        made_before = int(kernel.stats[lr_walk.N_STATS + lr_walk.STAT_RESULTS_MADE])
        d = decide(kernel)
        if kernel.result_depth:   # not the kernel without results
            decisions.append((made_before, d))
        return d

    monkeypatch.setattr(lr_walk.GLRKernel, "_record_results", spy)
    info = tokenizer_info("qwen2.5-coder-0.5b")
    grammar = grammar_from_file("arithmetic")
    throttled = compile_grammar(grammar, info, parser="glr", cache=False)
    without = without_item_results(compile_grammar(grammar, info, parser="glr", cache=False))
    assert_same_masks_along(ARITH_TEXTS, throttled, without, info)
    after_trial = [d for made, d in decisions if made >= 4]
    assert len(after_trial) >= 10
    assert sum(after_trial) == len(after_trial) // 5          # exactly the probes
    assert all(d for made, d in decisions if made < 4)        # the trial records every call


def test_cache_lookups_compare_heads_in_full():
    """Walks and item results share one index; a lookup must match the whole head under a key,
    not the key alone (a 64-bit key collision must not return another entry)."""
    import numpy as np
    from structgen.engine import lr_walk as lw
    cache = lw.SubwalkCache(n_int64=256, entries=16)
    key = 12345
    nodes = np.array([3, 4], dtype=np.int32)
    vec = np.array([7, 8], dtype=np.int32)
    p = lw._reserve_walk(cache.table, cache.data, cache.ctr, key, 8)
    cache.data[p:p + 8] = [2, 3, 4, 2, 7, 8, 0, 0]      # head, item-result slot, no tokens
    assert lw._lookup_walk(cache.table, cache.data, key, nodes, 0, 2, vec, 0, 2) == p + 7
    other = np.array([7, 9], dtype=np.int32)
    assert lw._lookup_walk(cache.table, cache.data, key, nodes, 0, 2, other, 0, 2) == -1
    assert lw._lookup_walk(cache.table, cache.data, key, vec, 0, 2, vec, 0, 2) == -1
    # an item result under the same key: [RESULT_TAG, walk, n, states..., depth]
    r = lw._reserve_walk(cache.table, cache.data, cache.ctr, key, 6)
    cache.data[r:r + 6] = [lw.RESULT_TAG, p + 7, 2, 11, 12, 1]
    key_buf = np.array([p + 7, 11, 12], dtype=np.int32)
    assert lw._lookup_result(cache.table, cache.data, key, key_buf, 2) == r + 5
    assert lw._lookup_walk(cache.table, cache.data, key, nodes, 0, 2, vec, 0, 2) == p + 7
    for wrong in ([p + 7, 11, 13], [p + 8, 11, 12]):
        assert lw._lookup_result(cache.table, cache.data, key, np.array(wrong, dtype=np.int32), 2) == -1
    assert lw._lookup_result(cache.table, cache.data, key, key_buf, 1) == -1
