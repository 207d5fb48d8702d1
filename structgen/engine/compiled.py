"""A grammar compiled against one tokenizer: lexer tables, parser tables, token trie, mask caches.

Compilation is cheap on purpose (terminal DFAs + integer rules); the expensive
part of a mask, walking the token trie, is done lazily per lexer state and
cached, so big grammars never pay for states they do not visit.
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..gcpolicy import gc_paused
from ..grammar.ir import Grammar
from .bounded_cache import BoundedCache
from .earley import EarleySet, LazyNonterminals, ParserTables, Production
from .charcut import warn_lead_byte_traps
from .lexer import LexerTables
from .lr_parser import GLRContext, LRSet
from .lr_tables import LRBudgetExceeded, build_lr_tables
from .lr_walk import (CE_AFTER_LEXEME, CE_NONE, CE_SET0, GLRKernel, GLRTooAmbiguous, NO_BOUNDARIES, NO_TERMS,
                      SubwalkCache, Workspace, pack_prefix_slices, pack_stacks, shift_start_vectors)
from .root_split import dead_root_walk, root_children, split_root_walk
from .slices import (BOUNDED_LENGTHS, TokenSlice, boundable, bounded_slice, build_prefix_slices, build_slices,
                     covered_length)
from .trie import TokenTrie, build_token_trie
from .walk import group_boundaries, run_walk

ROOT_GROUP = 0
PARSERS = ("auto", "earley", "glr")
# "auto" takes the GLR path (one numba call per mask) when the grammar is small
# enough that building its LR(0) automaton costs a few milliseconds
AUTO_GLR_MAX_PRODUCTIONS = 600
# JSON Schema grammars stay on Earley under "auto": their masks are as fast there (MaskBench
# 1/10 sample, same instances: p50 2 vs 3 us, p99 4.0 vs 3.9 ms) while building the LR(0)
# automaton would add a median 4.5 ms to a compile whose whole budget is 10 ms
AUTO_EARLEY_SOURCES = frozenset({"json-schema"})
GLR_TOPK = 2                 # stack states a cached GLR mask is keyed by (see _glr_mask; 2 measured best: keys recur)
GLR_TOPK_CACHE_SIZE = 1024   # entries, each a mask of ceil(V/32) words plus deferred work (~20-40 MB at most)
# A top-state recording costs a kernel call of its own and pays only when its key recurs: after
# GLR_TOPK_TRIAL recordings, a grammar whose keys came back fewer than once per two recordings
# (SQL: 20 hits for 101 recordings on the benchmark; arithmetic 149 for 77) runs new keys as one
# full call, recording only every GLR_TOPK_PROBE-th of them to notice when keys start recurring.
GLR_TOPK_TRIAL = 32
GLR_TOPK_PROBE = 16
# Memory a compiled grammar may keep for finished masks (least recently used go first):
# 64 MB = 3,400 masks of the 152k-token Qwen vocabulary
DEFAULT_MASK_CACHE_BYTES = 64 << 20
# Interned parser states (GLR stack nodes and sets, or Earley sets) kept linked by the
# transition memos; past this the memos are cut so states no matcher holds are freed
# (a few hundred bytes each, plus their memos)
DEFAULT_MAX_LINKED_STATES = 50_000


_MASK_ENTRY_OVERHEAD = 200   # bytes of a cached mask besides its words (array header, key, LRU links)


def _top_order(top) -> tuple:
    """Kernel order of stacks: by top states, then shallow before deep."""
    return top[0], top[1]


def _kernel_can_end(stats: np.ndarray, known: bool | None) -> bool | None:
    """The kernel's can-end answer (``stats[5]``: 1, 0, or -1 = not decided), unless already known."""
    if known is not None or stats[5] < 0:
        return known
    return bool(stats[5])


