"""The project's own loop (static cache, optionally compiled) against transformers' generate(), per arm.

For each prompt and arm, in one interleaved run: ``generate()`` (plain greedy, or transformers'
assisted generation; dynamic cache) and ``DecodingSession.looped`` (``decoding.specloop``) on a
static cache, each the median of ``repeats`` timed runs after a warm-up; both outputs checked token
for token against plain greedy ``generate()``. Per arm: ms per token (ratio of totals) of each
backend, the loop's speed-up over generate, and each backend's assisted arm over its own plain decoding.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from .models import ArmConfig

#: plain decoding and prompt lookup n3 x k3/k10: the arms the comparison runs by default
LOOP_ARMS = (ArmConfig.of("plain", "none"),
             ArmConfig.of("lookup-n3-k3", "prompt_lookup", prompt_lookup_num_tokens=3, max_matching_ngram_size=3),
             ArmConfig.of("lookup-n3-k10", "prompt_lookup", prompt_lookup_num_tokens=10, max_matching_ngram_size=3))


def compare_backends(session: Any, prompts: list[str], repeats: int = 3, compile: bool = False) -> dict[str, Any]:
    """Per arm of ``session``: generate() against the loop on ``prompts`` (the module docstring);
    ``compile``: every block length's graph captured once first, timed apart as ``compile_s``."""
    from .build import decode_arm

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


def backends_table(result: dict[str, Any]) -> str:
    """``compare_backends``' result as a Markdown table, one row per arm."""
    lines = ["| arm | generate ms/token | loop ms/token | loop / generate speed | arm vs plain (generate) | arm vs plain (loop) | identical |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for arm, r in result["per_arm"].items():
        lines.append(f"| {arm} | {r['generate_ms_per_token']:.2f} | {r['loop_ms_per_token']:.2f} | {r['loop_over_generate']:.2f} | "
                     f"{r['generate_speedup_over_its_plain']:.2f} | {r['loop_speedup_over_its_plain']:.2f} | {r['identical']} |")
    return "\n".join(lines)
