"""Speculative constrained decoding benchmark (real models; not part of CI).

For every prompt: the non-speculative constrained greedy decoder (reference) and each
drafter; checks outputs are identical, reports tokens/s, speedup over the reference and
accepted draft tokens per step. Workloads: JSON extraction (BFCL prompts + their strict
schemas, constrained), HumanEval code and Spec-Bench chat (unconstrained). Peers in the
same run: transformers' plain greedy generate, prompt-lookup decoding and (with
--draft-model) assisted generation, all unconstrained.

    HF_HUB_OFFLINE=1 python benchmarks/bench_speculative.py --n-json 4 --n-code 1 --n-chat 1
Prints a table and writes benchmarks/results/speculative-<model>-<time>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from structgen.speculative import (AdaptiveTreeDrafter, ChainDrafter, DraftLength, DraftModelDrafter, GatedDrafter, GrammarTreeDrafter, JumpForwardDrafter, LayerSkipDrafter,  # noqa: E402
                                   ProgressionDrafter, PromptLookupDrafter, TokenRecyclingDrafter, VerifyCost, constrained_decode,
                                   speculative_decode)
from structgen.speculative.kv import model_vocab_size  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CORPORA = Path(os.environ.get("STRUCTGEN_CORPORA", ROOT.parent / "shared" / "corpora"))


def chat(tokenizer, text: str) -> list[int]:
    msgs = [{"role": "user", "content": text}]
    try:
        out = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
        if isinstance(out, dict) or hasattr(out, "keys"):
            out = out["input_ids"]
        return list(out)
    except Exception:                      # tokenizer without a chat template
        return tokenizer.encode(text)


def json_workload(tokenizer, n: int, pick: str = "spread", property_order: str = "schema"):
    """BFCL extraction prompts with their strict schemas.

    ``pick="first"``: the first n records (all simple_java, whose free-form object
    parameters send a 135M model into long repetitive values); ``"spread"``: every
    (1024/n)-th record, across the BFCL categories (python, java, javascript, live,
    multiple, parallel), the representative sample.  ``property_order="schema"`` is the
    grammar structgen.generate() uses (declared keys in schema order, so the grammar forces
    them and jump-forward drafts them); ``"any"`` is the compiler's default.
    """
    from structgen.schema import grammar_from_json_schema
    path = CORPORA / "json-mode-prompts" / "bfcl-maskbench-joined.jsonl"
    with open(path) as f:
        recs = [json.loads(line) for line in f]
    if pick == "spread":
        step = max(1, len(recs) // max(n, 1))
        recs = recs[::step] + [r for i, r in enumerate(recs) if i % step]   # spares if one is refused
    out = []
    for rec in recs:
        if len(out) >= n:
            break
        try:
            grammar = grammar_from_json_schema(rec["schema"], property_order=property_order)
        except Exception as e:          # schema the compiler refuses: skip, but say so
            print(f"  skip {rec['bfcl_id']}: {type(e).__name__}: {e}")
            continue
        q = rec["question"][0][-1]["content"]
        text = (f"{q}\nAnswer with one JSON object that calls the function, matching this JSON schema:\n"
                f"{json.dumps(rec['schema'])}")
        out.append((f"json:{rec['bfcl_id']}", chat(tokenizer, text), grammar))
    return out


def code_workload(tokenizer, n: int):
    path = CORPORA / "prompts" / "human-eval" / "data" / "HumanEval.jsonl"
    with open(path) as f:
        recs = [json.loads(next(f)) for _ in range(n)]
    return [(f"code:{r['task_id']}", tokenizer.encode(r["prompt"]), None) for r in recs]


def chat_workload(tokenizer, n: int):
    path = CORPORA / "prompts" / "spec-bench" / "data" / "spec_bench" / "question.jsonl"
    recs = [json.loads(l) for l in open(path)]
    picked = [recs[i] for i in range(0, len(recs), max(1, len(recs) // max(n, 1)))][:n]
    return [(f"chat:{r['category']}:{r['question_id']}", chat(tokenizer, r["turns"][0]), None) for r in picked]


def make_drafters(model, vocab, eos, draft_model, cost: VerifyCost = VerifyCost(), tok_info=None):
    d = {
        "prompt-lookup": lambda: PromptLookupDrafter(),
        "token-recycling": lambda: TokenRecyclingDrafter(vocab, eos_token_ids=eos),
        "self-spec": lambda: LayerSkipDrafter(model),
        "jump-forward": lambda: JumpForwardDrafter(),
        "jf+prompt-lookup": lambda: JumpForwardDrafter(PromptLookupDrafter()),
        # lookup asked for drafts only while they pay (PayoffGate: measured tokens/s vs plain steps);
        # forced tokens are always drafted
        "jf+gated(prompt-lookup)": lambda: JumpForwardDrafter(GatedDrafter(PromptLookupDrafter())),
        # the same, with the next terms of an integer progression the output counts through (1,2,3, -> 4,5,...)
        # drafted first where there is one (prompt lookup cannot draft new numbers)
        "jf+gated(progression|prompt-lookup)": lambda: JumpForwardDrafter(
            GatedDrafter(ChainDrafter([ProgressionDrafter(tok_info), PromptLookupDrafter()]))),
        "jf+token-recycling": lambda: JumpForwardDrafter(TokenRecyclingDrafter(vocab, eos_token_ids=eos)),
        # recycling as the fallback learns 32 prompt rows (lookup already covers copying the prompt;
        # each prompt row costs an lm-head row at prefill)
        "jf+lookup|recycling": lambda: JumpForwardDrafter(
            ChainDrafter([PromptLookupDrafter(), TokenRecyclingDrafter(vocab, eos_token_ids=eos, prefill_feedback=32)])),
        # one target pass over a draft tree (greedy only): the jump-forward/lookup chain, the grammar's
        # few alternatives at the first positions (with their forced continuations) and prompt-lookup's
        # other matches; 16 nodes (a 16-token forward costs ~2.2-2.6x a 1-token one on this CPU)
        "tree(jf+prompt-lookup)": lambda: GrammarTreeDrafter(JumpForwardDrafter(PromptLookupDrafter()), max_nodes=16,
                                                             lookup=PromptLookupDrafter()),
        # candidates from forced text, lookup (the context's spelling of forced keys included) and the
        # grammar's few alternatives, kept best-first by learned acceptance while verifying them pays
        # (a 1-token step when nothing does: the back-off on code and chat)
        "adaptive-tree": lambda: AdaptiveTreeDrafter(cost=cost),
        # the same with the cost model kept fixed (no recalibration from timed steps)
        "adaptive-tree(fixed-cost)": lambda: AdaptiveTreeDrafter(cost=cost, learn_cost=False),
    }
    if draft_model is not None:
        d["draft-model"] = lambda: DraftModelDrafter(draft_model)
        d["jf+draft-model"] = lambda: JumpForwardDrafter(DraftModelDrafter(draft_model))
        # SpecDec++-style stop: end the draft once P(some draft token is rejected), estimated from
        # the draft's own masked probabilities, passes 0.7 (at most 12 tokens)
        d["jf+draft-model(adaptive)"] = lambda: JumpForwardDrafter(
            DraftModelDrafter(draft_model, length=DraftLength(max_tokens=12, threshold=0.7)))
        d["jf+lookup|draft-model"] = lambda: JumpForwardDrafter(
            ChainDrafter([PromptLookupDrafter(), DraftModelDrafter(draft_model)]))
    return d


def hf_peers(model, ids, max_new, draft_model):
    """Unconstrained greedy: transformers generate, prompt lookup, assisted generation."""
    res = {}
    inp = torch.tensor([ids])
    configs = {"hf-greedy": {}, "hf-prompt-lookup": {"prompt_lookup_num_tokens": 10}}
    if draft_model is not None:
        configs["hf-assisted"] = {"assistant_model": draft_model}
    for name, kw in configs.items():
        t, c = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            out = model.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=max_new,
                                 do_sample=False, **kw)
        dt = time.perf_counter() - t
        res[name] = {"tokens": out.shape[1] - len(ids), "seconds": dt, "cpu_seconds": time.process_time() - c}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--draft-model", default=None, help="e.g. qwen2.5-coder-0.5b for --model qwen2.5-coder-1.5b")
    ap.add_argument("--n-json", type=int, default=4)
    ap.add_argument("--json-pick", choices=("spread", "first"), default="spread",
                    help="which BFCL records: every (1024/n)-th across categories, or the first n (simple_java)")
    ap.add_argument("--property-order", choices=("schema", "any"), default="schema",
                    help="JSON grammar: keys in schema order (what generate() uses) or in any order")
    ap.add_argument("--n-code", type=int, default=1)
    ap.add_argument("--n-chat", type=int, default=1)
    ap.add_argument("--max-new", type=int, default=96)
    ap.add_argument("--num-draft", type=int, default=8)
    ap.add_argument("--drafters", default="", help="comma list; default all")
    ap.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared CPU")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--measure-cost", action="store_true",
                    help="time the target's passes over 1..24 tokens to size adaptive-tree drafts (the default "
                         "cost model was measured for smollm2-135m on this CPU; larger models have flatter costs)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every method this many times in rounds and keep the fastest (a shared CPU "
                         "only ever adds time); outputs must be identical in every round")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from structgen.engine import compile_grammar
    from structgen.models import load_model
    from structgen.vocab import TokenizerInfo
    model, tokenizer = load_model(args.model)
    draft_model = load_model(args.draft_model)[0] if args.draft_model else None
    vocab = model_vocab_size(model)
    tok_info = TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab)
    eos = sorted(tok_info.eos_ids)
    cost = VerifyCost.measure(model) if args.measure_cost else VerifyCost()
    print(f"verify cost model for adaptive-tree ({'measured' if args.measure_cost else 'default'}): "
          f"1 token = 1, n >= 2 tokens = {cost.base:.2f} + {cost.per_token:.3f} n")
    drafters = make_drafters(model, vocab, eos, draft_model, cost, tok_info)
    if args.drafters:
        drafters = {k: v for k, v in drafters.items() if k in args.drafters.split(",")}

    work = (json_workload(tokenizer, args.n_json, args.json_pick, args.property_order) + code_workload(tokenizer, args.n_code)
            + chat_workload(tokenizer, args.n_chat))
    rows = []
    load_start = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    out = ROOT / "benchmarks" / "results" / f"speculative-{args.model}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    constrained_decode(model, work[0][1][:8], None, 4, eos_token_ids=eos)         # warm-up
    for name, ids, grammar in work:
        compiled = compile_grammar(grammar, tok_info) if grammar is not None else None
        new_matcher = (lambda: compiled.matcher()) if compiled is not None else (lambda: None)
        ref = None
        got_all: dict[str, object] = {}
        peers: dict[str, dict] = {}
        cpu: dict[str, float] = {}                   # fastest process CPU time per method over the rounds

        def keep_cpu(key: str, seconds: float) -> None:
            cpu[key] = min(cpu.get(key, float("inf")), seconds)

        for _ in range(max(1, args.repeat)):          # rounds: every method once per round
            c0 = time.process_time()
            r = constrained_decode(model, ids, new_matcher(), args.max_new, eos_token_ids=eos)
            keep_cpu("baseline", time.process_time() - c0)
            assert ref is None or r.tokens == ref.tokens, "greedy baseline is not deterministic"
            ref = r if ref is None or r.elapsed < ref.elapsed else ref
            for dname, make in drafters.items():
                c0 = time.process_time()
                g = speculative_decode(model, ids, new_matcher(), make(), args.max_new,
                                       num_draft_tokens=args.num_draft, eos_token_ids=eos)
                keep_cpu(dname, time.process_time() - c0)
                prev = got_all.get(dname)
                if prev is None or g.elapsed < prev.elapsed:
                    got_all[dname] = g
            if not args.no_peers:
                for pname, res in hf_peers(model, ids, args.max_new, draft_model).items():
                    keep_cpu(pname, res["cpu_seconds"])
                    if pname not in peers or res["seconds"] < peers[pname]["seconds"]:
                        peers[pname] = res
        for pname in peers:
            peers[pname]["cpu_seconds"] = cpu[pname]
        row = {"prompt": name, "prompt_tokens": len(ids), "constrained": grammar is not None,
               "baseline": {"tokens": len(ref.tokens), "seconds": ref.elapsed, "cpu_seconds": cpu["baseline"],
                            "target_calls": ref.target_calls,
                            "finish_reason": ref.finish_reason,
                            "first_call_seconds": ref.stats["first_call_seconds"],
                            "first_call_tokens": ref.stats["first_call_tokens"]},
               "drafters": {}, "loadavg_1min": os.getloadavg()[0]}
        print(f"{name}: {len(ids)} prompt tokens, baseline {len(ref.tokens)} tokens "
              f"{ref.tokens_per_second:.1f} tok/s  (load {row['loadavg_1min']:.1f})")
        for dname, got in got_all.items():
            row["drafters"][dname] = {"tokens": len(got.tokens), "seconds": got.elapsed, "cpu_seconds": cpu[dname],
                                      "identical": got.tokens == ref.tokens, "steps": got.stats["steps"],
                                      "target_calls": got.target_calls, "drafted": got.stats["drafted"],
                                      "mean_accepted": got.stats["mean_accepted"],
                                      "draft_seconds": got.stats["draft_time"],
                                      "first_call_seconds": got.stats["first_call_seconds"],
                                      "first_call_tokens": got.stats["first_call_tokens"]}
            print(f"  {dname:20s} {got.tokens_per_second:7.1f} tok/s  x{ref.elapsed / got.elapsed:4.2f}  "
                  f"calls {got.target_calls:3d}/{ref.target_calls:3d}  acc/step {got.stats['mean_accepted']:.2f}  "
                  f"identical={got.tokens == ref.tokens}")
        if peers:
            row["peers"] = peers
        rows.append(row)
        # written after every prompt: a long run on a slow CPU that is stopped still leaves its results
        out.write_text(json.dumps({"args": vars(args), "rows": rows, "complete": False}, indent=1))

    table = summarize(rows)
    load = {"start": load_start, "end": os.getloadavg(), "cpu_count": os.cpu_count(),
            "started": started, "ended": time.strftime("%Y-%m-%d %H:%M:%S"),
            "per_prompt_1min": [r["loadavg_1min"] for r in rows]}
    print(f"run {started} .. {load['ended']}; load average (1, 5, 15 min): start {load_start}, end {load['end']} "
          f"on {os.cpu_count()} CPUs")
    out.write_text(json.dumps({"args": vars(args), "rows": rows, "summary": table, "load": load,
                               "verify_cost": {"base": cost.base, "per_token": cost.per_token},
                               "complete": True}, indent=1))
    print(f"wrote {out}")


def summarize(rows):
    """Per workload and method: tok/s with and without the first target call, speedups, accepted/step.

    `tokens_per_s` counts the whole generation, prompt prefill included (the first target
    call). `decode_tokens_per_s` leaves out the first call and the tokens it produced (the
    speculative first call also verifies a draft, so it may produce several). `cpu_speedup`
    is the end-to-end speedup in process CPU time (each method's fastest round): on a shared
    machine it leaves out the time spent waiting for a core, which wall time includes.
    """
    table = []
    for kind in sorted({r["prompt"].split(":")[0] for r in rows}):
        rs = [r for r in rows if r["prompt"].startswith(kind + ":")]

        def cpu_rate(get) -> float | None:
            if not all("cpu_seconds" in get(r) for r in rs):
                return None
            c = sum(get(r)["cpu_seconds"] for r in rs)
            return sum(get(r)["tokens"] for r in rs) / c if c > 0 else None

        def totals(get):
            n = sum(get(r)["tokens"] for r in rs)
            t = sum(get(r)["seconds"] for r in rs)
            if all("first_call_seconds" in get(r) for r in rs):
                dn = n - sum(get(r)["first_call_tokens"] for r in rs)
                dt = t - sum(get(r)["first_call_seconds"] for r in rs)
                return n, t, (dn / dt if dt > 0 else 0.0)
            return n, t, None

        base_n, base_t, base_dec = totals(lambda r: r["baseline"])
        base_calls = sum(r["baseline"]["target_calls"] for r in rs)
        base_cpu = cpu_rate(lambda r: r["baseline"])
        methods = {"baseline (constrained greedy)": (base_n, base_t, base_dec, None, True, 1.0, base_cpu)}
        for d in rs[0]["drafters"]:
            n, t, dec = totals(lambda r: r["drafters"][d])
            acc = statistics.mean(r["drafters"][d]["mean_accepted"] for r in rs)
            calls = sum(r["drafters"][d]["target_calls"] for r in rs)
            methods[d] = (n, t, dec, acc, all(r["drafters"][d]["identical"] for r in rs), base_calls / calls,
                          cpu_rate(lambda r: r["drafters"][d]))
        for p in rs[0].get("peers", {}):
            n, t, _ = totals(lambda r: r["peers"][p])
            methods[p + " (unconstrained)"] = (n, t, None, None, None, None, cpu_rate(lambda r: r["peers"][p]))
        ended = sum(r["baseline"].get("finish_reason") == "eos" for r in rs)
        print(f"\n{kind} ({len(rs)} prompts, {ended} ended by EOS within the token limit; tok/s includes the "
              f"prompt prefill, decode tok/s leaves out the first call)")
        print(f"  {'method':32s} {'tok/s':>7s} {'speedup':>8s} {'dec tok/s':>9s} {'dec spd':>8s} {'cpu spd':>8s} "
              f"{'calls/x':>8s} {'acc/step':>9s} identical")
        base_tps = base_n / base_t if base_t else 0.0
        for m, (n, t, dec, acc, ident, cr, crate) in methods.items():
            tps = n / t if t else 0.0
            speed = tps / base_tps if base_tps else 0.0
            dspeed = dec / base_dec if dec is not None and base_dec else None
            cspeed = crate / base_cpu if crate is not None and base_cpu else None
            print(f"  {m:32s} {tps:7.1f} {speed:8.2f} {'' if dec is None else f'{dec:9.1f}':>9s} "
                  f"{'' if dspeed is None else f'{dspeed:8.2f}':>8s} {'' if cspeed is None else f'{cspeed:8.2f}':>8s} "
                  f"{'' if cr is None else f'{cr:8.2f}':>8s} "
                  f"{'' if acc is None else f'{acc:9.2f}':>9s} {'' if ident is None else ident}")
            table.append({"workload": kind, "method": m, "prompts": len(rs), "ended_by_eos": ended,
                          "cpu_speedup": cspeed,
                          "tokens_per_s": tps, "speedup_vs_tokens_per_s": speed,
                          "includes_prefill": True, "decode_tokens_per_s": dec, "decode_speedup": dspeed,
                          "baseline_calls_over_method_calls": cr,
                          "mean_accepted_per_step": acc, "identical": ident})
    return table


if __name__ == "__main__":
    main()
