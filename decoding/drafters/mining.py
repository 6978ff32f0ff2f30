"""Training prompts beyond a log's, mined from this machine and kept apart from every prompt of the log."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd

#: at most this many mined training prompts from one source file (the shipped log's prompt set used 50)
PER_SOURCE = 50


def _say(message: str) -> None:
    print(f"[drafters] {message}", file=sys.stderr, flush=True)


def extra_site_dirs() -> list[Path]:
    """site-packages folders on this machine beyond this Python's (its base interpreter's, Debian's
    ``dist-packages``, the Google Cloud SDK's bundled packages): more docstrings to mine."""
    import site
    import sysconfig

    found = [Path(p) for p in site.getsitepackages()]
    found.append(Path(sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["purelib"]))
    found += [Path("/usr/lib/python3/dist-packages"), Path("/usr/lib/google-cloud-sdk/lib/third_party")]
    out: list[Path] = []
    for p in found:
        if p.is_dir() and p.resolve() not in [q.resolve() for q in out]:
            out.append(p)
    return out


def mine_train_prompts(log_prompts: pd.DataFrame, train_prompts: int, seed: int, path: Path,
                       whole_log: pd.DataFrame | None = None, per_source: int = PER_SOURCE) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Training prompts the log does not hold, to top each domain's train prompts up to ``train_prompts``
    where this machine has them: ``bandit-log prompts``' sources (``logging_data.prompts``, at most
    ``per_source`` per file, every site-packages folder of ``extra_site_dirs``), in the builder's seeded
    order, any prompt of the log (any split) left out. ``log_prompts``: the log's plain rows in use
    (domain, split, prompt); ``whole_log``: every prompt of the log (domain, prompt; default
    ``log_prompts``), all left out. Kept at ``path`` (Parquet, with a ``.json`` beside it: the request, counts and the
    sources' origins and licences) and read back when the request is the same."""
    from logging_data.prompts import PromptSetConfig, SourceRoots, build_prompt_set

    domains = sorted(log_prompts["domain"].astype(str).unique())
    have = {d: int(((log_prompts["domain"] == d) & (log_prompts["split"] == "train")).sum()) for d in domains}
    need = {d: max(0, train_prompts - have[d]) for d in domains}
    whole_log = log_prompts if whole_log is None else whole_log
    exclude = set(whole_log["prompt"].astype(str))
    request = {"train_prompts": train_prompts, "seed": seed, "need": need, "log_prompts": int(len(exclude))}
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists() and json.loads(meta_path.read_text()).get("request") == request:
        return pd.read_parquet(path), json.loads(meta_path.read_text())
    wanted = [d for d in domains if need[d] > 0]
    if not wanted:
        return pd.DataFrame(columns=["query_id", "prompt", "domain"]), {"request": request, "counts": {}}
    total = int(whole_log.groupby("domain", observed=True).size().max())  # the builder's seeded order starts with the log's own
    config = PromptSetConfig(per_domain=total + train_prompts, seed=seed, domains=tuple(wanted), per_source=per_source)
    built = build_prompt_set(config, SourceRoots(site_dirs=tuple(extra_site_dirs())), log=_say)
    frame = built.frame[~built.frame["prompt"].isin(exclude)]
    frame = frame[frame.groupby("domain").cumcount().to_numpy() < frame["domain"].map(need).to_numpy()]
    frame = frame[["query_id", "prompt", "domain"]].reset_index(drop=True)
    meta = {"request": request, "counts": frame.groupby("domain").size().astype(int).to_dict(),
            "config": built.metadata["config"], "roots": built.metadata["roots"], "origins": built.metadata["origins"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return frame, meta


def mined_with_outputs(session: Any, plain: pd.DataFrame, whole_log: pd.DataFrame, train_prompts: int, seed: int, cache: Path,
                       out: Path) -> tuple[pd.DataFrame, dict[str, Any], tuple]:
    """A drafter run's training prompts beyond the log's: ``mine_train_prompts`` (kept under ``cache``, and
    copied into ``out`` as the run's record of what it mined) and the target's greedy outputs of them
    (``states.cached_teacher_outputs`` under ``cache/extra-states``: a rerun resumes at its first missing
    chunk). (the mined prompts, the mining record, (prompt ids, outputs, states, argmaxes))"""
    from .states import cached_teacher_outputs

    extra, mined = mine_train_prompts(plain, train_prompts, seed, cache / "extra-prompts.parquet", whole_log=whole_log)
    _say(f"   mined training prompts beyond the log's (up to {train_prompts} per domain): "
         + (", ".join(f"{d} +{n}" for d, n in mined["counts"].items()) or "none needed"))
    if cache.resolve() != out.resolve():
        out.mkdir(parents=True, exist_ok=True)
        for name in ("extra-prompts.parquet", "extra-prompts.json"):
            if (cache / name).exists():
                shutil.copyfile(cache / name, out / name)
    return extra, mined, cached_teacher_outputs(session, extra, cache / "extra-states")
