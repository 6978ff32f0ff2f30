"""Scale-out: the same replay log built by one process and by Ray pools of 1 and 2 workers, side by side.

    python examples/bench_scale.py --n-prompts 96 --batch-size 16

On the same prompts (a seeded draw from the prompts file, every domain), it builds the replay log
(``--alignment-only --reward speedup_count``, the build that scales to 100k prompts) once per
mode, in this order: one process (``build_log``, 1 torch thread), 2 processes of ``bandit-log build
--shard I/2`` side by side, a Ray pool of 1 worker, a Ray pool of 2 workers. Every build prices its counts with the same calibration (``--calibration``,
default the shipped joint log's), and the logs must be equal key for key and count for count. Each
worker uses one torch thread and reserves one CPU, so on 2 cores the best case is 2x.

From the measured time per prompt it projects the wall time of a 100,000-prompt x 5-arm log, for
this replay build (greedy generation only) and for a measured build (every arm decoded and
timed; its per-prompt cost read from a measured log, default ``examples/data/smollm2-cal-log``).

Prints a table and writes ``bench_scale.json``; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from logging_data.console import progress_bars

HERE = Path(__file__).resolve().parent
PROMPTS = HERE / "data" / "prompts-large.parquet"
MODELS = HERE / "models" / "smollm2-joint.toml"
CALIBRATION = HERE / "data" / "smollm2-joint-log"
MEASURED = HERE / "data" / "smollm2-cal-log"
COUNTS = ["n_new_tokens", "target_calls", "draft_tokens", "accepted_tokens", "speedup_count"]


def _say(message: str) -> None:
    print(f"[bench_scale] {message}", file=sys.stderr, flush=True)


def _rows(log_dir: Path) -> pd.DataFrame:
    from logging_data import open_log

    frame = open_log(log_dir).read("outcomes")
    return frame.sort_values(["query_id", "arm"]).reset_index(drop=True)[["query_id", "arm", *COUNTS]]


def measured_cost_per_prompt(log: str | Path, n_arms: int = 5) -> dict[str, float]:
    """Seconds a measured build spends per prompt: plain decoding timed once plus ``n_arms - 1`` assisted
    runs, from the median measured wall times of ``log`` (one repeat each, no warm-up)."""
    from logging_data import open_log

    out = open_log(log).read("outcomes")
    per_run = float(out["wall_time_s"].astype(float).median())
    plain = float(out["plain_wall_time_s"].astype(float).median())
    return {"plain_s": plain, "assisted_run_s": per_run, "per_prompt_s": plain + (n_arms - 1) * per_run}


def main(prompts: str | Path = PROMPTS, models: str | Path = MODELS, *, n_prompts: int = 96, batch_size: int = 16,
         workers: Sequence[int] = (1, 2), calibration: str | Path = CALIBRATION, measured: str | Path | None = MEASURED,
         seed: int = 0, out: str | Path = "out/bench_scale", progress: bool = True, projected_prompts: int = 100_000,
         projected_arms: int = 5, shard_processes: int = 2) -> dict:
    import ray

    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.machine import environment
    from decoding.pricing import load_calibration
    from decoding.models import load_models_config
    from decoding.ray_build import RaySettings, build_log_ray

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    frame = pd.read_parquet(prompts)
    frame = frame.groupby("domain", observed=True, group_keys=False).apply(
        lambda g: g.sample(n=min(len(g), max(n_prompts // frame["domain"].nunique(), 1)), random_state=seed))
    frame = frame.head(n_prompts).reset_index(drop=True)
    sample = out / "prompts.parquet"
    frame.to_parquet(sample, index=False)
    config = load_models_config(models)
    cal = load_calibration(calibration)
    cfg = BuildConfig(reward=reward_definition("speedup_count"), measure=False, batch_size=batch_size)
    rows: list[dict[str, Any]] = []

    _say(f"one process, 1 thread: {len(frame)} prompts x {len(config.arms)} arms")
    t = time.perf_counter()
    summary = build_log(sample, config, out / "single", cfg, progress=progress, threads=1, calibration=cal)
    rows.append({"mode": "one process", "workers": 1, "seconds": time.perf_counter() - t, "rows": summary.n_rows_written})
    reference = _rows(out / "single")

    if shard_processes > 1:
        n = shard_processes
        _say(f"{n} processes with --shard I/{n}, 1 thread each (model loads included)")
        t = time.perf_counter()
        cmd = [sys.executable, "-m", "bandit.cli.main", "build", str(sample), "--models", str(models), "--out",
               str(out / f"shards{n}"), "--alignment-only", "--reward", "speedup_count", "--calibration", str(calibration),
               "--threads", "1", "--batch-size", str(batch_size)]
        env = {**os.environ, "PYTHONPATH": f"{HERE.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        procs = [subprocess.Popen(cmd + ["--shard", f"{i}/{n}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for i in range(n)]
        errors = [p.communicate()[1] for p in procs]
        if any(p.returncode for p in procs):
            raise RuntimeError(f"a shard process failed: {[e[-500:] for e in errors]}")
        rows.append({"mode": f"{n} processes (--shard)", "workers": n, "seconds": time.perf_counter() - t,
                     "rows": len(_rows(out / f"shards{n}")), "equal_to_one_process": bool(_rows(out / f"shards{n}").equals(reference))})

    for w in workers:
        _say(f"Ray pool, {w} worker(s) (1 thread each; Ray start and model loads included)")
        t = time.perf_counter()
        ray.init(num_cpus=w, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            summary = build_log_ray(sample, config, out / f"ray{w}", cfg, RaySettings(workers=w, shards=4 * w),
                                    progress=progress, threads=1, calibration=cal)
        finally:
            ray.shutdown()
        seconds = time.perf_counter() - t
        equal = _rows(out / f"ray{w}").equals(reference)
        rows.append({"mode": f"Ray, {w} worker(s)", "workers": w, "seconds": seconds, "rows": summary.n_rows_written,
                     "equal_to_one_process": bool(equal)})
    for r in rows:
        r["prompts_per_s"] = len(frame) / r["seconds"]
        r["speedup_vs_one_process"] = rows[0]["seconds"] / r["seconds"]
    best = max(rows, key=lambda r: r["prompts_per_s"])
    replay_s = 1.0 / rows[0]["prompts_per_s"]
    projection = {
        "prompts": projected_prompts, "arms": projected_arms,
        "replay_build_one_worker_h": projected_prompts * replay_s / 3600,
        "replay_build_best_h": projected_prompts / best["prompts_per_s"] / 3600, "best_mode": best["mode"],
    }
    if measured is not None:
        m = measured_cost_per_prompt(measured, projected_arms)
        projection.update({"measured_build_per_prompt_s": m["per_prompt_s"],
                           "measured_build_one_worker_h": projected_prompts * m["per_prompt_s"] / 3600,
                           "measured_build_from": str(measured)})
    result = {"n_prompts": len(frame), "n_arms": len(config.arms), "batch_size": batch_size, "rows": rows,
              "projection": projection, "hardware": environment()["hardware"]}
    (out / "bench_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def print_result(result: dict) -> None:
    table = pd.DataFrame(result["rows"]).set_index("mode")
    with pd.option_context("display.width", 160, "display.precision", 3):
        print(f"Replay build of {result['n_prompts']} prompts x {result['n_arms']} arms (batch {result['batch_size']}):")
        print(table.to_string())
    p = result["projection"]
    print(f"\nProjected for {p['prompts']:,} prompts x {p['arms']} arms:")
    print(f"  replay build: {p['replay_build_one_worker_h']:.1f} h on one worker, {p['replay_build_best_h']:.1f} h with "
          f"{p['best_mode']}; N workers divide it by up to N")
    if "measured_build_per_prompt_s" in p:
        print(f"  measured build: {p['measured_build_per_prompt_s']:.1f} s per prompt ({p['measured_build_from']}), "
              f"{p['measured_build_one_worker_h']:.0f} h on one worker")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default=str(PROMPTS))
    parser.add_argument("--models", default=str(MODELS))
    parser.add_argument("--n-prompts", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default="out/bench_scale")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    res = main(args.prompts, args.models, n_prompts=args.n_prompts, batch_size=args.batch_size, workers=args.workers,
               out=args.out, progress=progress_bars())
    print(json.dumps(res, indent=2) if args.json else "", end="")
    if not args.json:
        print_result(res)
