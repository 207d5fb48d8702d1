"""TokenizerInfo against the real tokenizers of the bundled models.

The reference is the tokenizer itself: the bytes of the ids it produces for a text
must concatenate to exactly that text's UTF-8, for every text.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from structgen.errors import StructgenError
from structgen.vocab import BYTE_TO_CHAR, TokenizerInfo, VocabularyError, is_incomplete_utf8

from conftest import REAL_TOKENIZER_MODELS, get_real_tokenizer_info

# eos_token_id lists of the models' generation configs (end of turn + end of text).
EXPECTED_EOS = {
    "smollm2-135m": {"<|im_end|>", "<|endoftext|>"},
    "qwen2.5-coder-0.5b": {"<|im_end|>", "<|endoftext|>"},
    "gemma-3-270m": {"<eos>", "<end_of_turn>"},
}
CHAT_SPECIALS = {
    "smollm2-135m": ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<file_sep>"],
    "qwen2.5-coder-0.5b": ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|fim_prefix|>"],
    "gemma-3-270m": ["<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>", "<unused0>"],
}

SEGMENTS = [
    "hello", "World", " the", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "0", "42",
    "3.14159", "-7e+10", "1234567890", "ünïcödé", "café", "naïve", "日本語", "中文字符", "한국어",
    "Ελληνικά", "русский", "עברית", "العربية", "हिन्दी", "ไทย", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷",
    "\u200b", "\u00a0", "\ufeff", "{", "}", "[", "]", '"', "\\", "\\n", ":", ",", "def f(x):",
    "    return x", "if (a && b) {", "SELECT * FROM t;", "<div>", "</div>", "'s", "'ll", "...",
    "—", "€", "\x00", "\x7f", "\x1b[0m", "𝔘𝔫𝔦", "\U0010fffd",
    # spellings of special tokens must tokenize as plain text
    "<|im_end|>", "<|endoftext|>", "<eos>", "<end_of_turn>", "<bos>", "<0x41>",
]


def random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        parts = [rng.choice(SEGMENTS) for _ in range(rng.randint(1, 12))]
        if rng.random() < 0.3:   # random code points from several planes
            parts.append("".join(chr(rng.choice([rng.randint(0x20, 0x7e), rng.randint(0xa0, 0x2fff),
                                                 rng.randint(0x3000, 0xd7ff),
                                                 rng.randint(0x1f300, 0x1faff)]))
                                 for _ in range(rng.randint(1, 8))))
        texts.append("".join(parts))
    return texts


@pytest.fixture(params=REAL_TOKENIZER_MODELS)
def info(request) -> TokenizerInfo:
    return get_real_tokenizer_info(request.param)


def test_roundtrip_seeded_texts(info):
    before = info.non_canonical_encodes
    for text in random_texts(400, seed=info.vocab_size):
        ids = info.encode(text)
        assert info.decode_bytes(ids) == text.encode("utf-8"), (text, ids)
        assert not set(ids) & info.special_ids, (text, ids)
    assert info.non_canonical_encodes == before, "encode() fell back from the tokenizer's own output"


def test_non_nfc_text_keeps_its_bytes(info):
    """Qwen normalizes to NFC; encode() must still return the text's own bytes."""
    before = info.non_canonical_encodes
    for text in ["e\u0301", "\u0b22\u0b3c", "A\u030a", "\u212b", "\u1e9b\u0323"]:
        assert info.decode_bytes(info.encode(text)) == text.encode("utf-8")
    assert info.non_canonical_encodes == before


@pytest.mark.parametrize("name", REAL_TOKENIZER_MODELS)
@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=0, max_size=60))
def test_roundtrip_hypothesis_texts(name, text):
    info = get_real_tokenizer_info(name)
    data = text.encode("utf-8")
    if not spellable(info, data):
        with pytest.raises(VocabularyError, match="has no token"):
            info.encode(text)
        return
    before = info.non_canonical_encodes
    ids = info.encode(text)
    assert info.decode_bytes(ids) == data
    # SentencePiece tokenizers spell a literal U+2581 (their space marker) as the space token:
    # their own encoding is lossy there, so encode() must fall back to the exact bytes, once
    lossy = info.kind == "sentencepiece" and SP_SPACE in text
    assert info.non_canonical_encodes == before + (1 if lossy else 0)


SP_SPACE = "\u2581"


@pytest.mark.parametrize("name", REAL_TOKENIZER_MODELS)
def test_sentencepiece_space_marker_in_text_is_spelled_exactly(name):
    info = get_real_tokenizer_info(name)
    for text in [SP_SPACE, f"a{SP_SPACE}b", f"x {SP_SPACE}"]:
        before = info.non_canonical_encodes
        ids = info.encode(text)
        assert info.decode_bytes(ids) == text.encode("utf-8")
        assert info.non_canonical_encodes == before + (1 if info.kind == "sentencepiece" else 0)


