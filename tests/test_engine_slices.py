"""Token slices (precomputed free-text masks) against brute force on real vocabularies.

A slice must partition the vocabulary exactly (its tokens + its remainder
trie's tokens = the trie's tokens), coverage must be decided exactly, and a
mask computed through a slice must equal the pure-Python per-token reference.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from structgen.engine import compile_grammar
from structgen.engine.compiled import token_trie_for
from structgen.engine.slices import REFERENCE_LOOPS, covers, covers_reference
from structgen.grammar import grammar_from_file, grammar_from_lark
from structgen.regex import compile_regex

from test_engine import reference_mask
from test_engine_real_tokenizers import tokenizer_info


def _bits(words: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8), bitorder="little")[:n].astype(bool)


def _dfa_alive(dfa, data: bytes) -> bool:
    s = 0
    for b in data:
        s = int(dfa.transitions[s, b])
        if s < 0:
            return False
    return True


@pytest.mark.parametrize("tok_name", ["qwen2.5-coder-0.5b", "gemma-3-270m"])
def test_slices_partition_the_vocabulary(tok_name):
    info = tokenizer_info(tok_name)
    trie = token_trie_for(info)
    assert {s.name for s in trie.slices} == {name for name, _ in REFERENCE_LOOPS}
    in_trie = trie.token_node >= 0
    for sl in trie.slices:
        in_slice = _bits(sl.mask, trie.vocab_size)
        rem = np.zeros(trie.vocab_size, dtype=bool)
        rem[sl.remainder.tok_ids] = True
        assert not np.any(in_slice & rem)
        assert np.array_equal(in_slice | rem, in_trie)
        # membership decided by simulating the reference DFA on every token's bytes
        expected = np.array([bool(in_trie[t]) and _dfa_alive(sl.dfa, info.token_bytes[t])
                             for t in range(trie.vocab_size)])
        assert np.array_equal(in_slice, expected)
        if sl.name in ("json-string-body", "line"):
            assert sl.size > trie.vocab_size // 2  # free text: most of a real vocabulary
        # remainder nodes map back to full-trie nodes with the same byte and depth
        orig = sl.remainder.node_orig
        assert np.array_equal(trie.node_byte[orig[1:]], sl.remainder.node_byte[1:])
        assert np.array_equal(trie.node_depth[orig], sl.remainder.node_depth)
        # each remainder token ends at the node that maps to its full-trie node
        assert np.array_equal(orig[sl.remainder.token_node[sl.remainder.tok_ids]],
                              trie.token_node[sl.remainder.tok_ids])


def _state_after(pattern: str, prefix: bytes):
    trans = compile_regex(pattern).transitions
    s = 0
    for b in prefix:
        s = int(trans[s, b])
    return trans, s


@pytest.mark.parametrize("pattern,prefix,ref,expected", [
    (r'"([^"\\]|\\.)*"', b'"', r'[^"\\\x00-\x1f]*', True),       # JSON-ish string body
    (r'"([^"\\]|\\.)*"', b'"', r"[^\n]*", False),                # a quote ends it: not every line
    (r"#[^\n]*", b"#", r"[^\n]*", True),                         # comment body covers the line slice
    (r"#[^\n]*", b"#", r'[^"\\\x00-\x1f]*', True),               # ... and the smaller string body
    (r"[a-z]*!", b"", r'[^"\\\x00-\x1f]*', False),               # letters only
    (r'"[^"]{0,5}"', b'"', r'[^"\\\x00-\x1f]*', False),          # counted: dies after 5 characters
    (r"[\x00-\x7f]*;", b"", r'[^"\\\x00-\x1f]*', False),         # ASCII only: multi-byte text dies
])
def test_covers_is_exact(pattern, prefix, ref, expected):
    trans, q = _state_after(pattern, prefix)
    assert covers(trans, q, compile_regex(ref)) is expected


def _check_masks_along(compiled, info, text: str, expect_slice: bool):
    ids = info.encode(text)
    m = compiled.matcher()
    before = compiled.stats["slice_walks"]
    checked_in_slice = 0
    for i in range(len(ids) + 1):
        # the reference costs seconds per position: check inside free text, plus both ends
        in_slice = compiled.slice_for(m._state[1]) is not None
        if in_slice or i in (0, len(ids)):
            fast = m.allowed_mask()
            ref = reference_mask(m)
            diff = np.nonzero(fast != ref)[0]
            assert len(diff) == 0, (i, [(int(t), info.token_bytes[t]) for t in diff[:8]])
            checked_in_slice += in_slice
        if i < len(ids):
            assert m.accept_token(ids[i])
    assert m.is_accepting()
    if expect_slice:
        assert checked_in_slice >= 3 and compiled.stats["slice_walks"] > before, "the slice path was not exercised"


@pytest.mark.parametrize("tok_name", ["qwen2.5-coder-0.5b", "gemma-3-270m"])
def test_json_string_masks_through_slices_equal_reference(tok_name):
    info = tokenizer_info(tok_name)
    compiled = compile_grammar(grammar_from_file("json"), info, cache=False)
    _check_masks_along(compiled, info, '{"k": "caf\u00e9 \u6771\u4eac \\"q\\" \U0001F600 tail"}', expect_slice=True)


def test_comment_masks_through_line_slice_equal_reference():
    info = tokenizer_info("qwen2.5-coder-0.5b")
    grammar = grammar_from_lark(r"""
