"""Speculative constrained decoding: draft, mask, verify in one target pass, roll back.

Invariant between steps: the target cache holds every token but the last one; a step
feeds the uncached tokens + draft (the first step is the prompt prefill), so of the
last k+1 logits rows, row i predicts draft[i] and the last row gives the bonus token.
The matcher is advanced along the tokens as they are decided;
a mask is computed only at positions that need one (reusing the drafter's when it has it).

Greedy: accept draft[i] iff it is the masked arg-max, so the output equals
`constrained_decode` token for token. Sampling: standard speculative rejection sampling
on the masked target distribution p and the draft's distribution q (one-hot for
deterministic drafts): accept with prob min(1, p/q), else draw from max(0, p - q)
normalised; all accepted -> draw the bonus from p. Output follows exactly the
distribution of non-speculative constrained sampling.

Greedy decoding on a transformers model that takes 4-D attention masks verifies every
draft as a tree (`tree.verify_tree`; a chain is a tree) with the same `GreedyHead` as
the non-speculative greedy loop; sampling, and models without that support, use the
chain verifier below.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from structgen.errors import GenerationError

from .decode import DecodeResult, prompt_ids, resolve_eos
from .drafters.base import DraftProposal, Drafter, StepFeedback, take_valid
from .kv import KVSequence, model_vocab_size
from .sampling import GREEDY, SamplingParams, allowed_mask, distribution, greedy_token, sample
from .head import GreedyHead
from .tree import DraftTree, verify_tree




class AcceptanceRule:
    """Speculative rejection sampling; subclass only to test that the tests have power."""

    def accept(self, p: torch.Tensor, q: torch.Tensor, token: int, generator) -> bool:
        ratio = float(p[token]) / float(q[token]) if float(q[token]) > 0 else 0.0
        if ratio >= 1.0:
            return True
        return float(torch.rand((), generator=generator, dtype=torch.float64)) < ratio

    def residual(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        r = torch.clamp(p - q, min=0.0)
        total = float(r.sum())
        return r / total if total > 0 else p


def _onehot(token: int, vocab: int) -> torch.Tensor:
    q = torch.zeros(vocab, dtype=torch.float64)
    q[token] = 1.0
    return q


def _align(row: torch.Tensor, vocab: int) -> torch.Tensor:
    """Draft distribution over the target's vocabulary (pad with zeros / cut extra ids)."""
    row = row.to(torch.float64)
    if row.shape[0] == vocab:
        return row
    if row.shape[0] > vocab:
        return row[:vocab]
    return torch.cat([row, torch.zeros(vocab - row.shape[0], dtype=torch.float64)])


