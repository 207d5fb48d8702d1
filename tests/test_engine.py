"""Mask engine exactness: numba walk vs pure-Python reference, Lark as the oracle, matcher API."""
from __future__ import annotations

import json
import random
import zlib

import lark
import numpy as np
import pytest

from structgen.engine import (accepts_text, allocate_token_bitmask, apply_token_bitmask_inplace,
                              byte_level_tokenizer, compile_grammar)
from structgen.errors import GrammarError, RegexError
from structgen.grammar import (grammar_from_choices, grammar_from_file, grammar_from_gbnf, grammar_from_lark,
                               grammar_from_regex, shipped_grammar_path)
from structgen.vocab import TokenizerInfo


def reference_mask(matcher) -> np.ndarray:
    """Allowed tokens by simulating every token's bytes in pure Python (no trie, no numba)."""
    c = matcher.compiled
    p, v, ne = matcher._state
    out = np.zeros(matcher.vocab_size, dtype=bool)
    if matcher.is_terminated():  # after EOS only EOS (padding) is allowed
        out[list(c.tokenizer.eos_ids)] = True
        return out
    for t, data in enumerate(c.tokenizer.token_bytes):
        if t >= matcher.vocab_size or not data or t in c.tokenizer.special_ids or t in c.tokenizer.eos_ids:
            continue
        out[t] = c.advance_bytes(p, v, ne, data) is not None
    if c.can_end(p, v, ne):
        for t in c.tokenizer.eos_ids:
            out[t] = True
    return out


def synthetic_vocab(seed: int = 0, n: int = 600) -> TokenizerInfo:
    """All single bytes plus multi-byte pieces that span JSON/arith lexeme boundaries."""
    rng = random.Random(seed)
    pieces = {bytes([i]) for i in range(256)}
    alphabet = list('{}[],:"\\ \n\t0123456789.-+eEabcnulltrfsx*/()^_')
    seeds = ['":', '",', '"}', '},', '],', '[{', '{"', '":"', '":{', '" :', 'true', 'null', 'false', '1,', '0.', '12',
             '"a', 'ab', '\\n', '\\u00', ' "', '"]', '}]', '))', '(1', '+(', '1+', '2*', 'SELECT', ' FROM', ' WHERE']
    pieces.update(s.encode() for s in seeds)
    while len(pieces) < n:
        k = rng.randint(2, 5)
        pieces.add("".join(rng.choice(alphabet) for _ in range(k)).encode())
    return vocab_of_pieces(pieces)


def vocab_of_pieces(pieces: set[bytes]) -> TokenizerInfo:
    """A tokenizer of ``pieces`` in byte order, then an EOS token with no bytes."""
    token_bytes = sorted(pieces) + [b""]
    return TokenizerInfo.from_token_bytes(token_bytes, eos_ids=[len(token_bytes) - 1])


@pytest.fixture(scope="module")
def synth():
    return synthetic_vocab()


def random_walk(matcher, rng: random.Random, max_steps: int = 60, eos_bias: float = 0.15):
    """Follow random allowed tokens; returns the list of token ids (ending with EOS when reached)."""
    ids = []
    eos = set(matcher.compiled.tokenizer.eos_ids)
    for _ in range(max_steps):
        allowed = matcher.allowed_token_ids()
        assert len(allowed) > 0, "dead end: no token allowed and grammar cannot end"
        eos_allowed = [t for t in allowed if t in eos]
        if eos_allowed and (rng.random() < eos_bias or len(allowed) == len(eos_allowed)):
            t = eos_allowed[0]
        else:
            choices = [t for t in allowed if t not in eos]
            t = int(rng.choice(choices))
        assert matcher.accept_token(t)
        ids.append(int(t))
        if t in eos:
            break
    return ids


GRAMMARS = {
    "json": lambda: grammar_from_file("json"),
    "arith": lambda: grammar_from_file("arithmetic"),
    "json_gbnf": lambda: grammar_from_file("json.gbnf"),
    "choices": lambda: grammar_from_choices(["yes", "no", "maybe", "yes please"]),
    "regex": lambda: grammar_from_regex(r"[a-c]{2,4}(-[0-9]+)?"),
}


