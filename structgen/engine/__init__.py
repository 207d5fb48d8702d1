"""The mask engine: token trie x lexer DFAs x persistent Earley parser.

Public entry points: :func:`compile_grammar`, :class:`CompiledGrammar`,
:class:`Matcher`, :func:`allocate_token_bitmask`,
:func:`apply_token_bitmask_inplace`, :func:`accepts_text`.
"""
from .bitmask import allocate_token_bitmask, apply_token_bitmask_inplace, unpack_bitmask
from .compile import compile_grammar, accepts_text, byte_level_tokenizer
from .compiled import CompiledGrammar
from .matcher import Matcher
from .warmup import warm_up

__all__ = ["compile_grammar", "CompiledGrammar", "Matcher", "allocate_token_bitmask",
           "apply_token_bitmask_inplace", "unpack_bitmask", "accepts_text", "byte_level_tokenizer", "warm_up"]
