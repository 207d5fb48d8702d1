"""What a generation returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import GenerationError


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass
class Timing:
    """Wall-clock seconds: ``ttft`` = prompt submitted -> first token chosen."""

    ttft: float = 0.0
    total: float = 0.0
    output_tokens: int = 0

    @property
    def per_output_token(self) -> float | None:
        """Decode seconds per token after the first (None with fewer than two tokens)."""
        if self.output_tokens < 2:
            return None
        return (self.total - self.ttft) / (self.output_tokens - 1)


@dataclass
class GenerationResult:
    """One generated sequence.

    ``complete`` is True only when the constraint's language accepts the text
    (the grammar could end there); ``value`` is the parsed object, set only
    when ``complete`` and the independent check (``json`` + ``jsonschema``,
    pydantic, ``re``) passed.  ``finish_reason``: "stop" (EOS), "length"
    (max_new_tokens / context), "stop_sequence" (a stop string was hit).
    ``speculative`` holds the speculative core's counters when it decoded the text.
    """

    text: str
    value: Any
    tokens: list[int]
    finish_reason: str
    complete: bool
    usage: Usage = field(default_factory=Usage)
    validation_error: str | None = None
    timing: Timing = field(default_factory=Timing)
    constrained: bool = False
    speculative: dict | None = None    # speculative=...: target calls, steps, drafted/accepted tokens

    @property
    def valid(self) -> bool:
        return self.complete and self.validation_error is None

    def raise_for_incomplete(self) -> "GenerationResult":
        """Raise :class:`GenerationError` unless the output is complete and validated."""
        if not self.complete:
            raise GenerationError(
                f"generation stopped ({self.finish_reason}) after {len(self.tokens)} tokens before the "
                f"output was complete: {self.text[-80:]!r}; raise max_new_tokens")
        if self.validation_error:
            raise GenerationError(f"output failed validation: {self.validation_error}")
        return self
