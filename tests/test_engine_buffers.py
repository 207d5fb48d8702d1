"""The kernel's memory pool (engine/buffers.py): reused buffers are clean, and masks do not change.

A compiled grammar's sub-walk cache and kernel workspace come from a process-wide
pool and go back to it when the grammar is collected; the next grammar starts
from them (zeroed, or as left clean by the kernel when its workspace has the
same layout).  Masks must be the ones a grammar gets from fresh memory.
"""
from __future__ import annotations

import gc

import numpy as np

from structgen.engine import compile_grammar
from structgen.engine import buffers
from structgen.engine.buffers import BufferPool
from structgen.grammar import grammar_from_file, shipped_grammar_path

from test_engine import synthetic_vocab


class Owner:
    pass


def test_pool_gives_back_reuses_zeroes_and_bounds():
    pool = BufferPool(max_idle_bytes=3 * 4096)
    a = Owner()
    arr, _, reused = pool.zeros(a, 1000, np.int32)
    assert not reused and arr.shape == (1000,) and not arr.any()
    arr[:] = 7
    del arr, a
    gc.collect()
    b = Owner()
    arr, _, reused = pool.zeros(b, 1000, np.int32)
    assert reused and not arr.any(), "a reused buffer comes back zeroed"
    arr[:] = 5
    del arr, b
    gc.collect()
    c = Owner()
    arr, _, reused = pool.zeros(c, 1000, np.int32, zero=False)
    assert reused and (arr == 5).all(), "zero=False keeps the content (arrays written before read)"
    # layouts: only a buffer given back under the same layout is taken, as it was left
    arr[:] = 9
    del arr, c
    gc.collect()
    d = Owner()
    other, _, reused = pool.zeros(d, 1000, np.int32, layout="x")
    assert not reused and not other.any()
    other[:] = 3
    del other, d
    gc.collect()
    e = Owner()
    same, _, reused = pool.zeros(e, 1000, np.int32, layout="x")
    assert reused and (same == 3).all()
    del same, e
    gc.collect()
    # same layout name and page count, other length: parts would sit at other offsets (a mask
    # region over a stale index list): never reused as it was left
    g = Owner()
    longer, _, reused = pool.zeros(g, 1001, np.int32, layout="x")
    assert not reused and not longer.any()
    # the finalizer gives a buffer back early, once; the pool keeps at most max_idle_bytes
    f = Owner()
    backs = [pool.zeros(f, 1024, np.int32)[1] for _ in range(5)]   # arrays dropped at once
    for give_back in backs:
        give_back()
        give_back()
    assert pool._idle_bytes <= 3 * 4096
    del f
    gc.collect()
    assert pool._idle_bytes <= 3 * 4096


def _masks_along(compiled, tok, text):
    m = compiled.matcher()
    out = []
    for t in tok.encode(text):
        out.append(m.next_token_mask_words().copy())
        assert m.accept_token(t)
    out.append(m.next_token_mask_words().copy())
    return out


def test_grammars_on_reused_kernel_memory_give_fresh_masks():
    tok = synthetic_vocab(7)
    sql = grammar_from_file(shipped_grammar_path("sql"))
    arith = grammar_from_file(shipped_grammar_path("arithmetic"))
    sql_text = "SELECT a, b FROM t WHERE a = 1 AND b < 2 ORDER BY a"
    arith_text = "(1 + 2) * 3 - 4 / (5 + 6.25) ^ -2"
    saved = buffers.BUFFERS
    buffers_off = BufferPool(max_idle_bytes=0)       # nothing kept: every buffer fresh
    try:
        import structgen.engine.lr_walk as lr_walk
        lr_walk.BUFFERS = buffers_off
        fresh_sql = _masks_along(compile_grammar(sql, tok, cache=False, parser="glr"), tok, sql_text)
        fresh_arith = _masks_along(compile_grammar(arith, tok, cache=False, parser="glr"), tok, arith_text)
        pool = BufferPool()
        lr_walk.BUFFERS = pool
        for grammar, text, expected in [(sql, sql_text, fresh_sql), (arith, arith_text, fresh_arith),
                                        (sql, sql_text, fresh_sql), (sql, sql_text, fresh_sql),
                                        (arith, arith_text, fresh_arith)]:
            got = _masks_along(compile_grammar(grammar, tok, cache=False, parser="glr"), tok, text)
            assert len(got) == len(expected)
            for i, (a, b) in enumerate(zip(got, expected)):
                assert (a == b).all(), f"mask {i} differs on reused memory"
            gc.collect()
        assert pool.reused > 0, "later grammars must have started from given-back buffers"
    finally:
        lr_walk.BUFFERS = saved


def test_subwalk_cache_on_reused_memory_starts_empty(monkeypatch):
    """A reused index must be all zeros (a stale slot could point into stale entries of the reused data)."""
    import structgen.engine.lr_walk as lr_walk
    pool = BufferPool()
    monkeypatch.setattr(lr_walk, "BUFFERS", pool)
    cache = lr_walk.SubwalkCache()
    cache.table[:] = 12345
    cache.data[:100] = 7
    cache.ctr[:] = 3
    del cache
    gc.collect()
    again = lr_walk.SubwalkCache()
    assert pool.reused == 2
    assert not again.table.any() and not again.ctr.any()
