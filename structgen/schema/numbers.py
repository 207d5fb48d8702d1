"""Exact regexes for JSON numbers with bounds, integrality and ``multipleOf``.

Why this is its own module: ``minimum``/``maximum``/``multipleOf`` are the
keywords peers silently ignore.  Here every constraint becomes a full-match
regex over the lexeme; a number terminal is the *intersection* of those
regexes (``Terminal.also_match``), which keeps each regex small.

Scope (documented, exact within it):

* Unconstrained ``number`` accepts the whole JSON number syntax (exponents too).
* As soon as a bound or ``multipleOf`` applies, exponent notation is not
  accepted (``1e2`` for an integer with ``maximum``): the set of decimal
  spellings of a bounded range *with* exponents is not a regular language.
  Every accepted lexeme satisfies the constraints; the only refused valid
  spellings are exponent forms.
* Integers accept ``-?(0|[1-9][0-9]*)`` optionally followed by ``.0+``
  (JSON Schema: ``1.0`` is an integer); unconstrained integers never use an
  exponent either (``1e2`` is refused: not regular together with ``1.5e1``).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import gcd

INT_PART = r"(?:0|[1-9][0-9]*)"
JSON_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+\-]?[0-9]+)?"
JSON_INTEGER = r"-?(?:0|[1-9][0-9]*)(?:\.0+)?"
#: every lexeme of a non-exponent decimal; the base regex of bounded numbers
DECIMAL = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
MAX_ENUMERATED = 2000


def frac_lcm(a: Fraction, b: Fraction) -> Fraction:
    """Least common multiple of two positive rationals (exact)."""
    num = a.numerator * b.numerator // gcd(a.numerator, b.numerator)
    return Fraction(num, gcd(a.denominator, b.denominator))


def decimal_digits(x: Fraction) -> tuple[str, str] | None:
    """``x >= 0`` as (integer digits, fraction digits without trailing zeros);
    None when x has no finite decimal expansion."""
    if x < 0:
        raise ValueError("decimal_digits needs x >= 0")
    den = x.denominator
    k = 0
    while den % 10 == 0:
        den //= 10
        k += 1
    while den % 2 == 0 or den % 5 == 0:
        if den % 2 == 0:
            den //= 2
        else:
            den //= 5
        k += 1
    if den != 1:
        return None
    scaled = x * 10 ** k
    assert scaled.denominator == 1
    digits = str(scaled.numerator).rjust(k + 1, "0")
    ip, fp = (digits[:-k], digits[-k:]) if k else (digits, "")
    return ip, fp.rstrip("0")


# ---------------------------------------------------------------- integer parts

def _digits_range(lo: str, hi: str) -> str:
    """Regex for digit strings of equal length n with lo <= s <= hi (lexicographic = numeric)."""
    assert len(lo) == len(hi)
    if not lo:
        return ""
    if lo == hi:
        return lo
    if lo == "0" * len(lo) and hi == "9" * len(hi):  # shortcut keeps the regex linear in the length
        return "[0-9]" if len(lo) == 1 else "[0-9]{%d}" % len(lo)
    if lo[0] == hi[0]:
        return lo[0] + _group(_digits_range(lo[1:], hi[1:]))
    n = len(lo) - 1
    alts = [lo[0] + _group(_digits_range(lo[1:], "9" * n))]
    if int(hi[0]) - int(lo[0]) > 1:
        alts.append(_cls(int(lo[0]) + 1, int(hi[0]) - 1) + ("[0-9]{%d}" % n if n else ""))
    alts.append(hi[0] + _group(_digits_range("0" * n, hi[1:])))
    return "(?:" + "|".join(alts) + ")"


def _group(r: str) -> str:
    return r if len(r) <= 1 or (r.startswith("(?:") and _balanced_outer(r)) else f"(?:{r})"


def _balanced_outer(r: str) -> bool:
    depth = 0
    i = 0
    while i < len(r):
        c = r[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0 and i != len(r) - 1:
                return False
        i += 1
    return True


def _cls(a: int, b: int) -> str:
    return str(a) if a == b else f"[{a}-{b}]"


def uint_range(lo: int, hi: int | None) -> str | None:
    """Regex for canonical non-negative integers (no leading zeros) in [lo, hi]."""
    lo = max(lo, 0)
    if hi is not None and hi < lo:
        return None
    alts: list[str] = []
    lo_s = str(lo)
    top_len = len(str(hi)) if hi is not None else None
    n = len(lo_s)
    while top_len is None or n <= top_len:
        a = lo_s if n == len(lo_s) else ("1" + "0" * (n - 1) if n > 1 else "0")
        if hi is not None and n == top_len:
            b = str(hi)
        else:
            b = "9" * n
        if n > 1 and a[0] == "0":
            a = "1" + "0" * (n - 1)
        alts.append(_digits_range(a, b))
        if top_len is None:
            break
        n += 1
    if top_len is None:
        # all lengths beyond len(lo_s)
        alts.append("[1-9][0-9]{%d,}" % len(lo_s))
    return "(?:" + "|".join(alts) + ")"


# ---------------------------------------------------------------- fractions

def _frac_ge(fa: str, strict: bool) -> str:
    """Fraction digit strings f (nonempty) with 0.f >= 0.fa (or > when strict)."""
    alts = [fa[:j] + _cls(int(d) + 1, 9) + "[0-9]*" for j, d in enumerate(fa) if d != "9"]
    if strict:
        alts.append(fa + "0*[1-9][0-9]*")
    else:
        alts.append(fa + "[0-9]*" if fa else "[0-9]+")
    return "(?:" + "|".join(alts) + ")"


def _frac_le(fb: str, strict: bool) -> str | None:
    """Fraction digit strings f (nonempty) with 0.f <= 0.fb (or <); None if no such f."""
    alts = []
    for j, d in enumerate(fb):
        if d != "0":
            alts.append(fb[:j] + _cls(0, int(d) - 1) + "[0-9]*")
    for j in range(1, len(fb)):
        alts.append(fb[:j])
    if not strict:
        alts.append(fb + "0*" if fb else "0+")
    alts = [a for a in alts if a]
    return "(?:" + "|".join(alts) + ")" if alts else None


def magnitude_ge(a: Fraction, strict: bool) -> str:
    """Unsigned decimal lexemes (no exponent) with value >= a (or > a); a >= 0 finite decimal."""
    ip, fp = decimal_digits(a)  # type: ignore[misc]
    A = int(ip)
    alts = []
    above = uint_range(A + 1, None)
    alts.append(f"{above}(?:\\.[0-9]+)?")
    frac = _frac_ge(fp, strict)
    if not fp and not strict:
        alts.append(f"{A}(?:\\.[0-9]+)?")
    else:
        alts.append(f"{A}\\.{frac}")
    return "(?:" + "|".join(alts) + ")"


def magnitude_le(b: Fraction, strict: bool) -> str | None:
    """Unsigned decimal lexemes (no exponent) with value <= b (or < b)."""
    ip, fp = decimal_digits(b)  # type: ignore[misc]
    B = int(ip)
    alts = []
    if B > 0:
        below = uint_range(0, B - 1)
        alts.append(f"{below}(?:\\.[0-9]+)?")
    frac = _frac_le(fp, strict)
    if frac is not None:
        alts.append(f"{B}\\.{frac}")
    if fp or not strict:
        alts.append(str(B))
    return "(?:" + "|".join(alts) + ")" if alts else None


# ---------------------------------------------------------------- public API

@dataclass(frozen=True)
class NumberSpec:
    """Value constraints of a JSON number; bounds are exact rationals."""
    integer: bool = False
    lo: Fraction | None = None
    lo_excl: bool = False
    hi: Fraction | None = None
    hi_excl: bool = False
    multiple: Fraction | None = None
    fractional: bool = False  # value is not an integer (complement of ``integer``)

    def effective_multiple(self) -> Fraction | None:
        if self.integer:
            return frac_lcm(self.multiple, Fraction(1)) if self.multiple is not None else Fraction(1)
        return self.multiple

    def is_empty(self) -> bool:
        m0 = self.effective_multiple()
        if self.fractional and m0 is not None and m0.denominator == 1:
            return True
        if self.lo is not None and self.hi is not None:
            if self.lo > self.hi or (self.lo == self.hi and (self.lo_excl or self.hi_excl)):
                return True
        m = self.effective_multiple()
        if m is not None and self.lo is not None and self.hi is not None:
            first = _first_multiple(self.lo, self.lo_excl, m)
            if first > self.hi or (first == self.hi and self.hi_excl):
                return True
        return False

    def contains(self, v: Fraction) -> bool:
        if self.lo is not None and (v < self.lo or (self.lo_excl and v == self.lo)):
            return False
        if self.hi is not None and (v > self.hi or (self.hi_excl and v == self.hi)):
            return False
        if self.fractional and v.denominator == 1:
            return False
        m = self.effective_multiple()
        return m is None or (v / m).denominator == 1


def _first_multiple(lo: Fraction, excl: bool, m: Fraction) -> Fraction:
    k = -((-lo) // m)  # ceil(lo / m)
    v = k * m
    if excl and v == lo:
        v += m
    return v


class NumberRefused(Exception):
    """Raised when a constraint has no exact regular encoding here."""


def _value_regex(v: Fraction) -> str:
    """All non-exponent spellings of the exact value v."""
    mag = abs(v)
    ip, fp = decimal_digits(mag)  # type: ignore[misc]
    body = f"{ip}\\.{fp}0*" if fp else f"{ip}(?:\\.0+)?"
    if v < 0:
        return "-" + body
    if v == 0:
        return "-?" + body
    return body


def number_regexes(spec: NumberSpec) -> list[list[str]] | None:
    """Alternatives (each a list of full-match regexes to intersect) for the lexemes.

    Returns None for the empty language.  Raises :class:`NumberRefused` when
    the constraint has no exact encoding (e.g. ``multipleOf: 3`` unbounded).
    """
    if spec.is_empty():
        return None
    m = spec.effective_multiple()
    bounded = spec.lo is not None or spec.hi is not None or spec.fractional
    if m is None and not bounded:
        return [[JSON_NUMBER]]
    if m == 1 and not bounded:
        return [[JSON_INTEGER]]
    for b in (spec.lo, spec.hi):
        if b is not None and decimal_digits(abs(b)) is None:
            raise NumberRefused(f"bound {b} has no finite decimal expansion")
    if spec.lo is not None and spec.lo == spec.hi:  # a single value (const): its spellings directly
        return [[_value_regex(spec.lo)]] if spec.contains(spec.lo) else None
    # multiples: which regular shape?
    mult_re: str | None = None
    if m is not None and m != 1:
        mult_re = _multiple_regex(m)
        if mult_re is None:
            if spec.lo is None or spec.hi is None:
                raise NumberRefused(f"multipleOf {_fmt(m)} without both bounds")
            first = _first_multiple(spec.lo, spec.lo_excl, m)
            count = int((spec.hi - first) // m) + 1 if first <= spec.hi else 0
            if count > MAX_ENUMERATED:
                raise NumberRefused(f"multipleOf {_fmt(m)} over a range of {count} values")
            vals = [first + i * m for i in range(count)]
            vals = [v for v in vals if spec.contains(v)]
            if not vals:
                return None
            if any(decimal_digits(abs(v)) is None for v in vals):
                raise NumberRefused(f"multipleOf {_fmt(m)} has values without finite decimal expansion")
            return [["(?:" + "|".join(_value_regex(v) for v in vals) + ")"]]
    base = [DECIMAL]
    if spec.fractional:
        base.append(r"-?[0-9]+\.[0-9]*[1-9][0-9]*")
    if m == 1:
        base.append(r"-?[0-9]+(?:\.0+)?")
    elif mult_re is not None:
        base.append(mult_re)
    alts: list[list[str]] = []
    # non-negative side: value in [max(lo,0), hi]
    p_lo, p_lo_excl = (Fraction(0), False)
    if spec.lo is not None and spec.lo >= 0:
        p_lo, p_lo_excl = spec.lo, spec.lo_excl
    pos_ok = spec.hi is None or spec.hi > p_lo or (spec.hi == p_lo and not spec.hi_excl and not p_lo_excl)
    if pos_ok:
        parts = [magnitude_ge(p_lo, p_lo_excl)] if (p_lo > 0 or p_lo_excl) else []
        if spec.hi is not None:
            le = magnitude_le(spec.hi, spec.hi_excl)
            if le is None:
                pos_ok = False
            else:
                parts.append(le)
        if pos_ok:
            alts.append(_anchor_all(base, parts, negative=False))
    # negative side: text "-" M, value -M in range  <=>  M in [-hi, -lo]
    n_lo, n_lo_excl = Fraction(0), False
    if spec.hi is not None and spec.hi <= 0:
        n_lo, n_lo_excl = -spec.hi, spec.hi_excl
    neg_ok = True
    if spec.lo is not None:
        if spec.lo > 0 or (spec.lo == 0 and spec.lo_excl):
            neg_ok = False
        elif -spec.lo < n_lo or (-spec.lo == n_lo and (spec.lo_excl or n_lo_excl)):
            neg_ok = False
    if neg_ok:
        parts = [magnitude_ge(n_lo, n_lo_excl)] if (n_lo > 0 or n_lo_excl) else []
        if spec.lo is not None:
            le = magnitude_le(-spec.lo, spec.lo_excl)
            if le is None:
                neg_ok = False
            else:
                parts.append(le)
        if neg_ok:
            alts.append(_anchor_all(base, parts, negative=True))
    return alts or None


def _anchor_all(base: list[str], parts: list[str], *, negative: bool) -> list[str]:
    sign = "-" if negative else ""
    first = sign + INT_PART + r"(?:\.[0-9]+)?"
    return [first] + base + [sign + p for p in parts]


def _multiple_regex(m: Fraction) -> str | None:
    """Full-match regex for non-exponent decimals that are multiples of m, when regular and small.

    Handled: m = 10^-k (fraction digits beyond k are zeros) and m = integer
    dividing a power of ten (last digits of the integer part), combined.
    """
    p, q = m.numerator, m.denominator
    k = 0
    qq = q
    while qq % 10 == 0:
        qq //= 10
        k += 1
    if qq != 1:
        return None
    if p == 1:
        frac = r"(?:\.[0-9]{1,%d}0*)?" % k if k else r"(?:\.0+)?"
        return r"-?[0-9]+" + frac
    if k != 0:
        return None
    j = 0
    while 10 ** j % p != 0:
        j += 1
        if j > 4:
            return None
    small = [str(v) for v in range(0, 10 ** j, p)]
    tails = "|".join(s.rjust(j, "0") for s in small)
    ints = "|".join(small)
    return r"-?(?:(?:%s)|[1-9][0-9]*(?:%s))(?:\.0+)?" % (ints, tails)


def _fmt(m: Fraction) -> str:
    return str(m.numerator) if m.denominator == 1 else f"{float(m)!r}"
