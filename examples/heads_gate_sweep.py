"""Each domain's head alone, over draft length k x confidence gate, under the H200 profile: the
setting the validation split picks, and the same setting on the test split.

    python examples/heads.py --live-per-domain 0      # first: the heads and OUT/states
    python examples/heads_gate_sweep.py --out out/heads

Reads the heads (``OUT/heads/<domain>``) and the greedy outputs' hidden states (``OUT/states``)
an ``examples/heads.py`` run saved, replays every (k, gate) exactly (``decoding.heads``), and
prices the counts with the H200 profile (a head step assumed at ``decoding.drafters.heads_run.H200_HEAD_STEP_S``).
Over ``decoding.drafters.tuning.head_grid()``, per domain it picks, on validation, the fastest
setting whose acceptance is at least ``--min-acceptance`` (the issue's 0.45; ``examples/heads.py``
logs its own pick as ``head-D-tuned``), and reports it on test beside the ungated k = 3 head.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from decoding.drafters.heads_run import H200_HEAD_STEP_S
from decoding.drafters.tuning import TUNE_LENGTHS, HeadSetting, head_setting_table, pick_setting

HERE = Path(__file__).resolve().parent
JOINT_LOG = HERE / "data" / "smollm2-joint-log"
MODELS = HERE / "models" / "smollm2-joint.toml"
H200 = HERE / "profiles" / "h200-smollm2-135m-fp32.json"


def main(out: str | Path = "out/heads", min_acceptance: float = 0.45) -> dict:
    from decoding import heads
    from decoding.pricing import load_calibration
    from decoding.drafters.states import run_states
    from decoding.models import load_models_config
    from decoding.session import DecodingSession

    out = Path(out)
    plain, (prompts, outputs, states, _, _) = run_states(out, JOINT_LOG)  # the prompts that run used
    session = DecodingSession(load_models_config(MODELS))
    h200 = load_calibration(H200)
    dom, split = plain["domain"].astype(str).to_numpy(), plain["split"].astype(str).to_numpy()
    result: dict = {}
    for d in sorted(set(dom)):
        head = heads.load_head(out / "heads" / d)
        table: dict = {}
        for s in ("validation", "test"):
            idx = np.flatnonzero((dom == d) & (split == s))
            chains = heads.draft_chains_many(head, session.target.model,
                                             [(states[i], prompts[i] + outputs[i], len(prompts[i]) - 1) for i in idx],
                                             max(TUNE_LENGTHS), with_confidence=True)
            for setting, value in head_setting_table(chains, [prompts[i] for i in idx], [outputs[i] for i in idx],
                                                     session.max_new_tokens, h200, H200_HEAD_STEP_S).items():
                table.setdefault(setting, {})[s] = value
        pick = pick_setting({setting: v["validation"] for setting, v in table.items()}, min_acceptance)
        result[d] = {"picked_on_validation": pick.name if pick else None, "picked": table[pick] if pick else None,
                     "ungated_k3": table[HeadSetting(3)], "settings": {setting.name: v for setting, v in table.items()}}
    (out / "gate-sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/heads", help="the examples/heads.py output folder")
    parser.add_argument("--min-acceptance", type=float, default=0.45, help="the acceptance a pick needs on validation")
    a = parser.parse_args()
    res = main(a.out, a.min_acceptance)
    print(f"{'domain':10s} {'picked on validation':22s} {'test: H200 count / acceptance':32s} ungated k=3 on test")
    for d, x in res.items():
        p, u = (x["picked"] or {}).get("test"), x["ungated_k3"]["test"]
        picked = f"{p['count']:.3f} / {p['acceptance']:.2f}" if p else "none"
        print(f"{d:10s} {str(x['picked_on_validation']):22s} {picked:32s} {u['count']:.3f} / {u['acceptance']:.2f}")
