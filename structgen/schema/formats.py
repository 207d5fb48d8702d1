"""Regexes for ``format`` values (RFC 3339 dates/times, RFC 3986 URIs, IP addresses, ...).

Each is a full-match regex over decoded string characters.  They are exact
renderings of the grammars in the RFCs, including calendar rules (days per
month, leap years) and leap seconds at 23:59:60 UTC after the offset.  Formats
not listed here are refused by the compiler in strict mode.
"""
from __future__ import annotations

from functools import lru_cache

D = "[0-9]"
HEX = "[0-9A-Fa-f]"

_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
DATE = (r"(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
        r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
        r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
        rf"|{_LEAP_YEAR}-02-29)")
_FRAC = r"(?:\.[0-9]+)?"
_OFFSET = r"(?:[Zz]|[+\-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_PLAIN_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]" + _FRAC + _OFFSET


@lru_cache(maxsize=None)
def _leap_second_time() -> str:
    """hh:mm:60 is valid exactly when hh:mm minus the offset is 23:59 (UTC)."""
    by_local: dict[tuple[int, int], list[str]] = {}
    for sign in (1, -1):
        for oh in range(24):
            for om in range(60):
                utc = 23 * 60 + 59
                local = (utc + sign * (oh * 60 + om)) % (24 * 60)
                off = ("+" if sign > 0 else "-") + f"{oh:02d}:{om:02d}"
                by_local.setdefault(divmod(local, 60), []).append(off)
    alts = []
    for (h, m), offs in sorted(by_local.items()):
        offs_re = "|".join(o.replace("+", r"\+").replace("-", r"\-") for o in offs)
        if (h, m) == (23, 59):
            offs_re += "|[Zz]"
        alts.append(f"{h:02d}:{m:02d}:60{_FRAC}(?:{offs_re})")
    return "(?:" + "|".join(alts) + ")"


def _time() -> str:
    return f"(?:{_PLAIN_TIME}|{_leap_second_time()})"


@lru_cache(maxsize=None)
def _register_direct_builders() -> None:
    """The time formats' regexes (1,440 leap-second alternatives) get their DFAs built directly:
    parsing and determinizing the 59 kB date-time regex took seconds (regex/direct.py; the test
    checks both give the same language)."""
    from ..regex import direct
    from ..regex.compile import char_dfa
    direct.register(_time(), direct.time_dfa)
    direct.register(f"{DATE}[Tt]{_time()}", lambda: direct.time_dfa(char_dfa(DATE), "Tt"))


_DUR_TIME = r"T(?:[0-9]+H(?:[0-9]+M(?:[0-9]+S)?)?|[0-9]+M(?:[0-9]+S)?|[0-9]+S)"
_DUR_DATE = r"(?:[0-9]+D|[0-9]+M(?:[0-9]+D)?|[0-9]+Y(?:[0-9]+M(?:[0-9]+D)?)?)"
DURATION = rf"P(?:{_DUR_DATE}(?:{_DUR_TIME})?|{_DUR_TIME}|[0-9]+W)"

UUID = f"{HEX}{{8}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{12}}"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H16 = f"{HEX}{{1,4}}"
_LS32 = f"(?:{_H16}:{_H16}|{IPV4})"
IPV6 = "(?:" + "|".join([
    f"(?:{_H16}:){{6}}{_LS32}",
    f"::(?:{_H16}:){{5}}{_LS32}",
    f"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
    f"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
    f"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
    f"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
    f"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
    f"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
    f"(?:(?:{_H16}:){{0,6}}{_H16})?::",
]) + ")"

