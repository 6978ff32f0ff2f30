"""oneDNN-packed linear layers against PyTorch's default CPU linear, side by side in one run.

    python examples/bench_linear.py --n-prompts 16 --threads 1

Two measurements, each with the default kernels and the packed ones (``decoding.cpu_linear``)
in alternating order so that drift of the machine hits both alike:

1. **One target pass over t new tokens** on a KV cache of a real prompt (t = 1, 2, 3, 4, 6, 11:
   a plain step, and the verification passes of prompt lookup with k = 1, 2, 3, 5, 10 drafts),
   median of ``--repeats`` passes. This is the cost the count model prices.
2. **Whole decodes** of ``--n-prompts`` prompts (a seeded draw from the large set's *train*
   split, every domain) with plain decoding and prompt lookup (``--arms``): wall time per prompt,
   tokens identical across kernels and lossless against plain greedy.

Prints both tables and writes ``bench_linear.json``; progress on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

HERE = Path(__file__).resolve().parent
PROMPTS = HERE / "data" / "prompts-large.parquet"
MODELS = HERE / "models" / "smollm2-joint.toml"
KERNELS = ("default", "onednn")


def _say(message: str) -> None:
    print(f"[bench_linear] {message}", file=sys.stderr, flush=True)


def _pass_ms(session, ids: Sequence[int], n_tokens: int, repeats: int) -> float:
    import torch

    m = session.target.model
    x = torch.tensor([list(ids)])
    with torch.no_grad():
        cache = m(input_ids=x, use_cache=True).past_key_values
        times = []
        for i in range(repeats + 2):
            t0 = time.perf_counter()
            m(input_ids=x[:, -n_tokens:], past_key_values=cache, use_cache=True, logits_to_keep=n_tokens)
            dt = time.perf_counter() - t0
            cache.crop(-n_tokens)
            if i >= 2:
                times.append(dt)
    return 1000 * statistics.median(times)


def main(prompts: str | Path = PROMPTS, models: str | Path = MODELS, *, n_prompts: int = 16, threads: int = 1, repeats: int = 15,
         arms: Sequence[str] = ("lookup-n1-k5", "lookup-n3-k3", "lookup-n3-k10"), seed: int = 0, out: str | Path = "out/bench_linear") -> dict:
    from decoding.machine import environment
    from decoding.session import DecodingSession
    from decoding.models import load_models_config

    cfg = load_models_config(models)
    sessions = {k: DecodingSession(dataclasses.replace(cfg, target=dataclasses.replace(cfg.target, linear=k)), threads=threads)
                for k in KERNELS}
    if sessions["onednn"].linear != "onednn":
        raise SystemExit(f"oneDNN linear is not available here: {sessions['onednn'].linear_reason}")
    frame = pd.read_parquet(prompts)
    train = frame[frame["split"] == "train"]
    per = max(1, n_prompts // train["domain"].nunique())
    picked = train.groupby("domain", group_keys=False).sample(n=per, random_state=seed)
    encoded = [sessions["default"].encode(p) for p in picked["prompt"]]

    # 1. single passes
    sizes = (1, 2, 3, 4, 6, 11)
    passes = {k: {t: [] for t in sizes} for k in KERNELS}
    for j, ids in enumerate(encoded[:4]):
        for t in sizes:
            for k in (KERNELS if j % 2 == 0 else KERNELS[::-1]):
                passes[k][t].append(_pass_ms(sessions[k], ids, t, repeats))
    pass_rows = [{"tokens": t, **{f"{k}_ms": statistics.median(passes[k][t]) for k in KERNELS},
                  "ratio": statistics.median(passes["default"][t]) / statistics.median(passes["onednn"][t])} for t in sizes]

    # 2. whole decodes
    rows = []
    for j, (ids, (_, r)) in enumerate(zip(encoded, picked.iterrows())):
        ref = {}
        for k in (KERNELS if j % 2 == 0 else KERNELS[::-1]):
            s = sessions[k]
            plain = s.plain(ids, warmup=1)
            ref[k] = plain.tokens
            rows.append({"query_id": r["query_id"], "domain": r["domain"], "kernel": k, "arm": "plain", "wall_s": plain.wall_time_s,
                         "n_new_tokens": plain.n_new_tokens, "lossless": True})
            for arm in arms:
                o = s.assisted(ids, arm, warmup=1, reference=plain.tokens)
                rows.append({"query_id": r["query_id"], "domain": r["domain"], "kernel": k, "arm": arm, "wall_s": o.wall_time_s,
                             "n_new_tokens": o.n_new_tokens, "lossless": bool(o.lossless)})
        rows[-1]["same_tokens_across_kernels"] = ref["default"] == ref["onednn"]
        _say(f"{j + 1}/{len(encoded)} prompts")
    d = pd.DataFrame(rows)
    base = d[(d["kernel"] == "default") & (d["arm"] == "plain")].set_index("query_id")["wall_s"]
    d["speedup_vs_default_plain"] = base.reindex(d["query_id"]).to_numpy() / d["wall_s"].to_numpy()
    table = (d.groupby(["arm", "kernel"])
             .agg(total_wall_s=("wall_s", "sum"), median_speedup=("speedup_vs_default_plain", "median"), lossless=("lossless", "mean"))
             .reset_index())
    totals = d.groupby(["arm", "kernel"])["wall_s"].sum()
    table["speedup_total_vs_default_plain"] = [totals[("plain", "default")] / v for v in table["total_wall_s"]]
    same = bool(d.get("same_tokens_across_kernels", pd.Series(dtype=bool)).dropna().all())
    result = {"command": " ".join(sys.argv), "threads": threads, "repeats": repeats, "n_prompts": len(encoded),
              "passes": pass_rows, "decodes": table.to_dict("records"), "same_greedy_tokens_across_kernels": same,
              "machine": environment()["hardware"]}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "bench_linear.json").write_text(json.dumps(result, indent=2) + "\n")
    print(pd.DataFrame(pass_rows).round(2).to_string(index=False))
    print()
    print(table.round(3).to_string(index=False))
    print(f"\ngreedy tokens identical across kernels: {same}; lossless: {bool(d['lossless'].all())}")
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", default=str(PROMPTS))
    ap.add_argument("--models", default=str(MODELS))
    ap.add_argument("--n-prompts", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--arms", nargs="+", default=["lookup-n1-k5", "lookup-n3-k3", "lookup-n3-k10"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/bench_linear")
    a = ap.parse_args()
    main(a.prompts, a.models, n_prompts=a.n_prompts, threads=a.threads, repeats=a.repeats, arms=a.arms, seed=a.seed, out=a.out)
