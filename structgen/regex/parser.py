"""Regex parser: Python ``re`` / ECMAScript common subset -> AST over codepoint sets.

Hand-written so every refusal names the construct and its position.
AST nodes are tuples (cheap, hashable):

* ``("set", CharSet)``            one character from the set
* ``("cat", (node, ...))``        concatenation
* ``("alt", (node, ...))``        alternation
* ``("rep", node, min, max)``     repetition, ``max`` None = unbounded
* ``("empty",)``                  the empty string
* ``("anchor", "start"|"end", position)``  ``^ \\A`` / ``$ \\Z \\z``

Semantics follow ECMAScript / JSON Schema where the two dialects differ:
``\\d \\w`` are ASCII, ``\\s`` is the ECMAScript whitespace set and ``.``
excludes ``\\n \\r U+2028 U+2029`` (use ``(?s)`` or ``[\\s\\S]`` for any char).
"""
from __future__ import annotations

import unicodedata

from ..errors import RegexError
from . import charset as cs
from .charset import CharSet

Node = tuple

EMPTY_NODE: Node = ("empty",)
_SIMPLE_ESCAPES = {"n": 0x0A, "t": 0x09, "r": 0x0D, "f": 0x0C, "v": 0x0B, "a": 0x07}
_CLASS_ESCAPES = {
    "d": cs.DIGIT, "D": cs.negate(cs.DIGIT), "w": cs.WORD, "W": cs.negate(cs.WORD),
    "s": cs.SPACE, "S": cs.negate(cs.SPACE),
}
_SUPPORTED_FLAGS = "is"
_FLAG_NAMES = {"m": "multiline", "x": "verbose", "a": "ASCII", "L": "locale", "u": "unicode",
               "t": "template"}


DIALECTS = ("ecmascript", "python")


