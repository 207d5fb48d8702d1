"""The GLR parser path against the Earley path and the pure-Python reference.

Two independent parsers (persistent Earley sets; LR(0) stacks with
FOLLOW-filtered reductions) must give identical masks at every step, the GLR
mask kernel must equal the per-token Python simulation, and a state too
ambiguous for the GLR path must fall back to Earley without changing a mask.
"""
from __future__ import annotations

import json
import os
import random
import zlib
from pathlib import Path

import numpy as np
import pytest

from structgen.engine import compile_grammar
from structgen.engine.lr_parser import LRSet
from structgen.engine.lr_tables import LRBudgetExceeded
from structgen.errors import GrammarError, RegexError
from structgen.grammar import grammar_from_file, grammar_from_gbnf, grammar_from_lark, grammar_from_regex

from test_engine import check_masks_against_reference, random_json_value, synthetic_vocab
from test_engine_real_tokenizers import random_arith, tokenizer_info

CORPUS = Path(os.environ.get("STRUCTGEN_CORPORA", Path(__file__).resolve().parents[2] / "shared" / "corpora"))
CORPUS_GRAMMARS = sorted(p for ext in ("*.lark", "*.gbnf", "*.ebnf") for p in (CORPUS / "grammars").rglob(ext))

SQL_TEXTS = [
    "SELECT name, age FROM users WHERE age > 30 ORDER BY name",
    "SELECT COUNT(*) FROM orders o JOIN customers c ON o.customer_id = c.id GROUP BY c.country",
    "INSERT INTO items (id, label) VALUES (1, 'first'), (2, 'it''s second')",
    "UPDATE accounts SET balance = balance - 100 WHERE id = 7",
]


def texts_for(name: str, rng: random.Random) -> list[str]:
    if name in ("json", "json.gbnf"):
        return [json.dumps(random_json_value(rng), ensure_ascii=True) for _ in range(6)]
    if name == "arithmetic":
        return [random_arith(rng) for _ in range(8)]
    if name == "sql":
        return SQL_TEXTS
    if name == "csv":
        return ["a,b,c\n1,2,3\n", "name,age\nbob,42\n"]
    if name == "python":
        return ["x = foo(1, 2) + bar[3]", "if a and not b: return None", "def f(x, y=2): return x * y"]
    raise KeyError(name)


@pytest.fixture(scope="module")
def synth():
    return synthetic_vocab(seed=1)


def walk_with_identical_masks(glr, earley, rng: random.Random, steps: int, where: str, on_step=None) -> None:
    """One random walk under the masks, asserting both parsers' masks are identical at every step."""
    mg, me = glr.matcher(), earley.matcher()
    eos = glr.tokenizer.eos_ids
    for _ in range(steps):
        w = assert_same_masks(mg, me, where)
        bits = np.unpackbits(w.view(np.uint8), bitorder="little")[: glr.vocab_size]
        allowed = [t for t in np.nonzero(bits)[0] if t not in eos]
        if not allowed:
            break
        t = int(rng.choice(allowed))
        assert mg.accept_token(t) and me.accept_token(t)
        if on_step is not None:
            on_step(mg)


def assert_same_masks(glr_matcher, earley_matcher, where: str) -> np.ndarray:
    g = glr_matcher.next_token_mask_words()
    e = earley_matcher.next_token_mask_words()
    if not np.array_equal(g, e):
        diff = np.flatnonzero(np.unpackbits((g ^ e).view(np.uint8), bitorder="little"))
        toks = glr_matcher.compiled.tokenizer.token_bytes
        raise AssertionError(f"{where}: masks differ on {len(diff)} tokens, e.g. "
                             + ", ".join(f"{toks[t]!r}:{'glr' if (g[t >> 5] >> (t & 31)) & 1 else 'earley'}"
                                         for t in diff[:8]))
    return g