start: stmt+
stmt: NAME "=" NUMBER COMMENT? NL
COMMENT: /#[^\n]*/
NL: /\n/
%import common.CNAME -> NAME
%import common.INT -> NUMBER
%ignore " "
""")
    compiled = compile_grammar(grammar, info, cache=False)
    _check_masks_along(compiled, info, "x = 1 # set \u00e9 \"quoted\" {x}\ny = 2\n", expect_slice=True)
    assert re.fullmatch(r"[^\n]*", "set \u00e9")  # sanity of the reference language itself


def test_covers_gives_up_conservatively_past_its_exploration_cap():
    ref = compile_regex(r'[^"\\\x00-\x1f]*')
    # a counted string dies only after 3000 characters: past the cap the answer is False (walk the trie)
    trans, q = _state_after(r'"[^"]{0,3000}"', b'"')
    assert covers(trans, q, ref) is False
    # a real loop state is covered within the cap, and refused (conservatively) with a tiny cap
    trans2, q2 = _state_after(r'"([^"\\]|\\.)*"', b'"')
    assert covers(trans2, q2, ref) is True
    assert covers(trans2, q2, ref, max_pairs=0) is False


@pytest.mark.parametrize("grammar", ["json", "sql", "python"])
def test_numba_covers_equals_the_python_reference_on_every_lexer_state(grammar):
    """covers() (numba) and covers_reference() agree for every state of a real grammar's lexer."""
    from structgen.engine import byte_level_tokenizer, compile_grammar
    from structgen.grammar import grammar_from_file
    lexer = compile_grammar(grammar_from_file(grammar), byte_level_tokenizer(), cache=False).lexer
    refs = [compile_regex(pattern) for _, pattern in REFERENCE_LOOPS]
    decided = 0
    for q in range(lexer.trans.shape[0]):
        for ref in refs:
            for cap in (3, 256):
                fast = covers(lexer.trans, q, ref, max_pairs=cap)
                assert fast == covers_reference(lexer.trans, q, ref, max_pairs=cap), (grammar, q, cap)
                decided += fast
    assert decided > 0