def spellable(info: TokenizerInfo, data: bytes) -> bool:
    """Independent of TokenizerInfo's bookkeeping: every byte has a one-byte token in
    the tokenizer's own vocabulary (spelled per the tokenizer family)."""
    if info.kind != "byte_level":
        return True   # SentencePiece with byte fallback spells every byte
    if id(info) not in _SPELLABLE:
        vocab = info.hf_tokenizer.get_vocab()
        _SPELLABLE[id(info)] = {b for b in range(256) if BYTE_TO_CHAR[b] in vocab}
    return set(data) <= _SPELLABLE[id(info)]


_SPELLABLE: dict[int, set[int]] = {}


def test_missing_bytes_of_smollm2():
    """SmolLM2's vocabulary lacks some bytes: the tokenizer silently drops them
    (so its output is not the text), and encode() must refuse instead."""
    info = get_real_tokenizer_info("smollm2-135m")
    vocab = info.hf_tokenizer.get_vocab()
    expected = {b for b in range(256) if BYTE_TO_CHAR[b] not in vocab}
    assert info.missing_bytes == expected and 0xF1 in expected
    text = "a\U00040000b"                     # UTF-8 f1 80 80 80
    dropped = info.hf_tokenizer.encode(text, add_special_tokens=False)
    assert info.decode_bytes(dropped) != text.encode()
    with pytest.raises(VocabularyError, match="0xf1 at byte offset 1"):
        info.encode(text)
    assert get_real_tokenizer_info("qwen2.5-coder-0.5b").missing_bytes == frozenset()
    assert get_real_tokenizer_info("gemma-3-270m").missing_bytes == frozenset()


def test_encode_matches_tokenizer_on_plain_text(info):
    """encode() is the tokenizer's own tokenization (no special tokens added)."""
    tok = info.hf_tokenizer
    for text in ["Hello, world!", " leading space", "x = [1, 2, 3]\n", "naïve café 😀"]:
        assert info.encode(text) == tok.encode(text, add_special_tokens=False)


def test_special_tokens_have_no_bytes(info):
    tok = info.hf_tokenizer
    name = next(n for n in REAL_TOKENIZER_MODELS if get_real_tokenizer_info(n) is info)
    vocab = tok.get_vocab()
    for text in CHAT_SPECIALS[name]:
        tid = vocab[text]
        assert tid in info.special_ids and info.token_bytes[tid] == b"", text
    for tid in tok.all_special_ids:
        assert tid in info.special_ids and info.token_bytes[tid] == b""
    for tid, added in tok.added_tokens_decoder.items():
        if added.special:
            assert tid in info.special_ids and info.token_bytes[tid] == b""
    # no non-special token is empty, and every id has an entry
    assert len(info.token_bytes) == info.vocab_size
    empty = {i for i, b in enumerate(info.token_bytes) if not b}
    assert empty == set(info.special_ids)


def test_eos_ids(info):
    name = next(n for n in REAL_TOKENIZER_MODELS if get_real_tokenizer_info(n) is info)
    vocab = info.hf_tokenizer.get_vocab()
    assert info.eos_ids == {vocab[t] for t in EXPECTED_EOS[name]}
    assert info.hf_tokenizer.eos_token_id in info.eos_ids
    assert info.eos_ids <= info.special_ids


def test_vocab_size_is_model_logits_size(info):
    from structgen.models import model_vocab_size
    name = next(n for n in REAL_TOKENIZER_MODELS if get_real_tokenizer_info(n) is info)
    assert info.vocab_size == model_vocab_size(name) >= len(info.hf_tokenizer)


def test_ids_beyond_tokenizer_are_special():
    tok_info = get_real_tokenizer_info("smollm2-135m")
    tok = tok_info.hf_tokenizer
    wide = TokenizerInfo.from_huggingface(tok, vocab_size=len(tok) + 64)
    assert wide.vocab_size == len(tok) + 64
    assert all(wide.token_bytes[i] == b"" and i in wide.special_ids
               for i in range(len(tok), len(tok) + 64))
    assert wide.token_bytes[: len(tok)] == tok_info.token_bytes[: len(tok)]
    assert wide.fingerprint != tok_info.fingerprint


def test_qwen_gguf_padding_tokens_are_special():
    info = get_real_tokenizer_info("qwen2.5-coder-0.5b")
    tok = info.hf_tokenizer
    pads = [i for i in range(len(tok)) if tok.convert_ids_to_tokens(i) == f"[PAD{i}]"]
    assert pads, "expected llama.cpp [PAD<id>] filler tokens in the Qwen GGUF vocabulary"
    assert all(i in info.special_ids and info.token_bytes[i] == b"" for i in pads)
    # the two non-special added tokens are ordinary text
    tid = tok.get_vocab()["<tool_call>"]
    assert tid not in info.special_ids and info.token_bytes[tid] == b"<tool_call>"


