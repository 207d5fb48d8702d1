"""GBNF / EBNF grammars (llama.cpp and transformers-cfg style) -> Grammar IR.

These grammars are character-level: every literal character and character
class is one terminal of exactly one character.  That keeps maximal-munch
lexing exact (a one-character lexeme can never be extended).  Afterwards,
rules deriving regular languages become whole terminals where that is
provably exact (see lexify.py), so the parser runs per lexeme, not per byte.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import GrammarError
from ..regex.quote import escape_char
from .ir import Grammar, GrammarBuilder, Terminal

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-",
            "^": "^", "/": "/", "'": "'", "f": "\f", "v": "\v", "0": "\0", "b": "\b", "a": "\a"}


class _Parser:
    def __init__(self, text: str, source: str | None):
        self.text = text
        self.pos = 0
        self.source = source

    # ----- low level -------------------------------------------------------------
    def where(self, pos: int | None = None) -> tuple[int, int]:
        pos = self.pos if pos is None else pos
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return line, col

    def error(self, msg: str, pos: int | None = None) -> GrammarError:
        line, col = self.where(pos)
        return GrammarError(msg, line=line, column=col, source=self.source)

    def skip_space(self) -> None:
        t = self.text
        while self.pos < len(t):
            c = t[self.pos]
            if c in " \t\r\n":
                self.pos += 1
            elif c == "#":
                while self.pos < len(t) and t[self.pos] != "\n":
                    self.pos += 1
            else:
                break

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def name_at(self, pos: int) -> str:
        t = self.text
        end = pos
        while end < len(t) and t[end] in _NAME_CHARS and t[end] != ".":
            end += 1
        return t[pos:end]

    def at_rule_start(self) -> bool:
        name = self.name_at(self.pos)
        if not name:
            return False
        save = self.pos
        self.pos += len(name)
        self.skip_space()
        ok = self.text.startswith("::=", self.pos)
        self.pos = save
        return ok

    def read_escape(self, in_class: bool) -> str:
        t = self.text
        start = self.pos
        self.pos += 1  # backslash
        if self.pos >= len(t):
            raise self.error("dangling backslash at end of grammar", start)
        c = t[self.pos]
        self.pos += 1
        if c in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[c]
            digits = t[self.pos:self.pos + n]
            if len(digits) != n or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.error(f"escape \\{c} needs {n} hex digits", start)
            self.pos += n
            cp = int(digits, 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                raise self.error(f"escape \\{c}{digits} is not a valid Unicode scalar value", start)
            return chr(cp)
        if c in _ESCAPES:
            return _ESCAPES[c]
        raise self.error(f"unknown escape \\{c}", start)

    # ----- grammar ----------------------------------------------------------------
    def parse(self, b: GrammarBuilder) -> dict[str, int]:
        defined: dict[str, int] = {}
        self.skip_space()
        while self.pos < len(self.text):
            start = self.pos
            name = self.name_at(self.pos)
            if not name:
                raise self.error(f"expected a rule name, found {self.peek()!r}")
            self.pos += len(name)
            self.skip_space()
            if not self.text.startswith("::=", self.pos):
                raise self.error(f"expected '::=' after rule name {name!r}")
            self.pos += 3
            if name in defined:
                raise self.error(f"rule {name!r} is defined twice (first on line {defined[name]})", start)
            defined[name] = self.where(start)[0]
            alts = self.alternatives(b, top=True)
            b.rule("r:" + name, alts)
            self.skip_space()
        return defined

    def alternatives(self, b: GrammarBuilder, top: bool) -> list[tuple[str, ...]]:
        alts = [self.sequence(b, top)]
        while True:
            self.skip_space()
            if self.peek() == "|":
                self.pos += 1
                alts.append(self.sequence(b, top))
            else:
                return alts

    def sequence(self, b: GrammarBuilder, top: bool) -> tuple[str, ...]:
        items: list[str] = []
        while True:
            self.skip_space()
            c = self.peek()
            if c == "" or c == "|" or c == ")":
                break
            if top and self.at_rule_start():
                break
            items.extend(self.item(b))
        return tuple(items)

    def item(self, b: GrammarBuilder) -> list[str]:
        start = self.pos
        c = self.peek()
        if c == '"':
            syms = self.literal(b)
        elif c == "[":
            syms = [self.char_class(b)]
        elif c == ".":
            self.pos += 1
            syms = [b.terminal(Terminal(regex=r"[\s\S]"))]
        elif c == "(":
            self.pos += 1
            alts = self.alternatives(b, top=False)
            self.skip_space()
            if self.peek() != ")":
                raise self.error("unclosed '(': expected ')'", start)
            self.pos += 1
            syms = [b.rule(None, alts)]
        elif c == "<":
            raise self.error("token-level items like <token> are not supported (grammars here are over text)")
        elif c in _NAME_CHARS:
            name = self.name_at(self.pos)
            if not name:
                raise self.error(f"unexpected character {c!r}")
            self.pos += len(name)
            syms = ["r:" + name]
        else:
            raise self.error(f"unexpected character {c!r}; expected a literal, [class], (group) or rule name")
        return self.postfix(b, syms, start)

    def postfix(self, b: GrammarBuilder, syms: list[str], start: int) -> list[str]:
        while True:
            c = self.peek()
            if not c or c not in "*+?{":
                return syms
            unit = syms[0] if len(syms) == 1 else b.seq(*syms)
            if c == "*":
                self.pos += 1
                syms = [b.star(unit)]
            elif c == "+":
                self.pos += 1
                syms = [b.plus(unit)]
            elif c == "?":
                self.pos += 1
                syms = [b.opt(unit)]
            else:
                syms = [self.repetition(b, unit)]

    def repetition(self, b: GrammarBuilder, unit: str) -> str:
        start = self.pos
        end = self.text.find("}", self.pos)
        if end < 0:
            raise self.error("unclosed '{' repetition", start)
        body = self.text[self.pos + 1:end].replace(" ", "")
        self.pos = end + 1
        try:
            if "," in body:
                lo_s, hi_s = body.split(",", 1)
                lo = int(lo_s) if lo_s else 0
                hi = int(hi_s) if hi_s else None
            else:
                lo = hi = int(body)
        except ValueError:
            raise self.error(f"bad repetition {{{body}}}", start) from None
        if hi is not None and hi < lo:
            raise self.error(f"repetition {{{body}}} has max < min", start)
        if lo > 10000 or (hi or 0) > 10000:
            raise self.error(f"repetition {{{body}}} is too large (limit 10000)", start)
        seq = [unit] * lo
        if hi is None:
            seq.append(b.star(unit))
        else:
            # nested optionals: (u (u (u)?)?)? keeps the grammar unambiguous
            tail: str | None = None
            for _ in range(hi - lo):
                tail = b.opt(unit if tail is None else b.seq(unit, tail))
            if tail is not None:
                seq.append(tail)
        return b.seq(*seq) if seq else b.rule(None, [()])

    def literal(self, b: GrammarBuilder) -> list[str]:
        start = self.pos
        self.pos += 1
        chars = []
        t = self.text
        while True:
            if self.pos >= len(t) or t[self.pos] == "\n":
                raise self.error("unterminated string literal", start)
            c = t[self.pos]
            if c == '"':
                self.pos += 1
                break
            if c == "\\":
                chars.append(self.read_escape(in_class=False))
            else:
                chars.append(c)
                self.pos += 1
        if not chars:
            return [b.rule(None, [()])]
        return [b.literal(ch) for ch in chars]

    def char_class(self, b: GrammarBuilder) -> str:
        start = self.pos
        self.pos += 1
        t = self.text
        negate = False
        if self.peek() == "^":
            negate = True
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        while True:
            if self.pos >= len(t):
                raise self.error("unterminated character class", start)
            c = t[self.pos]
            if c == "]":
                self.pos += 1
                break
            lo = self.read_escape(True) if c == "\\" else t[self.pos]
            if c != "\\":
                self.pos += 1
            hi = lo
            if self.peek() == "-" and self.pos + 1 < len(t) and t[self.pos + 1] != "]":
                self.pos += 1
                c2 = self.peek()
                hi = self.read_escape(True) if c2 == "\\" else c2
                if c2 != "\\":
                    self.pos += 1
                if ord(hi) < ord(lo):
                    raise self.error(f"bad range {lo!r}-{hi!r} in character class", start)
            ranges.append((ord(lo), ord(hi)))
        if not ranges and not negate:
            raise self.error("empty character class matches nothing", start)
        def esc(cp: int) -> str:
            return escape_char(chr(cp), in_class=True)
        body = "".join(esc(lo) if lo == hi else f"{esc(lo)}-{esc(hi)}" for lo, hi in ranges)
        return b.terminal(Terminal(regex=f"[{'^' if negate else ''}{body}]"))


def grammar_from_gbnf(text: str, *, start: str = "root", source: str | None = None,
                     lexify: bool = True) -> Grammar:
    """Parse GBNF/EBNF text; the start rule is ``root`` unless given.

    ``lexify=False`` keeps every character its own lexeme (same language, slower masks).
    """
    b = GrammarBuilder(source=source or "gbnf grammar")
    p = _Parser(text, source or "gbnf grammar")
    defined = p.parse(b)
    if not defined:
        raise GrammarError("grammar defines no rules", source=source)
    for name, alts in b.rules.items():
        for alt in alts:
            for sym in alt:
                if sym.startswith("r:") and sym[2:] not in defined:
                    raise GrammarError(f"rule {sym[2:]!r} is used but never defined", source=source)
    if start not in defined:
        raise GrammarError(f"start rule {start!r} is not defined (rules: {', '.join(list(defined)[:10])})",
                           source=source)
    g = b.build("r:" + start)
    g.warn_unreachable(lambda n: n[2:] if n.startswith("r:") else n)
    if lexify:
        from .lexify import lexify_regular_rules
        g = lexify_regular_rules(g)
    return g


def grammar_from_gbnf_file(path: str | Path, *, start: str = "root") -> Grammar:
    path = Path(path)
    return grammar_from_gbnf(path.read_text(encoding="utf-8"), start=start, source=str(path))