@pytest.mark.parametrize("tok_name", ["qwen2.5-coder-0.5b", "gemma-3-270m"])
def test_prefix_slices_partition_each_prefix_subtree(tok_name):
    """A prefix slice holds exactly the tokens 'prefix + non-empty word prefix'; its remainder
    sub-trie holds every other token below the prefix, with full-trie ids, bytes and depths."""
    info = tokenizer_info(tok_name)
    trie = token_trie_for(info)
    ps = trie.prefix_slices
    assert ps.count >= 1
    word = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
    full_prefix = {}
    for t, data in enumerate(info.token_bytes):
        if t < trie.vocab_size and trie.token_node[t] >= 0:
            full_prefix[t] = data
    for j in range(ps.count):
        p = int(ps.node[j])
        d = int(trie.node_depth[p])
        some_token = next(t for t in range(trie.vocab_size)
                          if trie.token_node[t] >= 0 and p <= trie.token_node[t] < trie.subtree_end[p])
        prefix = info.token_bytes[some_token][:d]
        assert not word.fullmatch(prefix[-1:])               # a prefix ends in a non-word byte
        below = [t for t, b in full_prefix.items() if b.startswith(prefix) and len(b) > d]
        in_slice = set(np.nonzero(_bits(ps.masks[j], trie.vocab_size))[0].tolist())
        # a non-empty prefix of a word is itself a word: Python's re is the reference
        expected = {t for t in below if word.fullmatch(info.token_bytes[t][d:])}
        assert in_slice == expected
        lo, hi = int(ps.r_lo[j]), int(ps.r_hi[j])
        assert ps.r_orig[lo] == p and np.all(np.diff(ps.r_orig[lo:hi]) > 0)
        assert np.array_equal(trie.node_byte[ps.r_orig[lo + 1:hi]], ps.r_byte[lo + 1:hi])
        assert np.array_equal(trie.node_depth[ps.r_orig[lo:hi]], ps.r_depth[lo:hi])
        rem = set(ps.r_tok_ids[ps.r_tok_start[lo]:ps.r_tok_start[hi]].tolist())
        assert rem == set(below) - expected
        # the children that can start a word, counted for the kernel's "whole group" check
        kids = [i for i in range(p + 1, int(trie.subtree_end[p])) if trie.node_depth[i] == d + 1]
        assert ps.n_first[j] == sum(bool(word.fullmatch(bytes([trie.node_byte[i]]))) for i in kids)
        assert all(ps.child[i] == j for i in kids)


@pytest.mark.parametrize("grammar,texts", [
    ("sql", ["SELECT a.x, SUM(b.y) AS total FROM a LEFT OUTER JOIN b ON a.id = b.a_id WHERE b.y BETWEEN 1 AND 9;",
             "UPDATE accounts SET balance = balance - 100 WHERE id = 7",
             "INSERT INTO items (id, label) VALUES (1, 'first'), (2, 'it''s second')"]),
    ("python", ["x = [a.real + b for a in values if a.imag]", "import os.path as p, sys",
                "print(os.path.join(a, b), sep=' ')"]),
])
def test_glr_masks_with_prefix_slices_equal_masks_without(grammar, texts):
    """Prefix slices change how much of the trie the GLR kernel walks, never the mask; and they
    are actually taken (fewer trie nodes visited)."""
    from structgen.engine.compiled import CompiledGrammar
    info = tokenizer_info("qwen2.5-coder-0.5b")
    g = grammar_from_file(grammar)
    on = compile_grammar(g, info, cache=False)
    assert on.parser_kind == "glr"                    # prefix slices live on the GLR path
    try:
        CompiledGrammar.use_prefix_slices = False
        off = compile_grammar(g, info, cache=False)
        masks_off = []
        for text in texts:
            m = off.matcher()
            for t in info.encode(text):
                masks_off.append(m.next_token_mask_words().copy())
                assert m.accept_token(t)
    finally:
        CompiledGrammar.use_prefix_slices = True
    k = 0
    for text in texts:
        m = on.matcher()
        for t in info.encode(text):
            assert np.array_equal(m.next_token_mask_words(), masks_off[k]), (text, k)
            k += 1
            assert m.accept_token(t)
    assert on.stats["visited_nodes"] < off.stats["visited_nodes"]


# ----- bounded slices (counted free text) ---------------------------------------------------

COUNTED_GRAMMARS = {
    "maxLength string": lambda: __import__("structgen.schema", fromlist=["x"]).grammar_from_json_schema(
        {"type": "object", "properties": {"s": {"type": "string", "maxLength": 40}}, "required": ["s"]}),
    "counted regex": lambda: __import__("structgen.grammar", fromlist=["x"]).grammar_from_regex(
        r"A: [\w \.\*\-=\+,\?/]{10,50}\. The answer is [1-9][0-9]{0,9}\."),
}