@dataclass
class WalkResult:
    full: np.ndarray                                  # uint32 words: tokens allowed regardless of the parser
    groups: list[tuple[frozenset[int], int]]          # (accepting terminals, boundary node group id)
    visited: int
    nz_words: np.ndarray | None = None                # indices of the non-zero words of ``full``, when few

    def or_into(self, mask: np.ndarray) -> None:
        """mask |= full, touching only non-zero words when there are few (most subtree walks)."""
        nz = self.nz_words
        if nz is None:
            mask |= self.full
        elif len(nz):
            mask[nz] |= self.full[nz]


_TRIE_CACHE: "weakref.WeakKeyDictionary[object, TokenTrie]" = weakref.WeakKeyDictionary()
_TRIE_LOCK = threading.Lock()


def token_trie_for(tokenizer) -> TokenTrie:
    """Trie of a tokenizer's tokens (special tokens excluded), built once per tokenizer object."""
    with _TRIE_LOCK:
        trie = _TRIE_CACHE.get(tokenizer)
        if trie is None:
            trie = build_token_trie(list(tokenizer.token_bytes), tokenizer.vocab_size,
                                    excluded=set(tokenizer.special_ids) | set(tokenizer.eos_ids))
            trie.slices = build_slices(trie)
            trie.prefix_slices = build_prefix_slices(trie)
            _TRIE_CACHE[tokenizer] = trie
        return trie