def check_masks_against_reference(compiled, rng: random.Random, walks: int = 4, steps: int = 25) -> None:
    """Random walks under the engine's masks, each mask compared with the per-token simulation."""
    toks = compiled.tokenizer.token_bytes
    for _ in range(walks):
        m = compiled.matcher()
        for _ in range(steps):
            fast = m.allowed_mask()
            ref = reference_mask(m)
            diff = np.nonzero(fast != ref)[0]
            assert len(diff) == 0, [(int(t), toks[t], bool(fast[t])) for t in diff[:10]]
            allowed = np.nonzero(fast)[0]
            if m.is_terminated() or len(allowed) == 0:
                break
            assert m.accept_token(int(rng.choice(allowed)))


@pytest.mark.parametrize("name", list(GRAMMARS))
def test_walk_matches_reference_along_random_paths(name, synth):
    """The numba trie walk gives exactly the pure-Python per-token simulation at every step."""
    compiled = compile_grammar(GRAMMARS[name](), synth)
    check_masks_against_reference(compiled, random.Random(zlib.crc32(name.encode())))


def _lark_json():
    return lark.Lark(open(shipped_grammar_path("json")).read(), parser="lalr")


def test_random_json_outputs_parse_with_lark_and_json(synth):
    """No false positives: whatever the matcher lets through is JSON per Lark and per json.loads."""
    compiled = compile_grammar(GRAMMARS["json"](), synth)
    oracle = _lark_json()
    rng = random.Random(7)
    finished = 0
    for _ in range(40):
        m = compiled.matcher()
        ids = random_walk(m, rng, max_steps=80)
        if m.is_terminated():
            text = synth.decode_bytes(ids[:-1]).decode("utf-8")
            oracle.parse(text)
            json.loads(text)
            finished += 1
    assert finished >= 10


def random_json_value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["obj", "arr", "str", "num", "lit"] if depth < 3 else ["str", "num", "lit"])
    if kind == "obj":
        return {"".join(rng.choice("abc\"\\é😀 \n") for _ in range(rng.randint(0, 4))): random_json_value(rng, depth + 1)
                for _ in range(rng.randint(0, 3))}
    if kind == "arr":
        return [random_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "str":
        return "".join(rng.choice("xyz \t\"\\/ü€𝄞") for _ in range(rng.randint(0, 6)))
    if kind == "num":
        return rng.choice([0, -1, 12, 3.5, -0.25, 1e21, 123456789])
    return rng.choice([True, False, None])


@pytest.mark.parametrize("grammar_name", ["json", "json_gbnf"])
def test_valid_json_accepted_token_by_token(grammar_name, synth):
    """No false negatives: real JSON documents, tokenized by the vocabulary, are accepted in full."""
    compiled = compile_grammar(GRAMMARS[grammar_name](), synth)
    rng = random.Random(3)
    for i in range(40):
        value = random_json_value(rng)
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1]))
        if grammar_name == "json_gbnf":
            text = json.dumps(value, ensure_ascii=True)  # its ws rule allows no \r and runs <= 20
        ids = synth.encode(text)
        m = compiled.matcher()
        n = m.accept_tokens(ids)
        assert n == len(ids), (text, n, synth.token_bytes[ids[n]])
        assert m.is_accepting(), text
        assert m.accept_token(next(iter(synth.eos_ids)))


def test_mutations_rejected_when_lark_rejects(synth):
    compiled = compile_grammar(GRAMMARS["json"](), synth)
    oracle = _lark_json()
    rng = random.Random(11)
    checked = 0
    for _ in range(200):
        text = json.dumps(random_json_value(rng))
        pos = rng.randrange(len(text) + 1)
        op = rng.choice(["del", "ins", "swap"])
        ch = rng.choice('{}[],:"\\ 0a.-e')
        if op == "del" and pos < len(text):
            mutated = text[:pos] + text[pos + 1:]
        elif op == "ins":
            mutated = text[:pos] + ch + text[pos:]
        else:
            mutated = text[:pos] + ch + text[pos + 1:]
        try:
            oracle.parse(mutated)
            lark_ok = True
        except lark.exceptions.LarkError:
            lark_ok = False
        assert accepts_text(compiled, mutated) == lark_ok, mutated
        checked += 1
    assert checked == 200


def test_arithmetic_against_lark(synth):
    compiled = compile_grammar(GRAMMARS["arith"](), synth)
    oracle = lark.Lark(open(shipped_grammar_path("arithmetic")).read(), parser="lalr")
    rng = random.Random(5)
    for _ in range(150):
        s = "".join(rng.choice("12+-*/^() .") for _ in range(rng.randint(1, 10)))
        try:
            oracle.parse(s)
            ok = True
        except lark.exceptions.LarkError:
            ok = False
        assert accepts_text(compiled, s) == ok, s