def test_byte_level_single_byte_tokens():
    """Byte-level vocabularies spell byte b as the GPT-2 table's character."""
    for name in ("smollm2-135m", "qwen2.5-coder-0.5b"):
        info = get_real_tokenizer_info(name)
        vocab = info.hf_tokenizer.get_vocab()
        for b in range(256):
            if b in info.missing_bytes:
                continue
            tid = vocab[BYTE_TO_CHAR[b]]
            assert info.token_bytes[tid] == bytes([b]), (name, b)
            assert bool(info.incomplete_utf8[tid]) == (b >= 0x80), (name, b)


def test_gemma_byte_fallback_tokens():
    info = get_real_tokenizer_info("gemma-3-270m")
    assert info.kind == "sentencepiece"
    vocab = info.hf_tokenizer.get_vocab()
    for b in range(256):
        tid = vocab[f"<0x{b:02X}>"]
        assert info.token_bytes[tid] == bytes([b])
        assert bool(info.incomplete_utf8[tid]) == (b >= 0x80)
    # the SentencePiece space
    assert info.token_bytes[vocab["\u2581the"]] == b" the"
    # a character the vocabulary lacks is spelt by byte-fallback tokens
    ids = info.encode("\U0010fffd")
    assert info.decode_bytes(ids) == "\U0010fffd".encode()


def test_incomplete_utf8_flags_agree_with_tokenizer_decode(info):
    """Independent check: the tokenizer's own decode of a token yields U+FFFD exactly when
    the token's bytes are not UTF-8 on their own; otherwise it yields those bytes."""
    tok = info.hf_tokenizer
    ids = [i for i in range(len(tok)) if i not in info.special_ids]
    rng = random.Random(0)
    flagged = [i for i in ids if info.incomplete_utf8[i]]
    sample = flagged + rng.sample(ids, 20000)
    texts = tok.batch_decode([[i] for i in sample], skip_special_tokens=False,
                             clean_up_tokenization_spaces=False)
    assert flagged, "every real vocabulary has partial-UTF-8 tokens"
    for i, text in zip(sample, texts):
        data = info.token_bytes[i]
        if info.incomplete_utf8[i]:
            assert "\ufffd" in text, (i, data, text)
        else:
            assert text.encode("utf-8") == data, (i, data, text)


def test_known_incomplete_examples():
    info = get_real_tokenizer_info("smollm2-135m")
    vocab = info.hf_tokenizer.get_vocab()
    emoji_head = vocab["Ġð\u0141\u013a"]          # b" \xf0\x9f\x98": space + 3 of the 4 bytes of an emoji
    assert info.token_bytes[emoji_head] == b" \xf0\x9f\x98" and info.incomplete_utf8[emoji_head]
    assert not info.incomplete_utf8[vocab["Ġthe"]]
    assert is_incomplete_utf8(b"\xe2\x82") and is_incomplete_utf8(b"\x82\xac")
    assert not is_incomplete_utf8("€".encode()) and not is_incomplete_utf8(b"")


def test_fingerprint_stable_and_sensitive():
    base = [b"a", b"b", b"ab", b""]
    one = TokenizerInfo.from_token_bytes(base, eos_ids=[3])
    two = TokenizerInfo.from_token_bytes(list(base), eos_ids=[3])
    assert one.fingerprint == two.fingerprint and len(one.fingerprint) == 64
    assert TokenizerInfo.from_token_bytes([b"a", b"b", b"ba", b""], eos_ids=[3]).fingerprint != one.fingerprint
    assert TokenizerInfo.from_token_bytes(base, eos_ids=[3], special_ids=[2]).fingerprint != one.fingerprint
    real = get_real_tokenizer_info("smollm2-135m")
    again = TokenizerInfo.from_huggingface(real.hf_tokenizer, vocab_size=real.vocab_size)
    assert again.fingerprint == real.fingerprint


def test_from_token_bytes_synthetic_vocabulary():
    vocab = [bytes([b]) for b in range(256)] + [b"ab", b"abc", b"\xe2\x82", b"<eos>"]
    info = TokenizerInfo.from_token_bytes(vocab, eos_ids=[259], special_ids=[])
    assert info.vocab_size == 260 and info.hf_tokenizer is None
    assert info.token_bytes[259] == b"" and 259 in info.special_ids and info.eos_ids == {259}
    assert info.encode("abcab") == [257, 256]           # greedy longest match
    assert info.decode_bytes(info.encode("x€y")) == "x€y".encode()
    assert info.incomplete_utf8[258] and info.incomplete_utf8[0x80] and not info.incomplete_utf8[256]
    assert isinstance(info.incomplete_utf8, np.ndarray) and info.incomplete_utf8.dtype == bool


def test_synthetic_errors_are_structgen_errors():
    info = TokenizerInfo.from_token_bytes([b"a", b""], eos_ids=[1])
    with pytest.raises(VocabularyError, match="0x62 at byte offset 1"):
        info.encode("ab")
    with pytest.raises(StructgenError, match="outside the vocabulary"):
        TokenizerInfo.from_token_bytes([b"a"], eos_ids=[5])
