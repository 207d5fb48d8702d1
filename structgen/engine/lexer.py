"""All terminal DFAs of a grammar packed into one global transition table.

A lexer state is the set of (terminal, DFA state) pairs still alive for the
current lexeme; since every terminal owns a disjoint range of global state
numbers, it is simply a sorted tuple of global states.  Tuples are interned
to small ints so caches can be keyed cheaply.
"""
from __future__ import annotations

import numpy as np

from ..grammar.ir import Terminal
from ..regex import ByteDFA, compile_terminal
from ..errors import GrammarError, StructgenError
from ..gcpolicy import gc_paused


_CHUNK = 2048  # rows per packing step


class LexerTables:
    def __init__(self, names: list[str], terminals: list[Terminal], *, max_states: int = 100_000,
                 source: str | None = None):
        # Terminal compilation allocates many short-lived objects; a cyclic-GC pass with a
        # tokenizer loaded scans millions of objects, so collection is paused meanwhile.
        with gc_paused():
            self._build(names, terminals, max_states, source)

    def _build(self, names: list[str], terminals: list[Terminal], max_states: int, source: str | None) -> None:
        self.names = names
        dfas: list[ByteDFA] = []
        for name, term in zip(names, terminals):
            try:
                dfa = compile_terminal(term, max_states=max_states)
            except StructgenError as exc:
                raise type(exc)(f"terminal {name}: {exc}") if type(exc) is GrammarError else exc
            if getattr(dfa, "is_empty", False) or dfa.transitions.shape[0] == 0:
                raise GrammarError(f"terminal {name} ({term.describe()}) matches no string at all", source=source)
            if dfa.accepting[0]:
                raise GrammarError(f"terminal {name} ({term.describe()}) matches the empty string; "
                                   "make it optional in a rule instead", source=source)
            dfas.append(dfa)
        self.dfas = dfas   # per terminal (cached objects; the packed table below is what lexing uses)
        offsets = np.zeros(len(dfas) + 1, dtype=np.int64)
        for i, d in enumerate(dfas):
            offsets[i + 1] = offsets[i] + d.transitions.shape[0]
        total = int(offsets[-1])
        # every row is written below (shifted in place, no temporaries: tables can be large)
        trans = np.empty((max(total, 1), 256), dtype=np.int32)
        if total == 0:
            trans.fill(-1)
        acc_term = np.full(max(total, 1), -1, dtype=np.int32)
        state_term = np.zeros(max(total, 1), dtype=np.int32)
        for i, d in enumerate(dfas):
            o = int(offsets[i])
            n = d.transitions.shape[0]
            src = d.transitions
            for a in range(0, n, _CHUNK):  # chunks keep the temporaries in cache
                block = trans[o + a:o + min(a + _CHUNK, n)]
                part = src[a:a + _CHUNK]
                np.add(part, o, out=block)
                if o:
                    np.copyto(block, -1, where=part < 0)
            acc_term[o:o + n][d.accepting] = i
            state_term[o:o + n] = i
        self.trans = trans
        self.acc_term = acc_term
        self.state_term = state_term
        self.start_state = offsets[:-1].astype(np.int32)  # global start state of each terminal
        self._vec_ids: dict[tuple[int, ...], int] = {}
        self.vectors: list[np.ndarray] = []
        self.vector_tuples: list[tuple[int, ...]] = []
        self._acc_cache: dict[int, frozenset[int]] = {}
        self._next_vector: dict[int, int] = {}
        self._continuing: np.ndarray | None = None

    def intern(self, states: tuple[int, ...]) -> int:
        vid = self._vec_ids.get(states)
        if vid is None:
            vid = len(self.vectors)
            self._vec_ids[states] = vid
            self.vectors.append(np.array(states, dtype=np.int32))
            self.vector_tuples.append(states)
        return vid

    def start_vector(self, terminal_ids) -> int:
        return self.intern(tuple(sorted(int(self.start_state[t]) for t in terminal_ids)))

    @property
    def continuing(self) -> np.ndarray:
        """bool per global state: some byte keeps it alive (built at first use: 10-40 us for the
        shipped grammars' tables, per state it was ~5 us on a cold row)."""
        if self._continuing is None:
            self._continuing = self.trans.max(axis=1) >= 0
        return self._continuing

    def accepting_terminals(self, vid: int) -> frozenset[int]:
        acc = self._acc_cache.get(vid)
        if acc is None:
            acc = frozenset(int(self.acc_term[s]) for s in self.vector_tuples[vid] if self.acc_term[s] >= 0)
            self._acc_cache[vid] = acc
        return acc

    def step(self, vid: int, byte: int) -> tuple[int, ...]:
        """States alive after one byte (empty tuple = the lexeme cannot continue)."""
        tr = self.trans
        return tuple(int(x) for x in (tr[s, byte] for s in self.vector_tuples[vid]) if x >= 0)

    def next_vector(self, vid: int, byte: int) -> int:
        """Id of the vector alive after one byte, or -1 when the lexeme cannot continue.

        Memoized per (vector, byte): accepting a token walks its bytes through here,
        and indexing the transition table from Python costs ~1 us per live state.
        """
        key = (vid << 8) | byte
        got = self._next_vector.get(key)
        if got is None:
            nxt = self.step(vid, byte)
            got = self._next_vector[key] = self.intern(nxt) if nxt else -1
        return got

    def next_bytes(self, vid: int) -> np.ndarray:
        """Boolean [256]: bytes that keep the current lexeme alive."""
        vec = self.vectors[vid]
        if len(vec) == 0:
            return np.zeros(256, dtype=bool)
        return (self.trans[vec] >= 0).any(axis=0)
