"""Uniform adapters over structgen, xgrammar and llguidance for benchmarks.

Every engine is driven the same way on the same tokenizer and token
sequences: compile (timed), then for each token fill a mask (timed), check the
token is allowed, consume it; at the end check EOS is allowed.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

CORPORA = Path(os.environ.get("STRUCTGEN_CORPORA", Path(__file__).resolve().parents[1].parent / "shared" / "corpora"))
RESULTS = Path(__file__).resolve().parent / "results"


def bit_is_set(words: np.ndarray, t: int) -> bool:
    return bool((int(words[t >> 5]) >> (t & 31)) & 1)


@dataclass
class ReplayResult:
    compile_s: float | None = None
    mask_s: list[float] = field(default_factory=list)
    error: str | None = None          # compile error / unsupported
    accepted_all: bool = False        # every token allowed and EOS allowed at the end
    refused_at: int | None = None


def replay_loop(fill, accept, bitmask, eos_ids, tokens: list[int]) -> tuple[list[float], bool, int | None]:
    """The protocol every engine is timed with: fill (timed), check the token's bit, consume it;
    at the end the mask must allow an EOS id."""
    times = []
    for i, t in enumerate(tokens):
        t0 = time.perf_counter()
        fill()
        times.append(time.perf_counter() - t0)
        if not bit_is_set(bitmask[0].numpy(), t) or not accept(t):
            return times, False, i
    t0 = time.perf_counter()
    fill()
    times.append(time.perf_counter() - t0)
    words = bitmask[0].numpy()
    eos_ok = any(bit_is_set(words, e) for e in eos_ids)
    return times, eos_ok, None if eos_ok else len(tokens)


class Engine:
    name = "?"

    def compile(self, kind: str, source):  # kind: "json_schema" | "lark" | "gbnf" | "regex"
        raise NotImplementedError

    def steps(self, compiled) -> tuple:
        """A fresh matcher as (fill its bitmask, accept a token, the bitmask, the EOS ids)."""
        raise NotImplementedError

    def replay(self, compiled, tokens: list[int]) -> tuple[list[float], bool, int | None]:
        fill, accept, bitmask, eos_ids = self.steps(compiled)
        return replay_loop(fill, accept, bitmask, eos_ids, tokens)


class StructgenEngine(Engine):
    name = "structgen"

    def __init__(self, tokenizer_info):
        self.tok = tokenizer_info

    def compile(self, kind, source, **options):
        """``options`` go to compile_grammar (e.g. memory bounds)."""
        from structgen.engine import compile_grammar
        from structgen.grammar import grammar_from_gbnf, grammar_from_lark, grammar_from_regex
        if kind == "json_schema":
            from structgen.schema import grammar_from_json_schema
            g = grammar_from_json_schema(source)
        elif kind == "lark":
            g = grammar_from_lark(source)
        elif kind == "gbnf":
            g = grammar_from_gbnf(source)
        elif kind == "regex":
            g = grammar_from_regex(source)
        else:
            raise ValueError(kind)
        return compile_grammar(g, self.tok, cache=False, **options)

    def steps(self, compiled):
        from structgen.engine import allocate_token_bitmask
        m = compiled.matcher()
        bm = allocate_token_bitmask(1, self.tok.vocab_size)
        return (lambda: m.fill_next_token_bitmask(bm)), m.accept_token, bm, self.tok.eos_ids


class XGrammarEngine(Engine):
    name = "xgrammar"

    def __init__(self, hf_tokenizer, vocab_size: int):
        import xgrammar as xgr
        self.xgr = xgr
        self.info = xgr.TokenizerInfo.from_huggingface(hf_tokenizer, vocab_size=vocab_size)
        self.vocab_size = vocab_size

    def compile(self, kind, source):
        # a fresh compiler per grammar: no cross-grammar cache hits in timings
        compiler = self.xgr.GrammarCompiler(self.info, max_threads=1, cache_enabled=False)
        if kind == "json_schema":
            return compiler.compile_json_schema(json.dumps(source) if not isinstance(source, str) else source)
        if kind == "gbnf":
            return compiler.compile_grammar(source)
        if kind == "regex":
            return compiler.compile_regex(source)
        raise NotImplementedError(f"xgrammar has no {kind} front-end")

    def steps(self, compiled):
        m = self.xgr.GrammarMatcher(compiled)
        bm = self.xgr.allocate_token_bitmask(1, self.vocab_size)
        return (lambda: m.fill_next_token_bitmask(bm)), m.accept_token, bm, self.info.stop_token_ids


class LLGuidanceEngine(Engine):
    name = "llguidance"

    def __init__(self, hf_tokenizer, vocab_size: int):
        import llguidance
        import llguidance.hf
        self.llg = llguidance
        self.tok = llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=vocab_size)
        self.vocab_size = vocab_size
        self.eos = self.tok.eos_token

    def compile(self, kind, source):
        L = self.llg.LLMatcher
        if kind == "json_schema":
            g = L.grammar_from_json_schema(json.dumps(source) if not isinstance(source, str) else source)
        elif kind == "lark":
            g = L.grammar_from_lark(source)
        elif kind == "gbnf":
            from llguidance.gbnf_to_lark import gbnf_to_lark
            g = L.grammar_from_lark(gbnf_to_lark(source))
        elif kind == "regex":
            g = L.grammar_from_regex(source)
        else:
            raise ValueError(kind)
        m = L(self.tok, g, log_level=0)
        if m.is_error():
            raise RuntimeError(m.get_error())
        return g

    def steps(self, compiled):
        import llguidance.torch as lt
        m = self.llg.LLMatcher(self.tok, compiled, log_level=0)
        bm = lt.allocate_token_bitmask(1, self.vocab_size)
        return (lambda: lt.fill_next_token_bitmask(m, bm)), m.consume_token, bm, [self.eos]


def run_case(engine: Engine, kind: str, source, token_seqs: list[list[int]], repeats: int = 1) -> dict:
    """Compile (timed) and replay every sequence, ``repeats`` times from a fresh compile.

    With several repeats, ``mask_s`` holds each mask's median over the repeats and
    ``compile_s`` the median compile: this VM's speed swings up to 2x within minutes,
    and one replay of a case with few masks makes a p99 out of one slow moment.
    """
    out = {"engine": engine.name, "compile_s": None, "error": None, "mask_s": [], "accepted": 0, "refused": 0,
           "repeats": repeats}
    compiles, runs = [], []
    for _ in range(repeats):
        try:
            t0 = time.perf_counter()
            compiled = engine.compile(kind, source)
            compiles.append(time.perf_counter() - t0)
        except Exception as exc:  # peers raise their own types; we record, never crash the run
            out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            return out
        times, accepted = [], 0
        for seq in token_seqs:
            t, ok, _ = engine.replay(compiled, seq)
            times.extend(t)
            accepted += ok
        runs.append(times)
        del compiled
    if len({len(r) for r in runs}) != 1:
        out["error"] = f"replays differ in length across repeats: {[len(r) for r in runs]}"
        return out
    out["compile_s"] = float(np.median(compiles))
    out["mask_s"] = np.median(np.array(runs), axis=0).tolist() if runs[0] else []
    out["accepted"] = accepted
    out["refused"] = len(token_seqs) - accepted
    return out


WARMUP_REGEX = r"[a-z]{1,8}[0-9]{0,3}"


def _case_worker(engine: Engine, conn, warm_tokens: list[int]) -> None:
    """Serve run_case jobs for one engine in one process; an untimed warm-up job runs first."""
    try:
        run_case(engine, "regex", WARMUP_REGEX, [warm_tokens])
    except Exception:  # noqa: BLE001 - a peer without a regex front-end still runs its cases
        pass
    if engine.name == "structgen":
        from structgen.engine import warm_up
        warm_up(engine.tok)
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        try:
            conn.send(run_case(engine, *job))
        except BaseException as exc:  # report, never hang
            conn.send({"engine": engine.name, "compile_s": None, "mask_s": [], "accepted": 0, "refused": 0,
                       "error": f"{type(exc).__name__}: {exc}"[:200]})


class ForkedWorker:
    """A forked process running one engine's jobs over a pipe; killed and restarted after a timeout.

    Subclasses say which function the child runs and with which arguments.
    """

    def __init__(self, engine: Engine):
        import multiprocessing as mp
        self.engine = engine
        self.ctx = mp.get_context("fork")
        self.proc = None
        self.conn = None

    def _target(self) -> tuple:
        raise NotImplementedError

    def _started(self) -> None:
        """Called after the child started (e.g. to wait for its warm-up)."""

    def _start(self) -> None:
        parent, child = self.ctx.Pipe()
        target, args = self._target()
        self.proc = self.ctx.Process(target=target, args=(self.engine, child, *args), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        self._started()

    def _ensure(self) -> None:
        if self.proc is None or not self.proc.is_alive():
            self._start()

    def _kill(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.proc = None

    def _wait(self, timeout: float, crashed=None):
        """The child's next message, None after ``timeout`` seconds, ``crashed`` if it died."""
        if not self.conn.poll(timeout):
            return None
        try:
            return self.conn.recv()
        except EOFError:
            self.proc = None
            return crashed

    def stop(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(5)
            except (BrokenPipeError, OSError):
                pass
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)
        self.proc = None