# RFC 1123 labels; a label with "--" in positions 3-4 is reserved for IDNA A-labels (punycode),
# whose validity is not checked here, so such labels are refused (exact, slightly narrower).
_A = "[A-Za-z0-9]"
_AH = r"[A-Za-z0-9\-]"
_LABEL = rf"(?:{_A}|{_A}{_A}|{_A}{_AH}{_A}|{_A}{_AH}{_AH}{_A}|{_A}{_AH}(?:{_A}{_AH}|-{_A}){_AH}{{0,58}}{_A})"
HOSTNAME = rf"{_LABEL}(?:\.{_LABEL})*"
HOSTNAME_LEN = r"[\s\S]{1,253}"

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]"
_LOCAL = rf"(?:{_ATEXT}+(?:\.{_ATEXT}+)*|\"(?:[^\"\\]|\\[\s\S])*\")"
EMAIL = rf"{_LOCAL}@(?:{HOSTNAME}|\[{IPV4}\]|\[IPv6:{IPV6}\])"

# RFC 3986
_UNRES = r"A-Za-z0-9\-._~"
_SUB = r"!$&'()*+,;="
_PCT = f"%{HEX}{{2}}"
_PCHAR = rf"(?:[{_UNRES}{_SUB}:@]|{_PCT})"
_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]*"
_USERINFO = rf"(?:[{_UNRES}{_SUB}:]|{_PCT})*"
_REGNAME = rf"(?:[{_UNRES}{_SUB}]|{_PCT})*"
_IPLIT = rf"\[(?:{IPV6}|[vV]{HEX}+\.[{_UNRES}{_SUB}:]+)\]"
_AUTHORITY = rf"(?:{_USERINFO}@)?(?:{_IPLIT}|{IPV4}|{_REGNAME})(?::[0-9]*)?"
_ABEMPTY = rf"(?:/{_PCHAR}*)*"
_ABSOLUTE = rf"/(?:{_PCHAR}+{_ABEMPTY})?"
_ROOTLESS = rf"{_PCHAR}+{_ABEMPTY}"
_NOSCHEME = rf"(?:[{_UNRES}{_SUB}@]|{_PCT})+{_ABEMPTY}"
_QUERY = rf"(?:{_PCHAR}|[/?])*"
URI = rf"{_SCHEME}:(?://{_AUTHORITY}{_ABEMPTY}|{_ABSOLUTE}|{_ROOTLESS}|)(?:\?{_QUERY})?(?:#{_QUERY})?"
RELATIVE_REF = rf"(?://{_AUTHORITY}{_ABEMPTY}|{_ABSOLUTE}|{_NOSCHEME}|)(?:\?{_QUERY})?(?:#{_QUERY})?"
URI_REFERENCE = f"(?:{URI}|{RELATIVE_REF})"
JSON_POINTER = r"(?:/(?:[^~/]|~[01])*)*"


def format_regexes(name: str) -> tuple[str, ...] | None:
    """Full-match regexes (to intersect) for a ``format`` value; None if unsupported."""
    if name == "date":
        return (DATE,)
    if name == "time":
        _register_direct_builders()
        return (_time(),)
    if name == "date-time":
        _register_direct_builders()
        return (f"{DATE}[Tt]{_time()}",)
    if name == "duration":
        return (DURATION,)
    if name == "uuid":
        return (UUID,)
    if name == "ipv4":
        return (IPV4,)
    if name == "ipv6":
        return (IPV6,)
    if name == "hostname":
        return (HOSTNAME, HOSTNAME_LEN)
    if name == "email":
        return (EMAIL,)
    if name == "uri":
        return (URI,)
    if name == "uri-reference":
        return (URI_REFERENCE,)
    if name == "json-pointer":
        return (JSON_POINTER,)
    return None


def raw_spelling_regexes() -> frozenset[str]:
    """Format regexes whose strings are printable ASCII without '"' and '\\': a string
    constrained by one of them has one canonical JSON spelling, the raw one (see emit.py)."""
    _register_direct_builders()
    return frozenset({DATE, _time(), f"{DATE}[Tt]{_time()}", DURATION, UUID, IPV4, IPV6, HOSTNAME})


SUPPORTED_FORMATS = ("date", "time", "date-time", "duration", "uuid", "ipv4", "ipv6", "hostname",
                     "email", "uri", "uri-reference", "json-pointer")
