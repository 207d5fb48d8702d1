"""Speculative constrained decoding: drafters + one-pass verification with the KV cache.

`constrained_decode` is the non-speculative reference; `speculative_decode` produces the
same greedy output (and the same sampling distribution) in fewer target calls.
"""
from .decode import DecodeResult, constrained_decode
from .drafters import (AcceptanceStats, AdaptiveTreeDrafter, ChainDrafter, DraftLength, DraftModelDrafter, DraftProposal, Drafter, GrammarTreeDrafter,
                       GatedDrafter, JumpForwardDrafter,
                       LayerSkipDrafter, PayoffGate, ProgressionDrafter, PromptLookupDrafter, StepFeedback, TokenRecyclingDrafter, VerifyCost)
from .sampling import GREEDY, SamplingParams
from .tree import DraftTree
from .verify import AcceptanceRule, speculative_decode

__all__ = ["AcceptanceRule", "AcceptanceStats", "AdaptiveTreeDrafter", "ChainDrafter", "DecodeResult", "DraftLength", "DraftModelDrafter", "DraftProposal", "Drafter", "DraftTree", "GatedDrafter", "GrammarTreeDrafter",
           "GREEDY", "JumpForwardDrafter", "LayerSkipDrafter", "PayoffGate", "ProgressionDrafter", "PromptLookupDrafter", "SamplingParams",
           "StepFeedback", "TokenRecyclingDrafter", "VerifyCost", "constrained_decode", "speculative_decode"]