def test_matcher_api_rollback_fork_validate(synth):
    compiled = compile_grammar(GRAMMARS["json"](), synth)
    m = compiled.matcher()
    ids = synth.encode('{"a": [1, 2, {"b": null}]}')
    before = m.allowed_mask().copy()
    assert m.validate_tokens(ids) == len(ids)
    assert np.array_equal(m.allowed_mask(), before), "validate_tokens must not change state"
    assert m.accept_tokens(ids[:5]) == 5
    mid = m.allowed_mask().copy()
    f = m.fork()
    assert f.accept_tokens(ids[5:]) == len(ids) - 5
    assert f.is_accepting() and not m.is_accepting()
    assert np.array_equal(m.allowed_mask(), mid), "fork must not share state"
    m.accept_tokens(ids[5:])
    m.rollback(len(ids) - 5)
    assert np.array_equal(m.allowed_mask(), mid)
    m.rollback(5)
    assert np.array_equal(m.allowed_mask(), before)
    bad = synth.encode('{"a" 1}')
    assert m.validate_tokens(bad) < len(bad)
    with pytest.raises(ValueError):
        m.rollback(1)
    eos = next(iter(synth.eos_ids))
    assert not m.accept_token(eos), "EOS only when the grammar can end"
    m.accept_tokens(ids)
    assert m.accept_token(eos) and m.is_terminated()
    assert not m.accept_token(ids[0])
    m.reset()
    assert np.array_equal(m.allowed_mask(), before)