def assert_same_masks_along(texts, a, b, tokenizer) -> None:
    """Matchers of compiled grammars ``a`` and ``b`` give the same mask before every token of each
    text and at its end, and both accept every token."""
    for text in texts:
        ma, mb = a.matcher(), b.matcher()
        for i, t in enumerate(tokenizer.encode(text)):
            assert_same_masks(ma, mb, f"{text[:40]!r} before token {i}")
            assert ma.accept_token(t) and mb.accept_token(t), (text, i)
        assert_same_masks(ma, mb, f"{text[:40]!r} at the end")


@pytest.mark.parametrize("name", ["json", "arithmetic", "sql", "csv", "python", "json.gbnf"])
@pytest.mark.parametrize("tok", ["smollm2-135m", "qwen2.5-coder-0.5b"])
def test_glr_masks_equal_earley_masks_on_real_texts(name, tok):
    """Every shipped grammar: identical masks and accept decisions along real tokenized texts."""
    info = tokenizer_info(tok)
    grammar = grammar_from_file(name)
    glr = compile_grammar(grammar, info, parser="glr", cache=False)
    earley = compile_grammar(grammar, info, parser="earley", cache=False)
    assert glr.parser_kind == "glr" and earley.parser_kind == "earley"
    rng = random.Random(zlib.crc32(name.encode()))
    for text in texts_for(name, rng):
        ids = info.encode(text)
        mg, me = glr.matcher(), earley.matcher()
        for i, t in enumerate(ids):
            assert_same_masks(mg, me, f"{name} {text[:40]!r} before token {i}")
            assert mg.accept_token(t) == me.accept_token(t)
        assert_same_masks(mg, me, f"{name} {text[:40]!r} at the end")
        assert mg.is_accepting() == me.is_accepting()
    assert glr.stats["glr_calls"] > 0, "the GLR kernel was never exercised"


def test_split_walk_units_are_shared_across_contexts():
    """Large item groups walk as first-byte units cached with only the start states their byte keeps
    alive; SQL contexts expecting different keywords reuse them, and masks still equal Earley's."""
    info = tokenizer_info("qwen2.5-coder-0.5b")
    grammar = grammar_from_file("sql")
    glr = compile_grammar(grammar, info, parser="glr", cache=False)
    earley = compile_grammar(grammar, info, parser="earley", cache=False)
    for text in SQL_TEXTS + ["SELECT a FROM t WHERE b = 1 ORDER BY a DESC LIMIT 3",
                             "DELETE FROM t WHERE x IN (1, 2) OR y IS NULL"]:
        mg, me = glr.matcher(), earley.matcher()
        for i, t in enumerate(info.encode(text)):
            assert_same_masks(mg, me, f"{text[:40]!r} before token {i}")
            assert mg.accept_token(t) and me.accept_token(t)
        assert_same_masks(mg, me, f"{text[:40]!r} at the end")
    assert glr.stats["units_walked"] > 0 and glr.stats["units_replayed"] > 0


def test_subwalk_cache_index_survives_growth(monkeypatch):
    """Entries stored before the sub-walk cache grows are still found after it (index rehashed, data
    copied); at its bounds a new entry is refused rather than overwriting one."""
    import structgen.engine.lr_walk as lw
    monkeypatch.setattr(lw, "SUBWALK_CACHE_ENTRIES", 16)
    monkeypatch.setattr(lw, "SUBWALK_CACHE_INT64S", 1 << 12)
    cache = lw.SubwalkCache(n_int64=64, entries=4)
    nodes = np.arange(3, dtype=np.int32)

    def store(i: int) -> int:
        vec = np.array([i, i + 1], dtype=np.int32)
        key = lw._walk_key(lw._nodes_hash(nodes, 0, 3), vec, 0, 2)
        p = lw._reserve_walk(cache.table, cache.data, cache.ctr, key, 9)
        if p >= 0:
            cache.data[p:p + 8] = [3, 0, 1, 2, 2, i, i + 1, 0]   # key, then no item-result depths
            cache.data[p + 8] = 1000 + i   # the entry's first word after them
        return p

    def find(i: int) -> int:
        vec = np.array([i, i + 1], dtype=np.int32)
        key = lw._walk_key(lw._nodes_hash(nodes, 0, 3), vec, 0, 2)
        p = lw._lookup_walk(cache.table, cache.data, key, nodes, 0, 3, vec, 0, 2)
        return -1 if p < 0 else int(cache.data[p])

    stored = []
    for i in range(40):
        if store(i) < 0:
            break
        stored.append(i)
        cache.grow_if_needed()
        assert [find(j) for j in stored] == [1000 + j for j in stored]
    assert cache.entries == 16 and len(stored) == 16, (cache.entries, len(stored))
    assert find(len(stored)) == -1 and store(99) == -1


