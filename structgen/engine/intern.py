"""Weak interning tables for parser states (one object per distinct state, freed with its last user)."""
from __future__ import annotations

import weakref


class WeakInternTable:
    """key -> object, an entry vanishing with its object: a lean ``WeakValueDictionary``.

    Parser states (GLR stack nodes and sets, Earley sets) are interned on every step;
    the stdlib class spends two Python-level calls per lookup and insertion, a tenth
    of a GLR replay's time here.
    """

    __slots__ = ("data", "_remove", "__weakref__")

    def __init__(self) -> None:
        self.data: dict = {}

        def remove(ref, table_ref=weakref.ref(self)):
            table = table_ref()
            if table is not None and table.data.get(ref.key) is ref:   # not re-set since
                del table.data[ref.key]
        self._remove = remove

    def get(self, key):
        ref = self.data.get(key)
        return None if ref is None else ref()

    def put(self, key, value) -> None:
        self.data[key] = weakref.KeyedRef(value, self._remove, key)

    def __len__(self) -> int:
        return len(self.data)
