"""Vocabulary layer: exact bytes of every token id, special and EOS sets."""
from .bytes_map import BYTE_TO_CHAR, CHAR_TO_BYTE, is_incomplete_utf8
from .tokenizer_info import END_TOKENS, TokenizerInfo, VocabularyError

__all__ = ["BYTE_TO_CHAR", "CHAR_TO_BYTE", "END_TOKENS", "TokenizerInfo", "VocabularyError",
           "is_incomplete_utf8"]
