"""Load every numba kernel of the mask engine before the first real mask.

Numba loads a cached kernel on its first call (tens of milliseconds each), so
without this the first masks of a process, or the first time a cache grows,
pay for it.  Processes that serve masks (the server, benchmarks before they
fork) call :func:`warm_up` once at start.
"""
from __future__ import annotations


def warm_up(tokenizer) -> None:
    """Run a tiny grammar through both parsers and every kernel path, for ``tokenizer``."""
    from ..grammar import grammar_from_lark, grammar_from_regex
    from .compile import compile_grammar
    from .compiled import token_trie_for
    from .lr_walk import SubwalkCache
    from .slices import BOUNDED_LENGTHS, bounded_slice

    trie = token_trie_for(tokenizer)
    for sl in trie.slices:   # maxLength strings' cuts (11 ms, 6 MB on Qwen); others at first use
        if sl.name == "json-string-body":
            for bound in BOUNDED_LENGTHS:
                bounded_slice(trie, sl, bound)
    nested = grammar_from_lark('start: e\ne: "(" e ")" | N ("," N)*\nN: /[0-9]+/\n%ignore " "')
    text = "(" * 10 + "1,2" + ")" * 10
    for grammar in (nested, grammar_from_regex(r"[a-z]+[0-9]{0,3}")):
        for parser in ("glr", "earley"):
            compiled = compile_grammar(grammar, tokenizer, cache=False, parser=parser)
            m = compiled.matcher()
            for t in tokenizer.encode(text if grammar is nested else "abc12"):
                m.next_token_mask_words()
                if not m.accept_token(t):
                    break
            m.next_token_mask_words()
    cache = SubwalkCache(n_int64=8, entries=2)   # the growth path (rehash) is a kernel too
    cache.ctr[:] = (2, 6)
    cache.grow_if_needed()
