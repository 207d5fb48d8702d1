"""End-to-end constrained generation benchmark (JSONSchemaBench protocol, small sample).

Same model, same prompts, same greedy decoding, same run, for:
  unconstrained   transformers generate, no mask (reference speed; validity by luck)
  unconstrained-sg structgen's own decode loop with no constraint (reference for "structgen")
  structgen       structgen.api.run_ids (own decode loop, the path structgen.api.generate takes)
  structgen-hf    transformers generate + structgen.api.StructgenLogitsProcessor
  xgrammar        transformers generate + xgrammar.contrib.hf.LogitsProcessor
  llguidance      transformers generate + a LogitsProcessor over llguidance.LLMatcher
                  (llguidance.hf tokenizer + llguidance.torch bitmask helpers)
Same output policy for every engine:
  whitespace  compact: structgen whitespace="compact"; xgrammar any_whitespace=False with
              separators (",", ":") (its default separators are ", " and ": "); llguidance
              whitespace_flexible=False (separators "," and ":").
  objects     --close-objects (default on): undeclared properties are not generated.
              structgen close_objects=True; xgrammar strict_mode=True (which also closes arrays:
              no items beyond prefixItems when "items" is absent); llguidance has no such option,
              so it gets a copy of the schema with additionalProperties:false added to object
              schemas that leave it unset (not inside allOf, nor next to applicators or $ref, where
              that would change the meaning).  Validity is always checked against the original schema.
              --no-close-objects: structgen and llguidance open, xgrammar strict_mode=False.
  leniency    keywords an engine cannot enforce are relaxed, not refused (structgen strict=False,
              llguidance lenient=True, xgrammar ignores them).
Each engine is warmed up once on a small schema before timing; the engine order rotates
from task to task so machine-load drift does not favour one engine.  Reports, per engine:
compiled / total, valid (json + jsonschema) / total, incomplete (hit max tokens), median
time per output token (and its ratio to unconstrained), median time to first token.
Prints a table, writes benchmarks/results/e2e.json.  Not run in CI.

  python benchmarks/bench_e2e.py --schemas 8 --bfcl 8 --max-new-tokens 96
"""
from __future__ import annotations

import argparse
import copy
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
ENGINES = ("unconstrained", "unconstrained-sg", "structgen", "structgen-hf", "xgrammar", "llguidance")
SPLITS = ("Glaiveai2K", "Github_easy", "Github_medium", "Snowplow", "Kubernetes", "JsonSchemaStore",
          "Github_trivial", "WashingtonPost")
WARMUP_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                 "required": ["name", "age"]}


# ------------------------------------------------------------------------------ tasks

def load_tasks(n_schemas: int, n_bfcl: int, seed: int, max_schema_chars: int) -> list[dict]:
    """Deterministic sample: schemas round-robin over the splits (small/medium only), then BFCL prompts."""
    rng = random.Random(seed)
    data = CORPORA / "jsonschemabench" / "data"
    pools = {}
    for split in SPLITS:
        fs = sorted((data / split).glob("*.json"))
        pools[split] = rng.sample(fs, len(fs))
    tasks: list[dict] = []
    while len(tasks) < n_schemas and any(pools.values()):
        for split in SPLITS:
            if len(tasks) >= n_schemas:
                break
            while pools[split]:
                f = pools[split].pop()
                try:
                    schema = json.loads(f.read_text())
                except ValueError:
                    continue
                text = json.dumps(schema, separators=(",", ":"))
                if not isinstance(schema, dict) or len(text) > max_schema_chars:  # short prompts for a 135M model
                    continue
                tasks.append({"id": f"{split}/{f.stem}", "source": "jsonschemabench", "schema": schema,
                              "prompt": "Generate a JSON object that follows this JSON Schema. Output only the JSON.\n"
                                        f"Schema: {text}"})
                break
    lines = (CORPORA / "json-mode-prompts" / "bfcl-maskbench-joined.jsonl").read_text().splitlines()
    for line in rng.sample(lines, min(n_bfcl, len(lines))):
        rec = json.loads(line)
        question = " ".join(m["content"] for turn in rec["question"] for m in turn if m["role"] == "user")
        tasks.append({"id": rec["bfcl_id"], "source": "bfcl", "schema": rec["schema"],
                      "prompt": f"{question}\nAnswer with the function call as JSON following this schema: "
                                f"{json.dumps(rec['schema'], separators=(',', ':'))}"})
    return tasks


# ------------------------------------------------------------------------------ object policy

_OBJECT_KEYS = ("properties", "patternProperties", "required", "minProperties", "maxProperties",
                "propertyNames", "dependentRequired")
