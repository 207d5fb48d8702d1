"""The byte-level DFA the mask engine consumes."""
from __future__ import annotations

import numpy as np

from .automaton import CharDFA, minimize


class ByteDFA:
    """Deterministic automaton over bytes (UTF-8 text).

    ``transitions``: int32 ``[n_states, 256]``, -1 = dead; state 0 is the start.
    ``accepting``: bool ``[n_states]``.  Minimized and trimmed: every state can
    reach an accepting state.  The only exception is the empty language, which
    is a single non-accepting state with no transitions (see :attr:`is_empty`).
    The arrays are read-only because compiled DFAs are cached and shared.
    """

    __slots__ = ("transitions", "accepting", "_rows")

    def __init__(self, transitions: np.ndarray, accepting: np.ndarray):
        self.transitions = np.ascontiguousarray(transitions, dtype=np.int32)
        self.accepting = np.ascontiguousarray(accepting, dtype=bool)
        self.transitions.flags.writeable = False
        self.accepting.flags.writeable = False
        self._rows: list[list[int]] | None = None

    @property
    def n_states(self) -> int:
        return int(self.transitions.shape[0])

    @property
    def is_empty(self) -> bool:
        """True when the language is empty (no string matches)."""
        return self.n_states == 1 and not self.accepting[0] and bool((self.transitions[0] < 0).all())

    def _table(self) -> list[list[int]]:
        if self._rows is None:
            self._rows = self.transitions.tolist()
        return self._rows

    def run(self, data: bytes, state: int = 0) -> int:
        """State after consuming ``data`` from ``state`` (-1 if dead)."""
        rows = self._table()
        for b in data:
            state = rows[state][b]
            if state < 0:
                return -1
        return state

    def matches(self, data: bytes) -> bool:
        """Does the whole of ``data`` belong to the language?"""
        s = self.run(data)
        return s >= 0 and bool(self.accepting[s])

    def is_live_prefix(self, data: bytes) -> bool:
        """Can ``data`` be extended to a match (trimmed DFA: any non-dead state)?"""
        return self.run(data) >= 0 and not self.is_empty

    def __repr__(self) -> str:
        return f"ByteDFA(n_states={self.n_states}, accepting={int(self.accepting.sum())})"


def minimize_bytes(trans: np.ndarray, accepting: np.ndarray) -> ByteDFA:
    """Minimize + trim a byte DFA (start state 0) using byte equivalence classes."""
    _, first, class_of = np.unique(trans.T, axis=0, return_index=True, return_inverse=True)
    class_of = np.asarray(class_of).reshape(-1)
    classes = [((int(b), int(b)),) for b in first]
    cd = minimize(CharDFA(classes, trans[:, first].tolist(), accepting.tolist()))
    if cd.n_states == 1 and not cd.accept[0] and all(t < 0 for t in cd.trans[0]):
        return ByteDFA(np.full((1, 256), -1, np.int32), np.zeros(1, bool))
    small = np.asarray(cd.trans, dtype=np.int32).reshape(cd.n_states, len(first))
    return ByteDFA(small[:, class_of], np.asarray(cd.accept, dtype=bool))
