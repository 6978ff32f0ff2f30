"""Replayed counts priced under a cost profile: summed totals, head arms' own-domain totals, break-even steps.

A speed-up here is a ratio of totals (total tokens over total cost in target steps), priced by the
pure count model ``decoding.calibrate.speedup_count`` with the profile's round and verified-token
costs and a drafter step given in seconds.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd

#: the counts a replay gives per prompt, summed by ``sum_counts``
COUNTS = ("n_new_tokens", "target_calls", "draft_tokens", "draft_calls", "accepted_tokens")


def sum_counts(rows: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """The replayed counts of ``rows`` (one dict per prompt), summed."""
    total = dict.fromkeys(COUNTS, 0)
    for r in rows:
        for key in COUNTS:
            total[key] += int(r[key])
    return total


def acceptance(totals: Mapping[str, int]) -> float:
    """Accepted over drafted tokens (0 where nothing was drafted)."""
    return totals["accepted_tokens"] / max(totals["draft_tokens"], 1)


def price_totals(totals: Mapping[str, Any], profile: Any, step_s: float) -> float:
    """The count speed-up (ratio of totals) of summed counts under ``profile``'s round and
    verification costs, one drafter step costing ``step_s`` seconds."""
    from ..pricing import speedup_count

    return speedup_count(totals["n_new_tokens"], totals["target_calls"], totals["draft_calls"], step_s / profile.step_s,
                         totals["draft_tokens"], profile.relative_verify_cost(), profile.relative_round_cost())


def head_arm_domain(arm: str) -> str | None:
    """The domain of a head arm's name (``head-D-...``, ``lookup-head-D...``); None for any other arm."""
    if not arm.startswith(("head-", "lookup-head-")):
        return None
    return arm.removeprefix("lookup-").split("-")[1]


def own_domain_totals(outcomes: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per head arm of a log's ``outcomes``: its domain and its summed counts on that domain's test
    prompts (``n_new_tokens``, ``target_calls``, ``draft_tokens``, ``draft_calls``): what its own-domain
    test speed-up is, at any head step (``price_totals``)."""
    f = outcomes[outcomes["split"].astype(str) == "test"]
    out: dict[str, dict[str, Any]] = {}
    for arm in sorted(f["arm"].astype(str).unique()):
        domain = head_arm_domain(arm)
        if domain is None:
            continue
        part = f[(f["arm"].astype(str) == arm) & (f["domain"].astype(str) == domain)]
        out[arm] = {"domain": domain, "n_prompts": int(len(part)),
                    **{col: int(part[col].sum()) for col in ("n_new_tokens", "target_calls", "draft_tokens", "draft_calls")}}
    return out


def break_even_head_step(outcomes: pd.DataFrame, profile: Any, speedup: float = 1.2) -> dict[str, float | None]:
    """Per head arm of a log's ``outcomes``, on its own domain's test prompts: the head step (seconds)
    at which its count speed-up there (ratio of totals, linear in the step's cost) is exactly ``speedup``,
    under ``profile``'s other costs (round, verified token); None where even a free head step falls short.
    What a GPU measurement of the head's step has to beat."""
    v, r = profile.relative_verify_cost(), profile.relative_round_cost()
    out: dict[str, float | None] = {}
    for arm, tot in own_domain_totals(outcomes).items():
        n, t, d, c = (float(tot[col]) for col in ("n_new_tokens", "target_calls", "draft_tokens", "draft_calls"))
        rel = (n / speedup - t * (1.0 + r) - d * v) / c if c else -1.0
        out[arm] = rel * profile.step_s if rel > 0 else None
    return out


def own_domain_table(frame: pd.DataFrame, domains: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Per arm of ``domains`` (arm -> the domain it was made for), on the test split of ``frame``: its
    count speed-up (ratio of totals) per domain, on its own domain and elsewhere, and its acceptance there."""
    from bandit.pipeline import arm_domain_speedups

    f = frame[frame["split"].astype(str) == "test"]
    by_arm = arm_domain_speedups(f[f["arm"].astype(str).isin(list(domains))], split=None)
    out = {}
    for name, domain in domains.items():
        by = by_arm.get(name, {})
        own = f[(f["arm"].astype(str) == name) & (f["domain"].astype(str) == domain)]
        out[name] = {"domain": domain, "own": by.get(domain), "elsewhere": {d: v for d, v in by.items() if d != domain},
                     "acceptance_own": float(own["accepted_tokens"].sum() / max(float(own["draft_tokens"].sum()), 1.0))}
    return out
