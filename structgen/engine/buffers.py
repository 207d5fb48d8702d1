"""Kernel memory that is reused across compiled grammars instead of mapped afresh.

On the benchmark machine a first touch of a 4 KB page costs 1.4-3.3 us (a VM's
page allocation), and a fresh grammar's first masks touched 100-190 pages each,
a quarter to a third of their time, because every compiled grammar mapped its
own sub-walk cache and kernel workspace.  Here they come from a process-wide
pool that takes the memory back when its owner dies, so a process that compiles
grammars and drops them, as a server does, touches pages it already has.
Zeroing a reused buffer (memset, ~25 us for 512 KB) is far cheaper than
faulting it in.  (Carving the masks themselves from recycled chunks was tried
and dropped: malloc already reuses freed memory for them, and the chunks made
the arithmetic replay's p50 mask 10 -> 19 us.)
"""
from __future__ import annotations

import mmap
import threading
import weakref

import numpy as np


class BufferPool:
    """Zeroed byte buffers by size, returned to the pool when the object that took them dies.

    Fresh buffers are shared anonymous mappings: their pages appear on first touch and
    a read before the first write maps them at once (a private mapping faults twice
    there, 12 us against 3 us per page measured, and hash tables read first).  At
    most ``max_idle_bytes`` wait in the pool; the rest are dropped.
    """

    def __init__(self, max_idle_bytes: int = 256 << 20):
        self.max_idle_bytes = max_idle_bytes
        self._idle: dict[tuple, list[mmap.mmap]] = {}
        self._idle_bytes = 0
        self._lock = threading.Lock()
        self.reused = 0

    def zeros(self, owner, n: int, dtype, zero: bool = True, layout=None) -> tuple[np.ndarray, weakref.finalize, bool]:
        """A 1-D array of ``n`` zeros kept until ``owner`` is collected or the returned finalizer
        is called (once nothing uses the array), and whether it is a reused buffer.

        A reused buffer is zeroed, except when ``zero`` is False (arrays written before they
        are read) or when ``layout`` is given: then only a buffer given back under the same
        layout is taken, as its last owner left it (the kernel leaves its workspace clean,
        so a grammar with the same workspace layout can start from it without a memset that
        would also fault in every page the last owner never touched)."""
        nbytes = max(int(n) * np.dtype(dtype).itemsize, 1)
        size = -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE
        key = (size, layout) if layout is None else (size, layout, nbytes)   # a layout is exact: same length too
        buf = None
        with self._lock:
            free = self._idle.get(key)
            if free:
                buf = free.pop()
                self._idle_bytes -= size
                self.reused += 1
        reused = buf is not None
        if buf is None:
            buf = mmap.mmap(-1, size)
        elif zero and layout is None:
            np.frombuffer(buf, dtype=np.uint8)[:nbytes] = 0
        give_back = weakref.finalize(owner, self._give_back, buf, key)
        return np.frombuffer(buf, dtype=dtype, count=int(n)), give_back, reused

    def _give_back(self, buf: mmap.mmap, key) -> None:
        """Keep ``buf`` for reuse if the pool has room; otherwise drop it (it is unmapped when the
        last array on it goes: the owner's arrays may still exist while its finalizer runs)."""
        size = key[0]
        with self._lock:
            if self._idle_bytes + size <= self.max_idle_bytes:
                self._idle.setdefault(key, []).append(buf)
                self._idle_bytes += size


BUFFERS = BufferPool()