def speculative_decode(model, input_ids, matcher, drafter: Drafter | None, max_new_tokens: int = 64,
                       sampling: SamplingParams = GREEDY, *, num_draft_tokens: int = 8,
                       eos_token_ids: Iterable[int] | None = None,
                       generator: torch.Generator | None = None,
                       rule: AcceptanceRule | None = None) -> DecodeResult:
    """Speculative version of `constrained_decode` with the same arguments plus a drafter.

    `drafter=None` gives one token per target call (useful as a control).
    `result.stats` holds steps, drafted/accepted counts and the accepted length per step.
    """
    prompt = prompt_ids(input_ids)
    eos = resolve_eos(model, eos_token_ids)
    vocab = model_vocab_size(model)
    rule = rule or AcceptanceRule()
    target = KVSequence(model)
    t0 = time.perf_counter()
    draft_time = 0.0
    feedback = drafter is not None and drafter.needs_feedback
    if drafter is not None:
        drafter.reset(prompt, sampling, generator)
    seq = list(prompt)
    out: list[int] = []
    accepted_lengths: list[int] = []
    drafted = 0
    finish = "length"
    # greedy on a model with hidden-state access: every draft is verified as a tree (a chain is a
    # tree) with the same GreedyHead as the non-speculative greedy loop
    use_tree = not sampling.do_sample and target.supports_trees
    head = GreedyHead(model, vocab) if use_tree else None
    first_call: tuple[float, int] | None = None
    while len(out) < max_new_tokens:
        budget = max_new_tokens - len(out) - 1
        k = min(budget, num_draft_tokens)
        extra = min(len(seq) - 1, drafter.prefill_feedback) if feedback and not out else 0
        td = time.perf_counter()
        if use_tree:
            if drafter is not None and budget > 0 and hasattr(drafter, "propose_tree"):
                tree = drafter.propose_tree(seq, matcher, k)
            else:
                tree = DraftTree()
                if drafter is not None and budget > 0:
                    tree.add_path(-1, take_valid(matcher, drafter.propose(seq, matcher, k).tokens[:k]))
            tree = _trim_tree(tree, budget, eos)
            draft_time += time.perf_counter() - td
            drafted += len(tree)
            n_fed = len(seq) - len(target) + len(tree)
            tv = time.perf_counter()
            step = verify_tree(target, head, seq, tree, matcher, eos, len(out), extra, want_rows=feedback)
            n_drafted = step.accepted
        else:
            proposal = drafter.propose(seq, matcher, k) if drafter is not None and budget > 0 else DraftProposal([])
            draft_time += time.perf_counter() - td
            draft = take_valid(matcher, proposal.tokens[:k])
            for i, tok in enumerate(draft):             # nothing is verified after an EOS
                if tok in eos:
                    draft = draft[: i + 1]
                    break
            drafted += len(draft)
            n_fed = len(seq) - len(target) + len(draft)
            tv = time.perf_counter()
            step = _verify(target, seq, draft, proposal, matcher, vocab, eos, sampling, generator, rule, len(out), extra)
            n_drafted = len(draft)
        verify_seconds = time.perf_counter() - tv
        if feedback:
            drafter.update(StepFeedback(step.fed, step.logits, step.accepted, step.new, n_drafted))
        if drafter is not None:                    # the prefill pass (first call) is not a decode step: fed=0
            drafter.observe(step.new, step.accepted, fed=n_fed if out else 0, seconds=verify_seconds)
        accepted_lengths.append(step.accepted)
        seq.extend(step.new)
        out.extend(step.new)
        if first_call is None:
            first_call = (time.perf_counter() - t0, len(step.new))
        if step.eos:
            finish = "eos"
            break
    stats = {"steps": len(accepted_lengths), "drafted": drafted, "accepted": sum(accepted_lengths),
             "accepted_per_step": accepted_lengths, "draft_time": draft_time,
             "mean_accepted": sum(accepted_lengths) / max(1, len(accepted_lengths)),
             "first_call_seconds": first_call[0] if first_call else 0.0,
             "first_call_tokens": first_call[1] if first_call else 0}
    return DecodeResult(out, finish, target.calls, time.perf_counter() - t0, stats)


def _trim_tree(tree: DraftTree, budget: int, eos: frozenset[int]) -> DraftTree:
    """Drop nodes deeper than `budget` and children of EOS nodes (nothing is verified after an EOS)."""
    keep: dict[int, int] = {}
    depth: dict[int, int] = {-1: -1}
    out = DraftTree()
    for i, (t, p) in enumerate(zip(tree.tokens, tree.parents)):
        if p != -1 and (p not in keep or tree.tokens[p] in eos):
            continue
        depth[i] = depth[p] + 1
        if depth[i] >= budget:
            continue
        keep[i] = len(out.tokens)
        out.tokens.append(t)
        out.parents.append(keep[p] if p != -1 else -1)
    return out


@dataclass
class _Verdict:
    fed: list[int]
    logits: torch.Tensor
    accepted: int
    new: list[int]
    eos: bool


