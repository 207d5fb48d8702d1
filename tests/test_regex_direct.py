"""Fast paths of the regex compiler against their slow references.

* the numba Hopcroft minimization gives exactly the pure-Python one's tables;
* the vectorized char->byte expansion gives an automaton isomorphic to the
  per-state one (same size: both minimal);
* the directly built RFC 3339 time / date-time DFAs have the language of the
  format regexes (checked by a product walk over a common class refinement,
  against the regex path: parse + Glushkov + subset construction).
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from structgen.regex import direct
from structgen.regex.automaton import CharDFA, ast_to_dfa, minimize, minimize_reference, partition
from structgen.regex.bytedfa import ByteDFA
from structgen.regex.compile import char_dfa, regex_ast
from structgen.regex.encode import expand_per_state, expand_vectorized
from structgen.regex.words import complement_regex
from structgen.schema.formats import DATE, format_regexes

from test_regex_words import _isomorphic


def equivalent(a: CharDFA, b: CharDFA) -> bool:
    """Same language: walk pairs of states over a common refinement of both class partitions."""
    classes, membership = partition(list(a.classes) + list(b.classes))
    ka = len(a.classes)
    pair = [[-1, -1] for _ in classes]
    for i, mem in enumerate(membership):
        for c in range(len(classes)):
            if mem >> c & 1:
                pair[c][0 if i < ka else 1] = i if i < ka else i - ka
    seen = {(0, 0)}
    todo = [(0, 0)]
    while todo:
        sa, sb = todo.pop()
        if a.accept[sa] != b.accept[sb]:
            return False
        for x, y in pair:
            ta = a.trans[sa][x] if x >= 0 else -1
            tb = b.trans[sb][y] if y >= 0 else -1
            if (ta < 0) != (tb < 0):
                return False
            if ta >= 0 and (ta, tb) not in seen:
                seen.add((ta, tb))
                todo.append((ta, tb))
    return True


def test_numba_minimization_equals_python_reference():
    rng = random.Random(7)
    for trial in range(400):
        n, k = rng.randint(1, 60), rng.randint(1, 6)
        trans = [[rng.randrange(n) if rng.random() < 0.75 else -1 for _ in range(k)] for _ in range(n)]
        acc = [rng.random() < 0.3 for _ in range(n)]
        d = CharDFA([((i, i),) for i in range(k)], trans, acc)
        fast, ref = minimize(d), minimize_reference(d)
        assert (fast.trans, fast.accept) == (ref.trans, ref.accept), trial


EXPAND = [r"[a-z]+", r"(?:ab|cd)*x", "[\u0100-\U0001F600]{1,9}\u00e9", r'[^"\\]{2,5}', r"\p{L}+[0-9]",
          r"[\s\S]*a[\s\S]*", format_regexes("email")[0], format_regexes("uri")[0], format_regexes("ipv6")[0],
          complement_regex(["apiVersion", "kind", "metadata", "\u00fcn\u00ef", "\U0001F600x", ""])]


@pytest.mark.parametrize("pattern", EXPAND, ids=range(len(EXPAND)))
@pytest.mark.parametrize("as_json", [False, True])
def test_vectorized_expansion_matches_per_state(pattern, as_json):
    d = char_dfa(pattern)
    fast = expand_vectorized(d, as_json, 200_000)
    ref = expand_per_state(d, as_json, 200_000)
    assert fast[0].shape == ref[0].shape
    assert _isomorphic(ByteDFA(*fast), ByteDFA(*ref))
    q_fast = expand_vectorized(d, as_json, 200_000, quoted=True)
    q_ref = expand_per_state(d, as_json, 200_000, quoted=True)
    assert np.array_equal(q_fast[1], q_ref[1]) and q_fast[0].shape == q_ref[0].shape
    # quoted tables keep row 0 and the last row for the caller
    assert (q_fast[0][0] < 0).all() and (q_fast[0][-1] < 0).all()


def test_direct_time_dfa_has_the_regex_language():
    pattern = format_regexes("time")[0]
    fast = direct.time_dfa()
    slow = ast_to_dfa(regex_ast(pattern), 100_000)
    assert fast.n_states == slow.n_states
    assert equivalent(fast, slow)
    # and it is what char_dfa answers for the format's pattern
    assert char_dfa(pattern).n_states == fast.n_states


def test_direct_date_time_dfa_has_the_regex_language():
    pattern = format_regexes("date-time")[0]
    fast = direct.time_dfa(char_dfa(DATE), "Tt")
    slow = ast_to_dfa(regex_ast(pattern), 100_000)
    assert fast.n_states == slow.n_states
    assert equivalent(fast, slow)


def test_equivalence_check_can_fail():
    a = direct.time_dfa()
    broken = CharDFA(a.classes, [list(r) for r in a.trans], list(a.accept))
    # drop one leap-second offset: some state's only transition disappears
    s = next(i for i, r in enumerate(broken.trans) if sum(t >= 0 for t in r) == 1 and not broken.accept[i])
    broken.trans[s] = [-1] * len(broken.classes)
    assert not equivalent(a, broken)


# ------------------------------------------------------------------ canonical spellings (Terminal.canonical)
def test_canonical_decoder_matches_explicit_encodings():
    from test_regex_decoder import _random_classes, _same_trie
    from structgen.regex import charset as cs
    from structgen.regex.encode import decoder_fast, decoder_reference, _ASCII_PARTITION
    fixed = [(cs.ALL,), _ASCII_PARTITION, tuple(cs.single(ord(c)) for c in "ab<") +
             (cs.subtract(cs.ALL, cs.from_chars("ab<")),)]
    for seed in range(60):
        fixed.append(_random_classes(random.Random(seed)))
    for classes in fixed:
        assert _same_trie(decoder_fast(classes, True, True), decoder_reference(classes, True, True)), classes


@pytest.mark.parametrize("pattern", EXPAND + [r"[\s\S]{0,80}", r"[A-Za-z]{2,90}"], ids=range(len(EXPAND) + 2))
def test_canonical_expansions_agree_and_refuse_only_never_escaped_escapes(pattern):
    from structgen.grammar.ir import Terminal
    from structgen.regex.compile import compile_terminal
    d = char_dfa(pattern)
    fast = expand_vectorized(d, True, 200_000, canonical=True)
    ref = expand_per_state(d, True, 200_000, canonical=True)
    assert fast[0].shape == ref[0].shape and _isomorphic(ByteDFA(*fast), ByteDFA(*ref))
    full = compile_terminal(Terminal(regex=pattern, json_string=True))
    canon = compile_terminal(Terminal(regex=pattern, json_string=True, canonical=True))
    rng = random.Random(pattern)
    for _ in range(200):
        # random strings over a few interesting characters, in raw and escaped spellings
        chars = [rng.choice('ab<é"\\/x0-.\n\U0001F600A') for _ in range(rng.randint(0, 5))]
        raw = '"' + "".join({'"': '\\"', "\\": "\\\\", "\n": "\\n"}.get(c, c) for c in chars) + '"'
        esc = '"' + "".join("\\u%04x" % ord(c) if ord(c) < 0x10000 else c for c in chars) + '"'
        for text in (raw, esc):
            b = text.encode()
            never = any(0x20 <= ord(c) < 0x7F and c not in '"\\/<>&\'' for c in chars) and text is esc
            assert canon.matches(b) == (full.matches(b) and not never), text


def test_numba_product_equals_python_product():
    import itertools
    from structgen.regex.automaton import intersect
    from structgen.schema.formats import HOSTNAME, HOSTNAME_LEN
    pats = ["[a-c]+", "(?:ab|c)*", "[^b]{0,4}", "a[a-z]*z", "(?:[0-9]{2})+", r"[\s\S]{2,6}", "x?y?z?", "[^a]", "é+"]
    for p, q in itertools.product(pats, pats):
        x, y = char_dfa(p), char_dfa(q)
        fast, ref = intersect(x, y, 100_000), intersect(x, y, 100_000, reference=True)
        assert (fast.classes, fast.trans, fast.accept) == (ref.classes, ref.trans, ref.accept), (p, q)
    big = intersect(char_dfa(HOSTNAME), char_dfa(HOSTNAME_LEN), 100_000)
    assert big.n_states == 24_038
    with pytest.raises(Exception, match="max_states"):
        intersect(char_dfa(HOSTNAME), char_dfa(HOSTNAME_LEN), 10_000)


def test_ascii_partition_is_taken_when_it_refines_the_classes():
    from structgen.regex import charset as cs
    from structgen.regex.encode import _ASCII_PARTITION, _ascii_columns
    assert _ascii_columns((cs.ALL,)) == [0] * len(_ASCII_PARTITION)
    assert _ascii_columns(tuple(_ASCII_PARTITION)) == list(range(len(_ASCII_PARTITION)))
    assert _ascii_columns(tuple(char_dfa(complement_regex(["apiVersion", "kind"])).classes)) is not None
    assert _ascii_columns((((0, 0x10),),)) is None                                # splits the controls
    assert _ascii_columns(tuple(char_dfa(complement_regex(["\x7f"])).classes)) is None  # splits DEL and up
