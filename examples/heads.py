"""Task-aligned drafting heads on the target's own hidden states: train one per domain, replay their counts on
every prompt of the shipped joint log, price them on this CPU and on the H200, and let the selection choose.

    python examples/heads.py      # SmolLM2-135M, the shipped joint log + mined training prompts; ~2.5 h on 2 CPU cores
                                  # (45 min of it the mined prompts' teacher continuations, 40 min the log's states: kept for reruns)
    python examples/heads.py --max-prompts 200 --train-prompts 0    # a quick look

Steps (``decoding.drafters.heads_run``, over ``decoding.heads``):

1. the target's greedy output of every prompt of ``examples/data/smollm2-joint-log`` (its
   ``target_output``, re-tokenized; sequences whose every token is not the target's argmax are
   regenerated) and one batched forward over prompt + output: the hidden states;
   (kept in ``OUT/states``: a rerun reads them back); then training prompts mined on this machine
   beyond the log's (``--train-prompts``: each domain topped up to 1,000 where the machine has them;
   the log's prompts, any split, left out; ``OUT/extra-prompts.parquet``) and the teacher's greedy
   continuation of each, generated in batches (kept per chunk in ``OUT/extra-states``: resumable);
2. per domain, a head trained on that domain's *train* prompts (the log's and the mined ones), on the
   positions of the greedy outputs and of the prompts (labelled with the target's own choice;
   ``--output-rows-only``: the outputs' alone), vocabulary the domain's 2,048 most frequent next
   tokens; and a learning curve: its acceptance on the domain's validation prompts when trained on
   ``--curve`` shares of the log's train prompts and on all of them with the mined ones, ungated
   (k = 3) and gated (``models_file.GATED``: gate 0.4, k = 5);
3. each head's own setting, picked on the validation prompts alone: the fastest draft length x gate
   (``tuning.head_grid()``, ``HeadSetting``s) under the H200 profile whose acceptance reaches
   ``tuning.MIN_ACCEPTANCE`` (``head-D-tuned``); then every head × draft length k in {3, 5}, gated at k = 5
   (``head-D-k5-gated``: a round stops at the head's first token less likely than the gate), its
   tuned setting, and every head after prompt lookup
   (``lookup-head-D``: ``lookup-n3-k10``'s candidates where it matches, the head's 3 elsewhere;
   ``lookup-head-D-gated``: the gated head's up to 5; arm kind ``lookup_head``), replayed on every
   prompt: exact counts of the project's loop (``decoding.specloop``), checked against live
   decoding on a sample;
4. a log with the joint log's 13 arms (plain, prompt lookup) plus the head arms, priced under two
   cost profiles: this CPU (the joint log's calibration, the heads' step measured here) and the
   H200 (``examples/profiles/h200-smollm2-135m-fp32.json``; a head's step there is *assumed* to cost
   what a 2-layer 256-wide draft model measured there, 2.1 ms: not measured);
5. on each: every policy trained on train, the project's rule selects on validation, the test split
   scores it against the best single arm (``decoding.pipeline.select_and_test``, as the quickstart);
   and decodes the selected policy live on ``--router-live-per-domain`` test prompts per domain with
   ``OUT/models-router.toml`` (every arm of the log), plain decoding timed beside it;
6. live on this CPU (``--live-per-domain N`` test prompts per domain): ``OUT/models-heads.toml``
   names plain decoding, ``lookup-n3-k10`` and each head as ``kind = "head"`` arms (k = 3, tuned), and
   ``bandit-log build``'s builder measures them (wall times, counts, its own calibration of every
   arm's step, output checked against plain greedy): wall speed-up beside the count model, and the
   same counts priced under the H200 profile.

Writes ``OUT/heads.json`` (every number), the heads (safetensors), the logs and the reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from decoding.drafters.heads_run import HeadsRunConfig, live_only, run_heads

HERE = Path(__file__).resolve().parent
JOINT_LOG = HERE / "data" / "smollm2-joint-log"
MODELS = HERE / "models" / "smollm2-joint.toml"
H200 = HERE / "profiles" / "h200-smollm2-135m-fp32.json"


def config(out: str | Path = "out/heads", **sizes) -> HeadsRunConfig:
    """The run on the shipped joint log, its models file and the H200 profile; ``sizes``: ``HeadsRunConfig``'s other fields."""
    return HeadsRunConfig(out=Path(out), source_log=JOINT_LOG, models=MODELS, h200_profile=H200, **sizes)


def main(out: str | Path = "out/heads", **sizes) -> dict:
    return run_heads(config(out, **sizes))


def print_result(res: dict) -> None:
    print(json.dumps({k: res[k] for k in ("learning_curve", "seconds")}, indent=2))
    for name in ("cpu", "h200"):
        r = res[name]
        print(f"\n{name}: selected {r['winner']}; test: {r['test_against_best_arm']['count_total']}")
        for row in r["live"]:
            print(f"  live {row['domain']}: {row['n_prompts']} prompts, wall {row['wall']:.3f}, count {row['count']:.3f}, "
                  f"identical {row['identical_to_greedy']:.0%}")
    if "live" in res:
        print("\nlive on this CPU (wall / count on this CPU / count on the H200 profile / acceptance / identical):")
        for arm, by_domain in res["live"]["per_arm_by_domain"].items():
            print(f"  {arm:18s} " + "  ".join(f"{d} {v['wall']:.2f}/{v['count_cpu']:.2f}/{v['count_h200']:.2f}/{v['acceptance']:.2f}/"
                                            f"{v['identical']:.0%}" for d, v in by_domain.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/heads")
    parser.add_argument("--max-prompts", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--live-per-domain", type=int, default=4, help="test prompts per domain measured live (0: none)")
    parser.add_argument("--router-live-per-domain", type=int, default=4,
                        help="test prompts per domain the selected policy decodes live, under each pricing (0: none)")
    parser.add_argument("--output-rows-only", action="store_true",
                        help="train heads on the greedy outputs' positions only (default: the prompts' positions too)")
    parser.add_argument("--train-prompts", type=int, default=1000,
                        help="top each domain's training prompts up to this many with prompts mined on this machine (not in the log; "
                             "their teacher continuations generated in batches, kept in OUT/extra-states); 0: the log's train prompts only")
    parser.add_argument("--curve", default="0.25,0.5,1",
                        help="learning-curve points: shares of the log's train prompts (the mined ones are added for the last point)")
    parser.add_argument("--live-only", action="store_true",
                        help="only step 6, with the heads an earlier run saved under OUT/heads (its --max-prompts)")
    a = parser.parse_args()
    cfg = config(a.out, max_prompts=a.max_prompts, epochs=a.epochs, seed=a.seed, threads=a.threads, live_per_domain=a.live_per_domain,
                 prompt_rows=not a.output_rows_only, router_live=a.router_live_per_domain, train_prompts=a.train_prompts,
                 curve_shares=tuple(float(x) for x in a.curve.split(",")))
    if a.live_only:
        print(json.dumps(live_only(cfg)["live"]["per_arm_by_domain"], indent=2))
        sys.exit(0)
    print_result(run_heads(cfg))
