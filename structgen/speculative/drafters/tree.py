"""Draft trees: an inner drafter's chain plus the grammar's few alternatives at each position.

Where the grammar allows only a handful of tokens (a closing `"` vs `",` vs `"}`, the
spellings of a forced key: `G`, `Ge`, `Geometry`, ...), the target's choice among them
is hard to guess but cheap to cover: each allowed token, followed by the text the grammar
then forces (canonically tokenized), becomes a branch verified in the same target pass.
Prompt-lookup's other matches are added as branches from the root too.

`propose` (used for sampling and by chain verifiers) returns the inner drafter's chain.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..tree import DraftTree
from .forced import forced_draft
from .base import DraftProposal, Drafter, WrappingDrafter, take_valid
from .ngram import PromptLookupDrafter


class GrammarTreeDrafter(WrappingDrafter):
    """Tree = inner chain + grammar-enumerated branches (+ prompt-lookup alternatives)."""

    def __init__(self, inner: Drafter, *, max_nodes: int = 24, max_alternatives: int = 6,
                 branch_positions: int = 4, branch_depth: int = 4,
                 lookup: PromptLookupDrafter | None = None, branch_inner: bool = False) -> None:
        super().__init__(inner, f"tree({inner.name})")
        self.lookup, self.branch_inner = lookup, branch_inner
        self.max_nodes, self.max_alternatives = max_nodes, max_alternatives
        self.branch_positions, self.branch_depth = branch_positions, branch_depth

    def propose(self, context_ids: Sequence[int], matcher, k: int) -> DraftProposal:
        return self.inner.propose(context_ids, matcher, k)

    def propose_tree(self, context_ids: Sequence[int], matcher, k: int) -> DraftTree:
        """A tree whose every root path is grammatical; the matcher is handed back unchanged."""
        main = take_valid(matcher, self.inner.propose(context_ids, matcher, k).tokens[:k])
        tree = DraftTree()
        nodes = tree.add_path(-1, main)
        if self.lookup is not None:
            for cand in self.lookup.candidates(context_ids, k):
                if len(tree) >= self.max_nodes:
                    break
                tree.add_path(-1, take_valid(matcher, cand)[: self.max_nodes - len(tree)])
        if matcher is None:
            return tree
        advanced = 0
        try:
            for pos in range(min(len(main), self.branch_positions - 1) + 1):
                if len(tree) >= self.max_nodes or matcher.is_terminated():
                    break
                self._branch(tree, nodes[pos - 1] if pos else -1, matcher, main[pos] if pos < len(main) else None,
                             list(context_ids) + main[:pos])
                if pos < len(main):
                    matcher.accept_token(main[pos])
                    advanced += 1
        finally:
            if advanced:
                matcher.rollback(advanced)
        return tree

    def _branch(self, tree: DraftTree, parent: int, matcher, skip: int | None, context: list[int]) -> None:
        """Children of `parent` for each of the grammar's few allowed tokens, each with its forced
        continuation (or the inner drafter's continuation with `branch_inner`)."""
        allowed = matcher.allowed_token_ids()
        if len(allowed) > self.max_alternatives:
            return
        for a in allowed.tolist():
            if a == skip:
                continue
            room = self.max_nodes - len(tree)
            if room <= 0:
                return
            if not matcher.accept_token(a):
                continue
            try:
                if matcher.is_terminated():
                    cont = []
                elif self.branch_inner:
                    cont = self.inner.propose(context + [a], matcher, self.branch_depth - 1).tokens
                else:
                    cont = forced_draft(matcher, self.branch_depth - 1, context)
                cont = cont[: matcher.validate_tokens(cont)] if cont else cont
            finally:
                matcher.rollback(1)
            tree.add_path(parent, ([a] + cont)[:room])
