"""Lark grammars (``.lark``) -> Grammar IR.

Lark itself parses the grammar file (EBNF, templates, ``%import common``,
``%ignore``, priorities) and lowers it to BNF rules and terminal regexes; we
read those back.  Constructs the engine cannot honour (declared terminals
filled by a custom post-lexer such as Python's indentation, lookaround in a
terminal) are refused with the reason.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import GrammarError, RegexError
from ..regex.shortest import lazy_parts
from .ir import Grammar, Terminal


def _literal_terminal(value: str, flags, priority: int) -> Terminal:
    if "i" in (flags or ()):
        parts = []
        for ch in value:
            lo, up = ch.lower(), ch.upper()
            if lo != up and len(lo) == 1 and len(up) == 1:
                parts.append(f"[{re.escape(lo)}{re.escape(up)}]")
            else:
                parts.append(re.escape(ch))
        return Terminal(regex="".join(parts), priority=priority, dialect="python")
    return Terminal(literal=value, priority=priority)


# Lookaround idioms common in Lark grammars, with equivalent lookaround-free regexes.
# (The engine's terminals are regular languages; these idioms are regular too.)
_LOOKAROUND_REWRITES = {
    # common.ESCAPED_STRING: a quote, then anything but newline, up to the first quote
    # preceded by an even number of backslashes
    r'".*?(?<!\\)(\\\\)*?"': r'"(?:[^"\\\n]|\\.)*"',
    # C block comment written with a negative lookahead
    r"\/\*(\*(?!\/)|[^*])*\*\/": r"/\*[^*]*\*+(?:[^/*][^*]*\*+)*/",
}


def _regex_terminal(name: str, value: str, flags, priority: int, source: str | None) -> Terminal:
    value = _LOOKAROUND_REWRITES.get(value, value)
    prefix = ""
    for f in flags or ():
        if f == "i":
            prefix += "i"
        elif f == "s":
            prefix += "s"
        elif f in ("m", "u", "l"):
            continue  # multiline only changes ^/$ inside, which full-match terminals do not use
        elif f == "x":
            raise GrammarError(f"terminal {name}: verbose regex flag 'x' is not supported", source=source)
    pattern = f"(?{prefix}){value}" if prefix else value
    # Lark compiles terminals with Python's re (dialect); a lazy quantifier changes where it ends
    # the lexeme, not the language: see regex/shortest.py
    return Terminal(regex=pattern, priority=priority, shortest=lazy_parts(pattern, "python") is not None,
                    dialect="python")


def grammar_from_lark(text: str, *, start: str = "start", source: str | None = None,
                      import_paths: list[str] | None = None) -> Grammar:
    """Build the IR from Lark grammar text.  Errors carry line/column."""
    try:
        import lark
        from lark.exceptions import GrammarError as LarkGrammarError, UnexpectedInput
    except ImportError as exc:  # pragma: no cover - lark is a hard dependency
        raise GrammarError("the lark package is required for .lark grammars") from exc
    kwargs = {}
    if import_paths:
        kwargs["import_paths"] = import_paths
    if not re.search(rf"^\s*[?!]?{re.escape(start)}\b", text, re.M) and "%import" not in text:
        rules = re.findall(r"^\s*[?!]?([a-z_][a-z_0-9]*)\s*(?:\{[^}]*\})?\s*:", text, re.M)
        raise GrammarError(f"no rule named {start!r} to start from"
                           + (f"; pass start= one of: {', '.join(dict.fromkeys(rules[:12]))}" if rules
                              else " (this file defines no rules: a terminal library?)"), source=source)
    try:
        parser = lark.Lark(text, parser="earley", lexer="dynamic", start=start, **kwargs)
    except UnexpectedInput as exc:
        expected = getattr(exc, "expected", None) or getattr(exc, "allowed", None)
        what = f"; expected one of: {', '.join(sorted(map(str, expected))[:12])}" if expected else ""
        raise GrammarError(f"syntax error in Lark grammar{what}", line=getattr(exc, "line", None),
                           column=getattr(exc, "column", None), source=source) from None
    except (LarkGrammarError, KeyError, ValueError, IOError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "undefined rule" in msg and repr(start) in msg:
            msg = f"no rule named {start!r} to start from (pass start=...)"
        m = re.search(r"[Ll]ine (\d+)", str(exc))
        raise GrammarError(f"invalid Lark grammar: {msg}", line=int(m.group(1)) if m else None,
                           source=source) from None
    _warn_unreachable_lark_rules(parser, start, source)
    return _from_lark_object(parser, start, source)


def _warn_unreachable_lark_rules(parser, start: str, source: str | None) -> None:
    """Lark drops rules the start rule never reaches without a word; say so, as the GBNF front-end
    does (a rule left unreachable by a typo is a grammar bug)."""
    reached = {r.origin.name for r in parser.rules}
    unreachable = [str(name) for name, params, *_ in parser.grammar.rule_defs
                   if not params and "__" not in name and name not in reached]
    if unreachable:
        import warnings
        warnings.warn(f"{source or 'lark grammar'}: rules never reached from {start!r}: "
                      + ", ".join(unreachable[:20]), UserWarning, stacklevel=3)


def grammar_from_lark_file(path: str | Path, *, start: str = "start") -> Grammar:
    path = Path(path)
    return grammar_from_lark(path.read_text(encoding="utf-8"), start=start, source=str(path),
                             import_paths=[str(path.parent)])


def _from_lark_object(parser, start: str, source: str | None) -> Grammar:
    terminals: dict[str, Terminal] = {}
    used_terms: set[str] = set()
    rules: dict[str, list[tuple[str, ...]]] = {}
    for r in parser.rules:
        alt = []
        for sym in r.expansion:
            if sym.is_term:
                used_terms.add(sym.name)
            alt.append(sym.name)
        rules.setdefault(r.origin.name, []).append(tuple(alt))
    term_defs = {t.name: t for t in parser.terminals}
    ignore = [n for n in parser.ignore_tokens]
    for name in sorted(used_terms | set(ignore)):
        td = term_defs.get(name)
        if td is None:
            raise GrammarError(
                f"terminal {name} is declared (%declare) without a pattern: it is produced by a custom "
                "post-lexer (e.g. Python indentation), which a token-mask grammar cannot express",
                source=source)
        pat = td.pattern
        kind = type(pat).__name__
        try:
            if kind == "PatternStr":
                terminals[name] = _literal_terminal(pat.value, pat.flags, td.priority)
            else:
                terminals[name] = _regex_terminal(name, pat.value, pat.flags, td.priority, source)
        except RegexError as exc:
            raise GrammarError(f"terminal {name}: {exc}", source=source) from None
    for name, alts in rules.items():
        for alt in alts:
            for sym in alt:
                if sym not in rules and sym not in terminals:
                    raise GrammarError(f"rule {name} uses {sym}, which has no definition", source=source)
    keywords = frozenset(n for n in terminals if type(term_defs[n].pattern).__name__ == "PatternStr")
    g = Grammar(start=start, rules=rules, terminals=terminals, ignore=ignore, source=source or "lark grammar",
                lexeme_conflicts="priority", keywords=keywords)
    g.validate()
    return g