class CompiledGrammar:
    """Everything needed to build matchers for ``grammar`` over ``tokenizer``."""

    use_prefix_slices = True   # False: GLR item walks never use prefix slices (same masks; for tests)

    def __init__(self, grammar: Grammar, tokenizer, *, max_dfa_states: int = 100_000, parser: str = "auto",
                 mask_cache_bytes: int = DEFAULT_MASK_CACHE_BYTES,
                 max_linked_states: int = DEFAULT_MAX_LINKED_STATES, mask_cache: BoundedCache | None = None):
        if parser not in PARSERS:
            raise ValueError(f"parser must be one of {PARSERS}, not {parser!r}")
        if max_linked_states < 1:
            raise ValueError(f"max_linked_states must be >= 1, not {max_linked_states}")
        grammar.validate()
        self.grammar = grammar
        self.tokenizer = tokenizer
        self.vocab_size = int(tokenizer.vocab_size)
        self.mask_words = (self.vocab_size + 31) // 32
        term_names = list(grammar.terminals)
        self.terminal_ids = {n: i for i, n in enumerate(term_names)}
        self.lexer = LexerTables(term_names, [grammar.terminals[n] for n in term_names],
                                 max_states=max_dfa_states, source=grammar.source)
        warn_lead_byte_traps(grammar, term_names, self.lexer.dfas)
        nt_names = ["<start>"] + list(grammar.rules) + grammar.lazy_entries()
        nt_ids = {n: i for i, n in enumerate(nt_names)}
        prods = [Production(0, (nt_ids[grammar.start],))]
        for name, alts in grammar.rules.items():
            for alt in alts:
                prods.append(Production(nt_ids[name], tuple(
                    nt_ids[s] if s in nt_ids else -(self.terminal_ids[s] + 1) for s in alt)))
        terms = [grammar.terminals[n] for n in term_names]
        self.parser = ParserTables(
            prods, len(nt_names), 0, frozenset(self.terminal_ids[n] for n in grammar.ignore),
            terminal_priority=[t.priority for t in terms],
            terminal_is_literal=[t.literal is not None or n in grammar.keywords
                                 for n, t in zip(term_names, terms)],
            resolve_conflicts=getattr(grammar, "lexeme_conflicts", "union") == "priority",
            lazy=LazyNonterminals(grammar, nt_ids, self.terminal_ids) if grammar.has_lazy_rules() else None)
        self.trie = token_trie_for(tokenizer)
        self.eos_ids = np.array(sorted(tokenizer.eos_ids), dtype=np.int64)
        self._eos_bits = [(int(t) >> 5, np.uint32(1 << (int(t) & 31))) for t in self.eos_ids]   # (word, bit)
        self.glr: GLRContext | None = None
        if grammar.has_lazy_rules() and parser == "glr":  # LR tables need every production up front
            raise ValueError("parser='glr' needs a grammar without lazy rules (has_lazy_rules())")
        if parser == "glr" or (parser == "auto" and len(prods) <= AUTO_GLR_MAX_PRODUCTIONS
                               and grammar.source not in AUTO_EARLEY_SOURCES
                               and not grammar.has_lazy_rules()):
            try:
                lr = build_lr_tables(self.parser.rhs, self.parser.lhs, len(nt_names), len(term_names),
                                     self.parser.nullable)
            except LRBudgetExceeded:
                if parser == "glr":
                    raise
            else:
                self.glr = GLRContext(lr, self.parser)
                self._is_ignore = np.zeros(len(term_names), dtype=np.bool_)
                self._is_ignore[list(self.parser.ignore)] = True
                self._prio = np.array([t.priority for t in terms], dtype=np.int32)
                self._is_lit = np.array(self.parser.terminal_is_literal, dtype=np.bool_)
                parts = (lr.sh_start, lr.sh_term, lr.sh_to, lr.gt_start, lr.gt_nt, lr.gt_to,
                         lr.rd_start, lr.rd_prod, lr.prod_lhs, lr.prod_len,
                         *shift_start_vectors(lr.sh_start, lr.sh_term, self._is_ignore, self.lexer.start_state))
                self._lr_off = np.zeros(len(parts) + 1, dtype=np.int64)
                np.cumsum([len(x) for x in parts], out=self._lr_off[1:])
                self._lr_blob = np.concatenate(parts).astype(np.int32)
                self._glr_roots: dict[int, tuple] = {}
                self.split_roots = True   # root walks assembled without walking the whole trie (see root_split)
                self._root_children: np.ndarray | None = None   # root child per first byte (-1: none)
                self._root_nodes: np.ndarray | None = None      # the root children, ascending
                self._subwalks: SubwalkCache | None = None   # allocated at the end of compiling (_kernel_resources)
                self._workspace: Workspace | None = None
                # (vid, top states) -> (tokens they decide, deferred work, can-end answers they decide by
                # lexeme-non-empty flag)
                self._topk_cache: "OrderedDict[tuple, tuple[np.ndarray, np.ndarray, dict]]" = OrderedDict()
                self._topk_recorded = 0      # recordings made, hits on them, new keys run unrecorded
                self._topk_hit_count = 0
                self._topk_unrecorded = 0
                self._glr_broken = False
                self._accepted_arrays: dict[int, np.ndarray] = {}   # lexer vector -> its accepted terminals
        self.parser_kind = "glr" if self.glr is not None else "earley"
        self.initial_set = self.glr.initial() if self.glr is not None else EarleySet.initial(self.parser)
        self._walk_cache: dict[tuple[int, int], WalkResult] = {}
        self._groups: list[np.ndarray] = [np.array([0], dtype=np.int32)]
        self._group_ids: dict[bytes, int] = {np.array([0], dtype=np.int32).tobytes(): ROOT_GROUP}
        self._lock = threading.RLock()
        # (parser state serial, lexer vector, non-empty) -> mask; a given ``mask_cache`` is shared with
        # other grammars (serials are process-wide, so keys never collide), one budget for all of them
        self._masks = mask_cache if mask_cache is not None else BoundedCache(mask_cache_bytes)
        self.max_linked_states = int(max_linked_states)
        self._cut_at = self.max_linked_states   # linked states that trigger the next cut (see cut_memos)
        self._slice_of_vector: dict[int, TokenSlice | None] = {}
        self._start_vectors: dict[frozenset[int], int] = {}
        self._covered_length: dict[tuple[int, str], int] = {}
        # counters kept here; the GLR kernel's own come from its running totals (see ``stats``)
        self._stats = {"walks": 0, "visited_nodes": 0, "slice_walks": 0, "bounded_slice_walks": 0,
                       "split_root_walks": 0, "dead_root_walks": 0, "glr_calls": 0, "topk_hits": 0,
                       "memo_cuts": 0, "units_walked": 0, "units_replayed": 0, "item_results_used": 0,
                       "item_results_made": 0}
        self._kernel: GLRKernel | None = None
        if self.glr is not None:
            # the mask kernel's per-grammar inputs (prefix-slice flags: a cover check per terminal
            # start state; workspace; sub-walk cache) are part of compiling: built in the first
            # mask's time they were 350-390 us of syncode Go's and SQL's first masks
            self._kernel_resources()

    # ----- lexer / parser glue -------------------------------------------------
    def lexer_start(self, pset: EarleySet) -> int:
        vid = pset.lexer_start
        if vid is None:   # a state seen for the first time
            if self.linked_states() > self._cut_at:
                self.cut_memos()
            expected = pset.expected
            vid = self._start_vectors.get(expected)
            if vid is None:
                vid = self._start_vectors[expected] = self.lexer.start_vector(expected | self.parser.ignore)
            pset.lexer_start = vid
        return vid

    def linked_states(self) -> int:
        """Parser states interned now (alive because a memo or a matcher holds them)."""
        if self.glr is not None:
            return len(self.glr.nodes) + len(self.glr.sets) + len(self.parser.interned)
        return len(self.parser.interned)

    def cut_memos(self) -> None:
        """Forget every state-to-state transition memo, so that unheld states are freed.

        Memos are the only forward links between states (a state refers only to
        older ones), so without them a state lives exactly as long as a matcher
        refers to it (cached masks are keyed by serial, they hold no state).
        Masks stay exact: a transition is recomputed, and interning gives back
        the same state while it lives.  The next cut waits until the states that
        survived this one have doubled (live matchers may hold many), so cuts
        stay rare.
        """
        with self._lock:
            self._stats["memo_cuts"] += 1
            tables = [self.parser.interned]
            if self.glr is not None:
                tables += [self.glr.sets, self.glr.nodes]
            for table in tables:
                for ref in list(table.data.values()):
                    obj = ref()
                    if obj is not None:
                        obj.forget_transitions()
            obj = None   # the last state must not stay alive through this frame while counting
            self._cut_at = max(self.max_linked_states, 2 * self.linked_states())

    def advance_bytes(self, pset: EarleySet, vid: int, nonempty: bool, data: bytes):
        """State after ``data`` or None; the pure-Python reference of the trie walk."""
        lexer = self.lexer
        step = lexer.next_vector
        for b in data:
            nxt = step(vid, b)
            if nxt < 0:
                if not nonempty:
                    return None
                acc = lexer.accepting_terminals(vid)
                if not acc:
                    return None
                pset2 = pset.advance(acc)
                if pset2 is None:
                    return None
                pset = pset2
                vid = self.lexer_start(pset)
                nxt = step(vid, b)
                if nxt < 0:
                    return None
            vid = nxt
            nonempty = True
        return pset, vid, nonempty

    def can_end(self, pset: EarleySet, vid: int, nonempty: bool) -> bool:
        if not nonempty:
            return pset.accepting
        acc = self.lexer.accepting_terminals(vid)
        if not acc:
            return False
        nxt = pset.advance(acc)
        return nxt is not None and nxt.accepting

    # ----- masks ------------------------------------------------------------------
    def _group(self, nodes: np.ndarray) -> int:
        key = nodes.tobytes()
        gid = self._group_ids.get(key)
        if gid is None:
            gid = len(self._groups)
            self._groups.append(nodes.astype(np.int32))
            self._group_ids[key] = gid
        return gid

    def slice_for(self, vid: int) -> TokenSlice | None:
        """The largest token slice some live state of lexer vector ``vid`` covers, if any; else
        the slice cut to the longest of ``BOUNDED_LENGTHS`` whose strings up to that many bytes
        a live state covers (a counted state: see slices.bounded_slice)."""
        if vid in self._slice_of_vector:
            return self._slice_of_vector[vid]
        found = None
        bounded = None
        top = BOUNDED_LENGTHS[-1]
        for sl in self.trie.slices or ():
            longest = 0
            for q in self.lexer.vector_tuples[vid]:
                key = (q, sl.name)
                n = self._covered_length.get(key)
                if n is None:
                    n = self._covered_length[key] = covered_length(self.lexer.trans, q, sl.dfa, top)
                longest = max(longest, n)
            if longest > top:
                found = sl
                break
            bound = max((b for b in BOUNDED_LENGTHS if b <= longest), default=0)
            if bound and boundable(self.trie, sl) and (bounded is None or bound > bounded[1]):
                bounded = (sl, bound)
                if bound == top:
                    break   # a smaller slice can only tie
        if found is None and bounded is not None:
            found = bounded_slice(self.trie, *bounded)
        self._slice_of_vector[vid] = found
        return found

    def _count_slice_walk(self, sl: TokenSlice) -> None:
        self._stats["slice_walks"] += 1
        self._stats["bounded_slice_walks"] += sl.max_len is not None

    @staticmethod
    def _group_reference(b_node, b_st, b_len, acc_buf, nb) -> dict[frozenset[int], np.ndarray]:
        """Boundary nodes grouped by accepted terminals: the pure-Python reference of ``group_boundaries``."""
        by_acc: dict[frozenset[int], list[int]] = {}
        for node, st, ln in zip(b_node[:nb].tolist(), b_st[:nb].tolist(), b_len[:nb].tolist()):
            by_acc.setdefault(frozenset(acc_buf[st:st + ln].tolist()), []).append(node)
        return {acc: np.array(sorted(nodes), dtype=np.int32) for acc, nodes in by_acc.items()}

    def walk(self, group: int, vid: int) -> WalkResult:
        key = (group, vid)
        res = self._walk_cache.get(key)
        if res is not None:
            return res
        with self._lock:
            res = self._walk_cache.get(key)
            if res is not None:
                return res
            init = self.lexer.vectors[vid]
            sl = self.slice_for(vid) if group == ROOT_GROUP else None
            mask, b_node, b_st, b_len, acc_buf, nb, na, visited, _ = run_walk(
                self.trie if sl is None else sl.remainder, self.lexer, init, self._groups[group])
            if sl is not None:
                mask |= sl.mask  # the slice's tokens keep a live state alive: allowed outright
                self._count_slice_walk(sl)
            nodes, noff, terms, aoff = group_boundaries(b_node, b_st, b_len, acc_buf, nb, len(self.terminal_ids))
            groups = [(frozenset(terms[aoff[g]:aoff[g + 1]].tolist()), self._group(nodes[noff[g]:noff[g + 1]]))
                      for g in range(len(noff) - 1)]
            nz = np.flatnonzero(mask)
            res = WalkResult(full=mask, groups=groups, visited=int(visited),
                             nz_words=nz if len(nz) < len(mask) // 8 else None)
            self._walk_cache[key] = res
            self._stats["walks"] += 1
            self._stats["visited_nodes"] += int(visited)
            return res

    def token_mask(self, pset: EarleySet, vid: int, nonempty: bool) -> np.ndarray:
        """uint32 words; bit t set iff token t may come next (EOS bits included).

        The result is cached per (hash-consed) parser state, within the grammar's
        ``mask_cache_bytes``; callers must not modify it.
        """
        key = (pset.serial << 33) | (vid << 1) | nonempty   # one int: see earley.STATE_SERIALS
        cached = self._masks.get(key)
        if cached is not None:
            return cached
        # Parser exploration allocates many small objects; with a large
        # tokenizer loaded, cyclic-GC passes would scan millions of vocabulary
        # objects each time, so collection is paused for the duration.
        with gc_paused():
            return self._token_mask(pset, vid, nonempty, key)

    def _token_mask(self, pset, vid: int, nonempty: bool, key: int) -> np.ndarray:
        ends = None
        if isinstance(pset, LRSet):
            mask, ends = self._glr_mask(pset, vid, nonempty)
        else:
            mask = self._earley_mask(pset, vid)
        if ends is None and len(self.eos_ids):
            ends = self.can_end(pset, vid, nonempty)
        if ends:
            for w, bit in self._eos_bits:
                mask[w] |= bit
        mask.flags.writeable = False
        self._masks.put(key, mask, mask.nbytes + _MASK_ENTRY_OVERHEAD)
        return mask

    def _glr_root(self, vid: int):
        """The parser-independent part of a GLR mask: the root walk, as kernel inputs (cached).

        Boundaries go to the kernel grouped by the terminals accepted there (one
        GLR step and one cached walk per group, not per boundary node).
        """
        got = self._glr_roots.get(vid)
        if got is None and self.split_roots:
            with self._lock:
                if self._root_children is None:
                    self._root_children = root_children(self.trie.node_byte, self.trie.node_depth)
                    self._root_nodes = np.sort(self._root_children[self._root_children >= 0])
                got = dead_root_walk(self.lexer, vid, self._root_nodes, (self.trie.vocab_size + 31) // 32)
                if got is not None:
                    self._stats["dead_root_walks"] += 1
                else:
                    got = split_root_walk(self.lexer, vid, self._root_children, self.trie.node_depth,
                                          self._glr_root, self._walk_root_children)
                    if got is not None:
                        self._stats["split_root_walks"] += 1
                if got is not None:
                    self._glr_roots[vid] = got
        if got is None:
            with self._lock:
                sl = self.slice_for(vid)
                mask, b_node, b_st, b_len, acc_buf, nb, na, visited, _ = run_walk(
                    self.trie if sl is None else sl.remainder, self.lexer, self.lexer.vectors[vid], self._groups[0])
                if sl is not None:
                    mask |= sl.mask
                    self._count_slice_walk(sl)
                self._stats["walks"] += 1
                self._stats["visited_nodes"] += int(visited)
                flat_nodes, noff, flat_acc, aoff = group_boundaries(b_node, b_st, b_len, acc_buf, nb,
                                                                    len(self.terminal_ids))
                got = self._glr_roots[vid] = (mask, (flat_nodes, noff, flat_acc, aoff))
        return got

    def _walk_root_children(self, vid: int, children: np.ndarray):
        """Tokens and grouped boundaries below some root children, walked from lexer vector ``vid``."""
        mask, b_node, b_st, b_len, acc_buf, nb, na, visited, _ = run_walk(
            self.trie, self.lexer, self.lexer.vectors[vid], children.astype(np.int32))
        self._stats["visited_nodes"] += int(visited)
        return mask, group_boundaries(b_node, b_st, b_len, acc_buf, nb, len(self.terminal_ids))

    def _can_end_request(self, vid: int, nonempty: bool) -> tuple[tuple[int, np.ndarray], bool | None]:
        """What the kernel's can-end check starts from, and the answer when no check is needed."""
        if not len(self.eos_ids):
            return (CE_NONE, NO_TERMS), False
        if not nonempty:
            return (CE_SET0, NO_TERMS), None
        acc = self._accepted_arrays.get(vid)
        if acc is None:
            acc = self._accepted_arrays[vid] = np.array(sorted(self.lexer.accepting_terminals(vid)), dtype=np.int32)
        if not len(acc):
            return (CE_NONE, NO_TERMS), False   # inside a lexeme no terminal accepts yet
        return (CE_AFTER_LEXEME, acc), None

    def _glr_mask(self, pset: LRSet, vid: int, nonempty: bool) -> tuple[np.ndarray, bool | None]:
        """Root walk (cached per lexer vector), then the boundaries past it in one numba call.

        Returns the mask without EOS bits and whether EOS may come next (None:
        not decided here; the kernel answers it when it runs on complete stacks).

        Most tokens are decided by the top few states of the stacks, so a
        stack deeper than ``GLR_TOPK`` goes through a cache keyed by its top
        states: a recording run on those states alone gives the tokens they
        decide plus the work that needs more of the stack, and only that work
        is redone on the complete stacks, every time the key recurs.
        """
        if self._glr_broken:
            return self._earley_mask(pset.earley(), vid), None
        root_mask, root_boundaries = self._glr_root(vid)
        request, ends = self._can_end_request(vid, nonempty)
        if len(root_boundaries[0]) == 0:
            return root_mask.copy(), ends   # no kernel call to share the can-end check with
        try:
            return self._glr_boundaries(pset, vid, nonempty, root_mask, root_boundaries, request, ends)
        except GLRTooAmbiguous:
            # this grammar's searches do not stay small: its masks come from the Earley
            # parser from now on (same masks: the Earley set is rebuilt along the lexemes)
            self._glr_broken = True
            return self._earley_mask(pset.earley(), vid), None

    @staticmethod
    def _glr_inputs(pset: LRSet):
        """A parser state's stacks in kernel order with their top states, and its top-state key
        (None when every stack has at most ``GLR_TOPK`` states), built once per state.

        Only the top states are read here; the kernel's packed arrays are built when a call
        needs them (``_full_stacks``, ``_top_stacks``): a cache hit with no deferred work needs
        neither, and an unrecorded call needs only the complete stacks.
        """
        got = pset.kernel_input
        if got is None:
            k = GLR_TOPK
            tops = []
            deep = False
            for st in pset.stacks:   # plain loops: this runs once per new parser state, cold
                top = []
                n = st
                while n is not None and len(top) < k:
                    top.append(n.state)
                    n = n.parent
                top.reverse()
                tops.append((tuple(top), n is not None, st))
                deep = deep or n is not None
            if len(tops) > 1:
                tops.sort(key=_top_order)
            key = None
            if deep:
                key = tuple([(t, d) for t, d, _ in tops])
            got = pset.kernel_input = (key, tops)
        return got

    @staticmethod
    def _full_stacks(pset: LRSet, tops) -> tuple[np.ndarray, np.ndarray]:
        """The complete stacks in kernel order, packed (once per parser state)."""
        got = pset.kernel_stacks
        if got is None:
            got = pset.kernel_stacks = pack_stacks([st.states() for _, _, st in tops])
        return got

    @staticmethod
    def _top_stacks(tops) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stacks' top states in kernel order, packed, and which stacks go deeper than them."""
        return pack_stacks([t for t, _, _ in tops]) + (np.array([d for _, d, _ in tops], dtype=np.bool_),)

    def _record_topk(self) -> bool:
        """Whether a new top-state key is recorded (see GLR_TOPK_TRIAL); the caller holds the lock."""
        if self._topk_recorded < GLR_TOPK_TRIAL or 2 * self._topk_hit_count >= self._topk_recorded:
            return True
        self._topk_unrecorded += 1
        return self._topk_unrecorded % GLR_TOPK_PROBE == 0

    def _glr_boundaries(self, pset: LRSet, vid: int, nonempty: bool, root_mask, root_boundaries, request, ends):
        """The kernel calls of a GLR mask (see ``_glr_mask``): (mask, can end or None)."""
        key_part, tops = self._glr_inputs(pset)
        with self._lock:   # the workspace is shared
            kernel = self._kernel or self._kernel_resources()
            hit = None
            if key_part is not None:
                key = (vid, key_part)
                hit = self._topk_cache.get(key)
            if key_part is None or (hit is None and not self._record_topk()):
                # one call on the complete stacks (when there is no key, they are their top states)
                full = self._full_stacks(pset, tops)
                mask, _ = kernel.run(root_mask, root_boundaries, full[0], full[1], ce_mode=request[0],
                                     ce_acc=request[1])
                return mask, _kernel_can_end(kernel.stats, ends)
            if hit is None:
                self._topk_recorded += 1
                # the top states alone may decide the can-end check too
                top_states, top_off, deep = self._top_stacks(tops)
                certain, n_def = kernel.run(root_mask, root_boundaries, top_states, top_off, deep, GLR_TOPK, True,
                                            ce_mode=request[0], ce_acc=request[1])
                deferred = kernel.deferred(n_def)
                ends = _kernel_can_end(kernel.stats, ends)
                hit = self._topk_cache[key] = (certain, deferred, {} if ends is None else {nonempty: ends})
                if len(self._topk_cache) > GLR_TOPK_CACHE_SIZE:
                    self._topk_cache.popitem(last=False)
            else:
                self._topk_cache.move_to_end(key)
                self._stats["topk_hits"] += 1
                self._topk_hit_count += 1
                if ends is None:
                    ends = hit[2].get(nonempty)
            certain, deferred, _ = hit
            if len(deferred) == 0:
                return certain.copy(), ends
            full = self._full_stacks(pset, tops)
            if ends is not None:
                request = (CE_NONE, NO_TERMS)
            mask, _ = kernel.run(certain, NO_BOUNDARIES, full[0], full[1], topk=GLR_TOPK, deferred=deferred,
                                 ce_mode=request[0], ce_acc=request[1])
            return mask, _kernel_can_end(kernel.stats, ends)

    def _kernel_resources(self) -> GLRKernel:
        """The GLR kernel with its sub-walk cache, workspace and prefix-slice inputs (made when the
        grammar is compiled; their arrays are lazily mapped or pooled pages, see buffers.py)."""
        if self._workspace is None:
            self._subwalks = SubwalkCache()
            self._workspace = self._new_workspace()
        prefix = pack_prefix_slices(self.trie.prefix_slices if self.use_prefix_slices else None,
                                    self.lexer.trans, self.lexer.start_state)
        self._kernel = GLRKernel(self.lexer, self._lr_blob, self._lr_off, self.glr.lr.follow_bits, self.trie,
                                 self._is_ignore, self._prio, self._is_lit, self.parser.resolve_conflicts,
                                 self._subwalks, self._workspace, prefix)
        return self._kernel

    def _new_workspace(self, cap: int = 1024) -> Workspace:
        """Kernel scratch (grown 4x on overflow).  1024 stack nodes: the shipped grammars'
        first large masks needed more than 256, and an overflow reruns the whole kernel call."""
        ps = self.trie.prefix_slices if self.use_prefix_slices else None
        return Workspace(len(self.terminal_ids), self.glr.lr.follow_bits.shape[1], self.mask_words,
                         self.trie.max_depth, 0 if ps is None else ps.count, cap=cap)

    @property
    def stats(self) -> dict[str, int]:
        """Work counters (walks, trie nodes visited, kernel calls, top-state hits, memo cuts, units)."""
        out = dict(self._stats)
        if self._kernel is not None:
            for k, v in self._kernel.totals().items():
                out[k] = out.get(k, 0) + v
        return out

    def _earley_mask(self, pset: EarleySet, vid: int) -> np.ndarray:
        res = self.walk(ROOT_GROUP, vid)
        mask = res.full.copy()
        stack = [(res, pset)]
        while stack:
            r, p = stack.pop()
            for acc, gid in r.groups:
                p2 = p.advance(acc)
                if p2 is None:
                    continue
                r2 = self.walk(gid, self.lexer_start(p2))
                r2.or_into(mask)
                if r2.groups:
                    stack.append((r2, p2))
        return mask

    def matcher(self):
        from .matcher import Matcher
        return Matcher(self)

