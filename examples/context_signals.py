"""Which context predicts the best arm? Featurizer × learner × training size, valued on validation.

    python examples/context_signals.py                       # the shipped 13-arm replay log
    python examples/context_signals.py --featurizers hashed prompt-stats minilm target-hidden

For every featurizer (a registered name: ``hashed`` n-grams, ``tfidf-svd``, ``prompt-stats``,
``minilm`` sentence embeddings, ``target-hidden``: the target's own mean-pooled hidden states,
i.e. its prefill), every learner (default: reward regression and the best-arm classifier) and every
training size (a log scale up to the whole train split, ``repeats`` seeded draws), a policy is
trained on the draw and valued *exactly* on the whole validation split (full information: the
mean reward of the arms it chooses, in expectation over its probabilities). The domain label
alone (``taskspec``: the best arm per predicted domain) and every fixed arm and the oracle are the
reference lines. The test split is never read.

Also measured: each featurizer's cost per prompt (``timed_transform`` on validation prompts),
beside the plain decoding time of one prompt under the log's calibration, so the decision cost
can be read as a share of decoding.

Writes ``context_signals.json`` and ``context_signals.png`` (one panel per learner, log-x) into
``--out``; prints a table; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from bandit.pipeline import log2_sizes
from logging_data.console import progress_bars

HERE = Path(__file__).resolve().parent
SHIPPED_LOG = HERE / "data" / "smollm2-joint-log"
FEATURIZERS = ("hashed", "tfidf-svd", "prompt-stats", "minilm")
LEARNERS = ("regression", "classifier")


def _say(message: str) -> None:
    print(f"[context_signals] {message}", file=sys.stderr, flush=True)


def main(log: str | Path = SHIPPED_LOG, out: str | Path = "out/context_signals", *,
         featurizers: Sequence[str] = FEATURIZERS, learners: Sequence[str] = LEARNERS, sizes: Sequence[int] | None = None,
         repeats: int = 2, seed: int = 0, settings: dict[str, dict[str, Any]] | None = None, progress: bool = True) -> dict:
    from bandit.configs import make_config
    from logging_data.simulate import reward_matrix
    from bandit.runs import load_run, train_run
    from bandit.suite import prompt_frame
    from logging_data import create_log, open_log
    from logging_data.features import get_featurizer, timed_transform

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    opened = open_log(log)
    arms = opened.metadata.arm_names
    outcomes = opened.read("outcomes")
    split = outcomes["split"].astype(object)
    train_ids = sorted(outcomes.loc[split == "train", "query_id"].astype(str).unique())
    val = outcomes[split == "validation"]
    qids, rewards = reward_matrix(val, arms)
    frame = prompt_frame(val, qids, extra=("n_new_tokens",))
    references = {"oracle": float(rewards.max(axis=1).mean()),
                  **{f"fixed:{a}": float(rewards[:, i].mean()) for i, a in enumerate(arms)}}
    best_fixed = max((k for k in references if k.startswith("fixed:")), key=references.get)
    sizes = list(sizes or log2_sizes(len(train_ids), start=64))
    sizes = [min(s, len(train_ids)) for s in sizes]
    settings = settings or {}

    cal = opened.metadata.extra.get("calibration") or {}
    step_s = float(cal.get("plain_step_s") or cal.get("target_step_s") or 0.0)
    n_new = float(frame["n_new_tokens"].mean()) if "n_new_tokens" in frame else 0.0
    plain_s = step_s * n_new  # plain decoding of one prompt under the log's calibration

    curves: list[dict] = []
    costs: dict[str, float] = {}
    work = out / "work"
    t0 = time.perf_counter()
    for feat in featurizers:
        f = get_featurizer(feat, **settings.get(feat, {})).fit(frame["prompt"].tolist()[: min(256, len(frame))])
        _, per = timed_transform(f, frame["prompt"].tolist()[:64])
        costs[feat] = per
        for size in sizes:
            for rep in range(repeats if size < len(train_ids) else 1):
                rng = np.random.default_rng([seed, size, rep])
                draw = rng.choice(train_ids, size=size, replace=False) if size < len(train_ids) else np.array(train_ids)
                shutil.rmtree(work, ignore_errors=True)
                sub = create_log(work / "log", opened.metadata)
                sub.append("outcomes", outcomes[outcomes["query_id"].astype(str).isin(set(draw))].reset_index(drop=True))
                for learner in learners:
                    config = make_config(learner, {"featurizer": feat, "seed": seed + rep})
                    train_run(work / "log", config, work / learner, feedback="full", split="train", overwrite=True,
                              progress=False, featurizer_settings=settings.get(feat))
                    probs = load_run(work / learner).probabilities(frame)
                    value = float((probs * rewards).sum(axis=1).mean())
                    curves.append({"featurizer": feat, "learner": learner, "size": int(size), "repeat": rep, "value": value})
                    if progress:
                        _say(f"{feat:>13} {learner:>10} n={size:<5} rep {rep}: {value:.4f}  ({time.perf_counter() - t0:.0f} s)")
    # the domain label alone: the best arm per domain of the training prompts
    tr = outcomes[outcomes["query_id"].astype(str).isin(set(train_ids))]
    best_by_domain = tr.groupby(["domain", "arm"], observed=True)["reward"].mean().unstack().idxmax(axis=1)
    dom_choice = frame["domain"].map(best_by_domain).fillna(best_fixed.removeprefix("fixed:"))
    references["domain label (best arm per domain)"] = float(np.mean([rewards[i, arms.index(a)] for i, a in enumerate(dom_choice)]))
    shutil.rmtree(work, ignore_errors=True)
    table = pd.DataFrame(curves)
    summary = (table.groupby(["featurizer", "learner", "size"])["value"].agg(["mean", "std", "count"]).reset_index()
               if len(table) else pd.DataFrame())
    result = {"log": str(log), "arms": list(arms), "n_train": len(train_ids), "n_validation": len(qids),
              "references": references, "best_fixed": best_fixed, "curves": curves,
              "summary": summary.to_dict(orient="records"),
              "featurizer_seconds_per_prompt": costs, "plain_decoding_seconds_per_prompt": plain_s,
              "featurizer_share_of_decoding": {k: (v / plain_s if plain_s else None) for k, v in costs.items()}}
    result["figure"] = str(plot(result, out / "context_signals.png"))
    (out / "context_signals.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = pd.DataFrame(result["summary"])
    learners = sorted(s["learner"].unique()) if len(s) else []
    fig, axes = plt.subplots(1, max(len(learners), 1), figsize=(6.5 * max(len(learners), 1), 4.8), squeeze=False)
    for ax, learner in zip(axes[0], learners):
        for feat, part in s[s["learner"] == learner].groupby("featurizer"):
            ax.errorbar(part["size"], part["mean"], yerr=part["std"].fillna(0), marker="o", capsize=3, label=feat)
        ref = result["references"]
        ax.axhline(ref["oracle"], color="black", ls="--", lw=1, label="oracle")
        ax.axhline(ref[result["best_fixed"]], color="tab:red", ls=":", lw=1.2, label=f"best fixed ({result['best_fixed']})")
        ax.axhline(ref["domain label (best arm per domain)"], color="tab:grey", ls="-.", lw=1, label="domain label")
        ax.set_xscale("log")
        ax.set_xlabel("training prompts")
        ax.set_ylabel("validation value (mean count speed-up)")
        ax.set_title(learner)
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_table(result: dict) -> None:
    s = pd.DataFrame(result["summary"])
    with pd.option_context("display.width", 200, "display.precision", 4, "display.max_rows", 200):
        print(f"validation value ({result['n_validation']} prompts) by featurizer x learner x training size:")
        print(s.pivot_table(index=["learner", "featurizer"], columns="size", values="mean").to_string())
        print("references: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(result["references"].items(), key=lambda kv: -kv[1])[:6]))
        print("featurizer cost per prompt (share of plain decoding): " + ", ".join(
            f"{k} {1e3 * v:.2f} ms ({100 * (result['featurizer_share_of_decoding'][k] or 0):.3f}%)"
            for k, v in result["featurizer_seconds_per_prompt"].items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", default=str(SHIPPED_LOG))
    parser.add_argument("--out", default="out/context_signals")
    parser.add_argument("--featurizers", nargs="+", default=list(FEATURIZERS))
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS))
    parser.add_argument("--sizes", nargs="+", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    res = main(args.log, args.out, featurizers=args.featurizers, learners=args.learners, sizes=args.sizes, repeats=args.repeats,
               progress=progress_bars())
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print_table(res)