def test_subwalk_cache_growth_and_overflow_keep_masks(synth, monkeypatch):
    """A sub-walk cache that starts tiny grows (its index rehashed) and then fills up: cached entries
    keep replaying after the growths, walks made while it is full go uncached, and every mask still
    equals Earley's (masks themselves are not cached here, so every step runs the kernel)."""
    import structgen.engine.lr_walk as lw
    monkeypatch.setattr(lw, "SUBWALK_CACHE_ENTRIES", 64)
    monkeypatch.setattr(lw, "SUBWALK_CACHE_INT64S", 4096)
    g = grammar_from_file("sql")
    glr = compile_grammar(g, synth, parser="glr", cache=False, mask_cache_bytes=0)
    earley = compile_grammar(g, synth, parser="earley", cache=False)
    glr._subwalks = cache = lw.SubwalkCache(n_int64=256, entries=4)
    glr._workspace = glr._new_workspace()
    glr._kernel = None   # compiling built the kernel on default parts: rebuilt on these by the first mask
    sizes, replayed = set(), []
    for text in SQL_TEXTS * 2:
        mg, me = glr.matcher(), earley.matcher()
        for i, t in enumerate(synth.encode(text)):
            assert_same_masks(mg, me, f"{text[:40]!r} before token {i}")
            assert mg.accept_token(t) and me.accept_token(t)
            sizes.add((cache.entries, len(cache.data)))
        assert_same_masks(mg, me, f"{text[:40]!r} at the end")
        replayed.append(glr.stats["walks_replayed"])
    assert glr._kernel.cache is cache
    assert (4, 256) in sizes and (64, 4096) in sizes, f"the cache did not grow to its bounds: {sorted(sizes)}"
    assert int(cache.ctr[0]) == 64, "the cache never filled up"
    assert replayed[-1] > replayed[len(replayed) // 2 - 1], "no cached walk was replayed once the cache was full"


@pytest.mark.parametrize("name", ["json", "arithmetic", "sql", "json.gbnf"])
def test_glr_masks_equal_reference_along_random_walks(name, synth):
    """The GLR kernel equals the per-token Python simulation (LRSet.advance) in random states."""
    compiled = compile_grammar(grammar_from_file(name), synth, parser="glr", cache=False)
    check_masks_against_reference(compiled, random.Random(zlib.crc32(name.encode()) + 1), steps=30)


def test_ambiguous_grammar_forks_stacks_and_matches_earley(synth):
    """LR(0) conflicts and lexeme ambiguity fork stacks; masks still equal Earley's."""
    # ambiguous on purpose: 'a' 'a' parses as x x or as y, and both terminals match "ab"
    g = grammar_from_lark('start: item+\nitem: x | y | z\nx: A\ny: A A\nz: B "!"?\nA: "a" | "ab"\nB: /a[a-c]/\n')
    glr = compile_grammar(g, synth, parser="glr", cache=False)
    earley = compile_grammar(g, synth, parser="earley", cache=False)
    rng = random.Random(4)
    forks = []

    def count_forks(m):
        state = m._state[0]
        forks.append(isinstance(state, LRSet) and len(state.stacks) > 1)

    for _ in range(20):
        walk_with_identical_masks(glr, earley, rng, 12, "ambiguous grammar", on_step=count_forks)
    assert any(forks), "the test grammar never produced more than one stack"


def test_fallback_to_earley_when_too_many_stacks(synth, monkeypatch):
    """Past MAX_STACKS a state becomes an Earley set rebuilt along its lexeme path; masks unchanged."""
    import structgen.engine.lr_parser as lp
    monkeypatch.setattr(lp, "MAX_STACKS", 1)
    g = grammar_from_lark('start: item+\nitem: x | y\nx: A\ny: A A\nA: "a"\n')
    glr = compile_grammar(g, synth, parser="glr", cache=False)
    earley = compile_grammar(g, synth, parser="earley", cache=False)
    mg, me = glr.matcher(), earley.matcher()
    a = synth.encode("a")[0]
    kinds = set()
    for i in range(6):
        assert_same_masks(mg, me, f"after {i} tokens")
        assert mg.accept_token(a) and me.accept_token(a)
        kinds.add(type(mg._state[0]).__name__)
    assert_same_masks(mg, me, "at the end")
    assert "EarleySet" in kinds, kinds


@pytest.mark.skipif(not CORPUS_GRAMMARS, reason="shared corpora not found (set STRUCTGEN_CORPORA)")
@pytest.mark.parametrize("path", CORPUS_GRAMMARS, ids=lambda p: str(p.relative_to(CORPUS / "grammars")))
def test_corpus_grammars_glr_equals_earley_on_random_walks(path, synth):
    """Real third-party grammars (Lark, GBNF, EBNF): random walks with identical masks on both parsers."""
    try:
        g = grammar_from_file(path)
        earley = compile_grammar(g, synth, parser="earley", cache=False)
    except (GrammarError, RegexError):
        return  # refused with a reason: covered by test_grammar_corpus.py
    try:
        glr = compile_grammar(g, synth, parser="glr", cache=False)
    except LRBudgetExceeded:
        pytest.skip("LR(0) automaton over budget: the Earley path is used")
    rng = random.Random(zlib.crc32(path.name.encode()))
    for _ in range(3):
        walk_with_identical_masks(glr, earley, rng, 20, path.name)


def test_gbnf_and_regex_front_ends_take_the_glr_path(synth):
    """auto picks GLR for small grammars of every front-end; huge automata stay on Earley."""
    for g in (grammar_from_gbnf('root ::= "a" [0-9]+ ("," [0-9]+)*'), grammar_from_regex(r"[a-c]{2,4}(-[0-9]+)?")):
        assert compile_grammar(g, synth, cache=False).parser_kind == "glr"
    with pytest.raises(ValueError, match="parser must be one of"):
        compile_grammar(grammar_from_regex("a"), synth, cache=False, parser="lalr")


def test_json_schema_grammars_stay_on_earley_under_auto(synth):
    from structgen.schema import grammar_from_json_schema
    g = grammar_from_json_schema({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                                 property_order="schema")
    assert compile_grammar(g, synth, cache=False).parser_kind == "earley"
    assert compile_grammar(g, synth, cache=False, parser="glr").parser_kind == "glr"


def test_lr_budget_keeps_big_grammars_on_earley(synth, monkeypatch):
    import structgen.engine.lr_tables as lt
    monkeypatch.setattr(lt, "MAX_LR_STATES", 5)
    g = grammar_from_file("json")
    with pytest.raises(LRBudgetExceeded):
        compile_grammar(g, synth, cache=False, parser="glr")
    assert compile_grammar(g, synth, cache=False, parser="auto").parser_kind == "earley"


@pytest.mark.parametrize("src", ['root ::= s\ns ::= a s | "x"\na ::= "y"?\n',
                                 'root ::= s\ns ::= b "x" | "z"\nb ::= a b "y" | a\na ::= "y"?\n'])
def test_hidden_left_recursion_stays_on_earley(src, synth):
    """Empty reductions that could grow LR stacks forever are refused statically: auto picks Earley."""
    g = grammar_from_gbnf(src, lexify=False)
    with pytest.raises(LRBudgetExceeded, match="hidden left recursion"):
        compile_grammar(g, synth, cache=False, parser="glr")
    assert compile_grammar(g, synth, cache=False).parser_kind == "earley"


@pytest.mark.parametrize("cap", [8, 32])
def test_workspace_overflow_reruns_give_the_same_masks(cap, synth):
    """A kernel call that outgrows its workspace midway is rerun on a 4x larger one; what the failed
    attempt left behind (walks it cached before the overflow) must not change the rerun's mask."""
    import structgen.engine.lr_walk as lw
    g = grammar_from_file("sql")
    glr = compile_grammar(g, synth, parser="glr", cache=False, mask_cache_bytes=0)
    earley = compile_grammar(g, synth, parser="earley", cache=False)
    glr._subwalks = lw.SubwalkCache()
    glr._workspace = glr._new_workspace(cap=cap)
    glr._kernel = None   # compiling built the kernel on default parts: rebuilt on these by the first mask
    assert_same_masks_along(SQL_TEXTS, glr, earley, synth)
    assert glr._kernel.ws.cap > cap, "no call outgrew the workspace"
    assert not glr._glr_broken


def test_runaway_search_falls_back_to_earley_masks(synth, monkeypatch):
    """If a mask search outgrows the workspace anyway, masks come from the Earley parser, unchanged."""
    import structgen.engine.lr_walk as lw
    monkeypatch.setattr(lw, "MAX_WORKSPACE_CAP", 2)
    g = grammar_from_file("arithmetic")
    glr = compile_grammar(g, synth, parser="glr", cache=False)
    # a workspace of 2 stack nodes: the first search with boundaries outgrows it
    glr._subwalks = lw.SubwalkCache()
    glr._workspace = glr._new_workspace(cap=2)
    glr._kernel = None   # compiling built the kernel on default parts: rebuilt on these by the first mask
    earley = compile_grammar(g, synth, parser="earley", cache=False)
    mg, me = glr.matcher(), earley.matcher()
    for t in synth.encode("(1+2)*3"):
        assert_same_masks(mg, me, "fallback")
        assert mg.accept_token(t) and me.accept_token(t)
    assert_same_masks(mg, me, "fallback end")
    assert glr._glr_broken


def test_topk_cache_reuses_masks_across_deep_stacks(synth):
    """Deep stacks sharing their top states reuse the recorded part; masks still equal Earley's."""
    g = grammar_from_file("arithmetic")
    glr = compile_grammar(g, synth, parser="glr", cache=False)
    earley = compile_grammar(g, synth, parser="earley", cache=False)
    for prefix in ["((((((1+(2*", "(((((((((1+(2*", "((((1+(2*3)+(((4*", "(((((((1+2)+3)*"]:
        mg, me = glr.matcher(), earley.matcher()
        for t in synth.encode(prefix):
            assert mg.accept_token(t) and me.accept_token(t)
        for t in synth.encode("(5+6))"):
            assert_same_masks(mg, me, prefix)
            if not (mg.accept_token(t) and me.accept_token(t)):
                break
    assert glr.stats["topk_hits"] > 0


def test_topk_recording_stops_when_keys_do_not_recur(synth, monkeypatch):
    """Once recordings stop paying (keys rarely recur), new deep-stack keys run as one full call,
    with a probe recording now and then; masks and EOS answers still equal Earley's."""
    import structgen.engine.compiled as compiled_mod
    monkeypatch.setattr(compiled_mod, "GLR_TOPK_TRIAL", 2)
    monkeypatch.setattr(compiled_mod, "GLR_TOPK_PROBE", 3)
    g = grammar_from_file("arithmetic")
    glr = compile_grammar(g, synth, parser="glr", cache=False)
    earley = compile_grammar(g, synth, parser="earley", cache=False)
    # every prefix nests deeper than the last: top-state keys at the start of each come back rarely
    for depth in range(3, 15):
        prefix = "(" * depth + "1+" + "(" * (depth % 4) + "2*"
        mg, me = glr.matcher(), earley.matcher()
        for t in synth.encode(prefix + "3" + ")" * (depth % 4) + ")" * depth):
            assert_same_masks(mg, me, prefix)
            assert mg.accept_token(t) and me.accept_token(t)
        assert_same_masks(mg, me, prefix + " end")
    assert glr._topk_unrecorded > 0                            # new keys ran unrecorded
    assert glr._topk_recorded > compiled_mod.GLR_TOPK_TRIAL    # and probes still recorded some


@pytest.mark.parametrize("name", ["arithmetic", "sql", "json"])
def test_kernel_can_end_answers_equal_the_python_parser(name, synth):
    """EOS bits decided inside the mask kernel (no lexeme pending, or after the pending lexeme's GLR
    step; shallow stacks, top-state recordings and deferred runs) equal ``can_end``'s GLR step."""
    g = grammar_from_file(name)
    compiled = compile_grammar(g, synth, parser="glr", cache=False)
    rng = random.Random(zlib.crc32(name.encode()) + 7)
    texts = texts_for(name, rng)
    if name == "arithmetic":
        texts += ["((((((1+(2*3)+4", "(((((((((1+(2*(5+6", "1 + 2 ", "((1))"]
    answers = {True: 0, False: 0}

    def check(m, text):
        pset, vid, ne = m._state
        if isinstance(pset, LRSet):
            _, ends = compiled._glr_mask(pset, vid, ne)
            if ends is not None:
                assert ends == compiled.can_end(pset, vid, ne), f"{name} {text!r} at {m.num_accepted_tokens}"
                answers[ends] += 1

    for text in texts:
        m = compiled.matcher()
        for t in synth.encode(text):
            check(m, text)
            assert m.accept_token(t)
        check(m, text)
    assert answers[True] > 0 and answers[False] > 0, answers


def test_warm_up_loads_every_mask_kernel():
    """After warm_up() every numba kernel a mask can reach has been compiled or loaded."""
    from structgen.engine import lr_walk, slices, walk, warm_up
    info = tokenizer_info("smollm2-135m")
    warm_up(info)
    # the kernels Python calls on the mask path (helpers they call are compiled into them)
    kernels = [walk.walk_kernel, lr_walk.glr_mask_kernel, lr_walk._rehash, slices._covers_kernel]
    missing = [k.py_func.__name__ for k in kernels if not k.signatures]
    assert not missing, f"warm_up() left these kernels to the first real mask: {missing}"


def test_interned_stacks_are_shared_and_the_intern_table_is_weak():
    """Equal stacks are one node (the same parse reuses every node); the table itself holds entries weakly."""
    import gc
    from structgen.engine.intern import WeakInternTable
    vocab = synthetic_vocab(1)
    compiled = compile_grammar(grammar_from_file("arithmetic"), vocab)
    assert compiled.parser_kind == "glr"
    ctx = compiled.glr
    base_nodes = len(ctx.nodes)
    m = compiled.matcher()
    assert m.accept_string("((1 + 2) * (3 - 4) / 5) ^ 6")
    grown = len(ctx.nodes)
    assert grown > base_nodes + 10
    again = compiled.matcher()
    assert again.accept_string("((1 + 2) * (3 - 4) / 5) ^ 6")
    assert len(ctx.nodes) == grown, "the same parse reuses the interned nodes"
    assert again._state[0] is m._state[0], "equal stacks give the same parser state object"

    table = WeakInternTable()

    class Obj:
        pass
    a, b = Obj(), Obj()
    table.put("k", a)
    table.put("k", b)   # re-set before a's death: a's callback must not remove b's entry
    del a
    gc.collect()
    assert table.get("k") is b
    del b
    gc.collect()
    assert table.get("k") is None and len(table) == 0
