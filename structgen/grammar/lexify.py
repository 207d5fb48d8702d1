"""Turn regular sub-grammars of a character-level grammar into lexer terminals.

GBNF grammars are written character by character: a JSON string is a rule
over one-character classes.  Parsed that way every character is a lexeme and
the parser runs once per byte, which makes masks slow.  When a rule derives a
regular language (no recursion except a rule calling itself at one edge, i.e.
a star), it can be one terminal instead, walked by the lexer DFA in the
token trie.

The engine lexes by maximal munch: a lexeme goes on while any live terminal
can continue.  That is exact only if no valid parse needs a lexeme to stop
where another live terminal could go on, so a rule is turned into a terminal
only when, for every pair of terminals (X, Y) with at least one new terminal,
no string X accepts leaves Y alive on a byte that can start what follows X
(Y = X included).  Rules failing the check stay character-level: the
language never changes, only the speed.
"""
from __future__ import annotations

import numpy as np

from ..errors import StructgenError
from ..regex.quote import quote
from .ir import Grammar, Terminal

_MAX_REGEX_CHARS = 20_000
_MAX_DFA_STATES = 5_000
# pairs of terminals whose conflict is searched; past this the grammar stays character-level
# (same language, slower masks) rather than spending seconds of compile time
_MAX_PAIR_SEARCHES = 2_500

class _RegexOf:
    """Regex text of a nonterminal's language, or None when not (simply) regular."""

    def __init__(self, g: Grammar):
        self.g = g
        self.memo: dict[str, str | None] = {}
        self.visiting: set[str] = set()

    def symbol(self, sym: str) -> str | None:
        if sym in self.g.terminals:
            t = self.g.terminals[sym]
            if t.json_string or t.also_match or t.not_match:
                return None
            return quote(t.literal) if t.literal is not None else f"(?:{t.regex})"
        return self.rule(sym)

    def seq(self, alt) -> str | None:
        parts = []
        for s in alt:
            r = self.symbol(s)
            if r is None:
                return None
            parts.append(r)
        return "".join(parts)

    @staticmethod
    def union(res: list[str]) -> str:
        nonempty = sorted(set(r for r in res if r))
        body = "|".join(nonempty)
        if not nonempty:
            return ""
        return f"(?:{body})" + ("?" if len(nonempty) < len(res) and "" in res else "")

    def rule(self, name: str) -> str | None:
        if name in self.memo:
            return self.memo[name]
        if name in self.visiting:
            return None
        self.visiting.add(name)
        result = self._rule(name)
        self.visiting.discard(name)
        if result is not None and len(result) > _MAX_REGEX_CHARS:
            result = None
        self.memo[name] = result
        return result

    def _rule(self, name: str) -> str | None:
        alts = self.g.rules[name]
        head, tail, base = [], [], []
        for alt in alts:
            k = sum(1 for s in alt if s == name)
            if k == 0:
                base.append(alt)
            elif k == 1 and len(alt) > 1 and alt[0] == name:
                head.append(alt[1:])
            elif k == 1 and len(alt) > 1 and alt[-1] == name:
                tail.append(alt[:-1])
            else:
                return None
        if (head and tail) or not base:
            return None
        base_re = [self.seq(a) for a in base]
        loop_re = [self.seq(a) for a in head or tail]
        if any(r is None for r in base_re) or any(r is None for r in loop_re):
            return None
        b = self.union(base_re)
        if not loop_re:
            return b
        loop = f"(?:{'|'.join(sorted(set(loop_re)))})*"
        return b + loop if head else loop + b


def _after_one_byte(y_dfa) -> np.ndarray:
    """bool[256, 256]: row c = bytes Y can take after the single byte c (all False if Y dies on c)."""
    yt = y_dfa.transitions
    first = yt[0]
    out = np.zeros((256, 256), dtype=bool)
    alive = first >= 0
    out[alive] = yt[first[alive]] >= 0
    return out