class _Parser:
    def __init__(self, pattern: str, dialect: str = "ecmascript"):
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}, got {dialect!r}")
        self.python = dialect == "python"
        self.p = pattern
        self.i = 0
        self.n = len(pattern)
        self.flags: set[str] = set()
        self.lazy: list[Node] = []   # the repetition nodes written with a lazy quantifier (``*?``)

    # --------------------------------------------------------------- helpers
    def error(self, msg: str, pos: int | None = None) -> RegexError:
        return RegexError(msg, pattern=self.p, position=self.i if pos is None else pos)

    def peek(self, k: int = 0) -> str | None:
        j = self.i + k
        return self.p[j] if j < self.n else None

    def startswith(self, s: str) -> bool:
        return self.p.startswith(s, self.i)

    # ------------------------------------------------------------- grammar
    def parse(self) -> Node:
        self.leading_flags()
        node = self.alternation()
        if self.i < self.n:
            assert self.p[self.i] == ")"
            raise self.error("unbalanced parenthesis: ')' without a matching '('")
        return node

    def leading_flags(self) -> None:
        """Global inline flags ``(?is)`` at the very start of the pattern."""
        while self.startswith("(?") and self.i + 2 < self.n and self.p[self.i + 2] in "imsxauLt-":
            j = self.i + 2
            while j < self.n and self.p[j].isalpha():
                j += 1
            if j < self.n and self.p[j] == ")":
                self.check_flags(self.p[self.i + 2:j], self.i)
                self.flags |= set(self.p[self.i + 2:j])
                self.i = j + 1
            else:
                break

    def check_flags(self, letters: str, pos: int) -> None:
        for ch in letters:
            if ch not in _SUPPORTED_FLAGS:
                name = _FLAG_NAMES.get(ch)
                if name is None:
                    raise self.error(f"unknown inline flag {ch!r}", pos)
                raise self.error(f"unsupported inline flag (?{ch}) ({name}); only (?i) and (?s) are supported",
                                 pos)

    def alternation(self) -> Node:
        branches = [self.concatenation()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.concatenation())
        return branches[0] if len(branches) == 1 else ("alt", tuple(branches))

    def concatenation(self) -> Node:
        items: list[Node] = []
        while self.i < self.n and self.p[self.i] not in "|)":
            start = self.i
            atom = self.atom()
            if atom is None:
                continue
            atom = self.quantifiers(atom, start)
            items.append(atom)
        if not items:
            return EMPTY_NODE
        return items[0] if len(items) == 1 else ("cat", tuple(items))

    def quantifiers(self, atom: Node, atom_pos: int) -> Node:
        quantified = False
        while self.i < self.n:
            pos = self.i
            c = self.p[self.i]
            if c in "*+?":
                lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
                self.i += 1
            elif c == "{":
                q = self.brace_quantifier()
                if q is None:
                    break
                lo, hi = q
            else:
                break
            if quantified:
                raise self.error(f"multiple repeat: quantifier {self.p[pos:self.i]!r} follows another quantifier",
                                 pos)
            if atom[0] == "anchor":
                raise self.error(f"quantifier {self.p[pos:self.i]!r} applied to an anchor", pos)
            quantified = True
            lazy = self.peek() == "?"   # same language under full match; lexers care (parse_with_lazy)
            if lazy:
                self.i += 1
            elif self.peek() == "+":
                raise self.error("possessive quantifier (changes the matched language) is not supported",
                                 self.i)
            atom = ("rep", atom, lo, hi)
            if lazy:
                self.lazy.append(atom)
        return atom

    def brace_quantifier(self) -> tuple[int, int | None] | None:
        """Parse ``{n}``, ``{n,}``, ``{n,m}``, ``{,m}``; None if ``{`` is a literal."""
        j = self.i + 1
        k = j
        while k < self.n and self.p[k].isdigit():
            k += 1
        lo_s = self.p[j:k]
        hi_s: str | None
        if k < self.n and self.p[k] == ",":
            m = k + 1
            while m < self.n and self.p[m].isdigit():
                m += 1
            hi_s = self.p[k + 1:m]
            k = m
        else:
            hi_s = lo_s
            if not lo_s:
                return None
        if k >= self.n or self.p[k] != "}":
            return None
        pos = self.i
        self.i = k + 1
        lo = int(lo_s) if lo_s else 0
        hi = int(hi_s) if hi_s else None
        if hi is not None and hi < lo:
            raise self.error(f"bad repeat {self.p[pos:self.i]!r}: minimum {lo} is greater than maximum {hi}",
                             pos)
        return lo, hi

    def atom(self) -> Node | None:
        c = self.p[self.i]
        pos = self.i
        if c == "(":
            return self.group()
        if c == "[":
            return ("set", self.char_class())
        if c == ".":
            self.i += 1
            return ("set", cs.ALL if "s" in self.flags else cs.PY_DOT if self.python else cs.DOT)
        if c == "^":
            self.i += 1
            return ("anchor", "start", pos)
        if c == "$":
            self.i += 1
            return ("anchor", "end", pos)
        if c in "*+?":
            raise self.error(f"nothing to repeat: quantifier {c!r} has no preceding atom")
        if c == "{":
            save = self.i
            if self.brace_quantifier() is not None:
                raise self.error(f"nothing to repeat: quantifier {self.p[save:self.i]!r} has no preceding atom",
                                 save)
            self.i = save + 1
            return self.literal(ord("{"))
        if c == "\\":
            return self.escape()
        self.i += 1
        return self.literal(ord(c))

    def literal(self, cp: int) -> Node:
        s = cs.single(cp)
        if "i" in self.flags:
            s = cs.casefold_closure(s)
        return ("set", s)

    def group(self) -> Node | None:
        start = self.i
        self.i += 1
        saved_flags = self.flags
        if self.startswith("?"):
            if self.startswith("?:"):
                self.i += 2
            elif self.startswith("?P<"):
                self.group_name(self.i + 3, ">")
            elif self.startswith("?<=") or self.startswith("?<!"):
                kind = "lookbehind" if self.p[self.i + 2] == "=" else "negative lookbehind"
                raise self.error(f"{kind} '(?{self.p[self.i + 1:self.i + 3]}' is not supported", start)
            elif self.startswith("?<"):
                self.group_name(self.i + 2, ">")
            elif self.startswith("?'"):
                self.group_name(self.i + 2, "'")
            elif self.startswith("?=") or self.startswith("?!"):
                kind = "lookahead" if self.p[self.i + 1] == "=" else "negative lookahead"
                raise self.error(f"{kind} '(?{self.p[self.i + 1]}' is not supported", start)
            elif self.startswith("?P="):
                raise self.error("backreference '(?P=...)' is not supported", start)
            elif self.startswith("?("):
                raise self.error("conditional group '(?(...)...)' is not supported", start)
            elif self.startswith("?>"):
                raise self.error("atomic group '(?>...)' is not supported", start)
            elif self.startswith("?#"):
                end = self.p.find(")", self.i)
                if end < 0:
                    raise self.error("unterminated comment '(?#'", start)
                self.i = end + 1
                return None
            else:
                j = self.i + 1
                while j < self.n and (self.p[j].isalpha() or self.p[j] == "-"):
                    j += 1
                letters = self.p[self.i + 1:j]
                if not letters or j >= self.n or self.p[j] not in ":)":
                    raise self.error(f"unknown group extension '(?{self.p[self.i + 1:j + 1]}'", start)
                on, _, off = letters.partition("-")
                self.check_flags(on + off, start)
                if self.p[j] == ")":
                    raise self.error(f"inline flags '(?{letters})' are only supported at the start of the pattern",
                                     start)
                self.flags = (set(saved_flags) | set(on)) - set(off)
                self.i = j + 1
        node = self.alternation()
        self.flags = saved_flags
        if self.peek() != ")":
            raise self.error("missing ')': unterminated group opened", start)
        self.i += 1
        return node

    def group_name(self, j: int, close: str) -> None:
        end = self.p.find(close, j)
        name = self.p[j:end] if end >= 0 else ""
        if end < 0 or not name.isidentifier():
            raise self.error(f"bad group name {name!r}", self.i - 1)
        self.i = end + 1

    # -------------------------------------------------------------- escapes
    def escape(self) -> Node:
        """An escape outside a character class."""
        pos = self.i
        nxt = self.peek(1)
        if nxt is None:
            raise self.error("pattern ends with a lone backslash", pos)
        if nxt in "bB":
            raise self.error(f"word boundary '\\{nxt}' is not supported", pos)
        if nxt == "A":
            self.i += 2
            return ("anchor", "start", pos)
        if nxt in "Zz":
            self.i += 2
            return ("anchor", "end", pos)
        if nxt == "G":
            raise self.error("'\\G' assertion is not supported", pos)
        if nxt == "k" and self.peek(2) in ("<", "{", "'"):
            raise self.error("backreference '\\k<...>' is not supported", pos)
        if nxt.isdigit() and nxt != "0":
            j = self.i + 1
            while j < self.n and j < self.i + 4 and self.p[j] in "01234567":
                j += 1
            if j - (self.i + 1) == 3 and nxt in "0123":
                self.i = j
                return self.literal(int(self.p[pos + 1:j], 8))
            raise self.error(f"backreference '\\{nxt}' is not supported", pos)
        s = self.escape_set(in_class=False)
        return ("set", s)

    def escape_set(self, in_class: bool) -> CharSet:
        """Parse the escape at self.i; return its character set (literal escapes case-folded)."""
        pos = self.i
        c = self.p[self.i + 1]
        self.i += 2
        if c in _CLASS_ESCAPES:
            if self.python:   # Python's \d \w \s are Unicode sets
                base = cs.python_class(c.lower())
                return base if c.islower() else cs.negate(base)
            return _CLASS_ESCAPES[c]
        if c in "pP":
            return self.unicode_property(c, pos)
        cp = self.escape_codepoint(c, pos, in_class)
        s = cs.single(cp)
        if "i" in self.flags:
            s = cs.casefold_closure(s)
        return s

    def escape_codepoint(self, c: str, pos: int, in_class: bool) -> int:
        if c in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[c]
        if c == "b" and in_class:
            return 0x08
        if c == "0":
            j = self.i
            while j < self.n and j < self.i + 2 and self.p[j] in "01234567":
                j += 1
            v = int(self.p[self.i:j] or "0", 8)
            self.i = j
            return v
        if in_class and c.isdigit():
            j = self.i - 1
            while j < self.n and j < pos + 4 and self.p[j] in "01234567":
                j += 1
            if j - (pos + 1) >= 1 and c in "01234567":
                self.i = j
                return int(self.p[pos + 1:j], 8)
            raise self.error(f"bad escape '\\{c}' in character class", pos)
        if c == "x":
            return self.hex_digits(2, pos, "\\x")
        if c == "u":
            if self.peek() == "{":
                end = self.p.find("}", self.i)
                digits = self.p[self.i + 1:end] if end >= 0 else ""
                if end < 0 or not digits or not all(d in "0123456789abcdefABCDEF" for d in digits):
                    raise self.error("bad escape '\\u{...}': expected hex digits and '}'", pos)
                self.i = end + 1
                v = int(digits, 16)
                if v > cs.MAX_CP:
                    raise self.error(f"escape '\\u{{{digits}}}' is beyond U+10FFFF", pos)
            else:
                v = self.hex_digits(4, pos, "\\u")
                # ECMAScript writes astral characters as a surrogate pair of \u escapes.
                if 0xD800 <= v <= 0xDBFF and self.startswith("\\u"):
                    save = self.i
                    self.i += 2
                    try:
                        low = self.hex_digits(4, save, "\\u")
                    except RegexError:
                        low = -1
                    if 0xDC00 <= low <= 0xDFFF:
                        return 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
                    self.i = save
            if cs.SURR_LO <= v <= cs.SURR_HI:
                raise self.error(f"lone surrogate escape '\\u{v:04X}' cannot match any character", pos)
            return v
        if c == "U":
            v = self.hex_digits(8, pos, "\\U")
            if v > cs.MAX_CP or cs.SURR_LO <= v <= cs.SURR_HI:
                raise self.error(f"escape '\\U{v:08X}' is not a Unicode scalar value", pos)
            return v
        if c == "N" and self.peek() == "{":
            end = self.p.find("}", self.i)
            name = self.p[self.i + 1:end] if end >= 0 else ""
            try:
                ch = unicodedata.lookup(name)
            except KeyError:
                raise self.error(f"unknown character name in '\\N{{{name}}}'", pos) from None
            self.i = end + 1
            return ord(ch)
        if c == "c" and self.peek() is not None and self.peek().isalpha() and self.peek().isascii():
            v = ord(self.peek()) % 32
            self.i += 1
            return v
        if c.isalnum():
            if c in "bB":
                raise self.error(f"word boundary '\\{c}' is not supported", pos)
            raise self.error(f"bad escape '\\{c}'", pos)
        return ord(c)

    def hex_digits(self, k: int, pos: int, name: str) -> int:
        digits = self.p[self.i:self.i + k]
        if len(digits) != k or not all(d in "0123456789abcdefABCDEF" for d in digits):
            raise self.error(f"bad escape '{name}': expected {k} hex digits", pos)
        self.i += k
        return int(digits, 16)

    def unicode_property(self, c: str, pos: int) -> CharSet:
        if self.peek() == "{":
            end = self.p.find("}", self.i)
            if end < 0:
                raise self.error(f"unterminated '\\{c}{{'", pos)
            name = self.p[self.i + 1:end]
            self.i = end + 1
        elif self.peek() is not None and self.peek().isalpha():
            name = self.peek()
            self.i += 1
        else:
            raise self.error(f"bad escape '\\{c}': expected a property name", pos)
        s = cs.unicode_property(name)
        if s is None:
            raise self.error(f"unsupported Unicode property '\\{c}{{{name}}}' (only general categories "
                             "such as L, Lu, N, Nd, P, S, Z are supported)", pos)
        return cs.negate(s) if c == "P" else s

    # ----------------------------------------------------- character class
    def char_class(self) -> CharSet:
        start = self.i
        self.i += 1
        neg = False
        if self.peek() == "^":
            neg = True
            self.i += 1
        ranges: list[CharSet] = []
        first = True
        while True:
            if self.i >= self.n:
                raise self.error("unterminated character class '['", start)
            c = self.p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            item_pos = self.i
            lo_set, lo_cp = self.class_atom()
            if (self.peek() == "-" and self.peek(1) is not None and self.peek(1) != "]"):
                self.i += 1
                _, hi_cp = self.class_atom()
                if lo_cp is None or hi_cp is None:
                    raise self.error(f"bad character range {self.p[item_pos:self.i]!r}: a class escape "
                                     "cannot be a range endpoint", item_pos)
                if hi_cp < lo_cp:
                    raise self.error(f"bad character range {self.p[item_pos:self.i]!r}: "
                                     f"{chr(lo_cp)!r} > {chr(hi_cp)!r}", item_pos)
                r = cs.normalize([(lo_cp, hi_cp)])
                if "i" in self.flags:
                    r = cs.casefold_closure(r)
                ranges.append(r)
            else:
                ranges.append(lo_set)
        s = cs.union(*ranges)
        return cs.negate(s) if neg else s

    def class_atom(self) -> tuple[CharSet, int | None]:
        """One class member: (its set, its codepoint if a single literal char)."""
        c = self.p[self.i]
        if c == "\\":
            if self.i + 1 >= self.n:
                raise self.error("unterminated character class: pattern ends with a lone backslash")
            e = self.p[self.i + 1]
            if e in _CLASS_ESCAPES or e in "pP":
                return self.escape_set(in_class=True), None
            pos = self.i
            self.i += 2
            cp = self.escape_codepoint(e, pos, in_class=True)
        else:
            cp = ord(c)
            self.i += 1
        s = cs.single(cp)
        if "i" in self.flags:
            s = cs.casefold_closure(s)
        return s, cp


