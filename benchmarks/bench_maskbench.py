"""MaskBench (JSONSchemaBench): structgen vs xgrammar vs llguidance, same run, same tokens.

For every MaskBench file (a JSON Schema plus valid and invalid instances) each
engine compiles the schema (timed, with a deadline) and replays every instance,
serialized compactly and tokenized once with the Qwen2.5 tokenizer (151,936
ids; the same ids for all engines): before each token the mask is computed
(timed), the token must be allowed, and after the last one EOS must be allowed.
A valid instance must be fully accepted (else: *wrong reject*), an invalid one
refused somewhere (else: *wrong accept*); both are counted only over the
schemas that engine compiled.

Each engine runs in a worker process forked from the warmed-up parent (one
engine at a time, one CPU thread), so a compile that overruns
``--compile-timeout`` is killed without stopping the run.

Compiles are timed cold: structgen's process-wide DFA caches (a second schema
using the same ``format`` or key set would reuse the first one's DFAs) are
cleared, untimed, before each schema, as xgrammar runs with its cache off and
llguidance keeps nothing across grammars.  ``--warm-caches`` keeps them (a
long-running server's view).  Setup that does not depend on the schema
(tokenizer trie, numba kernels, metaschemas) is warmed up once for every engine.

    python benchmarks/bench_maskbench.py --sample 20
    python benchmarks/bench_maskbench.py --limit 50 --engines structgen,llguidance
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS", "NUMBA_NUM_THREADS", "TOKENIZERS_PARALLELISM"):
    os.environ.setdefault(_v, "false" if _v == "TOKENIZERS_PARALLELISM" else "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers import (CORPORA, ForkedWorker, LLGuidanceEngine, StructgenEngine, XGrammarEngine, fmt_ms,  # noqa: E402
                   fmt_us, load_qwen, percentiles, write_json)

DATA = CORPORA / "jsonschemabench" / "maskbench" / "data"
EXPECTED = CORPORA / "jsonschemabench" / "llguidance-expected" / "json_stats" / "expected_maskbench.json"
ENGINES = ("structgen", "xgrammar", "llguidance")


# ----------------------------------------------------------------------------- corpus

def select_files(data_dir: Path = DATA, *, limit: int | None = None, sample: int | None = None) -> list[Path]:
    """Sorted MaskBench files; every ``sample``-th one, then the first ``limit`` (deterministic)."""
    files = sorted(data_dir.glob("*.json"))
    if sample and sample > 1:
        files = files[::sample]
    if limit is not None:
        files = files[:limit]
    return files


def serialize(value: Any) -> str:
    """The benchmark's canonical instance text: compact JSON, UTF-8 kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def schema_ordered(value: Any, schema: Any, root: Any, depth: int = 0) -> Any:
    """``value`` with object keys moved into the schema's declared property order (best effort).

    Only used to *classify* wrong rejects: llguidance documents that declared properties
    appear in schema order (structgen accepts any order by default), and a few MaskBench
    instances do not.
    Follows local ``$ref``, ``allOf``/``anyOf``/``oneOf`` and ``items``/``prefixItems``.
    """
    if depth > 40 or not isinstance(schema, dict):
        return value
    schemas = _flatten(schema, root, 0, value)
    if isinstance(value, dict):
        order: list[str] = []
        props: dict[str, list] = {}
        for s in schemas:
            for k, sub in (s.get("properties") or {}).items() if isinstance(s.get("properties"), dict) else ():
                if k not in props:
                    order.append(k)
                    props[k] = []
                props[k].append(sub)
        out = {}
        for k in order:
            if k in value:
                out[k] = _ordered_under(value[k], props[k], root, depth)
        for k, v in value.items():
            if k not in out:
                extra = [s.get("additionalProperties") for s in schemas if isinstance(s.get("additionalProperties"), dict)]
                out[k] = _ordered_under(v, extra, root, depth)
        return out
    if isinstance(value, list):
        out_list = []
        for i, v in enumerate(value):
            subs = []
            for s in schemas:
                prefix = s.get("prefixItems") if isinstance(s.get("prefixItems"), list) else (
                    s.get("items") if isinstance(s.get("items"), list) else None)
                if prefix is not None and i < len(prefix):
                    subs.append(prefix[i])
                elif isinstance(s.get("items"), dict):
                    subs.append(s["items"])
            out_list.append(_ordered_under(v, subs, root, depth))
        return out_list
    return value


