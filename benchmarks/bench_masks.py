"""Grammar/regex mask benchmark: structgen vs xgrammar vs llguidance, same run, same tokens.

For each case (a grammar or regex plus valid texts), every engine compiles it
(timed) and replays the same token sequences (Qwen2.5 151,936-token
vocabulary by default): mask time per token, acceptance of every sequence.
Each engine runs in one long-lived worker process forked after the warm-up
(restarted after a timeout), with an untimed warm-up job of its own.

    python benchmarks/bench_masks.py [--vocab qwen2.5-coder-0.5b] [--quick]

Cases: the shipped grammars, the dottxt regexes and, as ``corpus: <name>``, real
grammars from the shared corpus with texts written for them (corpus_texts.json).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers import (CORPORA, LLGuidanceEngine, StructgenEngine, XGrammarEngine, fmt_ms, fmt_us,  # noqa: E402
                   CaseWorker, load_qwen, percentiles, write_json)

from structgen.grammar import shipped_grammar_path  # noqa: E402


def random_json(rng: random.Random, depth: int = 0):
    kind = rng.choice(["obj", "obj", "arr", "str", "num", "lit"] if depth < 3 else ["str", "num", "lit"])
    if kind == "obj":
        keys = ["name", "id", "value", "items", "description", "created_at", "tags", "count"]
        return {rng.choice(keys) + str(i): random_json(rng, depth + 1) for i in range(rng.randint(1, 4))}
    if kind == "arr":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == "str":
        words = ["hello", "world", "structured", "generation", "naïve", "東京", "😀", "a\"quote", "tab\t"]
        return " ".join(rng.choice(words) for _ in range(rng.randint(0, 6)))
    if kind == "num":
        return rng.choice([0, 7, -42, 3.25, 1e-7, 123456789, -0.5])
    return rng.choice([True, False, None])


def random_arith(rng: random.Random, depth: int = 0) -> str:
    if depth > 3 or rng.random() < 0.3:
        return str(rng.choice([1, 2, 17, 3.5, 100, 42]))
    op = rng.choice(["+", "-", "*", "/", "^"])
    e = f"{random_arith(rng, depth + 1)} {op} {random_arith(rng, depth + 1)}"
    return f"({e})" if rng.random() < 0.4 else e


SQL_TEXTS = [
    "SELECT name, age FROM users WHERE age > 30 ORDER BY name",
    "SELECT COUNT(*) FROM orders o JOIN customers c ON o.customer_id = c.id GROUP BY c.country HAVING COUNT(*) > 5",
    "INSERT INTO items (id, label) VALUES (1, 'first'), (2, 'it''s second')",
    "UPDATE accounts SET balance = balance - 100 WHERE id = 7",
    "DELETE FROM sessions WHERE expires_at < 1700000000",
    "SELECT DISTINCT city FROM addresses WHERE city LIKE 'San%' AND zip IS NOT NULL LIMIT 10 OFFSET 20",
    "SELECT a.x, SUM(b.y) AS total FROM a LEFT OUTER JOIN b ON a.id = b.a_id WHERE b.y BETWEEN 1 AND 9 GROUP BY a.x;",
]


CORPUS_TEXTS = Path(__file__).resolve().parent / "corpus_texts.json"


def with_start(source: str, kind: str, start: str | None) -> str:
    """The grammar text with ``start`` as its start rule, as a one-line alias (``start: X`` for Lark,
    ``root ::= X`` for GBNF): the peers' front-ends take no start name, and giving every engine the
    same text keeps the comparison on one grammar."""
    if not start:
        return source
    return (f"start: {start}\n" if kind == "lark" else f"root ::= {start}\n") + source


def corpus_cases(quick: bool) -> list[dict]:
    """``corpus: <name>`` cases: shared-corpus grammars with the texts in corpus_texts.json.

    Lark files go to structgen and llguidance, GBNF/EBNF files to all three (xgrammar has no Lark
    front-end).  Nothing if the corpus is missing; a grammar file that is missing is left out.
    """
    grammars = CORPORA / "grammars"
    if not grammars.is_dir():
        print(f"corpus grammars not found at {grammars} (set STRUCTGEN_CORPORA): corpus cases skipped",
              file=sys.stderr)
        return []
    cases = []
    for rel, entry in json.loads(CORPUS_TEXTS.read_text()).items():
        path = grammars / rel
        if not path.is_file():
            continue
        kind = entry["kind"]
        source = with_start(path.read_text(encoding="utf-8"), kind, entry.get("start"))
        engines = ("structgen", "llguidance") + (("xgrammar",) if kind == "gbnf" else ())
        texts = entry["texts"][:3] if quick else entry["texts"]
        cases.append({"name": f"corpus: {entry['name']}", "texts": texts,
                      "sources": {e: (kind, source) for e in engines}})
    return cases


def build_cases(quick: bool):
    rng = random.Random(0)
    n = 6 if quick else 20
    json_texts = [json.dumps(random_json(rng), ensure_ascii=False) for _ in range(n)]
    json_texts += [json.dumps(random_json(rng), indent=2, ensure_ascii=False) for _ in range(n // 2)]
    cases = [
        {"name": "json", "texts": json_texts, "sources": {
            "structgen": ("lark", shipped_grammar_path("json").read_text()),
            "llguidance": ("lark", shipped_grammar_path("json").read_text()),
            "xgrammar": ("gbnf", shipped_grammar_path("json.gbnf").read_text())}},
        {"name": "json (gbnf)", "texts": [json.dumps(json.loads(t)) for t in json_texts[:n]], "sources": {
            e: ("gbnf", shipped_grammar_path("json.gbnf").read_text()) for e in ("structgen", "llguidance", "xgrammar")}},
        {"name": "arithmetic", "texts": [random_arith(rng) for _ in range(n * 2)], "sources": {
            e: ("lark", shipped_grammar_path("arithmetic").read_text()) for e in ("structgen", "llguidance")}},
        {"name": "sql", "texts": SQL_TEXTS, "sources": {
            e: ("lark", shipped_grammar_path("sql").read_text()) for e in ("structgen", "llguidance")}},
    ]
    dottxt = CORPORA / "regex" / "dottxt-benchmarks" / "src"
    meta = json.loads((dottxt / "cases.json").read_text()) if (dottxt / "cases.json").is_file() else {}
    for name, case in meta.get("regex_cases", {}).items():
        samples = regex_samples(case["regex"], json.loads((dottxt / case["samples_file"]).read_text()))
        samples = samples[: (10 if quick else 50)]
        cases.append({"name": f"regex: {name}", "texts": samples,
                      "sources": {e: ("regex", case["regex"]) for e in ("structgen", "llguidance", "xgrammar")}})
    return cases + corpus_cases(quick)


def regex_samples(regex: str, samples: list[str]) -> list[str]:
    """The samples the regex matches in full, by interegular's automaton (Python's ``re``
    backtracks exponentially on the URL regex's ``([...]*)*`` for samples it rejects).  dottxt's
    GSM8K samples are answers without the regex's literal lead ``A: ``; a sample that matches
    once that lead is put back gets it.  Others are dropped: a refused text is timed only up to
    its first refused token, so a case of them measured its first masks alone."""
    import interegular
    fsm = interegular.parse_pattern(regex).to_fsm()
    lead = re.match(r"[A-Za-z0-9 :]*", regex).group()
    out = []
    for s in samples:
        if fsm.accepts(s):
            out.append(s)
        elif lead and fsm.accepts(lead + s):
            out.append(lead + s)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", default="qwen2.5-coder-0.5b", help="registry model whose tokenizer is used")
    ap.add_argument("--quick", action="store_true", help="fewer texts per case")
    ap.add_argument("--out", default="masks.json")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per (case, engine): compile + replay")
    ap.add_argument("--cases", default="", help="comma-separated case-name prefixes to run (default: all)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="fresh compiles + replays per (case, engine); each mask's median is reported")
    args = ap.parse_args()

    hf, info, vocab_size = load_qwen(args.vocab)
    from structgen.engine.compiled import token_trie_for
    token_trie_for(info)  # tokenizer preprocessing, once (peers do theirs in their constructors)
    # warm imports, numba kernels and regex tables in the parent so each forked case times only its own
    # compile and masks (the peers' native code is loaded by their imports)
    from structgen.engine import warm_up
    warm_up(info)
    engines = [StructgenEngine(info), XGrammarEngine(hf, vocab_size), LLGuidanceEngine(hf, vocab_size)]
    # long-lived objects (tokenizers, tries, models) out of GC scans, before the per-case forks
    from structgen.gcpolicy import freeze_long_lived
    freeze_long_lived()
    rows = []
    load_start = os.getloadavg()
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    # one long-lived worker per engine (forked now, after the warm-up), cases interleaved across engines
    workers = {eng.name: CaseWorker(eng, info.encode("abc123")) for eng in engines}
    for case in build_cases(args.quick):
        if wanted and not any(case["name"].startswith(w) for w in wanted):
            continue
        seqs = [info.encode(t) for t in case["texts"]]
        for eng in engines:
            if eng.name not in case["sources"]:
                rows.append({"case": case["name"], "engine": eng.name, "error": "no front-end for this format"})
                continue
            kind, src = case["sources"][eng.name]
            r = workers[eng.name].run(kind, src, seqs, args.timeout, args.repeats)
            r["case"] = case["name"]
            r["tokens"] = sum(len(s) for s in seqs)
            r |= {f"mask_{k}": v for k, v in percentiles(r["mask_s"]).items()}
            rows.append(r)
            print(f"  {case['name']:<24} {eng.name:<11} done", file=sys.stderr)
    for w in workers.values():
        w.stop()

    print(f"mask times: each mask's median over {args.repeats} fresh compile(s) and replay(s); compile: median")
    header = f"{'case':<24} {'engine':<11} {'compile ms':>10} {'mask p50 us':>11} {'p99 us':>8} {'max us':>9} {'accepted':>9}  note"
    print(header)
    print("-" * len(header))
    for r in rows:
        if r.get("error") and r.get("compile_s") is None or r.get("mask_p50") is None:
            print(f"{r['case']:<24} {r['engine']:<11} {'-':>10} {'-':>11} {'-':>8} {'-':>9} {'-':>9}  {r['error'][:60]}")
            continue
        n = r["accepted"] + r["refused"]
        print(f"{r['case']:<24} {r['engine']:<11} {fmt_ms(r['compile_s']):>10} {fmt_us(r['mask_p50']):>11} "
              f"{fmt_us(r['mask_p99']):>8} {fmt_us(r['mask_max']):>9} {r['accepted']:>4}/{n:<4}")
    # ratios: structgen vs each peer on cases both ran
    print("\nratios (peer / structgen; > 1 means structgen is faster)")
    by_case: dict = {}
    for r in rows:
        by_case.setdefault(r["case"], {})[r["engine"]] = r
    for case, engs in by_case.items():
        s = engs.get("structgen")
        if not s or s.get("mask_p50") is None:
            continue
        parts = []
        for peer in ("xgrammar", "llguidance"):
            p = engs.get(peer)
            if p and p.get("mask_p50") and s["mask_p50"]:
                parts.append(f"{peer}: mask p50 x{p['mask_p50'] / s['mask_p50']:.2f}, "
                             f"p99 x{p['mask_p99'] / s['mask_p99']:.2f}, compile x{p['compile_s'] / s['compile_s']:.2f}")
        print(f"  {case:<24} " + "; ".join(parts))
    for r in rows:
        r.pop("mask_s", None)
    load = {"start": load_start, "end": os.getloadavg(), "cpu_count": os.cpu_count()}
    print(f"load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, "
          f"at end {load['end'][0]:.2f}/{load['end'][1]:.2f}/{load['end'][2]:.2f} on {os.cpu_count()} CPUs")
    path = write_json(args.out, {"vocab": args.vocab, "vocab_size": vocab_size, "repeats": args.repeats, "rows": rows,
                                 "load": load})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