def parse(pattern: str, dialect: str = "ecmascript") -> Node:
    """Parse ``pattern``; raise RegexError naming the construct and position.

    ``dialect``: "ecmascript" (JSON Schema ``pattern``, the regex front-end: ``.`` excludes line
    terminators, ``\\d \\w \\s`` are ASCII/ECMAScript sets) or "python" (Python ``re`` on str, which
    Lark uses: ``.`` excludes only ``\\n``, ``\\d \\w \\s`` are Unicode)."""
    return _Parser(pattern, dialect).parse()


def parse_with_lazy(pattern: str, dialect: str = "ecmascript") -> tuple[Node, list[Node]]:
    """``parse`` plus the repetition nodes (by identity) that were written lazy (``*?``, ``+?``...).

    A full-match language ignores laziness, but a lexer whose terminal is ``/".*?"/`` must end the
    lexeme at the first closing quote, so grammar front-ends ask which repetitions were lazy.
    """
    parser = _Parser(pattern, dialect)
    return parser.parse(), parser.lazy


# ------------------------------------------------------------------ anchors
def contains_anchor(node: Node) -> bool:
    k = node[0]
    if k == "anchor":
        return True
    if k in ("cat", "alt"):
        return any(contains_anchor(c) for c in node[1])
    if k == "rep":
        return contains_anchor(node[1])
    return False


