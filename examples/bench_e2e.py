"""End-to-end benchmark of the choice: plain, every single arm, the oracle, every candidate and the
*selected* policy, count and wall side by side, on the test split and on the held-out set.

    python examples/bench_e2e.py --live-per-domain 8 --threads 1

One run:

1. every learner and the baselines are trained on the train split of the log (the shipped
   13-arm replay log by default: ``examples/data/smollm2-joint-log``);
2. the selection rule (``bandit.selection``) chooses on the validation split: a learned policy
   only where its paired interval against the best fixed arm is above zero, else that arm;
3. two held-out sets, never seen in training or selection:

   - ``test``: the log's test split (every arm's exact replayed counts are in the log);
   - ``heldout``: the project's own prompts from sources the prompt builder never reads
     (``examples/data/heldout-prompts.parquet``: third-party package code, other gettext
     locales, other man-page sections); their target outputs are generated now (batched greedy)
     and every arm's counts replayed, priced with the log's calibration;

   on each: the count speed-up (the count model; per-prompt mean, the reward the policies learn,
   and the ratio of totals) of every candidate, the oracle and the selected policy, per domain;
   the selected policy against the best single arm *of that set* (hindsight: the stricter
   comparison) with a paired 95% interval, and its share of the per-prompt oracle;
4. live, on a slice of the test split (``live_per_domain`` prompts per domain) and on the whole
   held-out set: plain greedy decoding timed beside the arms that matter (the selected policy's
   choice, the best fixed arm of validation, the set's best single arm, the oracle's choice) with
   real assisted decoding on the real target: wall-clock speed-up, output identical to plain
   greedy, and the live counts checked against the replayed ones.

Results: stdout (tables), ``OUT/bench.json``, the figure ``OUT/bench.png``; progress on stderr.

Research only, and longer than an example should be (named in BENCHMARKS.md, "Benchmark commands"):
the end-to-end benchmark behind BENCHMARKS.md "The choice" (the test split and the held-out set,
live slices, paired intervals); its pieces are ``bandit.suite``'s.
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

from bandit.pipeline import FEATURIZER
from logging_data.console import progress_bars

HERE = Path(__file__).resolve().parent
SHIPPED_LOG = HERE / "data" / "smollm2-joint-log"
SHIPPED_MODELS = HERE / "models" / "smollm2-joint.toml"
HELDOUT = HERE / "data" / "heldout-prompts.parquet"
COUNTS = ["n_new_tokens", "target_calls", "draft_tokens", "accepted_tokens"]


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- offline (count model, exact) ------------------------------------------------------------------
def policy_probs(runs: dict[str, Any], frame: pd.DataFrame, arm_names: Sequence[str]) -> dict[str, np.ndarray]:
    """name -> float (n, n_arms) probabilities on ``frame``'s prompts, for every deployable run."""
    from bandit.selection import candidate_kind

    return {name: np.asarray(run.probabilities(frame), dtype=np.float64) for name, run in runs.items()
            if candidate_kind(name) != "hindsight"}


def count_table(probs: dict[str, np.ndarray], rewards: np.ndarray, speedups: np.ndarray, n_new: np.ndarray,
                domains: np.ndarray, selected: str) -> pd.DataFrame:
    """Per policy and domain: the mean reward, the mean per-prompt count speed-up and the count
    speed-up of the whole group (total tokens / total count-model cost)."""
    table = dict(probs)
    table["oracle"] = np.eye(speedups.shape[1])[speedups.argmax(axis=1)]
    table[f"selected ({selected})"] = probs[selected]
    cost = n_new[:, None] / speedups  # count-model cost of every arm per prompt, in target steps
    records = []
    for name, p in table.items():
        for domain in ["(all)", *sorted(set(domains))]:
            m = np.ones(len(domains), bool) if domain == "(all)" else domains == domain
            records.append({"policy": name, "domain": domain, "n_prompts": int(m.sum()),
                            "reward": float((p[m] * rewards[m]).sum(axis=1).mean()),
                            "mean_count": float((p[m] * speedups[m]).sum(axis=1).mean()),
                            "count": float(n_new[m].sum() / (p[m] * cost[m]).sum())})
    return pd.DataFrame.from_records(records)