def _ordered_under(value: Any, subs: list, root: Any, depth: int) -> Any:
    for sub in subs:
        value = schema_ordered(value, sub, root, depth + 1)
    return value


def _branch_matches(value: Any, sub: Any, root: Any) -> bool:
    import jsonschema
    try:
        cls = jsonschema.validators.validator_for(root, default=jsonschema.Draft202012Validator)
        return cls(root).evolve(schema=sub).is_valid(value)
    except Exception:  # noqa: BLE001 - classification helper only
        return True


def _flatten(schema: Any, root: Any, depth: int, value: Any = None) -> list[dict]:
    """The schema objects that apply to ``value``: itself, local $ref targets, allOf, and the
    anyOf/oneOf branches ``value`` validates against."""
    if not isinstance(schema, dict) or depth > 20:
        return []
    out = [schema]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        target: Any = root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        out += _flatten(target, root, depth + 1, value)
    for kw in ("allOf", "anyOf", "oneOf"):
        if isinstance(schema.get(kw), list):
            for sub in schema[kw]:
                if kw == "allOf" or _branch_matches(value, sub, root):
                    out += _flatten(sub, root, depth + 1, value)
    return out


def load_case(path: Path, encode) -> dict:
    """Schema, and for each instance its validity label and token ids (plus a schema-ordered
    variant when key order differs, used only to classify wrong rejects)."""
    d = json.loads(path.read_text())
    instances = []
    for i, t in enumerate(d.get("tests", [])):
        text = serialize(t["data"])
        inst = {"index": i, "valid": bool(t["valid"]), "tokens": encode(text), "reordered": None}
        if t["valid"]:
            try:
                alt = serialize(schema_ordered(t["data"], d["schema"], d["schema"]))
            except Exception:  # noqa: BLE001 - classification helper only
                alt = text
            if alt != text:
                inst["reordered"] = encode(alt)
        instances.append(inst)
    return {"file": path.name, "schema": d["schema"], "features": d.get("meta", {}).get("features", []),
            "instances": instances}


# ----------------------------------------------------------------------------- workers

def _worker(engine, conn, cold: bool = True) -> None:
    """Compile + replay jobs for one engine; reports ("compiled", ...) then ("done", ...)."""
    import torch
    torch.set_num_threads(1)
    while True:
        job = conn.recv()
        if job is None:
            return
        if cold and engine.name == "structgen":
            from structgen.regex import clear_caches
            clear_caches()  # untimed: every schema compiles its DFAs from scratch
        # untimed, every engine: the previous schema's cyclic garbage (parser states of a
        # Python-heavy engine) is collected now instead of in a full pass in the middle of
        # the next schema's timed masks
        gc.collect()
        try:
            t0 = time.perf_counter()
            compiled = engine.compile("json_schema", job["schema"])
            compile_s = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - peers raise their own types; recorded, never fatal
            msg = str(exc).splitlines()[0][:300] if str(exc) else ""
            conn.send(("compiled", None, {"type": type(exc).__name__, "message": msg,
                                          "structgen_error": _is_structgen_error(exc)}))
            continue
        conn.send(("compiled", compile_s, None))
        results = []
        for inst in job["instances"]:
            try:
                times, ok, refused_at = engine.replay(compiled, inst["tokens"])
                r = {"index": inst["index"], "valid": inst["valid"], "accepted": bool(ok),
                     "refused_at": refused_at, "n_tokens": len(inst["tokens"]), "mask_s": times}
                if inst["valid"] and not ok and inst.get("reordered") is not None:
                    _, ok2, _ = engine.replay(compiled, inst["reordered"])
                    r["reordered_accepted"] = bool(ok2)
            except Exception as exc:  # noqa: BLE001
                r = {"index": inst["index"], "valid": inst["valid"], "accepted": False, "refused_at": None,
                     "n_tokens": len(inst["tokens"]), "mask_s": [],
                     "replay_error": f"{type(exc).__name__}: {exc}"[:300],
                     "traceback": traceback.format_exc()[-1500:]}
            results.append(r)
        conn.send(("done", results, None))


def _is_structgen_error(exc: BaseException) -> bool:
    from structgen.errors import StructgenError
    return isinstance(exc, StructgenError)


