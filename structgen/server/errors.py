"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}``."""
from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error the server reports to the client (default: 400 invalid_request_error)."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 status: int = 400, type: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.type = message, param, code, status, type

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def from_structgen_error(exc: Exception, param: str | None = None) -> APIError:
    """Map a structgen error raised while preparing a request to a 400."""
    from ..errors import (CompileLimitError, GenerationError, GrammarError, RegexError, SchemaError,
                          UnsupportedKeywordError)
    if isinstance(exc, UnsupportedKeywordError):
        code = "unsupported_schema_keyword"
    elif isinstance(exc, SchemaError):
        code = "invalid_schema"
    elif isinstance(exc, (GrammarError, RegexError)):
        code = "invalid_grammar"
    elif isinstance(exc, CompileLimitError):
        code = "grammar_too_complex"
    elif isinstance(exc, GenerationError) and "context" in str(exc):
        code = "context_length_exceeded"
    else:
        code = "invalid_request"
    return APIError(str(exc), param=param, code=code)