@pytest.mark.parametrize("name", list(COUNTED_GRAMMARS) + ["json", "sql"])
def test_numba_covered_length_equals_the_python_reference_on_every_lexer_state(name):
    """covered_length() (numba, pairs shared across lengths) and covered_length_reference() agree for
    every lexer state, every reference loop and several bounds; a closed product is also covers()."""
    from structgen.engine import byte_level_tokenizer
    from structgen.engine.slices import covered_length, covered_length_reference
    grammar = COUNTED_GRAMMARS[name]() if name in COUNTED_GRAMMARS else grammar_from_file(name)
    lexer = compile_grammar(grammar, byte_level_tokenizer(), cache=False).lexer
    refs = [compile_regex(pattern) for _, pattern in REFERENCE_LOOPS]
    bounded = closed = 0
    for q in range(lexer.trans.shape[0]):
        for ref in refs:
            for max_len in (3, 24):
                n = covered_length(lexer.trans, q, ref, max_len)
                assert n == covered_length_reference(lexer.trans, q, ref, max_len), (name, q, max_len)
                if n == max_len + 1:
                    closed += 1
                    assert covers(lexer.trans, q, ref)
                bounded += 0 < n <= max_len
    if name in COUNTED_GRAMMARS:
        assert bounded > 0, "no counted state covered a loop up to some length"
    else:
        assert closed > 0, "no state covered a loop"


@pytest.mark.parametrize("tok_name", ["qwen2.5-coder-0.5b", "smollm2-135m"])
def test_bounded_slices_partition_the_vocabulary(tok_name):
    from structgen.engine.slices import BOUNDED_LENGTHS, bounded_slice
    info = tokenizer_info(tok_name)
    trie = token_trie_for(info)
    in_trie = trie.token_node >= 0
    length = np.array([len(b) for b in info.token_bytes[:trie.vocab_size]] +
                      [0] * (trie.vocab_size - len(info.token_bytes)))
    for sl in trie.slices:
        full = _bits(sl.mask, trie.vocab_size)
        for bound in (BOUNDED_LENGTHS[0], BOUNDED_LENGTHS[-1]):
            cut = bounded_slice(trie, sl, bound)
            assert cut.max_len == bound and cut is bounded_slice(trie, sl, bound)   # built once per trie
            in_cut = _bits(cut.mask, trie.vocab_size)
            assert np.array_equal(in_cut, full & (length <= bound))
            rem = np.zeros(trie.vocab_size, dtype=bool)
            rem[cut.remainder.tok_ids] = True
            assert not np.any(in_cut & rem) and np.array_equal(in_cut | rem, in_trie)
            orig = cut.remainder.node_orig
            assert np.array_equal(trie.node_depth[orig], cut.remainder.node_depth)


@pytest.mark.parametrize("name,text", [
    ("maxLength string", '{"s":"The quick brown fox jumps over it"}'),
    ("counted regex", "A: So he got 10*5 = 50 in all. The answer is 50."),
])
def test_counted_masks_through_bounded_slices_equal_reference(name, text):
    """Every position whose lexer state covers a loop only up to some length (maxLength string,
    [\\w ...]{10,50}) gets its mask through a bounded slice, equal to the per-token reference."""
    info = tokenizer_info("qwen2.5-coder-0.5b")
    compiled = compile_grammar(COUNTED_GRAMMARS[name](), info, cache=False)
    ids = info.encode(text)
    m = compiled.matcher()
    checked = set()
    for i in range(len(ids) + 1):
        sl = compiled.slice_for(m._state[1])
        if sl is not None and sl.max_len is not None and sl.max_len not in checked:
            checked.add(sl.max_len)   # one position per bound: the reference costs seconds each
            fast = m.allowed_mask()
            ref = reference_mask(m)
            diff = np.nonzero(fast != ref)[0]
            assert len(diff) == 0, (i, sl.max_len, [(int(t), info.token_bytes[t]) for t in diff[:8]])
        if i < len(ids):
            assert m.accept_token(ids[i])
    assert m.is_accepting()
    assert len(checked) >= 2 and compiled.stats["bounded_slice_walks"] > 0
