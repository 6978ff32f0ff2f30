"""Draw the prompts the CPU step costs are measured on: a few per domain from the large set's *train* split.

    python examples/make_calibration_prompts.py --per-domain 8 --seed 0 \
        --out examples/data/calibration-prompts.parquet

The joint log's counts are exact, but turning counts into a speed-up needs what a target pass
over k verified tokens costs on this machine and with these kernels (``decoding.calibrate``).
``fit:LOG`` fits those costs on a measured log's prompt-lookup rows; this file is the prompt set
of that measured log (``examples/data/smollm2-cal-log``). Drawing it from the train split only
keeps the validation and test prompts out of every fitted number. The output is committed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", default=str(HERE / "data" / "prompts-large.parquet"))
    ap.add_argument("--per-domain", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    frame = pd.read_parquet(a.prompts)
    train = frame[frame["split"] == "train"]
    short = [d for d, n in train.groupby("domain").size().items() if n < a.per_domain]
    if short:
        raise SystemExit(f"{a.prompts}: domains {short} have fewer than {a.per_domain} train prompts")
    picked = (train.groupby("domain", group_keys=False).sample(n=a.per_domain, random_state=a.seed)
              .sort_values(["domain", "query_id"]).reset_index(drop=True))
    picked.to_parquet(a.out, index=False)
    print(f"{a.out}: {len(picked)} train prompts, {a.per_domain} per domain from {a.prompts}")


if __name__ == "__main__":
    main()
