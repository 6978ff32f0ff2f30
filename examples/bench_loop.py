"""The project's own loop (static cache, optionally compiled) against transformers' generate(), per arm, side by side.

    python examples/bench_loop.py                         # this CPU: SmolLM2-135M, 8 prompts, 48 new tokens
    python examples/bench_loop.py --device cuda --compile # a GPU: the loop's steps as CUDA graphs

For each prompt and arm, in one interleaved run: ``generate()`` (plain greedy, or transformers'
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
import time
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
ARMS = """
[[arms]]
name = "plain"
kind = "none"

[[arms]]
name = "lookup-n3-k3"
kind = "prompt_lookup"
prompt_lookup_num_tokens = 3
max_matching_ngram_size = 3

[[arms]]
name = "lookup-n3-k10"
kind = "prompt_lookup"
prompt_lookup_num_tokens = 10
max_matching_ngram_size = 3
"""


def _say(message: str) -> None:
    print(f"[bench-loop] {message}", file=sys.stderr, flush=True)


def compare(session: Any, prompts: list[str], repeats: int = 3, compile: bool = False) -> dict[str, Any]:
    """Per arm of ``session``: generate() against the loop on ``prompts`` (module docstring)."""
    from decoding.build import decode_arm

    rows = []
    compile_s = None
    if compile:  # capture every block length's graph once, timed apart
        t = time.perf_counter()
        ids = session.encode(prompts[0])
        for arm in session.config.arms:
            session.looped(ids, arm, compile=True)
        compile_s = time.perf_counter() - t
    for i, prompt in enumerate(prompts):
        ids = session.encode(prompt)
        ref = session.plain(ids, warmup=1, repeats=repeats)
        for arm in session.config.arms:
            gen = decode_arm(session, ids, arm, ref, warmup=1, repeats=repeats)
            loop = session.looped(ids, arm, warmup=1, repeats=repeats, reference=ref.tokens, compile=compile)
            rows.append({"prompt": i, "arm": arm.name, "n_new_tokens": ref.n_new_tokens,
                         "generate_s": gen.wall_time_s, "loop_s": loop.wall_time_s,
                         "generate_identical": gen.tokens == ref.tokens, "loop_identical": loop.lossless is True,
                         "generate_target_calls": gen.target_calls, "loop_target_calls": loop.target_calls})
    frame = pd.DataFrame(rows)
    per_arm = {}
    plain = frame[frame["arm"] == session.config.arms[0].name]
    for arm, part in frame.groupby("arm", sort=False):
        n = part["n_new_tokens"].sum()
        per_arm[arm] = {
            "generate_ms_per_token": 1e3 * part["generate_s"].sum() / n, "loop_ms_per_token": 1e3 * part["loop_s"].sum() / n,
            "loop_over_generate": part["generate_s"].sum() / part["loop_s"].sum(),
            "generate_speedup_over_its_plain": plain["generate_s"].sum() / part["generate_s"].sum(),
            "loop_speedup_over_its_plain": plain["loop_s"].sum() / part["loop_s"].sum(),
            "identical": f"{int(part['generate_identical'].sum())}/{len(part)} generate, {int(part['loop_identical'].sum())}/{len(part)} loop",
            "same_target_calls": bool((part["generate_target_calls"] == part["loop_target_calls"]).all()),
        }
    return {"per_arm": per_arm, "rows": rows, "compile_s": compile_s, "repeats": repeats, "compiled": compile,
            "n_prompts": len(prompts)}


def table(result: dict[str, Any]) -> str:
    lines = ["| arm | generate ms/token | loop ms/token | loop / generate speed | arm vs plain (generate) | arm vs plain (loop) | identical |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for arm, r in result["per_arm"].items():
        lines.append(f"| {arm} | {r['generate_ms_per_token']:.2f} | {r['loop_ms_per_token']:.2f} | {r['loop_over_generate']:.2f} | "
                     f"{r['generate_speedup_over_its_plain']:.2f} | {r['loop_speedup_over_its_plain']:.2f} | {r['identical']} |")
    return "\n".join(lines)


def main(model: str = "packaged:smollm2-135m", device: str = "cpu", n_prompts: int = 8, max_new_tokens: int = 48,
         repeats: int = 3, compile: bool = False, threads: int | None = None, out: str | Path = "out/bench_loop") -> dict[str, Any]:
    from decoding.models import parse_models_config
    from decoding.session import DecodingSession

    spec = model if model.startswith("packaged:") else str(Path(model).resolve())
    models = parse_models_config(f'[target]\npath = "{spec}"\ndevice = "{device}"\nmax_new_tokens = {max_new_tokens}\n' + ARMS)
    session = DecodingSession(models, device=device, threads=threads)
    frame = pd.read_parquet(HERE / "data" / "prompts.parquet")
    frame = frame[frame["split"] == "test"].groupby("domain", observed=True, group_keys=False).head(max(1, n_prompts // 4))
    prompts = frame["prompt"].head(n_prompts).tolist()
    _say(f"{len(prompts)} prompts x {len(models.arms)} arms on {device}, {repeats} repeats, compile={compile}")
    result = compare(session, prompts, repeats, compile)
    from decoding.build import environment

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
    print(table(res))
    if res["compile_s"] is not None:
        print(f"\ncompile (first call of every block length): {res['compile_s']:.1f} s")
