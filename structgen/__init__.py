"""structgen: exact token masks for JSON Schema, regex and context-free grammars."""
from .errors import (StructgenError, GrammarError, RegexError, SchemaError,
                     UnsupportedKeywordError, CompileLimitError, ModelLoadError, GenerationError)

__version__ = "0.1.0"
