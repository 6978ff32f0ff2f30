"""Batched greedy generation of the target against the per-prompt loop: tokens/s side by side.

    python examples/bench_greedy.py --n-prompts 64 --batch-sizes 8 16 32 --threads 2

A replay log (``bandit-log build --alignment-only --reward speedup_count``) costs only the
target's greedy outputs, so its speed is that of greedy generation. On the same prompts (a seeded
draw from the prompts file, every domain), this times the per-prompt loop (batch size 1, as a
measured build decodes) and batched generation with left padding over length-sorted batches (as
the replay build does), and checks that every batched output equals the per-prompt one token
for token (batching may differ only at numerical near-ties of the logits).

Prints a table and writes ``bench_greedy.json``; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from logging_data.console import progress_bars

HERE = Path(__file__).resolve().parent
PROMPTS = HERE / "data" / "prompts-large.parquet"
MODELS = HERE / "models" / "smollm2-joint.toml"


def _say(message: str) -> None:
    print(f"[bench_greedy] {message}", file=sys.stderr, flush=True)


def main(prompts: str | Path = PROMPTS, models: str | Path = MODELS, *, n_prompts: int = 64,
         batch_sizes: Sequence[int] = (8, 16, 32), threads: int | None = 2, seed: int = 0, out: str | Path = "out/bench_greedy",
         progress: bool = True) -> dict:
    from decoding.machine import environment
    from decoding.session import DecodingSession
    from decoding.models import load_models_config

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.read_parquet(prompts)
    frame = frame.sample(min(n_prompts, len(frame)), random_state=seed).reset_index(drop=True)
    session = DecodingSession(load_models_config(models), threads=threads)
    encoded = [session.encode(p) for p in frame["prompt"]]
    session.greedy([encoded[0]])  # warm-up
    if progress:
        _say(f"per-prompt loop over {len(encoded)} prompts")
    t = time.perf_counter()
    single = [session.greedy([ids])[0] for ids in encoded]
    t_single = time.perf_counter() - t
    n_tokens = sum(map(len, single))
    rows = [{"mode": "per prompt (batch 1)", "batch_size": 1, "seconds": t_single, "tokens": n_tokens,
             "tokens_per_s": n_tokens / t_single, "speedup": 1.0, "identical": 1.0}]
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), i))
    for bs in batch_sizes:
        if progress:
            _say(f"batched, batch size {bs}")
        outs: dict[int, list[int]] = {}
        t = time.perf_counter()
        for start in range(0, len(order), bs):
            chunk = order[start:start + bs]
            outs.update(zip(chunk, session.greedy([encoded[i] for i in chunk])))
        dt = time.perf_counter() - t
        same = sum(outs[i] == single[i] for i in range(len(encoded))) / len(encoded)
        rows.append({"mode": "batched, length-sorted", "batch_size": bs, "seconds": dt, "tokens": n_tokens,
                     "tokens_per_s": n_tokens / dt, "speedup": t_single / dt, "identical": same})
    result = {"prompts": str(prompts), "models": str(models), "n_prompts": len(encoded), "threads": threads,
              "max_new_tokens": session.max_new_tokens, "rows": rows, "machine": environment()["hardware"]}
    (out / "bench_greedy.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def print_result(res: dict) -> None:
    with pd.option_context("display.width", 160, "display.precision", 3):
        print(f"{res['n_prompts']} prompts, max_new_tokens={res['max_new_tokens']}, threads={res['threads']}")
        print(pd.DataFrame(res["rows"]).to_string(index=False))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default=str(PROMPTS))
    parser.add_argument("--models", default=str(MODELS))
    parser.add_argument("--n-prompts", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="out/bench_greedy")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    res = main(args.prompts, args.models, n_prompts=args.n_prompts, batch_sizes=args.batch_sizes, threads=args.threads,
               out=args.out, progress=progress_bars())
    print(json.dumps(res, indent=2) if args.json else "", end="")
    if not args.json:
        print_result(res)