_APPLICATORS = ("allOf", "anyOf", "oneOf", "$ref", "if", "not", "dependentSchemas", "dependencies")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_ONE = ("items", "additionalItems", "contains", "not", "if", "then", "else", "propertyNames",
               "additionalProperties", "unevaluatedItems", "unevaluatedProperties")
_SCHEMA_LISTS = ("prefixItems", "items", "anyOf", "oneOf", "allOf")


def close_objects_in_schema(schema):
    """Copy of ``schema`` where object schemas that leave ``additionalProperties`` unset get ``false``.

    For engines without a close-objects option (llguidance).  Skipped where adding it would
    change more than the default: inside ``allOf`` (the branches' properties would exclude each
    other), next to applicators or ``$ref`` (their properties count as additional), and in
    anyOf/oneOf branches whose parent adds keys of its own (properties or other applicators)."""
    out = copy.deepcopy(schema)
    _close(out, closable=True)
    return out


def _is_object_schema(s: dict) -> bool:
    t = s.get("type")
    if t is not None:
        return t == "object" or (isinstance(t, list) and "object" in t)
    return any(k in s for k in _OBJECT_KEYS)


def _close(s, closable: bool) -> None:
    if not isinstance(s, dict):
        return
    # anyOf/oneOf branches may close only when nothing else (own properties, other applicators) adds keys
    branches_closable = (not any(k in s for k in ("properties", "patternProperties"))
                         and sum(k in s for k in _APPLICATORS) == 1)
    if (closable and _is_object_schema(s) and not any(k in s for k in _APPLICATORS)
            and "additionalProperties" not in s and "unevaluatedProperties" not in s):
        s["additionalProperties"] = False
    for k in _SCHEMA_MAPS:
        if isinstance(s.get(k), dict):
            for v in s[k].values():
                _close(v, closable=k != "dependentSchemas")
    for k in _SCHEMA_ONE:
        if isinstance(s.get(k), dict):
            _close(s[k], closable=k not in ("not", "if", "then", "else", "propertyNames"))
    for k in _SCHEMA_LISTS:
        if isinstance(s.get(k), list):
            for v in s[k]:
                _close(v, closable=k in ("prefixItems", "items") or (k in ("anyOf", "oneOf") and branches_closable))


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
    def __init__(self, model_name: str, max_new_tokens: int, close_objects: bool):
        from structgen.api.modelio import format_prompt, resolve
        self.lm = resolve(model_name)   # structgen.models.load_model under the hood
        self.model, self.tok, self.info = self.lm.model, self.lm.tokenizer, self.lm.info
        self.vocab = self.info.vocab_size
        self.max_new_tokens = max_new_tokens
        self.close_objects = close_objects
        self.format_prompt = format_prompt
        self.eos = sorted(self.lm.eos_ids)
        self._xgr_info = None
        self._llg_tok = None

    def prompt_ids(self, prompt: str) -> list[int]:
        return self.format_prompt(self.lm, prompt, chat=True)

    def compile(self, engine: str, schema: dict):
        """-> (compiled, seconds); raises when the engine refuses the schema.  No cross-engine caches."""
        if engine.startswith("unconstrained"):
            return None, 0.0
        if engine in ("structgen", "structgen-hf"):
            from structgen.api import GrammarCache, make_constraint
            t0 = time.perf_counter()
            constraint = make_constraint(schema=schema, strict=False, whitespace="compact",
                                         close_objects=self.close_objects)
            cache = GrammarCache()          # fresh: the timing is a real compile, run_ids then hits it
            compiled = cache.get(constraint, self.info)
            return (constraint, compiled, cache), time.perf_counter() - t0
        if engine == "xgrammar":
            import xgrammar as xgr
            if self._xgr_info is None:
                self._xgr_info = xgr.TokenizerInfo.from_huggingface(self.tok, vocab_size=self.vocab)
            t0 = time.perf_counter()
            compiler = xgr.GrammarCompiler(self._xgr_info, max_threads=1, cache_enabled=False)
            compiled = compiler.compile_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"),
                                                    strict_mode=self.close_objects)
            return compiled, time.perf_counter() - t0
        if engine == "llguidance":
            import llguidance
            import llguidance.hf
            if self._llg_tok is None:
                self._llg_tok = llguidance.hf.from_tokenizer(self.tok, n_vocab=self.vocab, eos_token=self.eos[-1])
            t0 = time.perf_counter()
            given = close_objects_in_schema(schema) if self.close_objects else schema
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                json.dumps(given), defaults={"whitespace_flexible": False, "lenient": True})
            m = llguidance.LLMatcher(self._llg_tok, grammar, log_level=0)
            if m.is_error():
                raise RuntimeError(m.get_error())
            return grammar, time.perf_counter() - t0
        raise ValueError(engine)

    def generate(self, engine: str, compiled, ids: list[int]) -> dict:
        """-> text, tokens, incomplete, ttft_s, tpot_s."""
        if engine in ("structgen", "unconstrained-sg"):
            from structgen.api import run_ids
            constraint, _, cache = compiled if compiled is not None else (None, None, None)
            r = run_ids(self.lm, [ids], constraint, max_new_tokens=self.max_new_tokens, cache=cache)[0]
            return {"text": r.text, "tokens": r.usage.completion_tokens, "incomplete": r.finish_reason == "length",
                    "ttft_s": r.timing.ttft, "tpot_s": r.timing.per_output_token}
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
        return {"text": text, "tokens": n, "incomplete": not new or new[-1] not in self.lm.eos_ids,
                "ttft_s": ttft, "tpot_s": tpot}


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


