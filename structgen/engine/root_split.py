"""Root walks of multi-state lexer vectors, assembled from single-state ones.

After a keyword such as Go's ``for``, the lexer vector holds two states: the
keyword's (accepting, alive on no byte, or on a few) and the identifier's (alive
on every word byte).  Each keyword makes a new vector, so its root walk (every
token from here to the first lexeme boundary) was walked afresh over the whole
trie: 550-650 us per keyword in the syncode Go replay, most of its slowest masks.

When the states keep *disjoint* sets of first bytes alive, the walk below a
root child is decided by the one state its byte keeps alive, so it equals that
child's part of the single-state walk of that state, which is cached once for
every vector holding it.  The vector's own walk then only adds the boundaries at
root children whose byte no state survives (the lexeme ends right there, with
the terminals the vector's states accept), and walks from the whole vector only
the few root children whose byte keeps two of its states alive (``in`` after
``i``: the keyword and the identifier).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .lr_walk import NO_BOUNDARIES

RootWalk = tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
MAX_SHARED_BYTES = 16   # past this many first bytes kept alive by two states, the vector walks whole


def root_children(node_byte: np.ndarray, node_depth: np.ndarray) -> np.ndarray:
    """int32 [256]: the trie node of each first byte (-1 where no token starts with it)."""
    children = np.full(256, -1, dtype=np.int32)
    ids = np.nonzero(node_depth == 1)[0]
    children[node_byte[ids]] = ids
    return children


def dead_root_walk(lexer, vid: int, root_nodes: np.ndarray, mask_words: int) -> RootWalk | None:
    """The root walk of a vector none of whose states continues on any byte (a keyword or an
    operator just completed), without walking: no token keeps the lexeme going, and every root
    child (``root_nodes``, ascending) is a boundary with the terminals the vector accepts (none:
    no boundary at all).  None when some state continues.  Most new lexer vectors of the SQL
    replays are such (38 of 47); walking them cost ~28 us each, for 256 boundaries in one group."""
    continuing = lexer.continuing
    if any(continuing[q] for q in lexer.vector_tuples[vid]):
        return None
    acc = sorted(lexer.accepting_terminals(vid))
    if not acc:
        return np.zeros(mask_words, dtype=np.uint32), NO_BOUNDARIES
    return np.zeros(mask_words, dtype=np.uint32), (root_nodes, np.array([0, len(root_nodes)], dtype=np.int32),
                                                     np.array(acc, dtype=np.int32),
                                                     np.array([0, len(acc)], dtype=np.int32))


def split_root_walk(lexer, vid: int, children: np.ndarray, node_depth: np.ndarray,
                    single_root: Callable[[int], RootWalk],
                    walk_children: Callable[[int, np.ndarray], RootWalk]) -> RootWalk | None:
    """The root walk of vector ``vid`` (mask, grouped boundaries as ``group_boundaries`` gives
    them) from the single-state root walks ``single_root(vid of (q,))``, or None when ``vid``
    has one state or none that continues on any byte.  Root children whose byte keeps two or
    more states alive are walked from the whole vector by ``walk_children(vid, children)``; a
    single-state walk's tokens below them are a subset of that walk's (each state runs on its
    own), its boundaries there are dropped."""
    states = lexer.vector_tuples[vid]
    if len(states) < 2:
        return None
    alive = lexer.trans[np.asarray(states, dtype=np.int64)] >= 0      # [states, 256]
    per_byte = alive.sum(axis=0)
    shared = per_byte > 1
    n_shared = int(shared.sum())
    if n_shared > MAX_SHARED_BYTES:
        return None
    if per_byte.max() == 0:
        return None   # no state continues: the whole walk is the boundaries at the root children
    present = children >= 0
    if n_shared:
        # first byte of a node: the root child whose preorder range holds it
        child_ids = children[present]
        order = np.argsort(child_ids)
        child_sorted = child_ids[order]
        child_byte = np.nonzero(present)[0][order]
    mask = None
    by_acc: dict[tuple[int, ...], list[np.ndarray]] = {}
    for j, q in enumerate(states):
        if not alive[j].any():
            continue   # dies on every byte: only its acceptance below matters
        q_mask, (nodes, noff, acc, aoff) = single_root(lexer.intern((q,)))
        mask = q_mask.copy() if mask is None else np.bitwise_or(mask, q_mask, out=mask)
        for g in range(len(noff) - 1):
            group = nodes[noff[g]:noff[g + 1]]
            # boundaries at root children are where q alone dies (recomputed for the vector
            # below); under a shared byte, another state may still be alive there
            keep = node_depth[group] > 1
            if n_shared:
                keep &= ~shared[child_byte[np.searchsorted(child_sorted, group, side="right") - 1]]
            deeper = group[keep]
            if len(deeper):
                by_acc.setdefault(tuple(acc[aoff[g]:aoff[g + 1]].tolist()), []).append(deeper)
    if n_shared:
        s_mask, (nodes, noff, acc, aoff) = walk_children(vid, children[shared & present])
        mask = s_mask.copy() if mask is None else np.bitwise_or(mask, s_mask, out=mask)
        for g in range(len(noff) - 1):
            by_acc.setdefault(tuple(acc[aoff[g]:aoff[g + 1]].tolist()), []).append(nodes[noff[g]:noff[g + 1]])
    accepted = tuple(sorted(lexer.accepting_terminals(vid)))
    if accepted:
        ends_here = children[(per_byte == 0) & present]
        if len(ends_here):
            by_acc.setdefault(accepted, []).append(ends_here)
    return mask, _flatten(by_acc)


def _flatten(by_acc: dict[tuple[int, ...], list[np.ndarray]]):
    """Groups as (nodes, node offsets, terminals, terminal offsets), nodes ascending in each."""
    nodes, noff, terms, aoff = [], [0], [], [0]
    for acc, parts in by_acc.items():
        group = np.sort(np.concatenate(parts)) if len(parts) > 1 else parts[0]
        nodes.append(group)
        noff.append(noff[-1] + len(group))
        terms.extend(acc)
        aoff.append(len(terms))
    flat = np.concatenate(nodes).astype(np.int32) if nodes else np.zeros(0, dtype=np.int32)
    return flat, np.array(noff, dtype=np.int32), np.array(terms, dtype=np.int32), np.array(aoff, dtype=np.int32)