def test_bitmask_layout_and_apply(synth):
    import torch
    compiled = compile_grammar(GRAMMARS["choices"](), synth)
    m = compiled.matcher()
    bm = allocate_token_bitmask(2, synth.vocab_size)
    m.fill_next_token_bitmask(bm, 1)
    allowed = set(m.allowed_token_ids().tolist())
    for t in range(synth.vocab_size):
        bit = (int(bm[1, t // 32]) >> (t % 32)) & 1
        assert bit == (t in allowed)
    logits = torch.zeros(2, synth.vocab_size)
    apply_token_bitmask_inplace(logits, bm)
    assert torch.isfinite(logits[0]).all()
    assert set(torch.nonzero(torch.isfinite(logits[1])).flatten().tolist()) == allowed


def test_bitmask_rows_stay_right_when_the_tensor_is_reused_or_replaced(synth):
    """The matcher keeps a numpy view of the last bitmask tensor: it must follow the tensor's storage."""
    import torch
    compiled = compile_grammar(GRAMMARS["choices"](), synth)
    m = compiled.matcher()
    want = m.next_token_mask_words().view(np.int32)
    words = len(want)

    def rows(bm):
        return bm.numpy()

    bm = allocate_token_bitmask(2, synth.vocab_size)
    m.fill_next_token_bitmask(bm, 0)
    m.fill_next_token_bitmask(bm, 1)          # same tensor, another row: the kept view
    assert np.array_equal(rows(bm)[0], want) and np.array_equal(rows(bm)[1], want)
    bm.fill_(-1)
    m.fill_next_token_bitmask(bm, 1)
    assert np.array_equal(rows(bm)[1], want) and (rows(bm)[0] == -1).all()
    other = allocate_token_bitmask(3, synth.vocab_size)
    bm.set_(other)                             # another tensor's storage under the same object
    m.fill_next_token_bitmask(bm, 2)
    assert np.array_equal(other.numpy()[2], want) and (other.numpy()[:2] == -1).all()
    wide = torch.full((1, words + 5), -1, dtype=torch.int32)   # wider rows: only the mask's words change
    m.fill_next_token_bitmask(wide, 0)
    assert np.array_equal(wide.numpy()[0, :words], want) and (wide.numpy()[0, words:] == -1).all()
    arr = np.full((2, words), -1, dtype=np.int32)
    m.fill_next_token_bitmask(arr, 1)
    assert np.array_equal(arr[1], want) and (arr[0] == -1).all()
    strided = torch.full((words, 2), -1, dtype=torch.int32).t()   # non-contiguous view
    m.fill_next_token_bitmask(strided, 1)
    assert np.array_equal(strided.numpy()[1], want) and (strided.numpy()[0] == -1).all()


def test_forced_tokens_jump_forward(synth):
    g = grammar_from_lark('start: "{\\"name\\": " NAME "}"\nNAME: /[a-z]+/')
    compiled = compile_grammar(g, synth)
    m = compiled.matcher()
    assert m.forced_bytes() == b'{"name": '
    forced = m.forced_tokens()
    assert forced, "a forced prefix must give tokens"
    assert synth.decode_bytes(forced) == b'{"name": '[:len(synth.decode_bytes(forced))]
    assert m.accept_tokens(forced) == len(forced)


def test_choices_and_regex_exact():
    assert accepts_text(grammar_from_choices(["yes", "yes please"]), "yes")
    assert accepts_text(grammar_from_choices(["yes", "yes please"]), "yes please")
    assert not accepts_text(grammar_from_choices(["yes", "yes please"]), "yes pl")
    g = grammar_from_regex(r"\d{3}-[A-Z]{2}")
    assert accepts_text(g, "123-AB") and not accepts_text(g, "12-AB") and not accepts_text(g, "123-ABC")


def test_bad_grammars_have_precise_errors():
    with pytest.raises(GrammarError) as e:
        grammar_from_lark('start: "a" b\nb: "x" (')
    assert "line" in str(e.value).lower() or ":2:" in str(e.value)
    with pytest.raises(GrammarError, match="undefined|never defined|no definition"):
        grammar_from_gbnf('root ::= "a" missing')
    with pytest.raises(GrammarError) as e:
        grammar_from_gbnf('root ::= "a"\nfoo ::= [b-a]')
    assert e.value.line == 2
    with pytest.raises(GrammarError, match="empty"):
        grammar_from_lark("start: a\na: \"x\" a")
    with pytest.raises(RegexError, match="look"):
        grammar_from_regex(r"a(?=b)")
    with pytest.raises(GrammarError, match="_INDENT|post-lexer"):
        grammar_from_lark('%declare _INDENT\nstart: "a" _INDENT')


def test_unreachable_rules_are_reported():
    with pytest.warns(UserWarning, match="never reached.*orphan"):
        grammar_from_gbnf('root ::= "a"\norphan ::= "b"')


def test_boundary_grouping_kernel_matches_reference():
    """The numba grouping of walk boundaries by accepted terminals equals the pure-Python reference
    (boundaries in preorder, as walks report them, or in any order)."""
    from structgen.engine.compiled import CompiledGrammar
    from structgen.engine.walk import group_boundaries
    rng = np.random.default_rng(0)
    for k in range(100):
        nb = int(rng.integers(1, 400))
        acc_buf = rng.integers(0, 5, 50).astype(np.int32)
        b_st = rng.integers(0, 40, nb).astype(np.int32)
        b_len = rng.integers(1, 5, nb).astype(np.int32)
        b_node = np.sort(rng.choice(100_000, nb, replace=False)).astype(np.int32)
        if k % 2:
            rng.shuffle(b_node)   # walks report preorder (ascending); the kernel must not depend on it
        ref = CompiledGrammar._group_reference(b_node, b_st, b_len, acc_buf, nb)
        nodes, noff, terms, aoff = group_boundaries(b_node, b_st, b_len, acc_buf, nb, 5)
        got = {frozenset(terms[aoff[g]:aoff[g + 1]].tolist()): nodes[noff[g]:noff[g + 1]] for g in range(len(noff) - 1)}
        assert len(got) == len(noff) - 1                 # one group per distinct set
        assert got.keys() == ref.keys()
        for g in range(len(noff) - 1):
            assert list(terms[aoff[g]:aoff[g + 1]]) == sorted(set(terms[aoff[g]:aoff[g + 1]].tolist()))
        for acc in ref:
            assert np.array_equal(got[acc], ref[acc])


def test_memoized_lexer_step_matches_the_transition_table(synth):
    """accept_token walks bytes through LexerTables.next_vector: it must agree with the raw table."""
    compiled = compile_grammar(grammar_from_lark(shipped_grammar_path("json").read_text()), synth)
    lexer = compiled.lexer
    m = compiled.matcher()
    assert m.accept_string('{"k": [1.5, "x')    # creates some mid-lexeme vectors
    rng = random.Random(3)
    n_vectors = len(lexer.vectors)
    for _ in range(3000):
        vid = rng.randrange(n_vectors)
        b = rng.randrange(256)
        want = {int(lexer.trans[s, b]) for s in lexer.vector_tuples[vid]} - {-1}
        got = lexer.next_vector(vid, b)
        assert (got == -1) == (not want)
        if got >= 0:
            assert set(lexer.vector_tuples[got]) == want
        assert lexer.next_vector(vid, b) == got   # the memoized answer is the same
