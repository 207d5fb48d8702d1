"""Root walks of multi-state lexer vectors assembled from single-state ones (engine/root_split.py)
equal the whole walk, and masks built on them equal the Earley parser's."""
from __future__ import annotations

import numpy as np
import pytest

from structgen.engine import compile_grammar
from structgen.grammar import grammar_from_file, grammar_from_lark

from test_engine_glr import assert_same_masks_along
from test_engine_real_tokenizers import tokenizer_info

# keywords that are identifiers' prefixes (for, if, in, int, interface) and share first bytes
# after a prefix ("i": the keyword states of if/in/int and the identifier's are alive on "n")
KEYWORDS = r'''
start: stmt+
stmt: "for" NAME ":=" NAME ";" | "if" NAME "{" stmt* "}" | "in" NAME ";" | "int" NAME ";"
    | "interface" NAME ";" | NAME "=" (NAME | NUMBER | STRING) ";"
NAME: /[a-zA-Z_][a-zA-Z0-9_]*/
NUMBER: /[0-9]+/
STRING: /"[^"\n]*"/
%ignore /[ \t\n]+/
'''
KEYWORD_TEXTS = [
    'for i := n;if ok { in xs; int k; }interface io;',
    'format = "for if";\nif_x = 12; inner = info; for_each = interface_x;',
    'for forx := i;in int_;int integer;if iffy { x = "a b"; }',
]

# two terminals match "key": the vector after it holds two dead states accepting both
SAME_LEXEME = r'''
start: (a | b)+
a: X "=" NUM ";"
b: Y "-" NUM ";"
X: "key"
Y: /key|other/
NUM: /[0-9]+/
'''
SAME_LEXEME_TEXTS = ["key=1;other-3;key=22;"]


def grouped(root) -> dict[tuple[int, ...], list[int]]:
    mask, (nodes, noff, acc, aoff) = root
    out = {}
    for g in range(len(noff) - 1):
        key = tuple(acc[aoff[g]:aoff[g + 1]].tolist())
        assert key not in out, "a terminal set heads two groups"
        group = nodes[noff[g]:noff[g + 1]].tolist()
        assert group == sorted(group), "group nodes out of order"
        out[key] = group
    return out


def walked_vectors(compiled, texts, info) -> list[int]:
    """Every lexer vector the matchers' masks met along ``texts`` (their root walks exist)."""
    for text in texts:
        m = compiled.matcher()
        for t in info.encode(text):
            m.next_token_mask_words()
            assert m.accept_token(t), text
        m.next_token_mask_words()
    return sorted(compiled._glr_roots)


@pytest.mark.parametrize("tokenizer", ["qwen2.5-coder-0.5b", "smollm2-135m"])
@pytest.mark.parametrize("source,texts", [
    (KEYWORDS, KEYWORD_TEXTS),
    (SAME_LEXEME, SAME_LEXEME_TEXTS),
    ("sql", ["SELECT name, age FROM users WHERE age > 30 ORDER BY name",
             "INSERT INTO items (id, label) VALUES (1, 'first')"]),
    ("json", ['{"a": [1, 2.5e3, true, null], "b": {"c": "x\\n"}}']),
])
def test_split_root_walks_equal_whole_walks(tokenizer, source, texts):
    info = tokenizer_info(tokenizer)
    grammar = grammar_from_lark(source) if source in (KEYWORDS, SAME_LEXEME) else grammar_from_file(source)
    split = compile_grammar(grammar, info, parser="glr", cache=False, mask_cache_bytes=0)
    vids = walked_vectors(split, texts, info)
    assert split.stats["split_root_walks"] > 0, "no vector was assembled from single-state walks"
    assert split.stats["dead_root_walks"] > 0, "no vector that dies on every byte was met"
    whole = compile_grammar(grammar, info, parser="glr", cache=False)
    whole.split_roots = False
    multi = dead_shared = 0
    for vid in vids:
        states = split.lexer.vector_tuples[vid]
        w_vid = whole.lexer.intern(states)
        a, b = split._glr_root(vid), whole._glr_root(w_vid)
        assert np.array_equal(a[0], b[0]), f"tokens differ for lexer states {states}"
        assert grouped(a) == grouped(b), f"boundaries differ for lexer states {states}"
        multi += len(states) > 1
        dead_shared += (len(split.lexer.accepting_terminals(vid)) > 1
                        and not (split.lexer.trans[list(states)] >= 0).any())
    assert multi >= 1
    if source == SAME_LEXEME:
        assert dead_shared >= 1, "no vector ending two terminals' lexeme at once was met"


def test_keyword_masks_equal_earley_with_shared_first_bytes():
    """Along texts where keywords and identifiers share prefixes, GLR masks on split root walks
    equal Earley's; some vector had a first byte two of its states keep alive."""
    info = tokenizer_info("qwen2.5-coder-0.5b")
    grammar = grammar_from_lark(KEYWORDS)
    glr = compile_grammar(grammar, info, parser="glr", cache=False, mask_cache_bytes=0)
    earley = compile_grammar(grammar, info, parser="earley", cache=False)
    assert_same_masks_along(KEYWORD_TEXTS, glr, earley, info)
    shared = 0
    for vid in glr._glr_roots:
        states = glr.lexer.vector_tuples[vid]
        if len(states) > 1:
            alive = glr.lexer.trans[list(states)] >= 0
            shared += int((alive.sum(axis=0) > 1).any())
    assert shared > 0, "no vector with a shared first byte was met"