def _continuations(x_dfa, y_dfa, y_after_one: np.ndarray) -> np.ndarray:
    """Bytes Y can still take right after some non-empty string X accepts (bool[256]).

    X and Y conflict when one of these bytes can start what follows X."""
    xt, yt = x_dfa.transitions, y_dfa.transitions
    out = np.zeros(256, dtype=bool)
    if xt.shape[0] == 2 and not (xt[1] >= 0).any():
        # one byte, then accept with nowhere to go (ASCII classes): no search needed; a
        # two-state DFA that loops ([a-z]+) is searched like any other
        return y_after_one[xt[0] >= 0].any(axis=0)
    seen = {(0, 0)}
    stack = [(0, 0)]
    while stack:
        a, b = stack.pop()
        both = (xt[a] >= 0) & (yt[b] >= 0)
        for code in np.unique(xt[a][both].astype(np.int64) * (1 << 32) + yt[b][both]).tolist():
            pair = (code >> 32, code & 0xFFFFFFFF)
            if pair in seen:
                continue
            seen.add(pair)
            na, nb = pair
            if x_dfa.accepting[na]:
                out |= yt[nb] >= 0
            stack.append(pair)
    return out


_WORD_BYTES = np.zeros(256, dtype=bool)
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_":
    _WORD_BYTES[_c] = True


def _word_kind(term: Terminal) -> str:
    """'w' if every byte the terminal uses is a word character ([A-Za-z0-9_]), 'n' if none is,
    '?' otherwise (or when it cannot be compiled here)."""
    from ..regex import compile_terminal
    try:
        dfa = compile_terminal(term, max_states=_MAX_DFA_STATES)
    except StructgenError:
        return "?"
    used = (dfa.transitions >= 0).any(axis=0)
    if not used[~_WORD_BYTES].any():
        return "w"
    return "n" if not used[_WORD_BYTES].any() else "?"


def _extract_terminal_runs(g: Grammar) -> Grammar:
    """Runs of two or more terminals inside an alternative ("t" "r" "u" "e") become rules,
    so they can be lexified like any other regular rule.

    A run is cut where it passes between word characters and others ("while" "(" is two
    runs): a keyword run that ran on into punctuation would still be alive where an
    identifier terminal ends, and the pair would fail the maximal-munch check."""
    rules: dict[str, list[tuple[str, ...]]] = {}
    runs: dict[tuple[str, ...], str] = {}
    kind = {name: _word_kind(t) for name, t in g.terminals.items()}
    # loops of terminals (x* or x+ written as rules) join runs too: [a-z] [a-z0-9]* is one run
    for name, alts in g.rules.items():
        parts = {s for alt in alts for s in alt if s != name}
        if parts and parts <= set(g.terminals) and any(name in alt for alt in alts):
            kinds = {kind[s] for s in parts}
            kind[name] = kinds.pop() if len(kinds) == 1 else "?"

    def close(run: list[str], out: list[str]) -> None:
        if len(run) >= 2 and any(s in g.terminals for s in run):
            key = tuple(run)
            if key not in runs:
                runs[key] = f"run#{len(runs) + 1}"
            out.append(runs[key])
        else:
            out.extend(run)

    for name, alts in g.rules.items():
        if name in kind:   # a loop keeps its shape (regular only as "itself, then a terminal")
            rules[name] = list(alts)
            continue
        new_alts = []
        for alt in alts:
            out: list[str] = []
            run: list[str] = []
            for sym in alt:
                if sym in kind and (not run or kind[sym] == kind[run[-1]] != "?"):
                    run.append(sym)
                    continue
                close(run, out)
                run = [sym] if sym in kind else []
                if sym not in kind:
                    out.append(sym)
            close(run, out)
            new_alts.append(tuple(out))
        rules[name] = new_alts
    for run, name in runs.items():
        rules[name] = [run]
    return Grammar(start=g.start, rules=rules, terminals=dict(g.terminals), ignore=list(g.ignore),
                   source=g.source, lexeme_conflicts=g.lexeme_conflicts, keywords=g.keywords)


