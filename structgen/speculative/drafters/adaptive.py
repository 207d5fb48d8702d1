"""Cost-aware draft trees: candidates from several sources, kept best-first while verifying them pays.

On CPU a target pass over 2+ tokens costs about twice a 1-token pass (matrix products
instead of matrix-vector products) and each further token only a few percent more. So a
step should either draft nothing or draft *many* likely tokens, and the right choice
depends on how likely the candidates are to be accepted. This drafter

1. builds candidates: the grammar's forced text (canonically tokenized) interleaved with
   prompt/output lookup continuations (jump-forward + lookup, up to `max_depth` tokens),
   the other lookup matches, the next terms of an integer progression the output is counting
   through (`progression.ProgressionDrafter`; it leads the chain, lookup's copy becomes a
   branch), and at the first positions where the grammar allows only a
   few tokens (the spellings of a forced key, `"` vs `",` ...) each allowed token followed
   by its forced continuation;
2. gives every candidate node an acceptance probability *given its parent was accepted*,
   from its kind: certain (the grammar allows one token), forced text, lookup with an
   effective match length (matched n-gram + tokens already copied), a grammar
   alternative, another lookup match. Each kind's rate is a Beta estimate learned online
   from the verifier's verdicts (trials only where the parent was accepted);
3. keeps the N nodes with the highest path probability (a node's path probability never
   exceeds its parent's, so any top-N is a tree), N chosen to maximise
   (1 + expected accepted tokens) / cost(tokens fed) under a `VerifyCost` model; N = 0
   (a plain 1-token step) when no draft pays for itself. That is the back-off on text
   where drafts keep being rejected (code, chat), and the long draft inside repetitions.

Only speed depends on these estimates: the verifier decides every token.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from structgen.errors import GenerationError

from ..sampling import GREEDY, SamplingParams
from ..tree import DraftTree
from .base import DraftProposal, Drafter
from .forced import forced_draft
from .ngram import suffix_match_levels
from .progression import ProgressionDrafter


@dataclass(frozen=True)
class VerifyCost:
    """Target pass cost over n fed tokens, relative to a 1-token pass: 1 for n = 1, else base + per_token * n.

    Defaults measured for smollm2-135m (fp32, 1 thread) on the 2-core AMD EPYC this project
    benchmarks on: relative to 1 token, 8 tokens cost ~1.9-2.3x, 16 ~2.2-2.7x, 32 ~2.9-3.3x
    (the higher figures with another process busy on the second core).
    """

    base: float = 1.8
    per_token: float = 0.045

    def __call__(self, n: int) -> float:
        return 1.0 if n <= 1 else self.base + self.per_token * n

    @classmethod
    def measure(cls, model, context: int = 160, sizes: Sequence[int] = (2, 8, 24), repeats: int = 5) -> "VerifyCost":
        """Fit base and per_token to timed passes of `model` over 1 and `sizes` tokens after a
        `context`-token cache (medians of `repeats` rounds, sizes interleaved so that a busy
        machine slows all of them alike). Costs about (repeats * (1 + sum(sizes)) + context) token passes."""
        import statistics
        import time

        from ..kv import KVSequence

        seq = KVSequence(model)
        vocab = int(model.get_output_embeddings().weight.shape[0])
        filler = [(7 * i + 3) % vocab for i in range(context + max(sizes) + 1)]
        seq.feed_hidden(filler[:context])
        times: dict[int, list[float]] = {n: [] for n in (1, *sizes)}
        for _ in range(repeats):
            for n in times:
                seq.truncate(context)
                t = time.perf_counter()
                seq.feed_hidden(filler[context:context + n])
                times[n].append(time.perf_counter() - t)
        one = statistics.median(times[1])
        xs = list(sizes)
        ys = [statistics.median(times[n]) / one for n in xs]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(1e-12, sum((x - mx) ** 2 for x in xs))
        slope = max(slope, 1e-4)
        return cls(base=max(1.0, my - slope * mx), per_token=slope)


#: prior acceptance rates (mean, weight in pseudo-trials) by candidate kind; measured on smollm2-135m
#: JSON/code/chat outputs, then learned per generation (they differ a lot between tasks)
DEFAULT_PRIORS: dict[str, tuple[float, float]] = {
    "one": (1.0, 1e9),          # the grammar allows only this token: certain
    "forced": (0.85, 4.0),      # canonical tokenization of grammar-forced text
    "branch": (0.12, 4.0),      # another token the grammar allows where it allows few
    # another occurrence's continuation of the matched n-gram, by recency rank among the others (each
    # rank its own rate: the chance that *some* alternative is right does not grow with their number)
    **{f"alt{r}": (p, 4.0) for r, p in zip(range(1, 4), (0.18, 0.1, 0.06))},
    # first token of a lookup copy, by where the copied occurrence is (prompt / output) and n-gram length
    **{f"lookup:p{n}": (p, 3.0) for n, p in zip(range(1, 5), (0.35, 0.45, 0.7, 0.85))},
    **{f"lookup:o{n}": (p, 3.0) for n, p in zip(range(1, 5), (0.35, 0.4, 0.6, 0.9))},
    # ... of a copy that is grammatical where the grammar forces text (the context's spelling of a key)
    **{f"spell:p{n}": (p, 3.0) for n, p in zip(range(1, 5), (0.7, 0.9, 0.95, 0.95))},
    **{f"spell:o{n}": (p, 3.0) for n, p in zip(range(1, 5), (0.6, 0.8, 0.9, 0.95))},
    # later tokens of a copy: by effective match length (n-gram + tokens copied before), by position
    **{f"lookup+{i}": (p, 3.0) for i, p in zip(range(2, 9), (0.5, 0.55, 0.75, 0.75, 0.85, 0.88, 0.97))},
    **{f"spell+{i}": (p, 3.0) for i, p in zip(range(1, 4), (0.95, 0.97, 0.98))},
    # the next terms of an integer progression the output ends with (1,2,3, -> 4,5,...): first token, later ones
    "count": (0.6, 3.0),
    "count+": (0.9, 3.0),
}
_MAX_FIRST_NGRAM = 4
_MAX_LOOKUP_LABEL = 8
_MAX_SPELL_LABEL = 3


def _label(kind: str, source: str, n: int, i: int) -> str:
    """Kind of the i-th token of a lookup chunk copied from an n-gram match in the prompt ("p") or the
    output ("o"): the first token by source and n, later ones by effective match length n + i
    (a plain copy) or by position (a spelling copied where the grammar forces text)."""
    if i == 0:
        return f"{kind}:{source}{min(n, _MAX_FIRST_NGRAM)}"
    if kind == "spell":
        return f"spell+{min(i, _MAX_SPELL_LABEL)}"
    return f"lookup+{min(n + i, _MAX_LOOKUP_LABEL)}"


@dataclass
class AcceptanceStats:
    """Beta estimates of P(candidate accepted | its parent accepted), per candidate kind."""

    priors: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRIORS))
    hits: dict[str, float] = field(default_factory=dict)
    trials: dict[str, float] = field(default_factory=dict)

    def rate(self, label: str) -> float:
        mean, weight = self.priors[label]
        return (mean * weight + self.hits.get(label, 0.0)) / (weight + self.trials.get(label, 0.0))

    def record(self, label: str, accepted: bool) -> None:
        self.trials[label] = self.trials.get(label, 0.0) + 1.0
        if accepted:
            self.hits[label] = self.hits.get(label, 0.0) + 1.0


@dataclass
class _Candidates:
    """A draft tree under construction with a kind label and conditional probability per node."""

    tree: DraftTree = field(default_factory=DraftTree)
    labels: list[str] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)

    def add(self, parent: int, token: int, label: str, prob: float) -> int:
        n = len(self.tree)
        i = self.tree.add(parent, token)
        if i == n:                                   # new node
            self.labels.append(label)
            self.probs.append(prob)
        elif prob > self.probs[i]:                   # reached again by a likelier source
            self.labels[i], self.probs[i] = label, prob
        return i

    def path_probs(self) -> list[float]:
        """P(node accepted) = product of conditional probabilities along its path; siblings are
        exclusive events, so where their estimates add up to more than 1 they are scaled down."""
        total: dict[int, float] = {}
        for p, q in zip(self.tree.parents, self.probs):
            total[p] = total.get(p, 0.0) + q
        out: list[float] = []
        for p, q in zip(self.tree.parents, self.probs):
            out.append(q / max(1.0, total[p]) * (out[p] if p >= 0 else 1.0))
        return out


class AdaptiveTreeDrafter(Drafter):
    """Jump-forward + lookup chain, lookup alternatives and grammar branches, sized by expected gain per cost."""

    name = "adaptive-tree"

    def __init__(self, *, max_nodes: int = 48, max_depth: int = 32, max_ngram: int = 8, min_ngram: int = 1,
                 lookup_candidates: int = 4, lookup_scan: int = 32, branch_positions: int = 4, max_alternatives: int = 6,
                 branch_depth: int = 6, max_forced: int = 32, cost: VerifyCost = VerifyCost(),
                 priors: dict[str, tuple[float, float]] | None = None, learn: bool = True,
                 stats: AcceptanceStats | None = None, learn_cost: bool = True, progressions: bool = True) -> None:
        if max_nodes < 1 or max_depth < 1:
            raise GenerationError(f"AdaptiveTreeDrafter needs max_nodes >= 1 and max_depth >= 1, got {max_nodes}, {max_depth}")
        self.max_nodes, self.max_depth = max_nodes, max_depth
        self.max_ngram, self.min_ngram, self.lookup_candidates = max_ngram, min_ngram, lookup_candidates
        self.lookup_scan = max(lookup_scan, lookup_candidates)
        self.branch_positions, self.max_alternatives, self.branch_depth = branch_positions, max_alternatives, branch_depth
        self.max_forced, self.prior_cost, self.learn, self.learn_cost = max_forced, cost, learn, learn_cost
        self.cost = cost
        self._priors = dict(DEFAULT_PRIORS, **(priors or {}))
        self._shared_stats = stats
        self.stats = stats or AcceptanceStats(dict(self._priors))
        self._count = ProgressionDrafter() if progressions else None
        self._last: _Candidates | None = None
        self._first = True
        self._prompt_len = 0

    def reset(self, prompt_ids, sampling: SamplingParams = GREEDY, generator=None) -> None:
        super().reset(prompt_ids, sampling, generator)
        self.stats = self._shared_stats or AcceptanceStats(dict(self._priors))
        self._last, self._first = None, True
        self._prompt_len = len(prompt_ids)
        self.cost, self._one_step = self.prior_cost, None

    # ---------------------------------------------------------------- candidates
    def _lookup(self, context: list[int], matcher, k: int) -> tuple[int, str, list[int], list[list[int]]]:
        """(n, source, best, others): the longest grammatical continuation among the occurrences of the
        longest suffix n-gram that has a grammatical one (scanning `lookup_scan` occurrences per n);
        source "p" when the copied occurrence is in the prompt, "o" in the output.

        Scanning many occurrences matters under a grammar: after `{"` only the occurrence that
        spells the forced key (in the prompt's schema) continues grammatically.
        """
        for n, conts, starts in suffix_match_levels(context, k, self.max_ngram, self.min_ngram, self.lookup_scan):
            valid = [c[: matcher.validate_tokens(c)] for c in conts] if matcher is not None else conts
            if any(valid):
                j = max(range(len(valid)), key=lambda i: (len(valid[i]), -i))     # the newest among the longest
                others = [v for i, v in enumerate(valid) if v and i != j][: self.lookup_candidates - 1]
                return n, ("o" if starts[j] >= self._prompt_len else "p"), valid[j], others
        return 0, "p", [], []

    def _chain(self, context: list[int], matcher, k: int, cands: _Candidates) -> tuple[list[int], list[int]]:
        """Main chain: chunks of grammar-forced text and of lookup continuations; others as alternatives.

        Where the grammar forces text and a lookup continuation is grammatical there too, the
        lookup chunk ("spell": the spelling the context used, e.g. the prompt's tokenization of a
        schema key) leads and the canonical forced tokens become an alternative branch; the
        model copies the context's spelling more often than it picks the canonical one.
        Returns the chain's tokens and node ids. The matcher is handed back unchanged.
        """
        rate = self.stats.rate
        tokens: list[int] = []
        nodes: list[int] = []
        alternatives: list[tuple[int, list[int], list[str]]] = []      # (parent node, tokens, labels)
        forced_left = self.max_forced
        advanced = 0
        last_was_lookup = False
        try:
            while len(tokens) < k and not (matcher is not None and matcher.is_terminated()):
                room = k - len(tokens)
                forced = forced_draft(matcher, min(room, forced_left), context) if matcher is not None and forced_left > 0 else []
                if not forced and last_was_lookup:
                    break                          # lookup is asked again only after new forced text
                n, src, look, others = self._lookup(context + tokens, matcher, room)
                count = self._count.continuation(context + tokens, matcher, room) if self._count is not None and not forced else []
                parent = nodes[-1] if nodes else -1
                if count:                          # the next terms of a progression; lookup's copy as a branch
                    chunk, labels = count, ["count"] + ["count+"] * (len(count) - 1)
                    if look and look[0] != count[0]:
                        alternatives.append((parent, look, ["alt1"] + [_label("lookup", src, n, i) for i in range(1, len(look))]))
                    last_was_lookup = True
                elif look:
                    kind = "spell" if forced else "lookup"
                    chunk, labels = look, [_label(kind, src, n, i) for i in range(len(look))]
                    alternatives += [(parent, o, [f"alt{min(r, 3)}"] + [_label(kind, src, n, i) for i in range(1, len(o))])
                                     for r, o in enumerate(others, start=1)]
                    if forced and forced != look[: len(forced)]:     # canonical spelling as a branch
                        alternatives.append((parent, forced, ["forced"] * len(forced)))
                    last_was_lookup = True
                elif forced:
                    chunk, labels = forced, ["forced"] * len(forced)
                    last_was_lookup = False
                else:
                    break
                n_ok = matcher.accept_tokens(chunk) if matcher is not None else len(chunk)
                advanced += n_ok
                if labels[0] == "forced":
                    forced_left -= n_ok
                for t, lab in zip(chunk[:n_ok], labels):
                    nodes.append(cands.add(nodes[-1] if nodes else -1, t, lab, rate(lab)))
                    tokens.append(t)
                if n_ok < len(chunk) or n_ok == 0:
                    break
        finally:
            if matcher is not None and advanced:
                matcher.rollback(advanced)
        for parent, alt, labels in alternatives:
            node = parent
            for t, lab in zip(alt[: self.max_depth], labels):
                node = cands.add(node, t, lab, rate(lab))
        return tokens, nodes

    def _branches(self, context: list[int], matcher, main: list[int], nodes: list[int], cands: _Candidates) -> None:
        """At the first `branch_positions` chain positions: every token the grammar allows (if few),
        with its forced continuation; a lone allowed token marks the chain node as certain."""
        rate = self.stats.rate
        # a node less likely than this is never worth its verification cost (the sizing would drop it);
        # not building it saves the grammar work (forced_tokens ~1 ms per alternative)
        floor = 0.5 * self.cost.per_token
        reach = 1.0                                    # path probability of the chain up to `pos`
        advanced = 0
        try:
            for pos in range(min(len(main), self.branch_positions - 1) + 1):
                if matcher.is_terminated() or reach < floor:
                    break
                allowed = matcher.allowed_token_ids()
                parent = nodes[pos - 1] if pos else -1
                skip = main[pos] if pos < len(main) else None
                if len(allowed) == 1 and skip is not None and int(allowed[0]) == skip:
                    cands.labels[nodes[pos]], cands.probs[nodes[pos]] = "one", 1.0
                elif len(allowed) <= self.max_alternatives:
                    p_main = cands.probs[nodes[pos]] if skip is not None else 0.0
                    alts = [int(a) for a in allowed.tolist() if int(a) != skip]
                    p_alt = min(rate("branch"), (1.0 - p_main) / max(1, len(alts)))
                    for a in alts if reach * p_alt >= floor else ():
                        if not matcher.accept_token(a):
                            continue
                        try:
                            cont = forced_draft(matcher, self.branch_depth - 1, context)
                        finally:
                            matcher.rollback(1)
                        node = cands.add(parent, a, "branch", p_alt)
                        for t in cont:
                            node = cands.add(node, t, "forced", rate("forced"))
                if pos < len(main):
                    if not matcher.accept_token(main[pos]):
                        break
                    advanced += 1
                    reach *= cands.probs[nodes[pos]]
        finally:
            if advanced:
                matcher.rollback(advanced)

    def candidates(self, context_ids: Sequence[int], matcher, k: int) -> _Candidates:
        """Every candidate node with its kind and conditional acceptance probability (unsized)."""
        k = min(k, self.max_depth)
        cands = _Candidates()
        if k <= 0:
            return cands
        context = list(context_ids)
        main, nodes = self._chain(context, matcher, k, cands)
        if matcher is not None:
            self._branches(context, matcher, main, nodes, cands)
        return cands

    # ---------------------------------------------------------------- sizing
    def _select(self, cands: _Candidates, k: int, chain_only: bool) -> list[int]:
        """Node ids to verify (topological order): the top-N by path probability, N by gain per cost."""
        path = cands.path_probs()
        depth: list[int] = []
        for p in cands.tree.parents:
            depth.append(depth[p] + 1 if p >= 0 else 0)
        n = len(path)
        if chain_only:                         # the main chain is built first: nodes 0, 1, 2, ... while parent = i - 1
            n = next((i for i, p in enumerate(cands.tree.parents) if p != i - 1), n)
        ok = [i for i in range(n) if depth[i] < k]
        order = sorted(ok, key=lambda i: (-path[i], depth[i], i))[: self.max_nodes]
        if self._first:                        # the prefill pass verifies a draft for a few percent more
            best_n = len(order)
        else:
            best_n, best = 0, 1.0 / self.cost(1)
            gain = 1.0
            for n, i in enumerate(order, start=1):
                gain += path[i]
                value = gain / self.cost(1 + n)
                if value > best:
                    best_n, best = n, value
        chosen = sorted(order[:best_n])
        return chosen

    @staticmethod
    def _emit(cands: _Candidates, chosen: list[int]) -> DraftTree:
        remap = {-1: -1}
        tree = DraftTree()
        for i in chosen:                       # a top-N by path probability holds every chosen node's parent
            remap[i] = len(tree)
            tree.tokens.append(cands.tree.tokens[i])
            tree.parents.append(remap[cands.tree.parents[i]])
        return tree

    def propose_tree(self, context_ids: Sequence[int], matcher, k: int) -> DraftTree:
        cands = self.candidates(context_ids, matcher, k)
        self._last = cands
        return self._emit(cands, self._select(cands, k, chain_only=False))

    def propose(self, context_ids: Sequence[int], matcher, k: int) -> DraftProposal:
        """The best chain only (for verifiers that take chains: sampling, models without tree support)."""
        cands = self.candidates(context_ids, matcher, k)
        self._last = cands
        return DraftProposal(list(self._emit(cands, self._select(cands, k, chain_only=True)).tokens))

    # ---------------------------------------------------------------- learning
    #: weight of a new timing in the running estimates
    COST_RATE = 0.15

    def _learn_cost(self, fed: int, seconds: float) -> None:
        """Running estimates of a 1-token step's time and of `base` in cost(n) = base + per_token * n
        (per_token kept from the prior): the ratio of a multi-token step to a 1-token one depends on
        the model and on how busy the machine is (a shared CPU slows memory-bound 1-token passes
        and compute-bound multi-token ones differently)."""
        a = self.COST_RATE
        if fed == 1:
            self._one_step = seconds if self._one_step is None else (1 - a) * self._one_step + a * seconds
            return
        if self._one_step is None:
            return
        base = seconds / self._one_step - self.cost.per_token * fed
        base = (1 - a) * self.cost.base + a * min(4.0, max(1.0, base))
        self.cost = VerifyCost(base, self.cost.per_token)
    def observe(self, new_tokens: Sequence[int], accepted: int, fed: int = 0, seconds: float = 0.0) -> None:
        """Learn from every candidate, verified or not: walking the candidate tree along the tokens the
        target produced, each child of a node on that path is one trial of its kind (accepted or not).

        Candidates the sizing left out are judged too (as far as the produced tokens reach), so a
        kind whose drafts were declined still gets evidence and can come back. With `learn_cost`,
        the timed decode steps also recalibrate the cost model (see `_learn_cost`).
        """
        self._first = False
        if self.learn_cost and fed > 0 and seconds > 0:
            self._learn_cost(fed, seconds)
        last, self._last = self._last, None
        if last is None or not self.learn or not len(last.tree):
            return
        children = last.tree.children()
        node = -1
        for tok in new_tokens:
            nxt = None
            for t, c in children.get(node, {}).items():
                self.stats.record(last.labels[c], t == tok)
                if t == tok:
                    nxt = c
            if nxt is None:
                break
            node = nxt
