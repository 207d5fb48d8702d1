"""IR nodes -> grammar rules and JSON-lexeme terminals (one nonterminal per distinct node).

Lexemes: punctuation literals, ``true``/``false``/``null``, number regexes,
``json_string`` terminals for strings and keys, and (flexible whitespace) one
bounded whitespace terminal.  JSON lexemes are self-delimiting, so maximal
munch among the allowed terminals is exact.

Objects are state machines over (slot, property count); arrays over
(position, contains count[, used values for uniqueItems]).  Unproductive
states are pruned at the end instead of being predicted up front.
"""
from __future__ import annotations

import json
from itertools import count as _count
from typing import Callable

from ..errors import CompileLimitError, SchemaError
from ..grammar.ir import Grammar, GrammarBuilder, Terminal
from ..regex import compile_terminal
from .algebra import Algebra, Refused, py_search
from .anyorder import AnyOrderObject
from .nodes import (ANY, AnyNode, Arr, Bool, Const, NeverNode, Node, Null, Num, Obj, Ref, Str, Union,
                    canonical, union)
from .formats import raw_spelling_regexes
from .numbers import NumberRefused, number_regexes
from .strings import ANY_CHARS, length_regex, not_in_set, quote, search_regex


_RAW_FORMATS = raw_spelling_regexes()

# any-order objects needing at most this many states are emitted as static rules (an LR engine can
# take them); bigger ones become a lazy rule family (anyorder.py)
EAGER_OBJECT_STATES = 24
# patternProperties with different schemas split undeclared keys into up to 2^n regions
MAX_PATTERN_PROPERTIES = 4