DOMAIN_TABLE = "domain table"


def evaluate_set(name: str, outcomes: pd.DataFrame, runs: dict[str, Any], arm_names: Sequence[str], selected: str,
                 table: dict[str, str], fallback: str) -> dict:
    """Every number of one held-out set from its (replayed) outcomes; ``table``: the domain table
    picked on validation (``fallback``: its arm for a domain validation did not have)."""
    from bandit.suite import against_best_arm, domain_table_probs, matrices, paired_totals

    frame, rewards, speedups, n_new = matrices(outcomes, arm_names)
    probs = policy_probs(runs, frame, arm_names)
    probs[DOMAIN_TABLE] = domain_table_probs(frame, table, arm_names, fallback)
    cost = n_new[:, None] / speedups
    return {"set": name, "n_prompts": len(frame), "frame": frame, "rewards": rewards, "speedups": speedups, "probs": probs,
            "table": count_table(probs, rewards, speedups, n_new, frame["domain"].astype(str).to_numpy(), selected),
            "selected_vs_best_arm": against_best_arm(probs[selected], rewards, speedups, n_new, arm_names),
            "selected_vs_domain_table": paired_totals((probs[selected] * cost).sum(axis=1), (probs[DOMAIN_TABLE] * cost).sum(axis=1),
                                                      n_new)}


# -- live (wall clock) -------------------------------------------------------------------------------
def live_set(session: Any, ev: dict, arm_names: Sequence[str], selected: str, best_fixed: str, calibration: Any,
             per_domain: int | None, repeats: int, warmup: int, progress: bool) -> dict:
    """Measure plain decoding and the arms that matter on (a slice of) one set; wall speed-ups per policy."""
    from bandit.suite import paired_totals, speedup_totals
    from decoding.build import measure_pairs

    frame = ev["frame"].copy()
    idx = np.arange(len(frame))
    if per_domain is not None:
        idx = frame.sort_values("query_id").groupby("domain", group_keys=False).head(per_domain).index.to_numpy()
    frame = frame.loc[idx].reset_index(drop=True)
    speedups = ev["speedups"][idx]
    best_arm = ev["selected_vs_best_arm"]["count_total"]["best_arm"]
    choice = {
        f"selected ({selected})": [arm_names[int(a)] for a in ev["probs"][selected][idx].argmax(axis=1)],
        "oracle": [arm_names[int(a)] for a in speedups.argmax(axis=1)],
        f"best fixed arm of validation ({best_fixed.removeprefix('fixed:')})": [best_fixed.removeprefix("fixed:")] * len(frame),
        f"best single arm of this set ({best_arm})": [best_arm] * len(frame),
        DOMAIN_TABLE: [arm_names[int(a)] for a in ev["probs"][DOMAIN_TABLE][idx].argmax(axis=1)],
        "plain": ["plain"] * len(frame),
    }
    pairs = {q: [c[i] for c in choice.values()] for i, q in enumerate(frame["query_id"])}
    measured = measure_pairs(session, frame, pairs, calibration, repeats=repeats, warmup=warmup, progress=progress)
    m = measured.set_index(["query_id", "arm"])
    replayed = {(q, a): speedups[i, list(arm_names).index(a)] for i, q in enumerate(frame["query_id"]) for a in arm_names}
    count_match = float(np.mean([np.isclose(m.loc[(q, a), "speedup_count"], replayed[(q, a)], rtol=1e-9)
                                 for q, a in m.index if a in arm_names]))
    records = []
    for policy, arms in choice.items():
        rows = m.loc[list(zip(frame["query_id"], arms))].reset_index()
        rows["domain"] = frame["domain"].to_numpy()
        for domain, part in [("(all)", rows), *rows.groupby("domain")]:
            t = speedup_totals(part)
            records.append({"policy": policy, "domain": str(domain), "n_prompts": int(len(part)), "wall": t["wall"], "count": t["count"],
                            "identical_to_greedy": float(part["lossless"].astype(bool).mean())})
    walls = {policy: m.loc[list(zip(frame["query_id"], arms)), "wall_time_s"].to_numpy(float) for policy, arms in choice.items()}
    plain_wall = m.loc[list(zip(frame["query_id"], choice["plain"])), "plain_wall_time_s"].to_numpy(float)
    sel = f"selected ({selected})"
    paired = {other: paired_totals(walls[sel], walls[other], plain_wall) for other in choice if other not in (sel, "plain", "oracle")}
    per_arm = [{"arm": arm, "n_prompts": int(len(part)), **{k: speedup_totals(part)[k] for k in ("wall", "count")}}
               for arm, part in measured.drop_duplicates(["query_id", "arm"]).groupby("arm")]
    for r in per_arm:
        r["count_over_wall"] = r["count"] / r["wall"]
    return {"n_prompts": len(frame), "table": pd.DataFrame.from_records(records),
            "identical_to_greedy": float(measured["lossless"].astype(bool).mean()),
            "live_counts_equal_replayed": count_match, "n_measurements": int(len(measured)),
            "selected_vs": paired, "per_arm": per_arm}