class CaseWorker(ForkedWorker):
    """One long-lived forked process per engine, restarted after a timeout.

    A fork per case made every case of a Python-heavy engine pay copy-on-write
    page faults on its first masks (several ms each); a long-lived worker pays
    them once, in an untimed warm-up job.  The same protocol serves every engine.
    """

    def __init__(self, engine: Engine, warm_tokens: list[int]):
        super().__init__(engine)
        self.warm_tokens = warm_tokens

    def _target(self) -> tuple:
        return _case_worker, (self.warm_tokens,)

    def _started(self) -> None:
        if not self.conn.poll(300) or self.conn.recv() != "ready":
            raise RuntimeError(f"{self.engine.name}: worker did not start")

    def run(self, kind: str, source, token_seqs: list[list[int]], timeout_s: float, repeats: int = 1) -> dict:
        self._ensure()
        self.conn.send((kind, source, token_seqs, repeats))
        failed = {"engine": self.engine.name, "compile_s": None, "mask_s": [], "accepted": 0, "refused": 0}
        got = self._wait(timeout_s, crashed=dict(failed, error="worker died"))
        if got is not None:
            return got
        self._kill()
        return dict(failed, error=f"timeout: no result within {timeout_s:.0f} s")


def percentiles(xs: list[float], qs=(50, 90, 99)) -> dict:
    if not xs:
        return {f"p{q}": None for q in qs} | {"max": None}
    a = np.array(xs)
    return {f"p{q}": float(np.percentile(a, q)) for q in qs} | {"max": float(a.max())}


def fmt_us(x):
    return "-" if x is None else f"{x * 1e6:,.0f}"


def fmt_ms(x):
    return "-" if x is None else f"{x * 1e3:,.1f}"


def write_json(name: str, payload) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, indent=1, default=float))
    return path


def load_qwen(vocab_model: str = "qwen2.5-coder-0.5b"):
    """(hf_tokenizer, TokenizerInfo, model vocab size) for the benchmark vocabulary."""
    from structgen.models import load_tokenizer, load_tokenizer_info, model_vocab_size
    hf = load_tokenizer(vocab_model)
    info = load_tokenizer_info(vocab_model)
    return hf, info, info.vocab_size


_ = torch  # torch is imported so peers' torch helpers find it initialised
