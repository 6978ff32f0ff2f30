"""One-call device check: calibrate, build a small measured log, train, select, decode held-out prompts, all on one device.

    bash examples/gpu_check.sh --out OUT MODEL.gguf                  # a GPU machine: the model whole
    bash examples/gpu_check.sh --out OUT PART1 PART2                 # or in parts, joined with cat
    python examples/gpu_check.py --model packaged:smollm2-135m --out OUT --device cpu --size tiny   # what CI runs

Made for a fresh GPU machine with torch and transformers but no internet and no pip (vowpalwabbit,
d3rlpy and matplotlib may be missing: only the learners that need neither run). Steps, each timed:

1. **calibrate** the target's step costs on the device (``bandit-log calibrate``) into
   ``OUT/profile.json``;
2. **static vs dynamic**: ms per plain greedy token through ``generate()`` with transformers'
   dynamic KV cache and with its static cache (compiled by transformers on CUDA; the first call,
   compile included, is reported apart from the steady state), and whether both give the same tokens;
3. **build** a full-information log on the device (``OUT/log``): prompts of the shipped prompt set
   per domain and split, every arm decoded and timed beside plain decoding, checked token for
   token against plain greedy, priced by the profile of step 1;
4. **the profile against the wall clock**, per arm: the count model's speed-up (ratio of totals)
   beside the measured one, under the build's calibration and under one fitted to the train
   split's wall times (``fit_calibration``) and scored on the other splits;
5. **train, select, decode**: ``decoding.pipeline.select_and_test`` (the quickstart's pipeline) on that log: the learners that run here
   train on the train split, the project's rule selects on validation, the test split is scored
   offline, and held-out test prompts are decoded live with the choice, plain decoding beside;
6. ``OUT/summary.json`` (every number) and ``OUT/summary.md`` (the tables), the device, the
   versions and the seconds of each step.

Research only, and longer than an example should be (named in BENCHMARKS.md, "Benchmark commands"):
a device check for a lent GPU (calibration, static cache, the loop against generate(), a measured
build, the selection, one report); what it shares is ``decoding.loop_bench`` and ``decoding.pipeline``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from bandit.suite import speedup_totals
from decoding.loop_bench import LOOP_ARMS, backends_table, compare_backends
from decoding.models import ArmConfig, ModelsConfig, TargetConfig

HERE = Path(__file__).resolve().parent
PROMPTS = HERE / "data" / "prompts.parquet"
#: prompts per domain in each split, tokens per prompt, live prompts per domain, budget of the learners
SIZES: dict[str, dict[str, Any]] = {
    "small": {"per_split": {"train": 4, "validation": 2, "test": 2}, "max_new_tokens": 48, "live_per_domain": 2,
              "budget": "default", "static_tokens": 64, "static_repeats": 3, "loop_prompts": 4, "loop_repeats": 2},
    "tiny": {"per_split": {"train": 1, "validation": 1, "test": 1}, "max_new_tokens": 8, "live_per_domain": 1,
             "budget": "tiny", "static_tokens": 8, "static_repeats": 1, "calibration_repeats": 1, "loop_prompts": 1,
             "loop_repeats": 1},
}
#: the loop benchmark's arms (plain, prompt lookup n3 x k3/k10) plus lookup n2 x k5 and one early exit
#: (measured on an H200 at 0.28x: a loser to show)
ARMS = (*LOOP_ARMS, ArmConfig.of("lookup-n2-k5", "prompt_lookup", prompt_lookup_num_tokens=5, max_matching_ngram_size=2),
        ArmConfig.of("early-exit-12", "early_exit", assistant_early_exit=12, num_assistant_tokens=4,
                     num_assistant_tokens_schedule="constant"))


def _say(message: str) -> None:
    print(f"[gpu-check] {message}", file=sys.stderr, flush=True)


def models_toml(model: str, device: str, max_new_tokens: int) -> str:
    spec = model if model.startswith("packaged:") else str(Path(model).resolve())
    target = TargetConfig(path=spec, device=device, dtype="auto", max_new_tokens=max_new_tokens)
    return "# written by examples/gpu_check.py\n" + ModelsConfig.of(target, ARMS).to_toml()


def sample_prompts(per_split: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """``per_split[split]`` prompts per domain and split of the shipped prompt set (stable by seed)."""
    frame = pd.read_parquet(PROMPTS)
    parts = []
    for (domain, split), group in frame.groupby(["domain", "split"], observed=True, sort=True):
        n = per_split.get(str(split), 0)
        if n:
            parts.append(group.sample(n=min(n, len(group)), random_state=seed))
    return pd.concat(parts).sort_values("query_id").reset_index(drop=True)[["query_id", "prompt", "domain", "split"]]


def static_vs_dynamic(session: Any, prompt: str, n_new: int, repeats: int) -> dict[str, Any]:
    """ms per plain greedy token through ``generate()``: dynamic cache, then static cache (first call apart)."""
    import torch

    model = session.target.model
    ids = session.encode(prompt)
    x = torch.tensor([ids], dtype=torch.long, device=model.device)
    kw = dict(attention_mask=torch.ones_like(x), max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, num_beams=1,
              pad_token_id=session.pad_id)

    def timed(**extra: Any) -> tuple[float, list[int]]:
        session._sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=x, **kw, **extra)
        session._sync()
        return time.perf_counter() - t0, out[0, len(ids):].tolist()

    result: dict[str, Any] = {"n_new_tokens": n_new, "repeats": repeats, "prompt_tokens": len(ids)}
    timed()  # warm-up
    dyn = [timed() for _ in range(repeats)]
    result["dynamic_ms_per_token"] = 1e3 * statistics.median(t for t, _ in dyn) / n_new
    try:
        first_s, first_tokens = timed(cache_implementation="static")
        stat = [timed(cache_implementation="static") for _ in range(repeats)]
    except Exception as exc:  # noqa: BLE001 - reported, not hidden: the check goes on without it
        result["static_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        return result
    result["static_first_call_s"] = first_s
    result["static_ms_per_token"] = 1e3 * statistics.median(t for t, _ in stat) / n_new
    result["static_same_tokens_as_dynamic"] = all(tokens == dyn[0][1] for _, tokens in stat + [(first_s, first_tokens)])
    result["static_speedup"] = result["dynamic_ms_per_token"] / result["static_ms_per_token"]
    return result


def totals(rows: pd.DataFrame, speedup_column: str = "speedup_count") -> dict[str, float]:
    """Ratio-of-totals speed-ups of outcome rows: count model and wall clock."""
    t = speedup_totals(rows.assign(speedup_count=rows[speedup_column].astype(float)))
    return {"count": t["count"], "wall": t["wall"], "count_over_wall": t["count"] / t["wall"]}


def profile_accuracy(log_path: Path) -> dict[str, Any]:
    """Per arm: the profile's count speed-up beside the measured wall speed-up, under the build's own
    calibration and under one fitted to the train split's wall times (scored on the other splits)."""
    from decoding.pricing import Calibration, fit_calibration
    from decoding.reprice import price_counts
    from decoding.arms import is_plain
    from logging_data import open_log

    log = open_log(log_path)
    frame = log.read("outcomes")
    kinds = {a.name: a.kind for a in log.metadata.arms}
    own = Calibration.from_json(log.metadata.extra["calibration"])
    result: dict[str, Any] = {"own": own.to_json(), "arms": {}}
    train = frame[frame["split"].astype(object) == "train"]
    held = frame[frame["split"].astype(object) != "train"].copy()
    fitted = None
    try:
        fitted, record = fit_calibration(train, own, kinds)
        result["fit"] = record
        held["speedup_count_fitted"] = price_counts(held, kinds, fitted)
    except ValueError as exc:  # too few measured prompt-lookup rows to fit: said, not hidden
        result["fit_error"] = str(exc)
    for arm, rows in frame.groupby(frame["arm"].astype(str), sort=False):
        if is_plain(kinds[arm]):
            continue
        entry = {"all_prompts": totals(rows)}
        h = held[held["arm"].astype(str) == arm]
        if len(h):
            entry["held_out"] = totals(h)
            if fitted is not None:
                entry["held_out_fitted"] = totals(h, "speedup_count_fitted")
        entry["identical_to_greedy"] = f"{int(rows['lossless'].sum())}/{len(rows)}"
        result["arms"][arm] = entry
    return result


def markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Device check: {summary['device']['name']}", "",
             f"{summary['when']}; torch {summary['versions'].get('torch')}, transformers {summary['versions'].get('transformers')}, "
             f"size {summary['size']}, {summary['n_prompts']} prompts x {len(summary['arms'])} arms, "
             f"{summary['max_new_tokens']} new tokens; total {summary['seconds']['total']:.0f} s.", ""]
    sd = summary["static_vs_dynamic"]
    lines += ["## Plain greedy decoding through generate()", "", "| cache | ms per token | first call (s) |", "| --- | --- | --- |",
              f"| dynamic | {sd['dynamic_ms_per_token']:.2f} | |"]
    if "static_ms_per_token" in sd:
        lines.append(f"| static | {sd['static_ms_per_token']:.2f} | {sd['static_first_call_s']:.1f} |")
        lines += ["", f"Static over dynamic: {sd['static_speedup']:.2f}x; same tokens: {sd['static_same_tokens_as_dynamic']}."]
    else:
        lines += ["", f"Static cache: {sd.get('static_error')}"]
    loop = summary["loop_vs_generate"]
    lines += ["", "## The project's loop (static cache" + (", compiled" if loop.get("compiled") else "") + ") against generate()", ""]
    if "error" in loop:
        lines.append(f"The loop failed: {loop['error']}")
    else:
        lines.append(backends_table(loop))
        if loop.get("compile_s") is not None:
            lines += ["", f"Compile (first call of every block bucket): {loop['compile_s']:.1f} s."]
    lines += ["", "## The cost profile against the wall clock (ratio of totals)", "",
              "| arm | count (own profile) | wall | count / wall | held-out: fitted count / wall | identical to greedy |",
              "| --- | --- | --- | --- | --- | --- |"]
    for arm, e in summary["profile_accuracy"]["arms"].items():
        a = e["all_prompts"]
        fit = e.get("held_out_fitted")
        lines.append(f"| {arm} | {a['count']:.3f} | {a['wall']:.3f} | {a['count_over_wall']:.3f} | "
                     f"{fit['count_over_wall']:.3f} | {e['identical_to_greedy']} |" if fit else
                     f"| {arm} | {a['count']:.3f} | {a['wall']:.3f} | {a['count_over_wall']:.3f} | n/a | {e['identical_to_greedy']} |")
    q = summary["quickstart"]
    lines += ["", "## Selection and the held-out slice", "",
              f"Selected on validation: **{q['winner']}** ({q['selection'].get('reason', '')}).", ""]
    if q["live"]:
        lines += ["| domain | prompts | count | wall | identical to greedy |", "| --- | --- | --- | --- | --- |"]
        for r in q["live"]:
            lines.append(f"| {r['domain']} | {r['n_prompts']} | {r['count']:.3f} | {r['wall']:.3f} | {r['identical_to_greedy']:.0%} |")
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in summary["seconds"].items()), ""]
    return "\n".join(lines)