def replay_heldout(prompts: Path, models: Any, out: Path, calibration: Any, reward: Any, session: Any, batch_size: int,
                   progress: bool) -> pd.DataFrame:
    """The held-out prompts' outcomes: batched greedy target outputs, every arm's counts replayed,
    priced and rewarded as the training log is."""
    from decoding.build import BuildConfig, build_log
    from logging_data import open_log

    build_log(prompts, models, out, BuildConfig(reward=reward, measure=False, batch_size=batch_size),
              session=session, progress=progress, calibration=calibration, command="examples/bench_e2e.py (held-out replay)")
    return open_log(out).read("outcomes")


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [s for s in ("test", "heldout") if s in result["sets"]]
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 5), squeeze=False)
    for ax, s in zip(axes[0], sets):
        t = pd.DataFrame(result["sets"][s]["table"])
        overall = t[t["domain"] == "(all)"].set_index("policy")["count"].sort_values()
        colors = ["tab:red" if p.startswith("selected") else "tab:grey" if p == "oracle" else
                  "tab:blue" if p.startswith("fixed:") else "tab:green" for p in overall.index]
        overall.plot.barh(ax=ax, color=colors)
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_xlim(left=max(0.0, overall.min() - 0.1))
        ax.set_title(f"{s}: {result['sets'][s]['n_prompts']} prompts (count model, whole set)")
        ax.set_xlabel("speed-up over plain decoding")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(log: str | Path = SHIPPED_LOG, models: str | Path = SHIPPED_MODELS, *, heldout: str | Path | None = HELDOUT,
         out: str | Path = "out/bench", live_per_domain: int | None = 8, live_heldout: bool = True,
         live_heldout_per_domain: int | None = None, repeats: int = 1,
         warmup: int = 0, threads: int | None = 1, learners: Sequence[str] | None = None, budget: str = "default",
         featurizer: str = FEATURIZER, batch_size: int = 16, seed: int = 0, progress: bool = True) -> dict:
    """Run the benchmark; returns every number (also written to ``OUT/bench.json``)."""
    from bandit.pipeline import split_rows, train_and_select
    from bandit.suite import LEARNERS
    from decoding.pricing import load_calibration
    from decoding.session import DecodingSession
    from decoding.models import load_models_config
    from logging_data import open_log

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    opened = open_log(log)
    arm_names = opened.metadata.arm_names
    cfg = load_models_config(models)
    if cfg.arm_names != arm_names:
        raise ValueError(f"models file {models} has arms {', '.join(cfg.arm_names)}; log {log} has {', '.join(arm_names)}")
    calibration = load_calibration(log)  # the count model is priced as the training log was
    learners = tuple(learners or LEARNERS)
    _say(f"1/4 training {', '.join(learners)} and the baselines on the train split of {log} (featurizer {featurizer})")
    outcomes = opened.read("outcomes")
    _, runs, selection = train_and_select(log, out / "runs", outcomes, arm_names, learners=learners, budget=budget,
                                          featurizer=featurizer, seed=seed, progress=progress)
    t_train = time.perf_counter() - t0

    _say("2/4 selection on the validation split")
    selected = selection.chosen
    _say(selection.table())
    from bandit.suite import domain_table

    table = domain_table(split_rows(outcomes, "validation"), arm_names)
    fallback = selection.best_fixed.removeprefix("fixed:")
    _say(f"domain table (each domain's best arm on validation): {table}")

    _say("3/4 held-out sets: count model from exact replayed counts")
    session = DecodingSession(cfg, threads=threads)
    sets = {"test": evaluate_set("test", split_rows(outcomes, "test"), runs, arm_names, selected,
                                 table, fallback)}
    if heldout is not None:
        held_log = out / "heldout_log"
        if held_log.exists():
            import shutil

            shutil.rmtree(held_log)
        held = replay_heldout(Path(heldout), cfg, held_log, calibration, opened.metadata.reward, session, batch_size, progress)
        sets["heldout"] = evaluate_set("heldout", held, runs, arm_names, selected, table, fallback)

    _say("4/4 live: plain decoding beside the selected policy's arms, the best fixed arm and the oracle's arms")
    t_live = time.perf_counter()
    live = {}
    for name, ev in sets.items():
        per_domain = live_per_domain if name == "test" else live_heldout_per_domain
        if (name == "test" and live_per_domain == 0) or (name == "heldout" and not live_heldout):
            continue
        live[name] = live_set(session, ev, arm_names, selected, selection.best_fixed, calibration, per_domain, repeats,
                              warmup, progress)
    t_live = time.perf_counter() - t_live

    from decoding.machine import environment

    result = {
        "log": str(log), "models": str(models), "heldout": str(heldout) if heldout else None, "arms": list(arm_names),
        "featurizer": featurizer, "learners": list(learners), "selected": selected,
        "selection": selection.to_json(),
        "domain_table": table,
        "sets": {k: {"n_prompts": v["n_prompts"], "table": v["table"].to_dict(orient="records"),
                     "selected_vs_best_arm": v["selected_vs_best_arm"], "selected_vs_domain_table": v["selected_vs_domain_table"]}
                 for k, v in sets.items()},
        "peak_rss_gb": _peak_rss_gb(),
        "live": {k: {**{kk: vv for kk, vv in v.items() if kk != "table"}, "table": v["table"].to_dict(orient="records")}
                 for k, v in live.items()},
        "repeats": repeats, "warmup": warmup, "threads": threads, "calibration": calibration.to_json(),
        "seconds": {"train": t_train, "live": t_live, "total": time.perf_counter() - t0},
        "machine": environment()["hardware"],
    }
    result["figure"] = str(plot(result, out / "bench.png"))
    (out / "bench.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def _peak_rss_gb() -> float | None:
    """This process's peak resident memory (GB; Linux and macOS), models included."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1e9 if sys.platform == "darwin" else 1e6)


def print_result(res: dict) -> None:
    with pd.option_context("display.width", 200, "display.precision", 3, "display.max_rows", 300):
        print(f"Selected on validation ({res['selection']['n']} prompts): {res['selected']} — {res['selection']['reason']}")
        for name, s in res["sets"].items():
            t = pd.DataFrame(s["table"])
            print(f"\n[{name}] {s['n_prompts']} prompts, count model (count: whole set, total tokens / total cost; "
                  f"mean_count: per-prompt mean; reward: the log's reward, mean per prompt):")
            print(t[t["domain"] == "(all)"].set_index("policy")[["count", "mean_count", "reward"]].sort_values("count", ascending=False).to_string())
            print(f"\n[{name}] count speed-up per domain (whole group):")
            print(t.pivot(index="policy", columns="domain", values="count").to_string())
            v = s["selected_vs_best_arm"]
            r, c = v["reward"], v["count_total"]
            print(f"\n[{name}] selected {res['selected']} against the best single arm of this set (hindsight):")
            print(f"  reward (mean per prompt) {r['value']:.4f} vs {r['best_arm']} {r['best_arm_value']:.4f}: {r['diff']['diff']:+.4f}, "
                  f"paired 95% [{r['diff']['low']:+.4f}, {r['diff']['high']:+.4f}] ({'above zero' if r['above_best_arm'] else 'NOT above zero'}); "
                  f"oracle {r['oracle']:.4f}")
            print(f"  count speed-up of the set {c['value']:.4f} vs {c['best_arm']} {c['best_arm_value']:.4f}: {c['diff']['diff']:+.4f}, "
                  f"paired bootstrap 95% [{c['diff']['low']:+.4f}, {c['diff']['high']:+.4f}] "
                  f"({'above zero' if c['above_best_arm'] else 'NOT above zero'}); {c['of_oracle']:.3f} of the oracle {c['oracle']:.4f} "
                  f"(target 0.95: {'met' if c['meets_095_of_oracle'] else 'NOT met'}); gap closed {c['gap_closed']:.2f}")
        for name, lv in res["live"].items():
            t = pd.DataFrame(lv["table"])
            print(f"\n[{name}, live] {lv['n_prompts']} prompts, wall clock and count (threads={res['threads']}, "
                  f"repeats={res['repeats']}, warmup={res['warmup']}); output identical to plain greedy: "
                  f"{100 * lv['identical_to_greedy']:.1f}%; live counts equal replayed: {100 * lv['live_counts_equal_replayed']:.1f}%")
            print(t.pivot(index="policy", columns="domain", values="wall").to_string())
            for other, d in lv["selected_vs"].items():
                print(f"  wall: selected {d['a']:.3f} vs {other} {d['b']:.3f}: x{d['ratio']:.3f}, {d['diff']:+.3f}, paired bootstrap "
                      f"95% [{d['low']:+.3f}, {d['high']:+.3f}]")
            print("  per arm measured (count model against the wall clock):")
            print(pd.DataFrame(lv["per_arm"]).set_index("arm").to_string())
        for name, s in res["sets"].items():
            d = s["selected_vs_domain_table"]
            print(f"\n[{name}] count: selected {d['a']:.4f} vs the domain table {d['b']:.4f}: {d['diff']:+.4f}, paired bootstrap 95% "
                  f"[{d['low']:+.4f}, {d['high']:+.4f}]")
        print(f"\nfigure: {res['figure']}   total {res['seconds']['total']:.0f} s; peak resident {res.get('peak_rss_gb') or 0:.2f} GB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", default=str(SHIPPED_LOG))
    parser.add_argument("--models", default=str(SHIPPED_MODELS))
    parser.add_argument("--heldout", default=str(HELDOUT), help="held-out prompts file ('' to skip)")
    parser.add_argument("--live-per-domain", type=int, default=8, help="test-split prompts per domain measured live (0: none)")
    parser.add_argument("--no-live-heldout", action="store_true", help="skip the live run of the held-out set")
    parser.add_argument("--live-heldout-per-domain", type=int, default=None,
                        help="held-out prompts per domain measured live (default: all of them)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--featurizer", default=FEATURIZER)
    parser.add_argument("--out", default="out/bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    res = main(args.log, args.models, heldout=args.heldout or None, out=args.out, live_per_domain=args.live_per_domain,
               live_heldout=not args.no_live_heldout, live_heldout_per_domain=args.live_heldout_per_domain, repeats=args.repeats, warmup=args.warmup, threads=args.threads,
               featurizer=args.featurizer, progress=progress_bars())
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print_result(res)
    sys.exit(1 if any(lv["identical_to_greedy"] < 1.0 for lv in res["live"].values()) else 0)
