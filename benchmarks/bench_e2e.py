"""End-to-end constrained generation benchmark (JSONSchemaBench protocol, small sample).

Same model, same prompts, same greedy decoding, same run, for:
  unconstrained   transformers generate, no mask (reference speed; validity by luck)
  structgen       structgen.api.generate (own decode loop)
  structgen-hf    transformers generate + structgen.api.StructgenLogitsProcessor
  xgrammar        transformers generate + xgrammar.contrib.hf.LogitsProcessor
  llguidance      transformers generate + a LogitsProcessor over llguidance.LLMatcher
                  (llguidance.hf tokenizer + llguidance.torch bitmask helpers)
Compact JSON (no free whitespace) for every engine.  Reports, per engine: compiled share,
share of outputs that validate (json + jsonschema), compliance (valid among compiled),
time to first token and time per output token.  Prints a table, writes
benchmarks/results/e2e.json.  Not run in CI.

  python benchmarks/bench_e2e.py --schemas 6 --bfcl 6 --max-new-tokens 96
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jsonschema  # noqa: E402
import torch  # noqa: E402
from transformers import LogitsProcessor, LogitsProcessorList  # noqa: E402
from transformers.generation.streamers import BaseStreamer  # noqa: E402

CORPORA = Path(os.environ.get("STRUCTGEN_CORPORA", Path(__file__).resolve().parents[1].parent / "shared" / "corpora"))
RESULTS = Path(__file__).resolve().parent / "results"
ENGINES = ("unconstrained", "structgen", "structgen-hf", "xgrammar", "llguidance")


# ------------------------------------------------------------------------------ tasks

def load_tasks(n_schemas: int, n_bfcl: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    tasks = []
    data = CORPORA / "jsonschemabench" / "data"
    splits = ["Glaiveai2K", "Github_easy", "Github_medium", "Snowplow", "Kubernetes", "JsonSchemaStore"]
    files = []
    for split in splits:
        fs = sorted((data / split).glob("*.json"))
        files.extend((split, f) for f in rng.sample(fs, min(len(fs), 20)))
    rng.shuffle(files)
    for split, f in files:
        if len([t for t in tasks if t["source"] == "jsonschemabench"]) >= n_schemas:
            break
        try:
            schema = json.loads(f.read_text())
        except ValueError:
            continue
        text = json.dumps(schema)
        if len(text) > 3000:   # keep prompts short for a 135M model on CPU
            continue
        tasks.append({"id": f"{split}/{f.stem}", "source": "jsonschemabench", "schema": schema,
                      "prompt": "Generate a JSON object that follows this JSON Schema. Output only the JSON.\n"
                                f"Schema: {text}"})
    lines = (CORPORA / "json-mode-prompts" / "bfcl-maskbench-joined.jsonl").read_text().splitlines()
    for line in rng.sample(lines, min(n_bfcl, len(lines))):
        rec = json.loads(line)
        question = " ".join(m["content"] for turn in rec["question"] for m in turn if m["role"] == "user")
        tasks.append({"id": rec["bfcl_id"], "source": "bfcl", "schema": rec["schema"],
                      "prompt": f"{question}\nAnswer with the function call as JSON following this schema: "
                                f"{json.dumps(rec['schema'])}"})
    return tasks


# ------------------------------------------------------------------------------ timing

class Clock(BaseStreamer):
    """transformers streamer: put(prompt) first, then one put per new token."""

    def __init__(self):
        self.start = time.perf_counter()
        self.first = None
        self.last = None
        self.calls = 0

    def put(self, value):
        self.calls += 1
        if self.calls >= 2:
            now = time.perf_counter()
            self.first = self.first or now
            self.last = now

    def end(self):
        self.last = self.last or time.perf_counter()


class LLGuidanceProcessor(LogitsProcessor):
    """Batch-1 transformers LogitsProcessor over an llguidance LLMatcher."""

    def __init__(self, matcher, vocab_size: int):
        import llguidance.torch as lt
        self.lt, self.m = lt, matcher
        self.bitmask = lt.allocate_token_bitmask(1, vocab_size)
        self.started = False

    def __call__(self, input_ids, scores):
        if self.started:
            if not self.m.consume_token(int(input_ids[0, -1])):
                raise RuntimeError(f"llguidance refused its own token: {self.m.get_error()}")
        self.started = True
        self.lt.fill_next_token_bitmask(self.m, self.bitmask, 0)
        self.lt.apply_token_bitmask_inplace(scores, self.bitmask)
        return scores


# ------------------------------------------------------------------------------ engines

class Runner:
    def __init__(self, model_name: str, max_new_tokens: int):
        from structgen.api.modelio import format_prompt, resolve
        self.lm = resolve(model_name)
        self.model, self.tok, self.info = self.lm.model, self.lm.tokenizer, self.lm.info
        self.vocab = self.info.vocab_size
        self.max_new_tokens = max_new_tokens
        self.format_prompt = format_prompt
        self.eos = sorted(self.lm.eos_ids)
        self._xgr_info = None
        self._llg_tok = None

    def prompt_ids(self, prompt: str) -> list[int]:
        return self.format_prompt(self.lm, prompt, chat=True)

    def compile(self, engine: str, schema: dict):
        """-> (processor factory or compiled, seconds); raises when the engine refuses the schema."""
        t0 = time.perf_counter()
        if engine == "unconstrained":
            return None, 0.0
        if engine in ("structgen", "structgen-hf"):
            from structgen.api import make_constraint
            from structgen.engine import compile_grammar
            constraint = make_constraint(schema=schema, strict=False)
            compiled = compile_grammar(constraint.grammar(), self.info, cache=False)  # no cross-engine hits
            return (constraint, compiled), time.perf_counter() - t0
        if engine == "xgrammar":
            import xgrammar as xgr
            if self._xgr_info is None:
                self._xgr_info = xgr.TokenizerInfo.from_huggingface(self.tok, vocab_size=self.vocab)
            t0 = time.perf_counter()
            compiler = xgr.GrammarCompiler(self._xgr_info, max_threads=1, cache_enabled=False)
            return compiler.compile_json_schema(json.dumps(schema), any_whitespace=False), time.perf_counter() - t0
        if engine == "llguidance":
            import llguidance
            import llguidance.hf
            if self._llg_tok is None:
                self._llg_tok = llguidance.hf.from_tokenizer(self.tok, n_vocab=self.vocab, eos_token=self.eos[-1])
            t0 = time.perf_counter()
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                json.dumps(schema), defaults={"whitespace_flexible": False, "lenient": True})
            m = llguidance.LLMatcher(self._llg_tok, grammar, log_level=0)
            if m.is_error():
                raise RuntimeError(m.get_error())
            return grammar, time.perf_counter() - t0
        raise ValueError(engine)

    def generate(self, engine: str, compiled, ids: list[int]) -> tuple[str, int, float | None, float]:
        """-> (text, n_tokens, ttft_s, tpot_s)."""
        if engine == "structgen":
            from structgen.api import run_ids
            constraint, _ = compiled
            from structgen.api import GrammarCache
            cache = GrammarCache()
            cache._items[cache.key(constraint, self.info)] = compiled[1]
            r = run_ids(self.lm, [ids], constraint, max_new_tokens=self.max_new_tokens, cache=cache)[0]
            return r.text, r.usage.completion_tokens, r.timing.ttft, r.timing.per_output_token
        procs = []
        if engine == "structgen-hf":
            from structgen.api import StructgenLogitsProcessor
            procs = [StructgenLogitsProcessor(compiled[1], batch_size=1)]
        elif engine == "xgrammar":
            import xgrammar as xgr
            procs = [xgr.contrib.hf.LogitsProcessor(compiled)]
        elif engine == "llguidance":
            import llguidance
            procs = [LLGuidanceProcessor(llguidance.LLMatcher(self._llg_tok, compiled, log_level=0), self.vocab)]
        clock = Clock()
        with torch.inference_mode():
            out = self.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                      logits_processor=LogitsProcessorList(procs), do_sample=False,
                                      max_new_tokens=self.max_new_tokens, eos_token_id=self.eos,
                                      pad_token_id=self.eos[0], streamer=clock)
        new = [int(t) for t in out[0, len(ids):]]
        n = len(new)
        text_ids = [t for t in new if t not in self.lm.eos_ids]
        text = b"".join(self.info.token_bytes[t] for t in text_ids).decode("utf-8", errors="replace")
        ttft = (clock.first - clock.start) if clock.first else None
        tpot = (clock.last - clock.first) / (n - 1) if clock.first and n > 1 else None
        return text, n, ttft, tpot


def is_valid(text: str, schema: dict) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        return cls(schema).is_valid(value)
    except Exception:  # schema jsonschema itself cannot handle: count as not validated
        return False


# ------------------------------------------------------------------------------ main

def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--schemas", type=int, default=6, help="JSONSchemaBench schemas")
    ap.add_argument("--bfcl", type=int, default=6, help="BFCL function-call prompts")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "e2e.json"))
    args = ap.parse_args(argv)
    from structgen.models import DEFAULT_MODEL
    model_name = args.model or DEFAULT_MODEL
    engines = [e for e in args.engines.split(",") if e]
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    runner = Runner(model_name, args.max_new_tokens)
    tasks = load_tasks(args.schemas, args.bfcl, args.seed)
    print(f"model {model_name}; {len(tasks)} tasks; engines {', '.join(engines)}", flush=True)
    rows = []
    for task in tasks:
        ids = runner.prompt_ids(task["prompt"])
        for engine in engines:
            row = {"task": task["id"], "source": task["source"], "engine": engine, "prompt_tokens": len(ids)}
            try:
                compiled, compile_s = runner.compile(engine, task["schema"])
                row.update(compiled=True, compile_s=compile_s)
            except Exception as exc:  # each engine refuses schemas in its own way
                row.update(compiled=False, error=f"{type(exc).__name__}: {str(exc)[:200]}")
                rows.append(row)
                print(f"  {task['id'][:40]:40s} {engine:13s} compile error: {row['error'][:80]}", flush=True)
                continue
            try:
                text, n, ttft, tpot = runner.generate(engine, compiled, ids)
            except Exception as exc:
                row.update(generated=False, error=f"{type(exc).__name__}: {str(exc)[:200]}", valid=False)
                rows.append(row)
                print(f"  {task['id'][:40]:40s} {engine:13s} generation error: {row['error'][:80]}", flush=True)
                continue
            row.update(generated=True, text=text, tokens=n, ttft_s=ttft, tpot_s=tpot,
                       valid=is_valid(text, task["schema"]))
            rows.append(row)
            print(f"  {task['id'][:40]:40s} {engine:13s} valid={row['valid']!s:5s} tokens={n:4d} "
                  f"ttft={ttft or 0:.3f}s tpot={1000 * (tpot or 0):.1f}ms", flush=True)
    summary = {}
    for engine in engines:
        rs = [r for r in rows if r["engine"] == engine]
        compiled = [r for r in rs if r.get("compiled")]
        valid = [r for r in rs if r.get("valid")]
        summary[engine] = {
            "tasks": len(rs), "compiled": len(compiled), "valid": len(valid),
            "compiled_share": len(compiled) / len(rs) if rs else 0.0,
            "valid_share": len(valid) / len(rs) if rs else 0.0,
            "compliance": len(valid) / len(compiled) if compiled else 0.0,
            "compile_s_median": _median([r.get("compile_s") for r in compiled]),
            "ttft_s_median": _median([r.get("ttft_s") for r in rs]),
            "tpot_ms_median": (lambda m: None if m is None else 1000 * m)(_median([r.get("tpot_s") for r in rs])),
            "tokens_mean": statistics.mean([r["tokens"] for r in rs if "tokens" in r]) if any(
                "tokens" in r for r in rs) else None,
        }
    header = f"{'engine':14s} {'compiled':>9s} {'valid':>7s} {'compliance':>10s} {'compile p50':>12s} " \
             f"{'TTFT p50':>9s} {'TPOT p50':>9s} {'tokens':>7s}"
    print("\n" + header + "\n" + "-" * len(header))
    fmt = lambda v, f: "-" if v is None else f.format(v)  # noqa: E731
    for engine, s in summary.items():
        print(f"{engine:14s} {s['compiled']:>4d}/{s['tasks']:<4d} {s['valid_share']:>7.0%} {s['compliance']:>10.0%} "
              f"{fmt(s['compile_s_median'], '{:.3f}s'):>12s} {fmt(s['ttft_s_median'], '{:.3f}s'):>9s} "
              f"{fmt(s['tpot_ms_median'], '{:.1f}ms'):>9s} {fmt(s['tokens_mean'], '{:.0f}'):>7s}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": model_name, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
                               "torch_threads": torch.get_num_threads(), "summary": summary, "rows": rows},
                              indent=1, default=str))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
