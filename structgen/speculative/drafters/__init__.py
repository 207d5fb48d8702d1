"""Drafters: draft model, prompt lookup, token recycling, layer skipping, jump-forward."""
from .adaptive import AcceptanceStats, AdaptiveTreeDrafter, VerifyCost
from .chain import ChainDrafter
from .base import DraftLength, DraftProposal, Drafter, StepFeedback, WrappingDrafter, take_valid
from .jumpforward import JumpForwardDrafter
from .model import AutoregressiveDrafter, DraftModelDrafter
from .ngram import PromptLookupDrafter
from .payoff import GatedDrafter, PayoffGate
from .progression import ProgressionDrafter
from .recycling import TokenRecyclingDrafter
from .selfspec import LayerSkipDrafter
from .tree import GrammarTreeDrafter

__all__ = ["AcceptanceStats", "AdaptiveTreeDrafter", "AutoregressiveDrafter", "ChainDrafter", "DraftLength", "DraftModelDrafter", "DraftProposal", "Drafter", "GatedDrafter", "GrammarTreeDrafter",
           "JumpForwardDrafter", "LayerSkipDrafter", "PayoffGate", "ProgressionDrafter", "PromptLookupDrafter", "StepFeedback",
           "TokenRecyclingDrafter", "VerifyCost", "WrappingDrafter", "take_valid"]