def _verify(target: KVSequence, seq: list[int], draft: list[int], proposal: DraftProposal, matcher,
            vocab: int, eos: frozenset[int], sampling: SamplingParams, generator, rule: AcceptanceRule,
            produced: int, extra: int = 0) -> _Verdict:
    """One target pass over the uncached tokens + draft (the first pass is the prefill).

    Returns the accepted draft count and the new tokens; `extra` more logits rows (prompt
    positions) are kept for drafters that learn from the target. The matcher is advanced
    along the new tokens as they are decided, so a grammar mask is needed only at the
    positions actually examined (and not at all for greedy positions whose raw arg-max
    the grammar allows).
    """
    fed = seq[len(target):] + draft
    keep = len(draft) + 1 + extra
    all_logits = target.feed(fed, keep=keep)
    logits = all_logits[-(len(draft) + 1):]                      # row i predicts draft[i]
    fed = fed[-all_logits.shape[0]:]
    judge = _judge_greedy if not sampling.do_sample else _judge_sampled
    accepted, new = judge(logits, draft, proposal, matcher, vocab, eos, sampling, generator, rule, produced)
    # target cache must hold seq + accepted drafts (everything but the new last token)
    target.truncate(len(seq) + accepted)
    hit_eos = new[-1] in eos or (matcher is not None and matcher.is_terminated())
    return _Verdict(fed, all_logits, accepted, new, hit_eos)


def _mask_at(matcher, proposal: DraftProposal, i: int, vocab: int) -> torch.Tensor | None:
    """Grammar mask before draft position i (the matcher is in that state): the drafter's if it has one."""
    if matcher is None:
        return None
    mask = proposal.mask(i)
    if mask is None:
        return allowed_mask(matcher, vocab)
    if mask.shape[0] == vocab:
        return mask
    if mask.shape[0] > vocab:
        return mask[:vocab]
    return torch.cat([mask, torch.zeros(vocab - mask.shape[0], dtype=torch.bool)])


def _advance(matcher, tok: int, where: str) -> None:
    if matcher is not None and not matcher.accept_token(tok):
        raise GenerationError(f"the matcher refused token {tok} that its mask allowed at {where}")


def _judge_greedy(logits, draft, proposal, matcher, vocab, eos, sampling, generator, rule, produced):
    """Accept draft[i] iff it is the masked arg-max.

    If the raw arg-max r (first index on ties) is allowed, it is also the masked arg-max,
    so the mask is computed only where r is refused; the draft tokens are grammatical
    (validated before verification), so r == draft[i] needs no grammar work beyond advancing.
    """
    top = logits.argmax(-1).tolist()
    new: list[int] = []
    for i in range(len(draft) + 1):
        where = f"output token {produced + i}"
        drafted = draft[i] if i < len(draft) else None
        r = int(top[i])
        if matcher is None or r == drafted:
            choice = r
            _advance(matcher, choice, where)
        elif r < matcher.vocab_size and matcher.accept_token(r):
            choice = r
        else:
            choice = greedy_token(logits[i], _mask_at(matcher, proposal, i, vocab), where)
            _advance(matcher, choice, where)
        new.append(choice)
        if choice != drafted or choice in eos or (matcher is not None and matcher.is_terminated()):
            return (i + 1 if choice == drafted else i), new
    raise AssertionError("unreachable: the bonus position always ends the loop")


def _judge_sampled(logits, draft, proposal, matcher, vocab, eos, sampling, generator, rule, produced):
    """Speculative rejection sampling with the masked target distribution p."""
    new: list[int] = []
    for i in range(len(draft) + 1):
        where = f"output token {produced + i}"
        p = distribution(logits[i], _mask_at(matcher, proposal, i, vocab), sampling, where)
        if i == len(draft):                                     # every draft accepted: bonus token
            tok = sample(p, generator)
            _advance(matcher, tok, where)
            new.append(tok)
            return i, new
        tok = draft[i]
        q = _align(proposal.draft_probs[i], vocab) if proposal.draft_probs is not None else _onehot(tok, vocab)
        if rule.accept(p, q, tok, generator):
            _advance(matcher, tok, where)
            new.append(tok)
            if tok in eos or (matcher is not None and matcher.is_terminated()):
                return i + 1, new
            continue
        tok = sample(rule.residual(p, q), generator)
        _advance(matcher, tok, where)
        new.append(tok)
        return i, new
    raise AssertionError("unreachable: the bonus position always ends the loop")
