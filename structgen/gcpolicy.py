"""Cyclic-GC policy for a process holding a large tokenizer and model.

A full collection walks every tracked object: with a 150k-token vocabulary
and a model loaded that is 0.1-0.5 s, landing on whatever mask or compile
happens to allocate next.  Two tools:

* :func:`gc_paused` around allocation-heavy work (parser exploration, schema
  lowering, DFA building): collection is deferred, not skipped;
* :func:`freeze_long_lived` once a process has loaded its long-lived objects
  (tokenizer, model, token trie): they move to the permanent generation and
  are never scanned again.  Only for processes structgen owns (CLI, server,
  benchmarks): it is process-wide, so the library never calls it on its own.
"""
from __future__ import annotations

import gc


class gc_paused:
    """Pause cyclic garbage collection for the duration (re-entrant; restores the previous state).

    A class, not a generator context manager: it runs around every computed mask, and
    the generator's machinery cost a few microseconds there."""

    __slots__ = ("_was_enabled",)

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc) -> None:
        if self._was_enabled:
            gc.enable()


def freeze_long_lived() -> int:
    """Collect once, then exempt every surviving object from future collections; returns their count.

    Also keeps forked workers from copying the whole heap when their first
    collection writes to every object's GC header.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
