"""The vectorized one-class expansion builds the same byte automaton as the general per-state one."""
from __future__ import annotations

import numpy as np
import pytest

from structgen.regex.bytedfa import ByteDFA, minimize_bytes
from structgen.regex.compile import char_dfa
from structgen.regex.encode import _expand_one_class, expand_per_state

from test_regex_words import _isomorphic


def _quote(trans: np.ndarray, content_acc: np.ndarray) -> ByteDFA:
    t = trans.copy()
    final = t.shape[0] - 1
    t[0, 0x22] = 1
    t[np.nonzero(content_acc)[0], 0x22] = final
    acc = np.zeros(final + 1, dtype=bool)
    acc[final] = True
    return ByteDFA(t, acc)


@pytest.mark.parametrize("pattern", [r"[\s\S]{0,300}", r"[\s\S]{3,20}", r"[\s\S]{9,}", r"[\s\S]{12}", r"[a-z]{10,12}",
                                     r"[^x]{2,40}", r"[\u0100-\U0001F600]{1,9}", r"(?:[0-9]{2})+"])
@pytest.mark.parametrize("json", [False, True])
def test_one_class_expansion_matches_reference(pattern: str, json: bool) -> None:
    d = char_dfa(pattern)
    assert len(d.classes) == 1
    fast = _expand_one_class(d, json, 100_000, False)
    ref = expand_per_state(d, json, 100_000)
    assert fast[0].shape == ref[0].shape
    assert _isomorphic(ByteDFA(*fast), ByteDFA(*ref))
    if fast[0].shape[0] < 3000:
        assert minimize_bytes(*fast).n_states == fast[0].shape[0]
    if json:
        qf = _quote(*_expand_one_class(d, json, 100_000, True))
        qr = _quote(*expand_per_state(d, json, 100_000, quoted=True))
        assert _isomorphic(qf, qr)
        assert qf.matches(b'"' + b"7" * 12 + b'"') == qr.matches(b'"' + b"7" * 12 + b'"')