def main(model: str, out: str | Path, device: str = "cuda", size: str = "small", threads: int | None = None,
         seed: int = 0) -> dict[str, Any]:
    import torch

    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.machine import environment
    from decoding.calibrate import calibrate, cost_profile
    from decoding.pricing import for_arms, write_profile
    from decoding.models import load_models_config
    from decoding.session import DecodingSession

    if size not in SIZES:
        raise ValueError(f"--size must be one of {', '.join(SIZES)}; got {size!r}")
    preset = SIZES[size]
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out {out} exists and is not empty; the check writes a new folder (choose another path)")
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t_all = time.perf_counter()
    (out / "models.toml").write_text(models_toml(model, device, preset["max_new_tokens"]))
    models = load_models_config(out / "models.toml")

    _say(f"loading {model} on {device}")
    t = time.perf_counter()
    session = DecodingSession(models, device=device, threads=threads)
    seconds["load"] = time.perf_counter() - t

    _say("1/5 calibrating step costs on the device")
    t = time.perf_counter()
    cal = for_arms(calibrate(session, repeats=preset.get("calibration_repeats", 5), on_unstable="warn"), models.arms)
    write_profile(out / "profile.json", cost_profile(cal, models=models, command="examples/gpu_check.py"))
    seconds["calibrate"] = time.perf_counter() - t

    prompts = sample_prompts(preset["per_split"], seed)
    prompts.to_parquet(out / "prompts.parquet", index=False)
    _say("2/5 plain decoding: dynamic vs static KV cache (the static cache's first call includes its compile)")
    t = time.perf_counter()
    sd = static_vs_dynamic(session, str(prompts.loc[0, "prompt"]), preset["static_tokens"], preset["static_repeats"])
    seconds["static_vs_dynamic"] = time.perf_counter() - t
    _say("   the project's loop (static cache" + (", compiled: CUDA graphs" if device == "cuda" else ", eager") +
         ") against generate(), per arm")
    t = time.perf_counter()
    test_prompts = prompts[prompts["split"] == "test"]["prompt"].head(preset["loop_prompts"]).tolist()
    try:
        loop = compare_backends(session, test_prompts, preset["loop_repeats"], compile=device == "cuda")
        loop.pop("rows")
    except Exception as exc:  # noqa: BLE001 - a failure of the new loop is a finding to report, not a reason to stop
        loop = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
        _say(f"   the loop failed: {loop['error']}")
    seconds["loop_vs_generate"] = time.perf_counter() - t

    _say(f"3/5 building a measured log: {len(prompts)} prompts x {len(models.arms)} arms")
    t = time.perf_counter()
    summary_build = build_log(out / "prompts.parquet", models, out / "log", BuildConfig(reward=reward_definition("speedup_count")),
                              session=session, command="examples/gpu_check.py", progress=sys.stderr.isatty(),
                              calibration=cal)
    seconds["build"] = time.perf_counter() - t
    del session
    if device == "cuda":
        torch.cuda.empty_cache()

    _say("4/5 the profile's priced counts against the wall clock, per arm")
    accuracy = profile_accuracy(out / "log")

    _say("5/5 train, select on validation, decode held-out test prompts with the choice")
    from bandit.suite import LEARNERS
    from decoding.pipeline import select_and_test

    learners = tuple(name for name in LEARNERS if _available(name))
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:  # a small log warns a lot: kept in a file, counted here
        warnings.simplefilter("always")
        q = select_and_test(out / "log", out / "quickstart", out / "models.toml", live_per_domain=preset["live_per_domain"],
                            budget=preset["budget"], learners=learners, seed=seed, threads=threads, progress=sys.stderr.isatty(),
                            h200_profile=HERE / "profiles" / "h200-smollm2-135m-fp32.json")
    if caught:
        lines = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
        (out / "warnings.txt").write_text("\n".join(lines) + "\n")
        _say(f"   {len(caught)} warnings from training and the off-policy report ({len(lines)} distinct): {out / 'warnings.txt'}")
    seconds["train_select_decode"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_all
    env = environment()
    summary = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "size": size, "model": model,
        "device": {"kind": device, "name": env["hardware"]["cuda_device"] if device == "cuda" else env["hardware"]["cpu"]},
        "hardware": env["hardware"], "versions": env["versions"], "arms": list(models.arm_names),
        "n_prompts": int(len(prompts)), "max_new_tokens": preset["max_new_tokens"], "learners": list(learners),
        "calibration": cal.to_json(), "static_vs_dynamic": sd, "loop_vs_generate": loop,
        "build": {"n_rows": summary_build.n_rows_written, "n_lossless_failures": summary_build.n_lossless_failures},
        "profile_accuracy": accuracy,
        "quickstart": {"winner": q["winner"], "selection": q["selection"], "test_against_best_arm": q["test_against_best_arm"],
                       "test_offline": q["test_offline"], "live": q["live"], "live_lossless_failures": q["live_lossless_failures"]},
        "identical_to_greedy": _identical(out / "log", q),
        "seconds": seconds,
    }
    from logging_data.files import json_text, write_text_atomic

    write_text_atomic(out / "summary.json", json_text(summary) + "\n")
    write_text_atomic(out / "summary.md", markdown(summary))
    return summary


