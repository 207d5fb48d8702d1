"""Error types: every user-facing failure names the problem and where it is."""
from __future__ import annotations


class StructgenError(Exception):
    """Base class of every error structgen raises on purpose."""


class GrammarError(StructgenError):
    """A grammar could not be compiled; carries line/column when known."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None,
                 source: str | None = None):
        self.line, self.column, self.source = line, column, source
        where = ""
        if source:
            where += f"{source}:"
        if line is not None:
            where += f"{line}:" + (f"{column}:" if column is not None else "")
        super().__init__(f"{where} {message}".strip() if where else message)


class RegexError(StructgenError):
    """A regular expression is malformed or uses an unsupported construct."""

    def __init__(self, message: str, *, pattern: str | None = None, position: int | None = None):
        self.pattern, self.position = pattern, position
        detail = message
        if pattern is not None:
            detail += f" in regex {pattern!r}"
            if position is not None:
                detail += f" at position {position}"
        super().__init__(detail)


class SchemaError(StructgenError):
    """A JSON Schema is invalid or cannot be compiled; names the JSON pointer."""

    def __init__(self, message: str, *, pointer: str = "", keyword: str | None = None):
        self.pointer, self.keyword = pointer, keyword
        loc = f" at {pointer or '#'}" if pointer is not None else ""
        kw = f" (keyword {keyword!r})" if keyword else ""
        super().__init__(f"{message}{kw}{loc}")


class UnsupportedKeywordError(SchemaError):
    """A schema keyword structgen cannot enforce exactly (strict mode refuses it)."""


class CompileLimitError(StructgenError):
    """Compilation exceeded a configured limit (states, time, rules)."""


class ModelLoadError(StructgenError):
    """A model could not be found or loaded; says how to install it."""


class GenerationError(StructgenError):
    """Generation failed (prompt too long, incomplete output, ...)."""
