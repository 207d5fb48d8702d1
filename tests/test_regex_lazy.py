"""Lazy quantifiers in lexer terminals: a terminal in the delimiter form lexes exactly like
Python's ``re.match`` (Lark's lexer), and other lazy forms are refused."""
from __future__ import annotations

import random
import re

import pytest

from structgen.errors import GrammarError, RegexError
from structgen.grammar import grammar_from_lark
from structgen.grammar.ir import Terminal
from structgen.regex import compile_terminal
from structgen.regex.shortest import lazy_parts

# (pattern, its opening characters, its closing ones): samples are opener + a random body in
# which the closer, its pieces and the body's special characters appear often
DELIMITER_PATTERNS = [
    (r'".*?"', '"', '"'),                                   # syncode go/java strings
    (r"`.*?`", "`", "`"),
    (r"/\*(.|\n)*?\*/", "/*", "*/"),                          # C block comment
    (r"<!--(.|\n)*?-->", "<!--", "-->"),
    (r'"(?:[^"\\]|\\.)*?"', '"', '"'),                        # escapes inside, lazy anyway
    (r"\/([^\/\\\n]|\\.)+?\/[imslux]*", "/", "/"),            # a regex literal, flags after it
    (r'".*?"x', '"', '"x'),
    (r"#+?x", "#", "x"),
    (r"(?i)'.*?'", "'", "'"),
]
ALPHABET = ['"', "`", "/", "*", "\\", "\n", "<", "!", "-", ">", "a", "x", "'", "i", "#", "é"]


def munch(dfa, data: bytes) -> bytes | None:
    """The lexeme a maximal-munch lexer cuts from the start of ``data`` with this terminal alone
    (run while the DFA lives; the bytes read must then be accepted), or None."""
    state, i = 0, 0
    while i < len(data):
        nxt = int(dfa.transitions[state, data[i]])
        if nxt < 0:
            break
        state, i = nxt, i + 1
    return data[:i] if dfa.accepting[state] else None


def python_lexeme(pattern: str, text: str) -> bytes | None:
    m = re.match(pattern, text)
    return m.group().encode() if m and m.group() else None


@pytest.mark.parametrize("pattern,opener,closer", DELIMITER_PATTERNS)
def test_delimiter_terminal_lexes_like_python_re(pattern, opener, closer):
    assert lazy_parts(pattern) is not None
    dfa = compile_terminal(Terminal(regex=pattern, shortest=True))
    rng = random.Random(pattern)
    pieces = ALPHABET + [closer, closer[:1], closer[-1:]] * 3
    checked = matched = 0
    for _ in range(4000):
        body = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        text = (opener + body) if rng.random() < 0.9 else body
        want = python_lexeme(pattern, text)
        # the lexer cuts the same lexeme (or none) as Python's re, whatever follows it
        assert munch(dfa, text.encode()) == want, (pattern, text, want)
        checked += 1
        matched += want is not None
    assert matched > checked // 5   # the samples reach the interesting cases


@pytest.mark.parametrize("pattern", [r"a*?b+", r"(a|ab)*?c", r"(\\x|[^x])+?x", r"(a.*?b)+", r"a.*?b.*?c"])
def test_other_lazy_forms_are_refused(pattern):
    with pytest.raises(RegexError, match="delimiter form"):
        lazy_parts(pattern)
    with pytest.raises(GrammarError, match="terminal T: a lazy quantifier"):
        grammar_from_lark(f"start: T\nT: /{pattern}/")


def test_lark_string_terminal_ends_at_first_quote():
    g = grammar_from_lark('start: (S | N)+\nS: /".*?"/\nN: /[a-z]+/\n%ignore " "')
    from structgen.engine import accepts_text
    assert g.terminals["S"].shortest
    assert accepts_text(g, '"ab" x "cd"')        # greedy lexing would run to the last quote and die
    assert accepts_text(g, '"a""b"')
    assert not accepts_text(g, '"a"b"')          # "a", b, then an unclosed string


def test_full_match_regex_keeps_its_language():
    """Outside a lexer laziness does not change a full-match language."""
    from structgen.regex import compile_regex
    lazy, greedy = compile_regex(r'".*?"'), compile_regex(r'".*"')
    for s in ['""', '"a"b"', '"a"', '"a']:
        assert lazy.matches(s.encode()) == greedy.matches(s.encode()) == bool(re.fullmatch(r'".*"', s))
