"""The per-sequence matcher: accept tokens, fill masks, roll back, fork, jump forward.

A state is (Earley set, lexer vector id, lexeme-non-empty flag); all three are
immutable values, so history is a plain list and rollback is a slice.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .bitmask import RowWriter
from .compiled import CompiledGrammar

_State = tuple  # (EarleySet, int, bool)


class Matcher:
    """Grammar state for one sequence.  See docs/ARCHITECTURE.md for the contract."""

    def __init__(self, compiled: CompiledGrammar):
        self.compiled = compiled
        self.vocab_size = compiled.vocab_size
        self._eos = frozenset(int(t) for t in compiled.eos_ids)
        self._token_bytes = compiled.tokenizer.token_bytes
        self._special = frozenset(compiled.tokenizer.special_ids)
        self._writer = RowWriter()
        self.reset()

    # ----- state ------------------------------------------------------------------
    def reset(self) -> None:
        p0 = self.compiled.initial_set
        self._state: _State = (p0, self.compiled.lexer_start(p0), False)
        self._history: list[tuple[_State, bool]] = []
        self._terminated = False

    @property
    def num_accepted_tokens(self) -> int:
        return len(self._history)

    def fork(self) -> "Matcher":
        other = Matcher.__new__(Matcher)
        other.compiled = self.compiled
        other.vocab_size = self.vocab_size
        other._eos = self._eos
        other._token_bytes = self._token_bytes
        other._special = self._special
        other._writer = RowWriter()
        other._state = self._state
        other._history = list(self._history)
        other._terminated = self._terminated
        return other

    copy = fork

    def _step(self, state: _State, token_id: int) -> _State | None:
        if token_id in self._eos or token_id in self._special:
            return None
        if not 0 <= token_id < len(self._token_bytes):
            return None
        data = self._token_bytes[token_id]
        if not data:
            return None
        return self.compiled.advance_bytes(state[0], state[1], state[2], data)

    def accept_token(self, token_id: int) -> bool:
        """Consume one token; False (state unchanged) if the grammar forbids it."""
        token_id = int(token_id)
        if self._terminated:
            return False
        if token_id in self._eos:
            if self.is_accepting():
                self._history.append((self._state, self._terminated))
                self._terminated = True
                return True
            return False
        nxt = self._step(self._state, token_id)
        if nxt is None:
            return False
        self._history.append((self._state, self._terminated))
        self._state = nxt
        return True

    def accept_tokens(self, token_ids: Iterable[int]) -> int:
        n = 0
        for t in token_ids:
            if not self.accept_token(t):
                break
            n += 1
        return n

    def accept_string(self, text: str | bytes) -> bool:
        """Consume raw text (not token-aligned); False and no change if refused."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        if self._terminated:
            return False
        p, v, ne = self._state
        nxt = self.compiled.advance_bytes(p, v, ne, data)
        if nxt is None:
            return False
        self._history.append((self._state, self._terminated))
        self._state = nxt
        return True

    def rollback(self, n: int = 1) -> None:
        if n < 0 or n > len(self._history):
            raise ValueError(f"cannot roll back {n} tokens: only {len(self._history)} accepted")
        if n == 0:
            return
        self._state, self._terminated = self._history[-n]
        del self._history[-n:]

    def validate_tokens(self, token_ids: Sequence[int]) -> int:
        """Length of the longest prefix of ``token_ids`` the grammar accepts; state unchanged."""
        state = self._state
        terminated = self._terminated
        n = 0
        for t in token_ids:
            t = int(t)
            if terminated:
                break
            if t in self._eos:
                if self.compiled.can_end(*state):
                    terminated = True
                    n += 1
                    continue
                break
            nxt = self._step(state, t)
            if nxt is None:
                break
            state = nxt
            n += 1
        return n

    def is_accepting(self) -> bool:
        """True when the text so far is a complete sentence (EOS allowed)."""
        if self._terminated:
            return True
        return self.compiled.can_end(*self._state)

    def is_terminated(self) -> bool:
        return self._terminated

    # ----- masks ------------------------------------------------------------------
    def next_token_mask_words(self) -> np.ndarray:
        """uint32 words of the allowed-token bitmask (bit t%32 of word t//32)."""
        c = self.compiled
        if self._terminated:
            mask = np.zeros(c.mask_words, dtype=np.uint32)
            for t in self._eos:
                mask[t >> 5] |= np.uint32(1 << (t & 31))
            return mask
        p, v, ne = self._state
        return c.token_mask(p, v, ne)

    def fill_next_token_bitmask(self, bitmask, index: int = 0) -> None:
        """Write the mask into row ``index`` of an int32 [batch, ceil(V/32)] tensor or array."""
        self._writer.write(bitmask, index, self.next_token_mask_words())

    def allowed_token_ids(self) -> np.ndarray:
        words = self.next_token_mask_words()
        bits = np.unpackbits(words.view(np.uint8), bitorder="little")[: self.vocab_size]
        return np.nonzero(bits)[0]

    def allowed_mask(self) -> np.ndarray:
        """Boolean [vocab_size] view of the mask (convenience for tests and samplers)."""
        words = self.next_token_mask_words()
        return np.unpackbits(words.view(np.uint8), bitorder="little")[: self.vocab_size].astype(bool)

    # ----- jump-forward -------------------------------------------------------------
    def forced_bytes(self, limit: int = 256) -> bytes:
        """Bytes the grammar determines from here (stops where a choice or EOS exists)."""
        if self._terminated:
            return b""
        c = self.compiled
        p, v, ne = self._state
        out = bytearray()
        while len(out) < limit:
            if c.can_end(p, v, ne):
                break
            allowed = c.lexer.next_bytes(v)
            if ne:
                acc = c.lexer.accepting_terminals(v)
                if acc:
                    p2 = p.advance(acc)
                    if p2 is not None:
                        allowed = allowed | c.lexer.next_bytes(c.lexer_start(p2))
            choices = np.nonzero(allowed)[0]
            if len(choices) != 1:
                break
            b = int(choices[0])
            nxt = c.advance_bytes(p, v, ne, bytes([b]))
            if nxt is None:
                break
            p, v, ne = nxt
            out.append(b)
        return bytes(out)

    def forced_tokens(self) -> list[int]:
        """Grammar-determined tokens, tokenized the way the tokenizer would (last token held back).

        The final token of the canonical tokenization is dropped because the
        text after it could merge with it into a different token.
        """
        data = self.forced_bytes()
        if not data:
            return []
        tok = self.compiled.tokenizer
        # only whole characters can be tokenized canonically
        text = data.decode("utf-8", errors="ignore")
        if not text:
            return []
        prefix_bytes = text.encode("utf-8")
        if not data.startswith(prefix_bytes):
            return []
        ids = list(tok.encode(text))
        if b"".join(self._token_bytes[i] for i in ids) != prefix_bytes:
            return []
        ids = ids[:-1]
        n = self.validate_tokens(ids)
        return ids[:n]
