"""Public generation API: generate(), stream(), the transformers LogitsProcessor, the grammar cache."""
from .cache import GrammarCache, default_cache
from .constraints import Constraint, ConstraintSpecError, make_constraint
from .generation import GenerationStream, generate, run_ids, stream
from .result import GenerationResult, Timing, Usage
from .sampling import SamplingParams


def __getattr__(name):  # keep `import structgen.api` light: transformers only when asked for
    if name == "StructgenLogitsProcessor":
        from .logits_processor import StructgenLogitsProcessor
        return StructgenLogitsProcessor
    raise AttributeError(name)


__all__ = ["generate", "stream", "GenerationResult", "GenerationStream", "Usage", "Timing", "SamplingParams",
           "GrammarCache", "default_cache", "Constraint", "ConstraintSpecError", "make_constraint",
           "StructgenLogitsProcessor", "run_ids"]