def lexify_regular_rules(g: Grammar) -> Grammar:
    """Same language, with regular non-nullable rules turned into terminals where exact."""
    from ..regex import compile_terminal

    original = g
    g = _extract_terminal_runs(g)

    regex_of = _RegexOf(g)
    nullable = g.nullable_rules()
    tried = {g.start}

    def candidates_below(roots: list[str]) -> list[str]:
        """The outermost regular, non-nullable rules below ``roots`` not tried yet: the first
        candidates, and when a candidate fails, the parts it is made of (``ident ::= [a-z]
        [a-z0-9]* ws`` may fail whole while ``[a-z] [a-z0-9]*`` inside it is exact)."""
        found: list[str] = []
        stack = list(roots)
        while stack:
            for alt in g.rules[stack.pop()]:
                for s in alt:
                    if s not in g.rules or s in tried:
                        continue
                    tried.add(s)
                    single = len(g.rules[s]) == 1 and len(g.rules[s][0]) == 1 and g.rules[s][0][0] in g.terminals
                    if s not in nullable and not single and regex_of.rule(s) is not None:
                        found.append(s)
                    else:
                        stack.append(s)
        return found

    candidates = candidates_below([g.start])
    chosen = set(candidates)
    dfa_cache: dict[str, object] = {}
    continuation_cache: dict[tuple[str, str], np.ndarray] = {}
    after_one: dict[str, np.ndarray] = {}
    while chosen:
        new = _rebuild(g, chosen, regex_of)
        dfas = {}
        failed = None
        for name, term in new.terminals.items():
            key = name if name.startswith("lex:") else f"t:{name}"
            if key not in dfa_cache:
                try:
                    dfa_cache[key] = compile_terminal(term, max_states=_MAX_DFA_STATES)
                except StructgenError:
                    dfa_cache[key] = None
            if dfa_cache[key] is None:
                failed = name
                break
            dfas[name] = dfa_cache[key]
        if failed is not None:
            if not failed.startswith("lex:"):
                return original
            chosen.discard(failed[4:])
            chosen |= set(candidates_below([failed[4:]]))
            continue
        follow = new.terminal_followers()
        first = {n: dfas[n].transitions[0] >= 0 for n in new.terminals}
        bad: set[str] = set()
        lexed = [n for n in new.terminals if n.startswith("lex:")]
        for x in new.terminals:
            stop = np.zeros(256, dtype=bool)
            for f in follow[x]:
                if f:
                    stop |= first[f]
            if not stop.any():
                continue
            # Y must be a new terminal: a one-character Y is never still alive (with somewhere to
            # go) after X accepted a non-empty string of whole characters
            for y in lexed:
                # of two new terminals the bigger one goes (its parts are tried next)
                culprit = y if not x.startswith("lex:") or len(new.terminals[y].regex) > len(
                    new.terminals[x].regex) else x
                if culprit in bad or not np.any(first[x] & first[y]):
                    continue  # both must be alive on the same first byte to conflict
                cont = continuation_cache.get((x, y))
                if cont is None:
                    if y not in after_one:
                        after_one[y] = _after_one_byte(dfas[y])
                    if len(continuation_cache) >= _MAX_PAIR_SEARCHES:
                        return original
                    cont = continuation_cache[(x, y)] = _continuations(dfas[x], dfas[y], after_one[y])
                hit = bool(np.any(cont & stop))
                if hit:
                    bad.add(culprit)  # every culprit of this pass goes at once (fewer rebuilds)
        if not bad:
            return new
        dropped = [b[4:] for b in bad]
        chosen -= set(dropped)
        chosen |= set(candidates_below(dropped))
    return original


def _rebuild(g: Grammar, chosen: set[str], regex_of: _RegexOf) -> Grammar:
    terminals = dict(g.terminals)
    for n in chosen:
        terminals["lex:" + n] = Terminal(regex=regex_of.rule(n))
    rules = {}
    for name, alts in g.rules.items():
        if name in chosen:
            continue
        rules[name] = [tuple("lex:" + s if s in chosen else s for s in alt) for alt in alts]
    new = Grammar(start=g.start, rules=rules, terminals=terminals, ignore=list(g.ignore), source=g.source,
                  lexeme_conflicts=g.lexeme_conflicts, keywords=g.keywords)
    reach = new.reachable_rules()
    new.rules = {n: a for n, a in new.rules.items() if n in reach}
    used = {s for alts in new.rules.values() for alt in alts for s in alt if s in terminals} | set(g.ignore)
    new.terminals = {n: t for n, t in terminals.items() if n in used}
    return new