class Worker(ForkedWorker):
    """A forked process running one engine over MaskBench schemas; restarted after a timeout."""

    def __init__(self, engine, cold: bool = True):
        super().__init__(engine)
        self.cold = cold

    def _target(self) -> tuple:
        return _worker, (self.cold,)

    def run(self, case: dict, compile_timeout: float, replay_timeout: float) -> dict:
        self._ensure()
        job = {"schema": case["schema"], "instances": case["instances"]}
        out: dict[str, Any] = {"file": case["file"], "engine": self.engine.name, "compile_s": None,
                               "error": None, "instances": []}
        self.conn.send(job)
        msg = self._wait(compile_timeout, crashed=("crashed", None, None))
        if msg is None:
            self._kill()
            out["error"] = {"type": "Timeout", "message": f"compile exceeded {compile_timeout:g} s",
                            "structgen_error": False}
            out["timeout"] = True
            return out
        if msg[0] == "crashed":
            out["error"] = {"type": "Crash", "message": "worker died while compiling", "structgen_error": False}
            return out
        _, compile_s, err = msg
        if err is not None:
            out["error"] = err
            return out
        out["compile_s"] = compile_s
        msg = self._wait(replay_timeout, crashed=("crashed", None, None))
        if msg is None or msg[0] == "crashed":
            if msg is None:
                self._kill()
            out["replay_error"] = "replay timeout" if msg is None else "worker died during replay"
            return out
        out["instances"] = msg[1]
        return out


def make_engines(names: list[str]):
    """(engines, TokenizerInfo); every engine warmed up on a small schema so forked workers
    inherit tokenizer-level precomputation instead of redoing it per process."""
    hf, info, vocab_size = load_qwen()
    engines = []
    for n in names:
        if n == "structgen":
            engines.append(StructgenEngine(info))
        elif n == "xgrammar":
            engines.append(XGrammarEngine(hf, vocab_size))
        elif n == "llguidance":
            engines.append(LLGuidanceEngine(hf, vocab_size))
        else:
            raise SystemExit(f"unknown engine {n!r} (choose from {', '.join(ENGINES)})")
    warm = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer", "minimum": 0},
                                             "c": {"type": "array", "items": {"enum": ["x", "y"]}}},
            "required": ["a"]}
    toks = info.encode(serialize({"a": "hi", "b": 3, "c": ["x"]}))
    for e in engines:
        e.replay(e.compile("json_schema", warm), toks)
    if "structgen" in names:
        from structgen.engine import warm_up
        warm_up(info)  # every mask-path numba kernel, before the workers fork
    # tokenizers, models and tries live for the whole run: exempt them from GC scans (and from
    # copy-on-write of the whole heap in forked workers); applies to every engine alike
    from structgen.gcpolicy import freeze_long_lived
    freeze_long_lived()
    return engines, info


# ----------------------------------------------------------------------------- summary

def summarize(rows: list[dict]) -> dict:
    """Per-engine counts and percentiles, from the per-file rows of one engine."""
    compiled = [r for r in rows if r["compile_s"] is not None]
    masks = [t for r in compiled for i in r["instances"] for t in i["mask_s"]]
    wa, wr, wr_order, replay_err = [], [], [], []
    for r in compiled:
        if r.get("replay_error"):
            replay_err.append({"file": r["file"], "error": r["replay_error"]})
        for i in r["instances"]:
            if i.get("replay_error"):
                replay_err.append({"file": r["file"], "index": i["index"], "error": i["replay_error"]})
                continue
            if i["valid"] and not i["accepted"]:
                item = {"file": r["file"], "index": i["index"], "refused_at": i["refused_at"],
                        "n_tokens": i["n_tokens"]}
                (wr_order if i.get("reordered_accepted") else wr).append(item)
            elif not i["valid"] and i["accepted"]:
                wa.append({"file": r["file"], "index": i["index"]})
    errors = [r for r in rows if r["compile_s"] is None]
    return {
        "schemas": len(rows), "compiled": len(compiled),
        "compile_errors": sum(1 for r in errors if not r.get("timeout")),
        "compile_timeouts": sum(1 for r in errors if r.get("timeout")),
        "non_structgen_errors": [{"file": r["file"], **r["error"]} for r in errors
                                 if r["engine"] == "structgen" and not r["error"]["structgen_error"]
                                 and not r.get("timeout")],
        "compile": percentiles([r["compile_s"] for r in compiled]),
        "mask": percentiles(masks, qs=(50, 99)), "masks": len(masks),
        "instances": sum(len(r["instances"]) for r in compiled),
        "wrong_accepts": wa, "wrong_rejects": wr, "wrong_rejects_key_order": wr_order,
        "replay_errors": replay_err,
    }


