"""Task-aligned retrieval datastores beside the heads: one store per domain of what the target itself
wrote there, replayed on every prompt of the joint log, priced on this CPU and on the H200, selected on validation.

    python examples/heads.py --out out/heads                             # first: states, mined prompts, heads, logs
    python examples/datastores.py --heads out/heads --out out/stores     # ~30 min on 2 CPU cores

A store (``decoding.datastore``, arm kind ``datastore``) drafts with no model: it matches the end of
the context against the target's greedy continuations of the domain's *training* prompts (the
log's train split and the mined ones ``examples/heads.py`` generated; never a validation or test
prompt) and proposes what most often followed (REST-style retrieval, one store per domain as
TaskSpec's drafts are one per task). Steps (``decoding.drafters.stores_run``):

1. per domain, the store of the teacher's continuations of its train and mined prompts
   (``OUT/stores/<domain>``);
2. on the validation prompts only, per domain: ``store-D``, the fastest store setting under the
   H200 profile (``StoreSetting``s: ``STORE_TOKENS`` x ``MIN_COUNTS`` x ``MIN_FRACTIONS``); ``store-D-tuned``, the fastest
   whose acceptance reaches 0.45; ``store-head-D`` (kind ``datastore_head``: the store where it has a
   continuation, the domain's head elsewhere), the fastest store gates x head setting
   (``tuning.head_grid()``) whose acceptance reaches 0.45;
3. every store arm replayed on every prompt of the log (exact: a store's counts replay from the
   target's greedy output; with a head, from its chains as ``examples/heads.py`` replays them),
   *cross-fitted* on the train split: a train prompt is replayed with a store built without its
   fold (``FOLDS``), since the whole store holds its own output and would make the store look
   near-perfect to the learners trained on that split; checked against the project's live loop
   on a sample of validation and test prompts (identical to greedy, the replayed counts);
4. the heads run's two logs (``log-cpu``, ``log-h200``) with the store arms added: a store's lookup
   priced at its step measured on this CPU (host work on a GPU machine too), a store-then-head
   arm's draft calls at the head's step of that log; every policy trained on train, the
   project's rule selects on validation, the test split scores it against the best single arm, and
   the selected policy decodes ``--router-live-per-domain`` test prompts per domain live;
5. live on this CPU (``--live-per-domain``): plain decoding, ``lookup-n3-k10`` and every store arm,
   measured by ``bandit-log build``'s builder (wall and count speed-ups, identical to greedy).

Writes ``OUT/stores.json`` (every number), ``OUT/models-stores.toml``, ``OUT/models-router.toml``, the logs and the selections.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from decoding.drafters.stores_run import StoresRunConfig, run_stores

HERE = Path(__file__).resolve().parent
JOINT_LOG = HERE / "data" / "smollm2-joint-log"
MODELS = HERE / "models" / "smollm2-joint.toml"
H200 = HERE / "profiles" / "h200-smollm2-135m-fp32.json"


def main(heads_dir: str | Path, out: str | Path, **sizes) -> dict:
    """The run over a heads run's folder; ``sizes``: ``StoresRunConfig``'s other fields."""
    return run_stores(StoresRunConfig(heads_dir=Path(heads_dir), out=Path(out), source_log=JOINT_LOG, models=MODELS,
                                      h200_profile=H200, **sizes))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", required=True, help="a folder examples/heads.py wrote (states, heads, logs)")
    parser.add_argument("--out", default="out/stores")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--live-per-domain", type=int, default=2, help="test prompts per domain measured live (0: none)")
    parser.add_argument("--router-live-per-domain", type=int, default=2,
                        help="test prompts per domain the selected policy decodes live, under each pricing (0: none)")
    a = parser.parse_args()
    res = main(a.heads, a.out, threads=a.threads, seed=a.seed, router_live=a.router_live_per_domain, live_per_domain=a.live_per_domain)
    for name in ("cpu", "h200"):
        r = res[name]
        print(f"\n{name}: selected {r['winner']}; test: {json.dumps(r['test_against_best_arm']['count_total'])}")
        for arm, v in r["store_arms_test"].items():
            print(f"  {arm:24s} own {v['own']:.3f} (acceptance {v['acceptance_own']:.3f}); elsewhere "
                  + ", ".join(f"{d} {x:.3f}" for d, x in v["elsewhere"].items()))
