"""Lazy quantifiers in lexer terminals: the "shortest match" DFA of a delimiter pattern.

A full-match language ignores laziness, but a lexer does not: Lark lexes with Python's ``re``,
where ``/".*?"/`` ends at the first closing quote, while structgen cuts lexemes by maximal munch
over regular languages.  For the delimiter form

    A  X*?  D  [C]        A, D: fixed runs of characters; X: no string of it extends another;
                          C: an optional greedy run of one character class (regex flags after
                          a closing ``/``, say)

``re`` ends the lazy part at the first place D matches (X splits any text one way only, so
trying to stop before every repetition finds that place), then takes C greedily.  That is the
DFA of ``A X* D`` with every transition out of an accepting state removed (no match extends a
shorter one), followed by C.  Other lazy uses are refused: maximal munch would end them
elsewhere than ``re`` does.
"""
from __future__ import annotations

import numpy as np

from ..errors import RegexError
from .automaton import ast_to_dfa, minimize
from .bytedfa import ByteDFA, minimize_bytes
from .encode import expand
from .parser import Node, parse_with_lazy

FORM = ("a lazy quantifier is supported only in the delimiter form: fixed characters, one lazy "
        "repetition of a body no string of which extends another (e.g. /\"(.|\\n)*?\"/), fixed "
        "characters, optionally one greedy character class repetition (e.g. flags [imslux]*)")


def _prefix_free(node: Node) -> bool:
    """No string of ``node``'s language extends another."""
    dfa = minimize(ast_to_dfa(node, 10_000))
    return not any(acc and any(t >= 0 for t in row) for acc, row in zip(dfa.accept, dfa.trans))


def lazy_parts(pattern: str, dialect: str = "ecmascript") -> tuple[Node, Node | None] | None:
    """None without lazy quantifiers; else (``A X* D`` as one node, C or None); RegexError for
    a lazy use outside the delimiter form."""
    node, lazy = parse_with_lazy(pattern, dialect)
    if not lazy:
        return None
    items = list(node[1]) if node[0] == "cat" else [node]
    tail = None
    last = items[-1]
    if last is not lazy[0] and last[0] == "rep" and last[1][0] == "set" and last[2] == 0:
        tail = items.pop()
    at = [k for k, item in enumerate(items) if item is lazy[0]]
    if len(lazy) != 1 or not at or any(item[0] != "set" for k, item in enumerate(items) if k != at[0]) \
            or not _prefix_free(lazy[0][1]):
        raise RegexError(FORM, pattern=pattern)
    head = ("cat", tuple(items)) if len(items) > 1 else items[0]
    return head, tail


def shortest_match_dfa(pattern: str, max_states: int, dialect: str = "ecmascript") -> ByteDFA:
    """Byte DFA of ``pattern`` read as a lexer terminal with lazy delimiter semantics."""
    parts = lazy_parts(pattern, dialect)
    if parts is None:
        raise RegexError("no lazy quantifier: a shortest-match terminal needs the delimiter form",
                         pattern=pattern)
    head, tail = parts
    trans, acc = expand(minimize(ast_to_dfa(head, max_states)), False, max_states)
    ends = np.nonzero(acc)[0]
    trans[ends] = -1             # a lexeme ends where it first matches
    if tail is not None:
        # C starts on every accepting state, which has no transition of its own left
        t_trans, t_acc = expand(minimize(ast_to_dfa(tail, max_states)), False, max_states)
        off = trans.shape[0]
        shifted = np.where(t_trans >= 0, t_trans + off, -1).astype(np.int32)
        trans = np.concatenate([trans, shifted])
        acc = np.concatenate([acc, t_acc])
        trans[ends] = shifted[0]
        acc[ends] = t_acc[0]
    return minimize_bytes(trans, acc)