def common_ratios(by_engine: dict[str, list[dict]], base: str = "structgen") -> dict:
    """Peer time / structgen time on the schemas *both* compiled (>1: structgen faster)."""
    out = {}
    if base not in by_engine:
        return out
    b = {r["file"]: r for r in by_engine[base] if r["compile_s"] is not None}
    for name, rows in by_engine.items():
        if name == base:
            continue
        p = {r["file"]: r for r in rows if r["compile_s"] is not None}
        common = sorted(set(b) & set(p))
        if not common:
            continue
        def stats(src):
            c = percentiles([src[f]["compile_s"] for f in common], qs=(50, 90, 99))
            m = percentiles([t for f in common for i in src[f]["instances"] for t in i["mask_s"]], qs=(50, 99))
            return c, m
        bc, bm = stats(b)
        pc, pm = stats(p)
        ratio = lambda x, y: (x / y) if x and y else None  # noqa: E731
        out[name] = {"common_schemas": len(common),
                     "compile_p50": ratio(pc["p50"], bc["p50"]), "compile_p90": ratio(pc["p90"], bc["p90"]),
                     "compile_p99": ratio(pc["p99"], bc["p99"]),
                     "mask_p50": ratio(pm["p50"], bm["p50"]), "mask_p99": ratio(pm["p99"], bm["p99"]),
                     "mask_max": ratio(pm["max"], bm["max"]),
                     base: {"compile": bc, "mask": bm}, name: {"compile": pc, "mask": pm}}
    return out


def coverage_vs_expected(rows: list[dict]) -> dict:
    """structgen compile outcome vs llguidance's published expected result per file."""
    if not EXPECTED.exists():
        return {}
    exp = json.loads(EXPECTED.read_text())
    table = {"both_compile": 0, "only_structgen": 0, "only_llguidance": 0, "neither": 0, "not_listed": 0}
    only_llg: list[dict] = []
    for r in rows:
        e = exp.get(r["file"])
        if e is None:
            table["not_listed"] += 1
            continue
        llg_ok = "json_error" not in e
        sg_ok = r["compile_s"] is not None
        key = ("both_compile" if sg_ok else "only_llguidance") if llg_ok else ("only_structgen" if sg_ok else "neither")
        table[key] += 1
        if key == "only_llguidance":
            only_llg.append({"file": r["file"], "structgen_error": r["error"]["message"][:160]})
    table["only_llguidance_files"] = only_llg
    return table


def print_report(summaries: dict, ratios: dict, coverage: dict, n_files: int) -> None:
    print(f"\nMaskBench: {n_files} schema files, Qwen2.5 151,936-token vocabulary, 1 thread\n")
    head = (f"{'engine':<11} {'compiled':>11} {'errors':>6} {'t/o':>4} {'compile p50':>11} {'p90':>8} {'p99':>9} "
            f"{'mask p50':>9} {'p99':>8} {'max':>9} {'instances':>9} {'wrong acc':>9} {'wrong rej':>9} {'(order)':>7}")
    print(head)
    print(f"{'':<11} {'':>11} {'':>6} {'':>4} {'ms':>11} {'ms':>8} {'ms':>9} {'us':>9} {'us':>8} {'us':>9}")
    print("-" * len(head))
    for name, s in summaries.items():
        c, m = s["compile"], s["mask"]
        print(f"{name:<11} {s['compiled']:>5}/{s['schemas']:<5} {s['compile_errors']:>6} {s['compile_timeouts']:>4} "
              f"{fmt_ms(c['p50']):>11} {fmt_ms(c['p90']):>8} {fmt_ms(c['p99']):>9} {fmt_us(m['p50']):>9} "
              f"{fmt_us(m['p99']):>8} {fmt_us(m['max']):>9} {s['instances']:>9} {len(s['wrong_accepts']):>9} "
              f"{len(s['wrong_rejects']):>9} {len(s['wrong_rejects_key_order']):>7}")
    print("(wrong rej excludes '(order)': valid instances whose keys are not in schema order and that are "
          "accepted once reordered)")
    if ratios:
        print("\nRatios peer/structgen on schemas both compiled (>1 = structgen faster):")
        print(f"{'peer':<11} {'common':>6} {'compile p50':>11} {'p90':>6} {'p99':>6} {'mask p50':>9} {'p99':>6} {'max':>6}")
        f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
        for name, r in ratios.items():
            print(f"{name:<11} {r['common_schemas']:>6} {f(r['compile_p50']):>11} {f(r['compile_p90']):>6} "
                  f"{f(r['compile_p99']):>6} {f(r['mask_p50']):>9} {f(r['mask_p99']):>6} {f(r['mask_max']):>6}")
    if coverage:
        print("\nstructgen compile coverage vs llguidance-expected (published llguidance results):")
        for k in ("both_compile", "only_structgen", "only_llguidance", "neither", "not_listed"):
            print(f"  {k:<16} {coverage[k]}")
    sg = summaries.get("structgen")
    if sg:
        for label, key in (("wrong accepts", "wrong_accepts"), ("wrong rejects", "wrong_rejects")):
            if sg[key]:
                print(f"\nstructgen {label}: " + ", ".join(f"{w['file']}#{w['index']}" for w in sg[key]))
        if sg["non_structgen_errors"]:
            print("\nstructgen compile failures that are not StructgenError (bugs):")
            for e in sg["non_structgen_errors"]:
                print(f"  {e['file']}: {e['type']}: {e['message'][:120]}")
        if sg["replay_errors"]:
            print("\nstructgen replay errors: " + "; ".join(f"{e['file']}: {e['error'][:80]}" for e in sg["replay_errors"]))


