"""Front-ends that need no parser of their own: a regex, a list of choices, auto-detected grammar text."""
from __future__ import annotations

from pathlib import Path

from ..errors import GrammarError
from .ir import Grammar, GrammarBuilder, Terminal


def grammar_from_regex(pattern: str) -> Grammar:
    """The language of one full-match regex (a single lexeme).

    The regex is compiled (and its syntax checked) when the grammar is
    compiled for a tokenizer; call :func:`structgen.regex.compile_regex` to
    check it earlier.
    """
    from ..regex import compile_regex
    compile_regex(pattern)  # fail fast with a RegexError naming the construct
    b = GrammarBuilder(source="regex")
    t = b.terminal(Terminal(regex=pattern), name="REGEX")
    return b.build(b.rule("start", [(t,)]))


def grammar_from_choices(choices: list[str]) -> Grammar:
    """Exactly one of the given strings."""
    if not choices:
        raise GrammarError("choices must not be empty", source="choices")
    b = GrammarBuilder(source="choices")
    alts = []
    for c in dict.fromkeys(choices):
        if not isinstance(c, str) or c == "":
            raise GrammarError(f"every choice must be a non-empty string, got {c!r}", source="choices")
        alts.append((b.literal(c),))
    return b.build(b.rule("start", alts))


def grammar_from_text(text: str, *, source: str | None = None) -> Grammar:
    """A grammar in either syntax: GBNF/EBNF when it uses ``::=``, Lark otherwise."""
    from .gbnf_frontend import grammar_from_gbnf
    from .lark_frontend import grammar_from_lark
    if "::=" in text:
        return grammar_from_gbnf(text, source=source)
    return grammar_from_lark(text, source=source)


def grammar_from_file(path: str | Path) -> Grammar:
    """Load ``.lark``, ``.gbnf`` or ``.ebnf`` files (or a shipped grammar by name, e.g. ``"json"``)."""
    from .gbnf_frontend import grammar_from_gbnf_file
    from .lark_frontend import grammar_from_lark_file
    p = Path(path)
    if not p.exists():
        shipped = shipped_grammar_path(str(path))
        if shipped is None:
            raise GrammarError(f"grammar file not found: {path}")
        p = shipped
    if p.suffix in (".gbnf", ".ebnf"):
        return grammar_from_gbnf_file(p)
    return grammar_from_lark_file(p)


def shipped_grammar_path(name: str) -> Path | None:
    """Path of a grammar shipped in ``structgen.grammars`` (by stem or file name)."""
    from importlib import resources
    root = resources.files("structgen.grammars")
    for cand in (name, name + ".lark", name + ".gbnf"):
        f = root / cand
        if f.is_file():
            return Path(str(f))
    return None


def list_shipped_grammars() -> list[str]:
    from importlib import resources
    root = resources.files("structgen.grammars")
    return sorted(f.name for f in root.iterdir() if f.name.endswith((".lark", ".gbnf")))
