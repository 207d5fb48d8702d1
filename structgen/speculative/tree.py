"""Greedy verification of a draft *tree* in one target pass.

On CPU a target forward over 2 tokens already costs ~1.6x one over a single token
(MKL's matrix products leave the memory-bound regime), while 16 tokens cost only
~1.1-1.3x 8 tokens, so several candidate continuations are verified together: the tree's nodes attend to the cache and to their ancestors only
(a 4-D attention mask), the walk from the root follows the target's masked arg-max
through the children, and the cache keeps the accepted branch only.

Logits are computed lazily from the hidden states, only at the positions actually
examined (accepted + 1) and only as far as `GreedyHead` needs (none where the grammar
allows one token, the allowed rows where it allows few).

Greedy only: the output equals `constrained_decode` token for token (each accepted node
is the masked arg-max of the target at that position). Sampling keeps the chain
verifier, whose rejection sampling is exact for a single draft.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from structgen.errors import GenerationError

from .head import GreedyHead
from .kv import KVSequence


@dataclass
class DraftTree:
    """Nodes in topological order; `parents[i]` = parent node index, -1 for the root's children."""

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)

    def add(self, parent: int, token: int) -> int:
        """Child `token` of node `parent` (existing child reused); returns its index."""
        for i in range(parent + 1, len(self.tokens)):
            if self.parents[i] == parent and self.tokens[i] == token:
                return i
        if not -1 <= parent < len(self.tokens):
            raise GenerationError(f"DraftTree.add: no node {parent} in a tree of {len(self.tokens)}")
        self.tokens.append(int(token))
        self.parents.append(parent)
        return len(self.tokens) - 1

    def add_path(self, parent: int, tokens: Sequence[int]) -> list[int]:
        """Append a chain below `parent`; returns the node indices."""
        nodes = []
        for t in tokens:
            parent = self.add(parent, t)
            nodes.append(parent)
        return nodes

    def children(self) -> dict[int, dict[int, int]]:
        """parent -> {token: node}."""
        out: dict[int, dict[int, int]] = {}
        for i, (t, p) in enumerate(zip(self.tokens, self.parents)):
            out.setdefault(p, {})[t] = i
        return out

    def path_to(self, node: int) -> list[int]:
        """Tokens from the root down to `node` (inclusive)."""
        out = []
        while node >= 0:
            out.append(self.tokens[node])
            node = self.parents[node]
        return out[::-1]

    def is_chain(self) -> bool:
        return all(p == i - 1 for i, p in enumerate(self.parents))


@dataclass
class TreeVerdict:
    fed: list[int]                 # the tokens whose logits rows are in `logits` (row j predicts the next one)
    logits: torch.Tensor           # [accepted + 1 (+ extra prompt rows), V] rows actually computed
    accepted: int
    new: list[int]
    eos: bool
    path: list[int]                # accepted node indices


def verify_tree(target: KVSequence, head: GreedyHead, seq: list[int], tree: DraftTree, matcher,
                eos: frozenset[int], produced: int, extra: int = 0, want_rows: bool = False) -> TreeVerdict:
    """One pass over the uncached tail of `seq` + the tree; greedy walk; cache keeps the accepted branch.

    Every tree path must be grammatical (the drafter checks it with the matcher). With
    `want_rows` the full logits rows of the examined positions are returned (drafter
    feedback), plus `extra` prompt rows before the last tail token.
    """
    tail = seq[len(target):]
    base = len(target)
    hidden = target.feed_tree(tail + tree.tokens, tree.parents, len(tail))
    children = tree.children()
    rows: list[torch.Tensor] = []
    new: list[int] = []
    path: list[int] = []
    node = -1
    h = hidden[len(tail) - 1]
    batched = _ChainRows(head, hidden, len(tail), _chain_length(tree))
    while True:
        where = f"output token {produced + len(new)}"
        choice, row = head.pick(h, matcher, where, want_rows, batched.provider(node))
        if want_rows:
            rows.append(row)
        _advance(matcher, choice, where)
        new.append(choice)
        hit_eos = choice in eos or (matcher is not None and matcher.is_terminated())
        nxt = children.get(node, {}).get(choice)
        if nxt is not None:
            path.append(nxt)
        if nxt is None or hit_eos:
            break
        node = nxt
        h = hidden[len(tail) + nxt]
    # the cache must hold seq + accepted tokens (everything but the new last token)
    target.keep_positions(base + len(tail), path)
    fed = ([seq[-1]] + [tree.tokens[i] for i in path])[: len(new)]     # fed[j] is the token before new[j]
    logits = torch.stack(rows) if rows else torch.empty(0)
    if want_rows and extra:
        lo = max(0, len(tail) - 1 - extra)
        pre = target.logits_of(hidden[lo:len(tail) - 1])
        fed = tail[lo:len(tail) - 1] + fed
        logits = torch.cat([pre, logits])
    return TreeVerdict(fed, logits, len(path), new, hit_eos, path)


def _chain_length(tree: DraftTree) -> int:
    """Nodes 0, 1, ... that form a chain from the root (drafters put their main chain first)."""
    return next((i for i, p in enumerate(tree.parents) if p != i - 1), len(tree))


class _ChainRows:
    """Full lm-head rows along the tree's first chain, computed `block` positions at a time.

    The greedy walk needs a full row wherever the grammar allows many tokens; along the main
    chain (where most accepted tokens are) the rows of the next `block` positions come from one
    matrix product, which reads the head's weights once instead of once per row.
    """

    def __init__(self, head: GreedyHead, hidden: torch.Tensor, tail: int, chain: int, block: int = 8) -> None:
        self.head, self.hidden, self.tail, self.chain, self.block = head, hidden, tail, chain, block
        self.cache: dict[int, torch.Tensor] = {}

    def provider(self, node: int):
        """Row supplier for the position after `node` (-1: the last tail token), or None off the chain."""
        if node >= self.chain:
            return None

        def get() -> torch.Tensor:
            if node not in self.cache:
                stop = min(self.chain, node + self.block)           # positions node .. stop - 1
                lo = self.tail - 1 + node + 1
                block = self.head.rows(self.hidden[lo:self.tail + stop])
                for j in range(block.shape[0]):
                    self.cache[node + j] = block[j]
            return self.cache[node]
        return get


def _advance(matcher, tok: int, where: str) -> None:
    if matcher is not None and not matcher.accept_token(tok):
        raise GenerationError(f"the matcher refused token {tok} that its mask allowed at {where}")
