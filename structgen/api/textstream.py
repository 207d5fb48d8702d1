"""Incremental text from token bytes: partial UTF-8 held back, stop strings cut."""
from __future__ import annotations

import codecs


class IncrementalText:
    """Accumulates token bytes; ``push`` returns only text that is final.

    Multi-byte characters split across tokens are held until complete, and
    text that could be the start of a stop string is held until it cannot.
    """

    def __init__(self, stop: list[str] | None = None):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stop = [s for s in (stop or []) if s]
        self.text = ""            # all decoded text so far (cut at a stop string once hit)
        self.emitted = 0          # characters already handed out by push()
        self.stopped = False

    def push(self, data: bytes) -> str:
        if self.stopped:
            return ""
        self.text += self._decoder.decode(data)
        if self.stop:
            cut = self._find_stop()
            if cut is not None:
                self.text = self.text[:cut]
                self.stopped = True
                return self._take(len(self.text))
            hold = max(len(s) for s in self.stop) - 1
            return self._take(self._safe_end(hold))
        return self._take(len(self.text))

    def finish(self) -> str:
        """Flush everything (invalid trailing bytes become U+FFFD)."""
        if not self.stopped:
            self.text += self._decoder.decode(b"", final=True)
            cut = self._find_stop() if self.stop else None
            if cut is not None:
                self.text = self.text[:cut]
                self.stopped = True
        return self._take(len(self.text))

    def _find_stop(self) -> int | None:
        start = max(0, self.emitted - max(len(s) for s in self.stop))
        hits = [i for i in (self.text.find(s, start) for s in self.stop) if i >= 0]
        return min(hits) if hits else None

    def _safe_end(self, hold: int) -> int:
        """Emit up to the earliest suffix that is a prefix of some stop string."""
        end = len(self.text)
        for k in range(min(hold, end), 0, -1):
            tail = self.text[end - k:]
            if any(s.startswith(tail) for s in self.stop):
                return end - k
        return end

    def _take(self, end: int) -> str:
        end = max(end, self.emitted)
        piece = self.text[self.emitted:end]
        self.emitted = end
        return piece