class Emitter:
    def __init__(self, algebra: Algebra, resolve: Callable[[str], Node], refuse: Callable[[str, str, str], None], *,
                 whitespace: str, max_whitespace: int, property_order: str, max_eager_object_states: int | None = None,
                 max_rules: int = 200_000, max_states: int = 50_000):
        self.A, self.resolve, self.refuse = algebra, resolve, refuse
        self.b = GrammarBuilder(source="json-schema")
        self.property_order = property_order
        self.max_eager_object_states = EAGER_OBJECT_STATES if max_eager_object_states is None \
            else max_eager_object_states
        self.lazy: dict[str, AnyOrderObject] = {}
        self.max_rules, self.max_states = max_rules, max_states
        self.memo: dict[Node, str | None] = {}
        self.ws: str | None = None
        if whitespace == "flexible":
            t = self.b.terminal(Terminal(regex=r"[ \t\n\r]{1,%d}" % max_whitespace), name="WS")
            self.ws = self.b.rule("ws", [(t,), ()])
        elif whitespace != "compact":
            raise ValueError(f"whitespace must be 'compact' or 'flexible', not {whitespace!r}")
        self._json_any: str | None = None
        self._states = 0

    # ------------------------------------------------------------ helpers
    def _w(self, *syms: str | None) -> tuple[str, ...]:
        """A sequence with the whitespace nonterminal where ``None`` stands."""
        out = []
        for s in syms:
            if s is None:
                if self.ws:
                    out.append(self.ws)
            else:
                out.append(s)
        return tuple(out)

    def _lit(self, text: str) -> str:
        return self.b.literal(text)

    def _check_limits(self) -> None:
        n = len(self.b.rules) + len(self.b.terminals)
        if n > self.max_rules:
            raise CompileLimitError(f"JSON schema grammar exceeds {self.max_rules} rules+terminals")

    def _state(self) -> None:
        self._state_count(1)

    def _state_count(self, k: int) -> None:
        self._states += k
        if self._states > self.max_states:
            raise CompileLimitError(f"JSON schema grammar exceeds {self.max_states} object/array states")

    # ------------------------------------------------------------ dispatch
    def emit(self, n: Node) -> str | None:
        if n in self.memo:
            return self.memo[n]
        self._check_limits()
        if isinstance(n, NeverNode):
            return None
        if isinstance(n, Ref):
            name = self.b.fresh("ref")
            self.memo[n] = name
            self.b.rules[name] = []
            body = self.emit(self.resolve(n.key))
            if body is not None:
                self.b.rules[name].append((body,))
            return name
        if isinstance(n, AnyNode):
            sym = self.json_any()
        elif isinstance(n, Union):
            alts = [s for s in (self.emit(o) for o in n.options) if s is not None]
            sym = self.b.rule(self.b.fresh("anyof"), [(s,) for s in alts]) if alts else None
        elif isinstance(n, Null):
            sym = self._lit("null")
        elif isinstance(n, Bool):
            sym = self.b.rule(self.b.fresh("bool"), [(self._lit("true"),), (self._lit("false"),)])
        elif isinstance(n, Const):
            sym = self._const(n)
        elif isinstance(n, Num):
            sym = self._num(n)
        elif isinstance(n, Str):
            sym = self._str(n)
        elif isinstance(n, Arr):
            sym = self._arr(n)
        elif isinstance(n, Obj):
            sym = self._obj(n)
        else:
            raise AssertionError(n)
        self.memo[n] = sym
        return sym

    # ------------------------------------------------------------ scalars
    def _const(self, n: Const) -> str | None:
        v = n.value
        if v is None:
            return self._lit("null")
        if isinstance(v, bool):
            return self._lit("true" if v else "false")
        if isinstance(v, str):
            return self._string_literal(v)
        if isinstance(v, (int, float)):
            from .algebra import to_fraction
            from .numbers import NumberSpec
            f = to_fraction(v)
            return self._num(Num(NumberSpec(lo=f, hi=f)))
        if isinstance(v, list):
            from .nodes import const
            return self.emit(Arr(prefix=tuple(const(x) for x in v), items=NeverNode(), min_items=len(v)))
        from .nodes import const as mk
        return self.emit(Obj(props=tuple((k, mk(x)) for k, x in v.items()), required=frozenset(v),
                             additional=NeverNode()))

    def _string_literal(self, text: str) -> str:
        """A known string (property name, enum/const value) in its canonical JSON spellings.

        Only the two spellings serializers produce are accepted: raw UTF-8 and
        ASCII with ``\\uXXXX`` escapes (``json.dumps`` with ``ensure_ascii`` off/on).
        Other escape spellings of the same string (``"\\u0070rice"``) are
        valid JSON but refused on purpose: models wander into them, and
        literal terminals compile in microseconds instead of milliseconds.
        """
        raw = json.dumps(text, ensure_ascii=False)
        ascii_form = json.dumps(text, ensure_ascii=True)
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogate: only the escaped spelling exists
            return self.b.literal(ascii_form)
        first = self.b.literal(raw)
        if ascii_form == raw:
            return first
        return self.b.rule(self.b.fresh("str_lit"), [(first,), (self.b.literal(ascii_form),)])

    def _num(self, n: Num) -> str | None:
        try:
            alts = number_regexes(n.spec)
        except NumberRefused as e:
            self.refuse(str(e), "", "multipleOf")
            from .numbers import NumberSpec
            s = n.spec
            alts = number_regexes(NumberSpec(s.integer, s.lo, s.lo_excl, s.hi, s.hi_excl, None, s.fractional))
        if not alts:
            return None
        terms = [self.b.terminal(Terminal(regex=a[0], also_match=tuple(a[1:]))) for a in alts]
        if len(terms) == 1:
            return terms[0]
        return self.b.rule(self.b.fresh("num"), [(t,) for t in terms])

    def _str_terminal(self, min_len: int, max_len: int | None, regexes: tuple[str, ...]) -> str:
        """A string value terminal.  Strings of a printable-ASCII format (date-time, uuid, ipv4,
        hostname, ...) are accepted in their raw spelling only: it is the one every JSON
        serializer writes (no character of theirs is ever escaped), like the canonical spellings
        of property names, and the other spellings (``\\u0032`` for ``2``) would multiply the
        terminal's DFA by about six (the date-time format: 11k -> 66k byte states)."""
        regs = list(regexes)
        raw = not _RAW_FORMATS.isdisjoint(regs) if regs else False
        if min_len or max_len is not None:
            regs.append(length_regex(min_len, max_len))
        if not regs:
            regs = [ANY_CHARS]
        return self.b.terminal(Terminal(regex=regs[0], json_string=True, also_match=tuple(regs[1:]), canonical=raw))

    def _str(self, n: Str) -> str:
        return self._str_terminal(n.min_len, n.max_len, n.regexes)

    # ------------------------------------------------------------ generic JSON
    def json_any(self) -> str:
        """Any JSON value (objects open, any key order)."""
        if self._json_any:
            return self._json_any
        b = self.b
        value = b.fresh("json_value")
        self._json_any = value
        b.rules[value] = []
        string = self._str_terminal(0, None, ())
        number = self._num(Num())
        member = b.seq(*self._w(string, None, self._lit(":"), None, value, None))
        sep = b.seq(*self._w(self._lit(","), None))
        members = b.rule(b.fresh("members"), [])
        b.rules[members] += [(member,), (members, sep, member)]
        obj = b.rule(b.fresh("json_object"), [self._w(self._lit("{"), None, self._lit("}")),
                                               self._w(self._lit("{"), None, members, self._lit("}"))])
        elem = b.seq(*self._w(value, None))
        elems = b.rule(b.fresh("elements"), [])
        b.rules[elems] += [(elem,), (elems, sep, elem)]
        arr = b.rule(b.fresh("json_array"), [self._w(self._lit("["), None, self._lit("]")),
                                             self._w(self._lit("["), None, elems, self._lit("]"))])
        b.rules[value] += [(obj,), (arr,), (string,), (number,), (self._lit("true"),), (self._lit("false"),),
                           (self._lit("null"),)]
        return value

    # ------------------------------------------------------------ arrays
    def _arr(self, n: Arr) -> str | None:
        A, b = self.A, self.b
        contains = n.contains
        c_yes = c_no = None
        if contains is not None:
            try:
                c_neg = A.negate(contains)
            except Refused as e:
                self.refuse(f"contains: {e}", "", "contains")
                contains = None
        if n.max_items is not None:
            P = n.max_items
        else:
            P = max(len(n.prefix), n.min_items, 1)
        if contains is not None:
            kcap = n.max_contains + 1 if n.max_contains is not None else max(n.min_contains, 1)
        else:
            kcap = 0
        finite: dict[int, list[Const]] | None = None
        if n.unique and (n.max_items is None or n.max_items > 1):
            finite = {}
            for i in range(max(len(n.prefix), 0) + 1):
                s = n.prefix[i] if i < len(n.prefix) else n.items
                vals = self._finite(s)
                if vals is None:
                    self.refuse("uniqueItems over an infinite item domain", "", "uniqueItems")
                    finite = None
                    break
                finite[i] = vals
        sep = b.seq(*self._w(self._lit(","), None))
        states: dict[tuple, str] = {}
        elem_cache: dict[tuple, str | None] = {}

        def elem(s: Node) -> str | None:
            key = (s,)
            if key not in elem_cache:
                v = self.emit(s)
                elem_cache[key] = b.seq(*self._w(v, None)) if v is not None else None
            return elem_cache[key]

        pending: list[tuple[str, int, int, frozenset]] = []

        def state(i: int, k: int, used: frozenset) -> str:
            # registers the state; its rule is built from the worklist below, so long bounded
            # arrays (maxItems: 1000) do not recurse once per position
            key = (i, k, used)
            if key in states:
                return states[key]
            self._state()
            name = b.fresh("arr")
            states[key] = name
            b.rules[name] = []
            pending.append((name, i, k, used))
            return name

        def build(name: str, i: int, k: int, used: frozenset) -> None:
            alts = []
            if i >= n.min_items and (contains is None or k >= n.min_contains) and (n.max_items is None or i <= n.max_items):
                alts.append(())
            if n.max_items is None or i < n.max_items:
                s = n.prefix[i] if i < len(n.prefix) else n.items
                ni = i + 1 if i + 1 <= P else P
                lead = (sep,) if i > 0 else ()
                options: list[tuple[Node, int]] = []
                if contains is not None:
                    kk = min(k + 1, kcap)
                    if n.max_contains is None or k + 1 <= n.max_contains:
                        options.append((A.intersect(s, contains), kk))
                    options.append((A.intersect(s, c_neg), k))
                else:
                    options.append((s, k))
                for sch, nk in options:
                    if finite is not None:
                        dom = finite[min(i, len(n.prefix))]
                        for c in dom:
                            if c.text in used or isinstance(A.intersect(c, sch), NeverNode):
                                continue
                            e = elem(c)
                            if e is not None:
                                alts.append(lead + (e, state(ni, nk, used | {c.text})))
                    else:
                        e = elem(sch)
                        if e is not None:
                            alts.append(lead + (e, state(ni, nk, used)))
            b.rules[name] = alts

        start = state(0, 0, frozenset())
        while pending:
            build(*pending.pop())
        body = self._left_linear(start, set(states.values()))
        return b.seq(*self._w(self._lit("["), None, body, self._lit("]")))

    def _finite(self, s: Node) -> list[Const] | None:
        """The values of s if it is a small finite set (for uniqueItems)."""
        from .nodes import const
        if isinstance(s, Ref):
            s = self.resolve(s.key)
        if isinstance(s, Const):
            return [s]
        if isinstance(s, Bool):
            return [const(True), const(False)]
        if isinstance(s, Null):
            return [const(None)]
        if isinstance(s, NeverNode):
            return []
        if isinstance(s, Union):
            out: list[Const] = []
            for o in s.options:
                f = self._finite(o)
                if f is None:
                    return None
                out += [c for c in f if c not in out]
            return out if len(out) <= 12 else None
        return None

    # ------------------------------------------------------------ objects
    def _key_rule(self, key_term: str, value: str) -> str:
        return self.b.seq(*self._w(key_term, None, self._lit(":"), None, value, None))

    def _obj(self, n: Obj) -> str | None:
        A, b = self.A, self.b
        names = n.names
        declared: list[tuple[str, Node]] = []
        keys = [k for k, _ in n.props] + [k for k in sorted(n.required) if n.prop(k) is None]
        for k in keys:
            v = A.value_schema(n, k)
            if not A.member(k, names):
                v = NeverNode()
            declared.append((k, v))
        dkeys = [k for k, _ in declared]
        # extra (undeclared) keys: groups of (key terminal, value node)
        extras: list[tuple[str, Node]] = []
        finite_names = self._finite(names) if not isinstance(names, AnyNode) else None
        if finite_names is not None:
            for c in finite_names:
                k = c.value
                if isinstance(k, str) and k not in dkeys:
                    v = A.value_schema(n, k)
                    declared.append((k, v))
                    dkeys.append(k)
            key_regs: list[str] | None = None  # no other keys allowed
        else:
            key_regs = [not_in_set(dkeys)] if dkeys else []
            nm = A.intersect(names, Str())
            if isinstance(nm, NeverNode):
                key_regs = None
            elif isinstance(nm, Str):
                key_regs += list(nm.regexes)
                if nm.min_len or nm.max_len is not None:
                    key_regs.append(length_regex(nm.min_len, nm.max_len))
            elif not isinstance(nm, AnyNode):
                self.refuse("propertyNames must be a string schema or an enum of names", "", "propertyNames")
        if key_regs is not None:
            pats = n.pattern_props
            if not pats:
                if not isinstance(n.additional, NeverNode):
                    extras.append((self._key_terminal(key_regs), n.additional))
            else:
                pschemas = {s for _, s in pats}
                if isinstance(n.additional, NeverNode) and len(pschemas) == 1:
                    alt = "(?:" + "|".join(search_regex(p) for p, _ in pats) + ")"
                    extras.append((self._key_terminal(key_regs + [alt]), next(iter(pschemas))))
                elif pschemas == {n.additional}:
                    extras.append((self._key_terminal(key_regs), n.additional))
                elif len(pats) > MAX_PATTERN_PROPERTIES:
                    self.refuse(f"more than {MAX_PATTERN_PROPERTIES} patternProperties with different schemas "
                                f"({len(pats)}: the key space splits into 2^{len(pats)} regions)", "",
                                "patternProperties")
                    extras.append((self._key_terminal(key_regs), union([s for _, s in pats] + [n.additional])))
                else:
                    extras.extend(self._pattern_regions(key_regs, pats, n.additional))
        members: dict[str, str | None] = {}
        for k, v in declared:
            sym = self.emit(v)
            members[k] = self._key_rule(self._string_literal(k), sym) if sym is not None else None
        extra_members = []
        for kt, v in extras:
            sym = self.emit(v)
            if sym is not None:
                extra_members.append(self._key_rule(kt, sym))
        extra_sym = None
        if extra_members:
            extra_sym = extra_members[0] if len(extra_members) == 1 else b.alt(*extra_members)
        sep = b.seq(*self._w(self._lit(","), None))
        cap = n.max_props if n.max_props is not None else max(n.min_props, 1)
        required = n.required
        order = [k for k, _ in declared]
        states: dict[tuple, str] = {}

        def nxt(c: int) -> int | None:
            if n.max_props is not None and c + 1 > n.max_props:
                return None
            return min(c + 1, cap)

        if self.property_order == "any":
            return self._obj_any_order(order, members, required, extra_sym, n.min_props, n.max_props, sep)
        # schema order: declared keys in order, optional ones may be skipped
        def state_seq(i: int, c: int) -> str:
            key = (i, c)
            if key in states:
                return states[key]
            self._state()
            name = b.fresh("obj")
            states[key] = name
            alts = []
            lead = (sep,) if c > 0 else ()
            nc = nxt(c)
            if i < len(order):
                k = order[i]
                if nc is not None and members[k] is not None:
                    alts.append(lead + (members[k], state_seq(i + 1, nc)))
                if k not in required:
                    alts.append((state_seq(i + 1, c),))
                # undeclared keys may come anywhere, not only after the declared ones: their
                # terminal excludes every declared name, so this stays exact
                if extra_sym and nc is not None:
                    alts.append(lead + (extra_sym, state_seq(i, nc)))
            else:
                if c >= n.min_props:
                    alts.append(())
                if extra_sym and nc is not None:
                    alts.append(lead + (extra_sym, state_seq(i, nc)))
            b.rules[name] = alts
            return name
        body = state_seq(0, 0)
        body = self._left_linear(body, set(states.values()))
        return b.seq(*self._w(self._lit("{"), None, body, self._lit("}")))

    def _obj_any_order(self, order: list[str], members: dict[str, str | None], required: frozenset[str],
                       extra_sym: str | None, min_props: int, max_props: int | None, sep: str) -> str | None:
        """Members in any order, exactly (see :mod:`.anyorder`).

        Objects needing few states get them as static rules (every engine path,
        including LR, takes static grammars); bigger ones become a lazy rule
        family whose states the parser materializes as it visits them.
        """
        b = self.b
        fam = AnyOrderObject(b.fresh("anyobj").replace("#", "_"), order, [members[k] for k in order], required,
                             extra_sym, min_props, max_props, sep, self._lit("}"))
        entry = fam.entry()
        if entry is None:
            return None
        n_eager = fam.eager_states(self.max_eager_object_states)
        if n_eager is not None:
            self._state_count(n_eager)
            todo, seen = [entry], {entry}
            while todo:
                name = todo.pop()
                alts = fam.alternatives(name)
                b.rules[name] = alts
                for alt in alts:
                    last = alt[-1]
                    if last.startswith(fam.prefix + "/") and last not in seen:
                        seen.add(last)
                        todo.append(last)
            return b.seq(*self._w(self._lit("{"), None, entry))
        self.lazy[fam.prefix] = fam
        return b.seq(*self._w(self._lit("{"), None, entry))

    def _left_linear(self, start: str, names: set[str]) -> str:
        """Rewrite a right-linear state machine (S -> w T | ε) into left-linear rules.

        Right-linear chains make every Earley set as large as the array is
        long (each element leaves one pending item); the left-linear form
        (P_T -> P_S w) keeps sets constant-sized, so long arrays and objects
        cost the same per token as short ones.
        """
        b = self.b
        prefix = {name: b.fresh("pre") for name in names}
        for name in names:
            b.rules[prefix[name]] = []
        b.rules[prefix[start]].append(())
        accepting = []
        for name in names:
            for alt in b.rules[name]:
                if not alt:
                    accepting.append(name)
                    continue
                target = alt[-1]
                if target not in names:
                    raise AssertionError(f"state machine rule {name} does not end in a state: {alt}")
                b.rules[prefix[target]].append((prefix[name],) + tuple(alt[:-1]))
        for name in names:
            del b.rules[name]
        return b.rule(b.fresh("seq"), [(prefix[n],) for n in accepting])

    def _key_terminal(self, regs: list[str], exclude: tuple[str, ...] = ()) -> str:
        """Undeclared keys, in the spellings serializers write (``Terminal.canonical``), like the
        declared ones: their "any key but the declared ones" DFA then has escape paths that do not
        depend on the declared keys' letters, which made it several times bigger and slower to build.
        Keys fully matching a pattern of ``exclude`` are left out."""
        return self.b.terminal(self._key_term(regs, exclude))

    @staticmethod
    def _key_term(regs: list[str], exclude: tuple[str, ...] = ()) -> Terminal:
        if not regs:
            regs = [ANY_CHARS]
        return Terminal(regex=regs[0], json_string=True, also_match=tuple(regs[1:]), not_match=tuple(exclude),
                        canonical=True)

    def _pattern_regions(self, key_regs: list[str], pats, additional: Node) -> list[tuple[str, Node]]:
        """Undeclared keys split by which ``patternProperties`` patterns find them.

        A key found by exactly the patterns in T gets the intersection of their schemas;
        a key found by none gets ``additional``.  Each region's key language is the
        intersection of the patterns in T and the complements of the others (exact);
        regions with no key, or whose value schema is unsatisfiable, are left out.
        """
        found = [search_regex(p) for p, _ in pats]
        out: list[tuple[str, Node]] = []
        for bits in range(1 << len(pats)):
            inside = [i for i in range(len(pats)) if bits >> i & 1]
            if inside:
                value: Node = ANY
                for i in inside:
                    value = self.A.intersect(value, pats[i][1])
            else:
                value = additional
            if isinstance(value, NeverNode):
                continue
            include = key_regs + [found[i] for i in inside]
            exclude = tuple(found[i] for i in range(len(pats)) if i not in inside)
            term = self._key_term(include, exclude)
            # the lexer's own compile of this terminal (cached), so the check costs nothing extra
            if compile_terminal(term).is_empty:
                continue
            out.append((self.b.terminal(term), value))
        return out

    # ------------------------------------------------------------ finish
    def finish(self, root: str | None) -> Grammar:
        """Prune unproductive and unreachable rules; lazy object families keep only productive members."""
        if root is None:
            raise SchemaError("empty language: no JSON value satisfies the schema", pointer="#")
        b = self.b
        start = b.rule("start", [(root,)])
        rules = b.rules
        terms = b.terminals
        families = self.lazy

        def family(sym: str) -> AnyOrderObject | None:
            return families.get(sym.split("/", 1)[0]) if "/" in sym and sym not in rules else None

        productive: set[str] = set()

        def ok(sym: str) -> bool:
            if sym in terms or sym in productive:
                return True
            fam = family(sym) if families else None
            return fam is not None and fam.productive(sym, productive)

        changed = True
        while changed:
            changed = False
            for name, alts in rules.items():
                if name not in productive and any(all(ok(s) for s in a) for a in alts):
                    productive.add(name)
                    changed = True
        if start not in productive:
            raise SchemaError("empty language: no JSON value satisfies the schema (contradictory constraints)",
                              pointer="#")
        for fam in families.values():
            fam.restrict(productive)
        pruned = {name: [a for a in alts if all(ok(s) for s in a)]
                  for name, alts in rules.items() if name in productive}
        # keep reachable only (through a lazy family: every static symbol it may use)
        seen = {start}
        todo = [start]
        used_families: dict[str, AnyOrderObject] = {}
        used_terms: set[str] = set()
        while todo:
            for a in pruned[todo.pop()]:
                for s in a:
                    if s in pruned:
                        if s not in seen:
                            seen.add(s)
                            todo.append(s)
                    elif s in terms:
                        used_terms.add(s)
                    else:
                        fam = family(s)
                        if fam is not None and fam.prefix not in used_families:
                            used_families[fam.prefix] = fam
                            for t in fam.static_symbols():
                                if t in terms:
                                    used_terms.add(t)
                                elif t not in seen:
                                    seen.add(t)
                                    todo.append(t)
        g = Grammar(start=start, rules={k: v for k, v in pruned.items() if k in seen},
                    terminals={k: v for k, v in terms.items() if k in used_terms}, ignore=[], source="json-schema",
                    lazy=used_families)
        # (no g.validate() here: the pruning above already guarantees it, and compile_grammar validates)
        return g


_ = (_count, canonical, py_search)
