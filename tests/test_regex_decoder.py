"""The block-splitting decoder builds the same byte trie as the explicit-encoding reference."""
from __future__ import annotations

import random

import pytest

from structgen.regex import charset as cs
from structgen.regex.automaton import partition
from structgen.regex.encode import decoder_fast, decoder_reference


def _same_trie(a, b) -> bool:
    """Parallel walk: every byte leads to the same class leaf, to dead in both, or to matching nodes."""
    seen: dict[int, int] = {}
    todo = [(0, 0)]
    while todo:
        x, y = todo.pop()
        ra = [None] * 256
        rb = [None] * 256
        for row, edges in ((ra, a[x]), (rb, b[y])):
            for lo, hi, d in edges:
                for byte in range(lo, hi + 1):
                    row[byte] = d
        for byte in range(256):
            p, q = ra[byte], rb[byte]
            if p is None or q is None or p < 0 or q < 0:
                if p != q:
                    return False
                continue
            if p in seen:
                if seen[p] != q:
                    return False
            else:
                seen[p] = q
                todo.append((p, q))
    return len(a) == len(b)


_POINTS = [0, 0x1F, 0x20, 0x21, 0x22, 0x2F, 0x30, 0x5C, 0x61, 0x7A, 0x7F, 0x80, 0xE9, 0x7FF, 0x800, 0x20AC,
           0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF]


def _random_classes(rng: random.Random) -> tuple:
    sets = []
    for _ in range(rng.randint(1, 5)):
        ranges = []
        for _ in range(rng.randint(1, 4)):
            a = rng.choice(_POINTS) if rng.random() < 0.6 else rng.randint(0, cs.MAX_CP)
            b = a + rng.choice([0, 0, 1, 5, 63, 64, 300, 5000, 70000])
            ranges.append((a, min(b, cs.MAX_CP)))
        sets.append(cs.normalize(ranges))
    if rng.random() < 0.3:
        sets.append(cs.ALL)
    classes, _ = partition([s for s in sets if s])
    return tuple(classes)


@pytest.mark.parametrize("seed", range(150))
def test_fast_decoder_matches_reference(seed: int) -> None:
    rng = random.Random(seed)
    classes = _random_classes(rng)
    for json in (False, True):
        assert _same_trie(decoder_fast(classes, json), decoder_reference(classes, json)), (classes, json)


@pytest.mark.parametrize("classes", [
    (cs.ALL,), (cs.DOT, cs.from_chars("\n\r\u2028\u2029")), (cs.DIGIT,), (cs.single(0x10000), cs.single(0x10FFFF)),
    tuple(cs.single(ord(c)) for c in "abc") + (cs.subtract(cs.ALL, cs.from_chars("abc")),),
])
def test_fast_decoder_common_partitions(classes) -> None:
    for json in (False, True):
        assert _same_trie(decoder_fast(classes, json), decoder_reference(classes, json))
