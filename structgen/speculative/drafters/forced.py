"""Grammar-forced text as draft tokens, up to and including the grammar's end.

`matcher.forced_tokens()` holds back the last token of the forced text's canonical
tokenization, because the text that follows could merge with it into another token. When
the forced text runs to where the grammar is complete (the last `}` of a JSON object), only
an EOS can follow, so there is nothing to merge with: the held-back token and an EOS are
drafted too. Without them the end of every JSON output cost one target call per token
(`}`, `}`, EOS as three 1-token steps). Drafts are only proposals; the verifier decides.
"""
from __future__ import annotations

from collections.abc import Sequence


def forced_draft(matcher, limit: int, context: Sequence[int] | None = None) -> list[int]:
    """Up to `limit` grammar-forced tokens from the matcher's state (handed back unchanged): the
    canonical forced tokens and, where the forced text ends the grammar, its last token and an EOS."""
    if limit <= 0 or matcher.is_terminated():
        return []
    forced = list(matcher.forced_tokens())
    if len(forced) >= limit:
        return forced[:limit]
    n = matcher.accept_tokens(forced)
    try:
        tail = ending(matcher, context) if n == len(forced) else []
    finally:
        if n:
            matcher.rollback(n)
    return (forced[:n] + tail)[:limit]


def ending(matcher, context: Sequence[int] | None = None) -> list[int]:
    """The forced text from here as tokens plus an EOS when it completes the grammar, else [].

    The matcher is handed back unchanged. Needs the engine matcher's `forced_bytes` and
    `compiled` (a matcher with only `forced_tokens` gets []).
    """
    compiled = getattr(matcher, "compiled", None)
    if compiled is None or not hasattr(matcher, "forced_bytes"):
        return []                                   # a matcher without the engine's jump-forward API
    rest = matcher.forced_bytes(64)
    if not rest or not matcher.accept_string(rest):
        return []
    try:                                            # cheap test first: most forced text does not end the grammar
        complete = matcher.is_accepting()
    finally:
        matcher.rollback(1)
    if not complete:
        return []
    tok = compiled.tokenizer
    try:
        text = rest.decode("utf-8")
    except UnicodeDecodeError:
        return []
    ids = [int(i) for i in tok.encode(text)]
    if not ids or b"".join(tok.token_bytes[i] for i in ids) != rest:
        return []
    m = matcher.accept_tokens(ids)
    try:
        if m < len(ids) or not matcher.is_accepting():
            return []
        eos = eos_guess(matcher, context)
        return ids + ([eos] if eos is not None else [])
    finally:
        if m:
            matcher.rollback(m)


def eos_guess(matcher, context: Sequence[int] | None = None) -> int | None:
    """The EOS id the model most likely writes: the one seen last in the context (a chat template's
    end-of-turn token), else the smallest; None when the matcher takes none."""
    eos = [int(t) for t in matcher.compiled.eos_ids]
    if not eos:
        return None
    pick = None
    if context is not None and len(eos) > 1:
        seen = set(eos)
        for t in reversed(context):
            if int(t) in seen:
                pick = int(t)
                break
    for t in ([pick] if pick is not None else []) + eos:
        if matcher.validate_tokens([t]) == 1:
            return t
    return None