def _slowest_mask(times: list[float]) -> dict:
    """An instance's slowest mask and the token position it came before (outliers are findable)."""
    if not times:
        return {"mask_max_s": None, "mask_max_at": None}
    at = max(range(len(times)), key=times.__getitem__)
    return {"mask_max_s": times[at], "mask_max_at": at}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="only the first N files (after --sample)")
    ap.add_argument("--sample", type=int, default=None, help="every K-th file of the sorted list")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--compile-timeout", type=float, default=30.0, help="seconds per schema and engine")
    ap.add_argument("--replay-timeout", type=float, default=120.0, help="seconds for all instances of a schema")
    ap.add_argument("--files", nargs="*", help="explicit file names (override --limit/--sample)")
    ap.add_argument("--out", default="maskbench.json")
    ap.add_argument("--warm-caches", action="store_true",
                    help="keep structgen's DFA caches across schemas (default: cleared before each, untimed)")
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    names = [n.strip() for n in args.engines.split(",") if n.strip()]
    files = [DATA / f for f in args.files] if args.files else select_files(limit=args.limit, sample=args.sample)
    t_start = time.time()
    load_start = os.getloadavg()
    engines, info = make_engines(names)
    cases = [load_case(p, info.encode) for p in files]
    by_engine: dict[str, list[dict]] = {}
    for eng in engines:
        worker = Worker(eng, cold=not args.warm_caches)
        rows = by_engine.setdefault(eng.name, [])
        t0 = time.time()
        for k, case in enumerate(cases):
            rows.append(worker.run(case, args.compile_timeout, args.replay_timeout))
            if (k + 1) % 25 == 0 or k + 1 == len(cases):
                print(f"  {eng.name:<11} {k + 1}/{len(cases)} files, {time.time() - t0:.0f} s", file=sys.stderr)
        worker.stop()
    summaries = {n: summarize(rows) for n, rows in by_engine.items()}
    ratios = common_ratios(by_engine)
    coverage = coverage_vs_expected(by_engine["structgen"]) if "structgen" in by_engine else {}
    print_report(summaries, ratios, coverage, len(cases))
    la = os.getloadavg()
    print(f"\nstructgen compiles: {'warm caches' if args.warm_caches else 'cold (DFA caches cleared before each schema)'}; "
          f"load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, "
          f"at end {la[0]:.2f}/{la[1]:.2f}/{la[2]:.2f} on {os.cpu_count()} CPUs")
    per_file = [{"file": r["file"], "engine": r["engine"], "compile_s": r["compile_s"], "error": r["error"],
                 "replay_error": r.get("replay_error"),
                 "instances": [{k: v for k, v in i.items() if k != "mask_s"} | _slowest_mask(i["mask_s"])
                               for i in r["instances"]]}
                for rows in by_engine.values() for r in rows]
    payload = {"benchmark": "maskbench", "vocab": "qwen2.5-coder-0.5b (151,936)", "files": len(cases),
               "structgen_compile": "warm caches" if args.warm_caches else "cold (DFA caches cleared before each schema)",
               "load_average": {"start": load_start, "end": os.getloadavg()},
               "selection": {"limit": args.limit, "sample": args.sample, "explicit": bool(args.files)},
               "compile_timeout_s": args.compile_timeout, "wall_s": time.time() - t_start,
               "summary": summaries, "ratios_peer_over_structgen": ratios,
               "structgen_coverage_vs_llguidance_expected": coverage, "per_file": per_file}
    path = write_json(args.out, payload)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
