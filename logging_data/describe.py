"""A summary of a log: what a person checks before training on it.

``describe_log`` returns plain JSON-ready data (dicts, lists, str, int, float, None): rows and
parts per table, the arms with their kind and cost, the reward definition, reward statistics
per arm and per domain, queries per split, and for decisions the propensity range and the rows
per logging policy. It reads only the columns it summarises and does not validate (use
``validate_log`` for that): a log with unknown arms is still described, its unknown arms listed
after the declared ones.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from .io import open_log
from .schema import SPLITS, TABLES

STAT_NAMES = ("count", "mean", "std", "min", "max")


def reward_stats(values: np.ndarray) -> dict[str, float | int | None]:
    """count, mean, std (ddof=1; None below 2 values), min, max of float64 ``values`` (n,).

    NaN values are left out of every statistic, count included.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    n = int(v.size)
    if n == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "max": None}
    return {
        "count": n,
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if n > 1 else None,
        "min": float(v.min()),
        "max": float(v.max()),
    }


def _grouped(frame: pd.DataFrame, by: str, order: list[Any]) -> list[dict[str, Any]]:
    """Reward statistics per value of ``by``: ``order`` first, then other values (sorted), then None."""
    keys = frame[by].astype(object)
    rewards = frame["reward"].to_numpy(dtype=np.float64, na_value=np.nan)
    groups = {k: rewards[idx] for k, idx in pd.Series(rewards).groupby(keys.to_numpy(), sort=False, dropna=True).indices.items()}
    rest = sorted((k for k in groups if k not in order), key=str)
    out = [{by: value, **reward_stats(groups.get(value, np.zeros(0)))} for value in list(order) + rest]
    null = keys.isna().to_numpy()
    if null.any():
        out.append({by: None, **reward_stats(rewards[null])})
    return out


def _splits(frame: pd.DataFrame) -> dict[str, int]:
    """Distinct query_ids per split (key "none" for unassigned), in the contract's order."""
    per_query = frame.drop_duplicates("query_id")["split"].astype(object)
    counts = {s: int((per_query == s).sum()) for s in SPLITS}
    counts["none"] = int(per_query.isna().sum())
    other = per_query[per_query.notna() & ~per_query.isin(SPLITS)]
    for value, n in other.value_counts().sort_index().items():
        counts[str(value)] = int(n)
    return counts


def _describe_table(frame: pd.DataFrame, table: str, arm_names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n_rows": int(len(frame)),
        "n_queries": int(frame["query_id"].nunique()),
        "reward": reward_stats(frame["reward"].to_numpy(dtype=np.float64, na_value=np.nan)),
        "reward_by_arm": _grouped(frame, "arm", arm_names),
        "reward_by_domain": _grouped(frame, "domain", []),
        "queries_by_split": _splits(frame),
    }
    if table == "decisions":
        p = frame["propensity"].to_numpy(dtype=np.float64, na_value=np.nan)
        p = p[~np.isnan(p)]
        out["propensity"] = {"min": float(p.min()) if p.size else None, "max": float(p.max()) if p.size else None}
        policies = []
        for policy_id, rows in frame.groupby(frame["policy_id"].astype(object), sort=True):
            pp = rows["propensity"].to_numpy(dtype=np.float64, na_value=np.nan)
            policies.append(
                {
                    "policy_id": policy_id,
                    "count": int(len(rows)),
                    "propensity_min": float(np.nanmin(pp)) if len(pp) else None,
                    "propensity_max": float(np.nanmax(pp)) if len(pp) else None,
                    "reward_mean": reward_stats(rows["reward"].to_numpy(dtype=np.float64, na_value=np.nan))["mean"],
                }
            )
        out["policies"] = policies
    return out


_SUMMARY_COLUMNS = {
    "outcomes": ["query_id", "domain", "split", "arm", "reward"],
    "decisions": ["query_id", "domain", "split", "arm", "reward", "propensity", "policy_id"],
}


def describe_log(path: str | os.PathLike) -> dict[str, Any]:
    """Summarise the log at ``path`` as JSON-ready data.

    Keys: ``path``, ``schema_version``, ``arms`` (list of {index, name, kind, cost, attrs}),
    ``reward_definition``, ``extra`` (the log's free metadata), ``rows`` and ``parts`` (per
    table), and one entry per table that has rows (``outcomes``, ``decisions``) with
    ``n_rows``, ``n_queries``, ``reward`` (overall statistics), ``reward_by_arm`` (one entry per
    declared arm, in the log's order, even when it has no rows), ``reward_by_domain`` (None for
    rows without a domain, listed last), ``queries_by_split``; decisions add ``propensity``
    ({min, max}) and ``policies`` (rows, propensity range and mean reward per ``policy_id``).
    Statistics are ``count, mean, std, min, max`` (see ``reward_stats``).
    Raises ``LogError`` when ``path`` is not a log.
    """
    log = open_log(path)
    meta = log.metadata
    arm_names = list(meta.arm_names)
    out: dict[str, Any] = {
        "path": str(path),
        "schema_version": meta.schema_version,
        "arms": [{"index": i, **a.to_json()} for i, a in enumerate(meta.arms)],
        "reward_definition": meta.reward.to_json(),
        "extra": dict(meta.extra),
        "rows": {t: log.n_rows(t) for t in TABLES},
        "parts": {t: len(log.parts(t)) for t in TABLES},
    }
    for table in TABLES:
        if log.has(table):
            frame = log.read(table, _SUMMARY_COLUMNS[table])
            out[table] = _describe_table(frame, table, arm_names)
    return out