def anchor_variants(node: Node, pattern: str) -> list[tuple[bool, bool, Node]]:
    """Split the language by anchoring: [(starts_with_^, ends_with_$, anchor-free node)].

    Anchors are accepted only at the start / end of the overall match (first /
    last item of top-level concatenations, through groups and alternations);
    anywhere else they raise RegexError.
    """
    return _variants(node, True, True, pattern)


def _misplaced(node: Node, pattern: str) -> RegexError:
    def first_anchor(n: Node) -> Node | None:
        if n[0] == "anchor":
            return n
        if n[0] in ("cat", "alt"):
            for c in n[1]:
                a = first_anchor(c)
                if a is not None:
                    return a
        if n[0] == "rep":
            return first_anchor(n[1])
        return None

    a = first_anchor(node)
    sym = "^" if a[1] == "start" else "$"
    return RegexError(f"anchor {sym!r} is only supported at the {'start' if a[1] == 'start' else 'end'} "
                      "of the pattern (it would be a mid-string assertion here)", pattern=pattern,
                      position=a[2])


def _variants(node: Node, at_start: bool, at_end: bool, pattern: str) -> list[tuple[bool, bool, Node]]:
    k = node[0]
    if k == "anchor":
        if (node[1] == "start" and not at_start) or (node[1] == "end" and not at_end):
            raise _misplaced(node, pattern)
        return [(node[1] == "start", node[1] == "end", EMPTY_NODE)]
    if not contains_anchor(node):
        return [(False, False, node)]
    if k == "alt":
        out = []
        for c in node[1]:
            out.extend(_variants(c, at_start, at_end, pattern))
        return out
    if k == "rep":
        raise _misplaced(node, pattern)
    if k == "cat":
        items = node[1]
        if len(items) == 1:
            return _variants(items[0], at_start, at_end, pattern)
        for mid in items[1:-1]:
            if contains_anchor(mid):
                raise _misplaced(mid, pattern)
        out = []
        for sa, ea, first in _variants(items[0], at_start, False, pattern):
            for sa2, ea2, last in _variants(items[-1], False, at_end, pattern):
                out.append((sa or sa2, ea or ea2, ("cat", (first,) + tuple(items[1:-1]) + (last,))))
        return out
    return [(False, False, node)]