def summarize(rows: list[dict], engines: list[str]) -> dict:
    summary = {}
    for engine in engines:
        rs = [r for r in rows if r["engine"] == engine]
        compiled = [r for r in rs if r.get("compiled")]
        summary[engine] = {
            "tasks": len(rs), "compiled": len(compiled), "valid": sum(bool(r.get("valid")) for r in rs),
            "incomplete": sum(bool(r.get("incomplete")) for r in rs),
            "errors": sum("error" in r for r in rs),
            "compile_s_median": _median([r.get("compile_s") for r in compiled]),
            "ttft_s_median": _median([r.get("ttft_s") for r in rs]),
            "tpot_ms_median": (lambda m: None if m is None else 1000 * m)(_median([r.get("tpot_s") for r in rs])),
            "tokens_mean": statistics.mean([r["tokens"] for r in rs if "tokens" in r]) if any(
                "tokens" in r for r in rs) else None,
        }
    base = summary.get("unconstrained", {}).get("tpot_ms_median")
    for engine, s in summary.items():
        s["tpot_vs_unconstrained"] = s["tpot_ms_median"] / base if base and s["tpot_ms_median"] else None
    return summary


def print_table(summary: dict) -> None:
    header = (f"{'engine':17s} {'compiled':>9s} {'valid':>9s} {'incomplete':>10s} {'TPOT p50':>9s} "
              f"{'vs uncon.':>9s} {'TTFT p50':>9s} {'compile p50':>11s} {'tok mean':>8s}")
    print("\n" + header + "\n" + "-" * len(header))
    fmt = lambda v, f: "-" if v is None else f.format(v)  # noqa: E731
    for engine, s in summary.items():
        n = s["tasks"]
        print(f"{engine:17s} {s['compiled']:>4d}/{n:<4d} {s['valid']:>4d}/{n:<4d} {s['incomplete']:>5d}/{n:<4d} "
              f"{fmt(s['tpot_ms_median'], '{:.1f}ms'):>9s} {fmt(s['tpot_vs_unconstrained'], '{:.2f}x'):>9s} "
              f"{fmt(s['ttft_s_median'], '{:.3f}s'):>9s} {fmt(s['compile_s_median'], '{:.3f}s'):>11s} "
              f"{fmt(s['tokens_mean'], '{:.0f}'):>8s}")


