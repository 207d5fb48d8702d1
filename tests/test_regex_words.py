"""The direct complement-of-words DFA must equal the DFA built from its regex text (parser + Glushkov + Hopcroft)."""
from __future__ import annotations

import json
import re

from hypothesis import given, settings, strategies as st

from structgen.regex.automaton import ast_to_dfa
from structgen.regex.compile import _to_bytes, char_dfa, regex_ast
from structgen.regex.words import complement_dfa, complement_regex, known_complement

_ALPHABET = st.sampled_from(list("ab_-.$[]^\\\"é€😀\n"))
_WORD = st.text(_ALPHABET, min_size=0, max_size=5)


def _isomorphic(a, b) -> bool:
    """Same language for two trimmed minimal byte DFAs: equal size and a consistent BFS bijection."""
    if a.n_states != b.n_states:
        return False
    ta, tb = a.transitions, b.transitions
    m = {0: 0}
    todo = [0]
    while todo:
        s = todo.pop()
        t = m[s]
        if a.accepting[s] != b.accepting[t]:
            return False
        for byte in range(256):
            x, y = int(ta[s, byte]), int(tb[t, byte])
            if (x < 0) != (y < 0):
                return False
            if x >= 0:
                if x in m:
                    if m[x] != y:
                        return False
                else:
                    m[x] = y
                    todo.append(x)
    return True


@settings(max_examples=60, deadline=None)
@given(st.lists(_WORD, min_size=1, max_size=6))
def test_direct_complement_equals_regex_route(words: list[str]) -> None:
    pattern = complement_regex(words)
    assert known_complement(pattern) == frozenset(words)
    direct = complement_dfa(words)
    via_regex = ast_to_dfa(regex_ast(pattern), 100_000)
    assert direct.n_states == via_regex.n_states
    for as_json in (False, True):
        assert _isomorphic(_to_bytes(direct, json=as_json, max_states=100_000),
                           _to_bytes(via_regex, json=as_json, max_states=100_000))


@settings(max_examples=40, deadline=None)
@given(st.lists(_WORD, min_size=1, max_size=5), st.lists(_WORD, max_size=8))
def test_complement_membership_against_re(words: list[str], probes: list[str]) -> None:
    pattern = complement_regex(words)
    dfa = _to_bytes(char_dfa(pattern), json=True, max_states=100_000)
    compiled = re.compile(pattern, re.DOTALL)
    for text in probes + words + [w + "a" for w in words] + [w[:-1] for w in words if w]:
        expected = text not in words
        assert (compiled.fullmatch(text) is not None) == expected
        assert dfa.matches(json.dumps(text).encode()) == expected
        assert dfa.matches(json.dumps(text, ensure_ascii=False).encode()) == expected


def test_registry_is_exact_text_lookup() -> None:
    pattern = complement_regex(["alpha", "beta"])
    assert known_complement(pattern) == {"alpha", "beta"}
    assert known_complement(pattern + "x") is None
    assert complement_regex(["beta", "alpha", "beta"]) == pattern
