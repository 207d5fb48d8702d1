"""A least-recently-used cache charged in bytes: what bounds a compiled grammar's masks.

A compiled grammar outlives its matchers (servers keep it for every request
with the same schema), so whatever it caches per parser state must have a
ceiling: a mask is ``ceil(V/32)`` words (19 KB for a 152k vocabulary) and the
states a long-running server visits have no natural bound.
"""
from __future__ import annotations

import threading
from collections import OrderedDict


class BoundedCache:
    """key -> value, evicting the least recently used entries once their charged bytes pass ``budget``."""

    __slots__ = ("budget", "_data", "_lock", "nbytes", "evictions")

    def __init__(self, budget: int):
        if budget < 0:
            raise ValueError(f"cache budget must be >= 0 bytes, not {budget}")
        self.budget = int(budget)
        self._data: "OrderedDict[object, tuple[object, int]]" = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0
        self.evictions = 0

    def get(self, key):
        """The value, marked as just used; None when absent.

        No lock: each OrderedDict call is atomic under the GIL, and this is the hit
        path of every mask; an entry another thread evicts in between is still returned.
        """
        data = self._data
        hit = data.get(key)
        if hit is None:
            return None
        try:
            data.move_to_end(key)
        except KeyError:
            pass
        return hit[0]

    def put(self, key, value, nbytes: int) -> None:
        """Store ``value`` charged ``nbytes``; one larger than the whole budget is not kept."""
        if nbytes > self.budget:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            while self.nbytes + nbytes > self.budget:   # evict first: ``nbytes`` never reads over budget
                _, (_, size) = self._data.popitem(last=False)
                self.nbytes -= size
                self.evictions += 1
            self._data[key] = (value, nbytes)
            self.nbytes += nbytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.nbytes = 0

    def __len__(self) -> int:
        return len(self._data)
