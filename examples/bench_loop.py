"""The project's own loop (static cache, optionally compiled) against transformers' generate(), per arm, side by side.

    python examples/bench_loop.py                         # this CPU: SmolLM2-135M, 8 prompts, 48 new tokens
    python examples/bench_loop.py --device cuda --compile # a GPU: the loop's steps as CUDA graphs

The comparison is ``decoding.loop_bench.compare_backends``. For each prompt and arm, in one interleaved run: ``generate()`` (plain greedy, or transformers'
assisted generation; dynamic cache) and ``DecodingSession.looped`` (``decoding.specloop``) on a
static cache, each the median of ``--repeats`` timed runs after a warm-up. Both outputs are checked
token for token against plain greedy ``generate()``. Reported per arm: ms per token (ratio of
totals) of each backend, the loop's speed-up over generate, and the speed-up of each backend's
assisted arm over its own plain decoding. With ``--compile`` the first call of each block
length (graph capture) is timed apart as the compile time. Writes ``OUT/bench_loop.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from decoding.loop_bench import LOOP_ARMS, backends_table, compare_backends

HERE = Path(__file__).resolve().parent


def _say(message: str) -> None:
    print(f"[bench-loop] {message}", file=sys.stderr, flush=True)


def main(model: str = "packaged:smollm2-135m", device: str = "cpu", n_prompts: int = 8, max_new_tokens: int = 48,
         repeats: int = 3, compile: bool = False, threads: int | None = None, out: str | Path = "out/bench_loop") -> dict[str, Any]:
    from decoding.models import ModelsConfig, TargetConfig
    from decoding.session import DecodingSession

    spec = model if model.startswith("packaged:") else str(Path(model).resolve())
    models = ModelsConfig.of(TargetConfig(path=spec, device=device, max_new_tokens=max_new_tokens), LOOP_ARMS)
    session = DecodingSession(models, device=device, threads=threads)
    frame = pd.read_parquet(HERE / "data" / "prompts.parquet")
    frame = frame[frame["split"] == "test"].groupby("domain", observed=True, group_keys=False).head(max(1, n_prompts // 4))
    prompts = frame["prompt"].head(n_prompts).tolist()
    _say(f"{len(prompts)} prompts x {len(models.arms)} arms on {device}, {repeats} repeats, compile={compile}")
    result = compare_backends(session, prompts, repeats, compile)
    from decoding.machine import environment

    result.update({"device": device, "model": model, "max_new_tokens": max_new_tokens, **environment()})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_loop.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="packaged:smollm2-135m")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="the loop's steps through torch.compile(mode='reduce-overhead')")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="out/bench_loop")
    a = parser.parse_args()
    res = main(a.model, a.device, a.prompts, a.max_new_tokens, a.repeats, a.compile, a.threads, a.out)
    print(backends_table(res))
    if res["compile_s"] is not None:
        print(f"\ncompile (first call of every block length): {res['compile_s']:.1f} s")
