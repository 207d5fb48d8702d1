"""Memory of one compiled grammar under long traffic: structgen vs llguidance vs xgrammar, same tokens.

A server keeps one compiled grammar per schema for every request, so what an
engine caches per parser state must stop growing.  For each case, every
engine runs in a fresh forked process: it compiles the grammar, replays one
warm-up text, then replays many random texts (the same token sequences for
every engine, Qwen2.5 151,936-token vocabulary), one matcher per text, with a
mask and an accept per token.  The table shows the process's resident memory
growth since the warm-up at five checkpoints, and the mean time per token
(mask + accept).  structgen runs twice: default bounds, and a tight budget
(8 MB of masks, 3,000 linked states) to show the bound holding.

    python benchmarks/bench_memory.py [--texts 3000] [--cases arithmetic,json,json schema]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_masks import random_arith, random_json  # noqa: E402
from peers import LLGuidanceEngine, StructgenEngine, XGrammarEngine, load_qwen, write_json  # noqa: E402

from structgen.grammar import shipped_grammar_path  # noqa: E402

CHECKPOINTS = 5
TIGHT = dict(mask_cache_bytes=8 << 20, max_linked_states=3000)


def release_free_heap() -> None:
    """Collect garbage and hand free heap pages back to the OS, so later growth shows up in RSS
    (a forked child otherwise reuses pages its parent freed, which are already resident)."""
    import ctypes
    import gc
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; the benchmark machine's OS)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


PERSON_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["name", "age"],
    "properties": {
        "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                    "required": ["city"], "additionalProperties": False},
        "scores": {"type": "array", "items": {"type": "number"}}}}


def random_person(rng: random.Random) -> str:
    """A compact JSON instance of PERSON_SCHEMA (structgen's schema grammars are compact by default),
    non-ASCII written raw: llguidance's default schema strings refuse ``\\u00ef``-style escapes."""
    words = ["hello", "world", "naïve", "東京", 'a"quote', "two words", "", "Zed"]
    obj: dict = {"name": " ".join(rng.choice(words) for _ in range(rng.randint(0, 4))),
                 "age": rng.randint(0, 10 ** rng.randint(0, 6))}
    if rng.random() < 0.6:
        obj["tags"] = [rng.choice(words) for _ in range(rng.randint(0, 5))]
    if rng.random() < 0.5:
        obj["address"] = {"city": rng.choice(words)}
        if rng.random() < 0.5:
            obj["address"]["zip"] = str(rng.randint(0, 99999))
    if rng.random() < 0.5:
        obj["scores"] = [rng.choice([0, 1.5, -2, 3e-05, 12345.678]) for _ in range(rng.randint(0, 4))]
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def cases(n_texts: int) -> list[dict]:
    rng = random.Random(5)
    arith = [random_arith(rng) for _ in range(n_texts)]
    js = [json.dumps(random_json(rng), ensure_ascii=False) for _ in range(n_texts)]
    people = [random_person(rng) for _ in range(n_texts)]
    return [
        {"name": "json schema", "texts": people, "sources": {
            e: ("json_schema", PERSON_SCHEMA) for e in ("structgen", "llguidance", "xgrammar")}},
        {"name": "arithmetic", "texts": arith, "sources": {
            e: ("lark", shipped_grammar_path("arithmetic").read_text()) for e in ("structgen", "llguidance")}},
        {"name": "json (gbnf)", "texts": js, "sources": {
            e: ("gbnf", shipped_grammar_path("json.gbnf").read_text()) for e in ("structgen", "llguidance", "xgrammar")}},
    ]


def run_engine(engine, kind: str, source, seqs: list[list[int]], structgen_options: dict | None,
               budget_s: float = float("inf")) -> dict:
    """In the current process: compile, warm up on the first text, replay the rest with RSS checkpoints.

    Stops early once ``budget_s`` seconds of replay are spent (a slow engine reports the
    checkpoints it reached)."""
    compiled = (engine.compile(kind, source, **structgen_options) if structgen_options is not None
                else engine.compile(kind, source))
    fill, accept, _, _ = engine.steps(compiled)
    for t in seqs[0]:
        fill()
        if not accept(t):
            raise AssertionError(f"{engine.name} refused a warm-up token")
    release_free_heap()
    base = rss_bytes()
    marks = [len(seqs) * (i + 1) // CHECKPOINTS for i in range(CHECKPOINTS)]
    out = {"growth_mb": [], "tokens": [], "s_per_token": None, "refused": 0}
    n_tok, spent = 0, 0.0
    for k, seq in enumerate(seqs[1:], start=2):
        fill, accept, _, _ = engine.steps(compiled)
        t0 = time.perf_counter()
        for t in seq:
            fill()
            if not accept(t):
                out["refused"] += 1
                break
        fill()
        spent += time.perf_counter() - t0
        n_tok += len(seq) + 1
        if k in marks:
            out["growth_mb"].append((rss_bytes() - base) / 2**20)
            out["tokens"].append(n_tok)
        if spent > budget_s:
            out["stopped_early"] = f"time budget: {k - 1} of {len(seqs) - 1} texts"
            out["growth_mb"].append((rss_bytes() - base) / 2**20)
            out["tokens"].append(n_tok)
            break
    out["s_per_token"] = spent / max(n_tok, 1)
    if structgen_options is not None:
        out["mask_cache_mb"] = compiled._masks.nbytes / 2**20
        out["linked_states"] = compiled.linked_states()
        out["memo_cuts"] = compiled.stats["memo_cuts"]
    return out


def _child(conn, engine, kind, source, seqs, options, budget_s):
    try:
        conn.send(run_engine(engine, kind, source, seqs, options, budget_s))
    except BaseException as exc:  # report, never hang
        conn.send({"error": f"{type(exc).__name__}: {exc}"[:200]})


def in_fresh_process(engine, kind, source, seqs, options, timeout_s: float, budget_s: float) -> dict:
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(child, engine, kind, source, seqs, options, budget_s), daemon=True)
    proc.start()
    child.close()
    got = parent.recv() if parent.poll(timeout_s) else {"error": f"timeout after {timeout_s:.0f} s"}
    proc.kill()
    proc.join(5)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", default="qwen2.5-coder-0.5b", help="registry model whose tokenizer is used")
    ap.add_argument("--texts", type=int, default=3000, help="random texts per case (one matcher each)")
    ap.add_argument("--cases", default="", help="comma-separated case-name prefixes (default: all)")
    ap.add_argument("--out", default="memory.json")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per (case, engine) before it is killed")
    ap.add_argument("--budget", type=float, default=120,
                    help="replay seconds per (case, engine); a slower engine stops early and says so")
    args = ap.parse_args()
    hf, info, vocab = load_qwen(args.vocab)
    from structgen.engine import warm_up
    warm_up(info)
    engines = [StructgenEngine(info), XGrammarEngine(hf, vocab), LLGuidanceEngine(hf, vocab)]
    wanted = [c for c in args.cases.split(",") if c]
    rows = []
    for case in cases(args.texts):
        if wanted and not any(case["name"].startswith(w) for w in wanted):
            continue
        seqs = [list(info.encode(t)) for t in case["texts"]]
        runs = []
        for engine in engines:
            if engine.name not in case["sources"]:
                continue
            kind, source = case["sources"][engine.name]
            if engine.name == "structgen":
                runs.append(("structgen", kind, source, {}))
                runs.append(("structgen (tight)", kind, source, TIGHT))
            else:
                runs.append((engine.name, kind, source, None))
        by_name = {e.name: e for e in engines}
        for label, kind, source, options in runs:
            engine = by_name[label.split(" ")[0]]
            print(f"  {case['name']:14s} {label:18s} ...", flush=True)
            res = in_fresh_process(engine, kind, source, seqs, options, args.timeout, args.budget)
            rows.append({"case": case["name"], "engine": label, **res})
    print()
    print(f"{'case':14s} {'engine':18s} {'tokens':>8s}  RSS growth since warm-up, MB, at 5 checkpoints"
          f"          {'us/token':>8s}  note")
    print("-" * 108)
    for r in rows:
        if "error" in r:
            print(f"{r['case']:14s} {r['engine']:18s} {'-':>8s}  {r['error']}")
            continue
        growth = " ".join(f"{g:7.1f}" for g in r["growth_mb"])
        note = (f"masks {r['mask_cache_mb']:.0f} MB, {r['linked_states']} states, {r['memo_cuts']} cuts"
                if "mask_cache_mb" in r else "")
        if r.get("stopped_early"):
            note += r["stopped_early"]
        if r["refused"]:
            note += f" REFUSED {r['refused']} texts"
        print(f"{r['case']:14s} {r['engine']:18s} {r['tokens'][-1]:8d}  {growth:48s} "
              f"{r['s_per_token'] * 1e6:8.0f}  {note}")
    print("\nratios (RSS growth at the last checkpoint; time per token: peer / structgen default)")
    for case in {r["case"] for r in rows}:
        sg = next((r for r in rows if r["case"] == case and r["engine"] == "structgen" and "error" not in r), None)
        if sg is None:
            continue
        for r in rows:
            if r["case"] == case and r["engine"] not in ("structgen",) and "error" not in r:
                a, b = r["growth_mb"][-1], sg["growth_mb"][-1]
                print(f"  {case:14s} {r['engine']:18s} growth {a:7.1f} MB vs {b:7.1f} MB, "
                      f"time/token x{r['s_per_token'] / sg['s_per_token']:.2f}")
    load = os.getloadavg()
    print(f"load average at end {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} on {os.cpu_count()} CPUs")
    path = write_json(args.out, {"vocab": args.vocab, "texts": args.texts, "rows": rows, "loadavg_end": load})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