def _available(learner: str) -> bool:
    """Whether a learner's library is installed here (a bare GPU machine may lack VW and d3rlpy)."""
    import importlib.util

    needs = {"vw": "vowpalwabbit", "cql": "d3rlpy", "bcq": "d3rlpy"}.get(learner)
    if needs is not None and importlib.util.find_spec(needs) is None:
        _say(f"learner {learner}: skipped ({needs} is not installed here)")
        return False
    return True


def _identical(log_path: Path, q: dict[str, Any]) -> dict[str, Any]:
    from decoding.build import lossless_report
    from logging_data import open_log

    report = lossless_report(open_log(log_path))
    n_live = next((int(r["n_prompts"]) for r in q["live"] if r["domain"] == "(all)"), 0)
    return {"log_assisted_runs": report["n_checked"], "log_differ": report["n_differ"],
            "live_prompts": n_live, "live_differ": int(q["live_lossless_failures"]),
            "share_identical": (1.0 - (report["n_differ"] + q["live_lossless_failures"]) / max(1, report["n_checked"] + n_live))}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the target: a .gguf file, a model folder or packaged:NAME")
    parser.add_argument("--out", required=True, help="a new output folder")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device here (use --device cpu to run the check on this CPU)")
    res = main(args.model, args.out, args.device, args.size, args.threads, args.seed)
    print(markdown(res))
    sys.exit(0 if res["identical_to_greedy"]["share_identical"] == 1.0 else 3)
