"""JSON-Schema-Test-Suite pass rates per keyword file, next to llguidance's published baseline.

Runs the same per-file check as tests/test_schema_suite.py (it imports that module, so the
two cannot drift) with the real engine as the acceptor: every group whose schema compiles,
every instance serialized compactly (and, with --flexible, with spaces after ',' and ':'
under whitespace="flexible").  By default the grammar is fed byte by byte (a 256-token
vocabulary); with --tokenizer it is fed the model tokenizer's own tokens of the instance,
and every token must also be set in the matcher's bitmask before it is accepted, so the
table checks the masks users get.  Prints one table per draft and writes
benchmarks/results/schema_suite[-<tokenizer>].json.

    python benchmarks/bench_schema_suite.py [--flexible] [--tokenizer qwen2.5-coder-0.5b]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("STRUCTGEN_SCHEMA_ACCEPTOR", "engine")
sys.path.insert(0, str(ROOT / "tests"))

import test_schema_suite as suite  # noqa: E402  (the test module is the single definition of the check)


class TokenAcceptor:
    """Feeds the tokenizer's tokens of a text, each checked against the mask, then accept_token."""

    def __init__(self, model_name: str) -> None:
        from structgen import load_tokenizer_info
        self.info = load_tokenizer_info(model_name)
        self.name = f"engine, {model_name} tokens ({self.info.vocab_size:,}) checked against the bitmask"
        self._grammar = self._compiled = None
        self.tokens = self.masks = 0

    def __call__(self, grammar, text: str) -> bool:
        import torch
        from structgen.engine import allocate_token_bitmask, compile_grammar
        if grammar is not self._grammar:
            self._grammar, self._compiled = grammar, compile_grammar(grammar, self.info)
        m = self._compiled.matcher()
        bitmask = allocate_token_bitmask(1, self.info.vocab_size)
        # the tokenizer's own tokens, unless its normalizer would change the text (Qwen applies
        # NFC: U+212A KELVIN SIGN would be fed as "K"); then a greedy spelling of the exact bytes
        for tok in self.info.encode(text):
            m.fill_next_token_bitmask(bitmask)
            self.masks += 1
            allowed = bool((int(bitmask[0, tok // 32]) >> (tok % 32)) & 1)
            accepted = m.accept_token(tok)
            self.tokens += 1
            if allowed != accepted:
                raise AssertionError(f"mask and accept_token disagree on token {tok} of {text[:80]!r}")
            if not accepted:
                return False
        return m.is_accepting()


def llguidance_passes() -> dict[str, int]:
    if not suite.LLG.exists():
        return {}
    data = json.loads(suite.LLG.read_text()).get("draft2020-12", {})
    return {name: sum(1 for g in groups.values() if isinstance(g, dict) for v in g.values() if v == "pass")
            for name, groups in data.items()}


def run_draft(draft: str, whitespace: str, llg: dict[str, int]) -> tuple[list[dict], dict]:
    rows = []
    total: collections.Counter = collections.Counter()
    for name, path in suite.suite_files(draft):
        n = sum(len(g["tests"]) for g in json.loads(path.read_text()))
        r = suite.run_file(draft, name, path, whitespace=whitespace)
        c = r["counts"]
        row = {"file": name, "tests": n, "pass": c["pass"], "refused": c["refused"],
               "known_exception": c["known_exception"], "wrong_accept": c["wrong_accept"],
               "wrong_reject": c["wrong_reject"], "unexpected": r["bad"],
               "llguidance_pass": llg.get(name) if draft == "draft2020-12" else None}
        rows.append(row)
        for k in ("tests", "pass", "refused", "known_exception", "wrong_accept", "wrong_reject"):
            total[k] += row[k]
        if row["llguidance_pass"] is not None:
            total["llguidance_pass"] += row["llguidance_pass"]
    return rows, dict(total)


def print_table(draft: str, whitespace: str, rows: list[dict], total: dict) -> None:
    print(f"\n{draft}, {whitespace} whitespace (acceptor: {suite.ACCEPTOR_NAME})")
    print(f"{'file':36} {'tests':>6} {'pass':>6} {'rate':>6} {'refused':>8} {'known':>6} {'wrong':>6} {'llg pass':>9}")
    for r in rows + [dict(total, file="TOTAL")]:
        llg = "" if r.get("llguidance_pass") is None else r["llguidance_pass"]
        rate = f"{100 * r['pass'] / r['tests']:.0f}%" if r["tests"] else "-"
        print(f"{r['file']:36} {r['tests']:6d} {r['pass']:6d} {rate:>6} {r['refused']:8d} {r['known_exception']:6d} "
              f"{r['wrong_accept'] + r['wrong_reject']:6d} {llg!s:>9}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flexible", action="store_true", help="also run every file with flexible whitespace")
    ap.add_argument("--tokenizer", default=None,
                    help="feed this bundled model's tokens (e.g. qwen2.5-coder-0.5b, smollm2-135m) instead of bytes")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.tokenizer:
        from structgen.errors import StructgenError
        try:
            acceptor = TokenAcceptor(args.tokenizer)
        except StructgenError as e:
            sys.exit(f"--tokenizer {args.tokenizer}: {e}")
        suite.ACCEPT, suite.ACCEPTOR_NAME = acceptor, acceptor.name
    out_path = args.out or str(ROOT / "benchmarks" / "results" /
                               (f"schema_suite-{args.tokenizer}.json" if args.tokenizer else "schema_suite.json"))
    llg = llguidance_passes()
    started = time.time()
    out = {"acceptor": suite.ACCEPTOR_NAME, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": []}
    for draft in ("draft2020-12", "draft7"):
        for ws in ("compact", "flexible") if args.flexible else ("compact",):
            rows, total = run_draft(draft, ws, llg)
            print_table(draft, ws, rows, total)
            out["runs"].append({"draft": draft, "whitespace": ws, "rows": rows, "total": total})
    out["seconds"] = time.time() - started
    if args.tokenizer:
        out["tokens_fed"] = acceptor.tokens
        out["texts_not_canonically_tokenizable"] = acceptor.info.non_canonical_encodes
    pathlib.Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(out_path).write_text(json.dumps(out, indent=1))
    bad = sum(r["total"]["wrong_accept"] + r["total"]["wrong_reject"] for r in out["runs"])
    print(f"\nwrong accepts + wrong rejects (outside the listed known exceptions): {bad}; "
          f"{out['seconds']:.0f} s; wrote {out_path}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