NOTES = {
    True: ["objects closed: structgen close_objects=True; xgrammar strict_mode=True (also closes arrays "
           "without 'items'); llguidance has no option, it gets the schema with additionalProperties:false "
           "added where unset (not inside allOf / next to applicators or $ref)",
           "whitespace compact for all: structgen 'compact', xgrammar any_whitespace=False + separators "
           "(',', ':'), llguidance whitespace_flexible=False"],
    False: ["objects open (schema default): structgen close_objects=False; xgrammar strict_mode=False; "
            "llguidance schema as given",
            "whitespace compact for all: structgen 'compact', xgrammar any_whitespace=False + separators "
            "(',', ':'), llguidance whitespace_flexible=False"],
}
COMMON_NOTES = [
    "unconstrained / structgen-hf / xgrammar / llguidance share transformers generate (greedy, one "
    "LogitsProcessor); structgen and unconstrained-sg use structgen's own decode loop, so compare "
    "structgen's TPOT with unconstrained-sg and the processors' with unconstrained",
    "TTFT = generate call -> first token chosen (prefill + first mask); compile time is reported apart",
    "valid = json.loads + jsonschema against the original schema; incomplete = stopped by max tokens",
    "keywords an engine cannot enforce are relaxed (structgen strict=False, llguidance lenient, xgrammar "
    "ignores them)",
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--schemas", type=int, default=8, help="JSONSchemaBench schemas (round-robin over splits)")
    ap.add_argument("--bfcl", type=int, default=8, help="BFCL function-call prompts")
    ap.add_argument("--max-schema-chars", type=int, default=1500, help="skip larger JSONSchemaBench schemas")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--close-objects", action=argparse.BooleanOptionalAction, default=True,
                    help="every engine closes objects (no undeclared properties); see the module docstring")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "e2e.json"))
    args = ap.parse_args(argv)
    from structgen.models import DEFAULT_MODEL
    model_name = args.model or DEFAULT_MODEL
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        ap.error(f"unknown engines {sorted(unknown)}; choose from {', '.join(ENGINES)}")
    torch.set_num_threads(args.threads)
    started = time.time()
    load = [os.getloadavg()]
    runner = Runner(model_name, args.max_new_tokens, args.close_objects)
    tasks = load_tasks(args.schemas, args.bfcl, args.seed, args.max_schema_chars)
    print(f"model {model_name}; {len(tasks)} tasks; engines {', '.join(engines)}; close_objects "
          f"{args.close_objects}; max_new_tokens {args.max_new_tokens}; threads {torch.get_num_threads()}; "
          f"load {load[0][0]:.2f}", flush=True)
    # warm-up: first-call costs (imports, JIT, tokenizer tables) are not part of any task
    warm_ids = runner.prompt_ids("Give a JSON object with a name and an age.")
    for engine in engines:
        compiled, _ = runner.compile(engine, WARMUP_SCHEMA)
        runner.max_new_tokens, saved = 4, runner.max_new_tokens
        try:
            runner.generate(engine, compiled, warm_ids)
        finally:
            runner.max_new_tokens = saved
    rows = []
    for k, task in enumerate(tasks):
        ids = runner.prompt_ids(task["prompt"])
        order = engines[k % len(engines):] + engines[:k % len(engines)]   # rotate against load drift
        for engine in order:
            row = {"task": task["id"], "source": task["source"], "engine": engine, "prompt_tokens": len(ids)}
            rows.append(row)
            try:
                compiled, compile_s = runner.compile(engine, task["schema"])
                row.update(compiled=True, compile_s=compile_s)
            except Exception as exc:  # each engine refuses schemas in its own way
                row.update(compiled=False, valid=False, error=f"{type(exc).__name__}: {str(exc)[:200]}")
                print(f"  {task['id'][:40]:40s} {engine:16s} compile error: {row['error'][:80]}", flush=True)
                continue
            try:
                row.update(runner.generate(engine, compiled, ids))
            except Exception as exc:
                row.update(valid=False, error=f"{type(exc).__name__}: {str(exc)[:200]}")
                print(f"  {task['id'][:40]:40s} {engine:16s} generation error: {row['error'][:80]}", flush=True)
                continue
            row["valid"] = is_valid(row["text"], task["schema"])
            print(f"  {task['id'][:40]:40s} {engine:16s} valid={row['valid']!s:5s} tokens={row['tokens']:4d} "
                  f"ttft={row['ttft_s'] or 0:.3f}s tpot={1000 * (row['tpot_s'] or 0):.1f}ms", flush=True)
        load.append(os.getloadavg())
    summary = summarize(rows, engines)
    print_table(summary)
    notes = NOTES[args.close_objects] + COMMON_NOTES
    print("\nnotes:\n" + "\n".join(f"  - {n}" for n in notes))
    loads1 = [x[0] for x in load]
    print(f"\n{len(tasks)} tasks ({sum(t['source'] == 'jsonschemabench' for t in tasks)} JSONSchemaBench, "
          f"{sum(t['source'] == 'bfcl' for t in tasks)} BFCL); {time.time() - started:.0f}s; 1-min load average "
          f"min {min(loads1):.2f} / median {statistics.median(loads1):.2f} / max {max(loads1):.2f} on "
          f"{os.cpu_count()} CPUs")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": model_name, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
                               "close_objects": args.close_objects, "torch_threads": torch.get_num_threads(),
                               "max_schema_chars": args.max_schema_chars, "cpus": os.cpu_count(),
                               "loadavg_per_task": load, "wall_s": time.time() - started,
                               "tasks": [t["id"] for t in tasks], "notes": notes,
                               "summary": summary, "rows": rows}, indent=1, default=str))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
