"""Number range/multipleOf regexes checked against exact rational arithmetic (Python re + Fraction)."""
from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from structgen.schema.numbers import (NumberRefused, NumberSpec, number_regexes, uint_range)

NUM = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


def accepts(alts, text: str) -> bool:
    return any(all(re.fullmatch(r, text) for r in alt) for alt in alts or [])


def expected(spec: NumberSpec, text: str) -> bool:
    assert NUM.fullmatch(text)
    return spec.contains(Fraction(text))


lexemes = st.builds(
    lambda neg, ip, fp: ("-" if neg else "") + ip + (("." + fp) if fp else ""),
    st.booleans(),
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,3}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"[0-9]{1,4}", fullmatch=True)),
)
bounds = st.one_of(st.none(), st.builds(lambda a, b: Fraction(a, 10 ** b),
                                        st.integers(-3000, 3000), st.integers(0, 3)))


@settings(max_examples=400, deadline=None)
@given(lo=bounds, hi=bounds, lo_excl=st.booleans(), hi_excl=st.booleans(), integer=st.booleans(),
       mult=st.sampled_from([None, Fraction(1, 100), Fraction(1, 10), Fraction(5), Fraction(2),
                             Fraction(25), Fraction(3, 10)]),
       texts=st.lists(lexemes, min_size=1, max_size=20))
def test_number_regexes_match_exact_arithmetic(lo, hi, lo_excl, hi_excl, integer, mult, texts):
    spec = NumberSpec(integer=integer, lo=lo, lo_excl=lo_excl, hi=hi, hi_excl=hi_excl, multiple=mult)
    try:
        alts = number_regexes(spec)
    except NumberRefused:
        return
    # candidate texts: random ones plus the bounds themselves and neighbours
    extra = []
    for b in (lo, hi):
        if b is not None:
            for d in (Fraction(0), Fraction(1, 1000), Fraction(-1, 1000), Fraction(1), Fraction(-1)):
                v = b + d
                s = f"{float(v):.3f}"
                extra += [s, s.rstrip("0").rstrip(".") if "." in s else s]
    for t in texts + extra + ["0", "-0", "0.0", "-0.00", "1", "-1", "10", "1.50"]:
        if t in ("-0.000",) or not NUM.fullmatch(t):
            continue
        assert accepts(alts, t) == expected(spec, t), (spec, t, alts)


def test_uint_range_exhaustive_small():
    for lo in range(0, 130, 7):
        for hi in range(lo, 260, 13):
            r = re.compile(uint_range(lo, hi))
            for v in range(0, 300):
                assert bool(r.fullmatch(str(v))) == (lo <= v <= hi), (lo, hi, v)
            assert not r.fullmatch("007")


def test_exponents_only_unconstrained():
    assert accepts(number_regexes(NumberSpec()), "1e5")
    assert accepts(number_regexes(NumberSpec()), "-1.5E-3")
    assert not accepts(number_regexes(NumberSpec(lo=Fraction(0))), "1e5")
    assert accepts(number_regexes(NumberSpec(integer=True)), "12.000")
    assert not accepts(number_regexes(NumberSpec(integer=True)), "12.5")


def test_refusals_and_empty():
    with pytest.raises(NumberRefused):
        number_regexes(NumberSpec(integer=True, multiple=Fraction(3)))
    assert number_regexes(NumberSpec(lo=Fraction(5), hi=Fraction(4))) is None
    assert number_regexes(NumberSpec(integer=True, lo=Fraction(1, 10), hi=Fraction(9, 10))) is None
    # enumerated: multipleOf 3 in a small range
    alts = number_regexes(NumberSpec(integer=True, multiple=Fraction(3), lo=Fraction(-10), hi=Fraction(10)))
    for v in range(-12, 13):
        assert accepts(alts, str(v)) == (-10 <= v <= 10 and v % 3 == 0)


def test_regex_size_stays_linear_for_huge_bounds():
    spec = NumberSpec(integer=True, lo=Fraction(-9007199254740993), hi=Fraction(9007199254740992))
    alts = number_regexes(spec)
    assert sum(len(r) for alt in alts for r in alt) < 5000
    assert accepts(alts, "9007199254740992") and not accepts(alts, "9007199254740993")
    assert accepts(alts, "-9007199254740993") and not accepts(alts, "-9007199254740994")
