"""Load time and greedy decoding speed of the default bundled model on this machine.

Measures: cold load (GGUF de-quantization, no weight cache), warm load (from the
structgen weight cache), prefill time, and greedy tokens/s with one-token steps and a
KV cache. Prints a table and writes benchmarks/results/default_model.json.

    python benchmarks/bench_default_model.py [--model NAME] [--new-tokens 64] [--skip-cold]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from structgen.models import DEFAULT_MODEL, load_model  # noqa: E402

PROMPT = "Write a JSON object describing a book with title, author and year:"


def _cache_kwarg() -> str:
    """transformers 5.x renamed `past_key_values` to `cache`."""
    import inspect

    from transformers import LlamaForCausalLM
    return "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters \
        else "past_key_values"


CACHE_KWARG = _cache_kwarg()


def _cache_of(out):
    return getattr(out, "cache", None) if CACHE_KWARG == "cache" else out.past_key_values


def greedy_decode(model, input_ids: torch.Tensor, new_tokens: int) -> tuple[list[int], float, list[float]]:
    """Prefill once, then one token per step reusing the KV cache."""
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model(input_ids=input_ids, use_cache=True)
        prefill = time.perf_counter() - t0
        past = _cache_of(out)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        produced = [int(token)]
        steps: list[float] = []
        for _ in range(new_tokens - 1):
            t = time.perf_counter()
            out = model(input_ids=token, use_cache=True, **{CACHE_KWARG: past})
            past = _cache_of(out)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            steps.append(time.perf_counter() - t)
            produced.append(int(token))
    return produced, prefill, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--skip-cold", action="store_true", help="skip the uncached GGUF load")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "default_model.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cold = None
    if not args.skip_cold:
        t = time.perf_counter()
        load_model(args.model, cache=False)
        cold = time.perf_counter() - t
    load_model(args.model)                       # make sure the weight cache exists
    t = time.perf_counter()
    model, tok = load_model(args.model)
    warm = time.perf_counter() - t

    ids = torch.tensor([tok.encode(PROMPT, add_special_tokens=False)])
    greedy_decode(model, ids, 4)                 # warm-up
    produced, prefill, steps = greedy_decode(model, ids, args.new_tokens)
    decode_s = sum(steps)
    result = {
        "model": args.model,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "load_average_1min": os.getloadavg()[0],   # the machine is shared: context for the numbers
        "load_cold_s": cold,
        "load_warm_s": warm,
        "prompt_tokens": int(ids.shape[1]),
        "new_tokens": len(produced),
        "prefill_s": prefill,
        "decode_tokens_per_s": len(steps) / decode_s,
        "step_ms_p50": statistics.median(steps) * 1000,
        "step_ms_max": max(steps) * 1000,
        "end_to_end_tokens_per_s": len(produced) / (prefill + decode_s),
        "text": tok.decode(produced),
    }
    rows = [("model", result["model"]),
            ("torch threads / load avg", f"{result['torch_threads']} / {result['load_average_1min']:.1f}"),
            ("load, cold GGUF (s)", f"{cold:.2f}" if cold is not None else "skipped"),
            ("load, weight cache (s)", f"{warm:.2f}"),
            ("prompt tokens", result["prompt_tokens"]),
            ("prefill (ms)", f"{prefill * 1000:.1f}"),
            ("greedy decode (tok/s)", f"{result['decode_tokens_per_s']:.1f}"),
            ("step p50 / max (ms)", f"{result['step_ms_p50']:.1f} / {result['step_ms_max']:.1f}"),
            ("end-to-end (tok/s)", f"{result['end_to_end_tokens_per_s']:.1f}")]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
