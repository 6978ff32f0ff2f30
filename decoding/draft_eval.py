"""How good is a draft, per domain: acceptance, tokens per target call, speed-up, losslessness.

``evaluate_drafts`` decodes held-out prompts of every domain with the target alone (plain greedy,
the reference) and with each draft as the assistant (transformers assisted decoding, through
``decoding.session.DecodingSession``, which counts target and draft forward calls with hooks),
and aggregates per (draft, domain):

- ``acceptance_rate`` = accepted draft tokens / proposed draft tokens;
- ``tokens_per_target_call`` = new tokens / target forward calls (1.0 for plain decoding);
- ``speedup_wall`` = total plain wall time / total assisted wall time over the same prompts;
- ``speedup_count`` = the backend's count model (``decoding.pricing``) over the domain's
  totals: new tokens / (target calls + draft calls x c_d / c_t), with c_d / c_t the draft's
  calibrated per-step cost relative to the target's on this machine; it does not move with the
  machine's load the way wall time does;
- ``n_lossless`` = prompts whose assisted output equals plain greedy token for token.

Prompts per domain are a seeded sample of the requested split, the same for every draft.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .models import DRAFT_MAX_NEW_TOKENS

PLAIN = "plain"


@dataclass(frozen=True)
class DraftEvalConfig:
    """Settings of ``evaluate_drafts``."""

    split: str | None = "test"  # prompts of this split; None = all rows
    per_domain: int = 8  # prompts per domain (a seeded sample; all when fewer)
    domains: tuple[str, ...] | None = None  # domains to evaluate; None = every domain in the file
    max_new_tokens: int = DRAFT_MAX_NEW_TOKENS  # tokens generated per prompt
    num_assistant_tokens: int = 5  # draft tokens proposed per block
    schedule: str = "constant"  # transformers' num_assistant_tokens_schedule
    repeats: int = 1  # timed runs per (prompt, arm); the median is kept
    warmup: int = 1  # untimed runs of the first prompt per arm, before timing
    seed: int = 0

    def validate(self) -> None:
        for name in ("per_domain", "max_new_tokens", "num_assistant_tokens", "repeats"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be an integer >= 1; got {v!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"`warmup` must be an integer >= 0; got {self.warmup!r}")
        if self.schedule not in ("constant", "heuristic", "heuristic_transient"):
            raise ValueError(f"`schedule` must be constant, heuristic or heuristic_transient; got {self.schedule!r}")


@dataclass(frozen=True)
class DomainResult:
    """One draft (or ``plain``) on one domain, totals over its prompts."""

    draft: str
    domain: str
    n_prompts: int
    n_new_tokens: int
    target_calls: int
    draft_calls: int
    proposed_tokens: int
    accepted_tokens: int
    acceptance_rate: float  # accepted / proposed (nan for plain)
    tokens_per_target_call: float
    wall_s: float
    plain_wall_s: float
    speedup_wall: float
    speedup_count: float
    n_lossless: int

    @property
    def lossless(self) -> bool:
        return self.n_lossless == self.n_prompts


@dataclass
class DraftEvalReport:
    """Per-(draft, domain) results, the per-prompt rows behind them, and the calibration used."""

    results: list[DomainResult]
    rows: pd.DataFrame
    calibration: Any  # decoding.pricing.Calibration
    config: DraftEvalConfig
    n_threads: int
    seconds: float

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.results])

    def to_json(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "n_threads": self.n_threads,
            "seconds": round(self.seconds, 2),
            "calibration": self.calibration.to_json(),
            "relative_costs": self.calibration.relative_costs(),
            "results": [asdict(r) | {"lossless": r.lossless} for r in self.results],
            "all_lossless": all(r.lossless for r in self.results),
        }


def select_prompts(frame: pd.DataFrame, config: DraftEvalConfig) -> pd.DataFrame:
    """The evaluation prompts: per domain, a seeded sample of ``per_domain`` rows of the split."""
    missing = [c for c in ("prompt", "domain") if c not in frame.columns]
    if missing:
        raise ValueError(f"prompts need column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns))}")
    f = frame
    if config.split is not None:
        if "split" not in f.columns:
            raise ValueError(f"split={config.split!r} needs a `split` column; the prompts have none")
        f = f[(f["split"].astype("string") == config.split).fillna(False).to_numpy(dtype=bool)]
    f = f[f["domain"].notna()]
    domains = sorted(f["domain"].astype(str).unique()) if config.domains is None else list(config.domains)
    present = set(f["domain"].astype(str))
    absent = [d for d in domains if d not in present]
    if absent or not domains:
        where = f" in split {config.split!r}" if config.split is not None else ""
        raise ValueError(f"no prompts of domain(s) {', '.join(absent) or '(any)'}{where}; present: {', '.join(sorted(present)) or 'none'}")
    rng = np.random.default_rng(config.seed)
    picks = []
    for d in domains:
        g = f[f["domain"].astype(str) == d]
        idx = np.sort(rng.choice(len(g), size=min(config.per_domain, len(g)), replace=False))
        picks.append(g.iloc[idx])
    out = pd.concat(picks, ignore_index=True)
    if "query_id" not in out.columns:
        out["query_id"] = [f"row{i}" for i in range(len(out))]
    return out


def models_config(target: str, drafts: Mapping[str, str], config: DraftEvalConfig, device: str = "cpu") -> Any:
    """The ``decoding.models.ModelsConfig`` for the target and one ``draft`` arm per draft."""
    from decoding.models import ArmConfig, ModelsConfig, TargetConfig

    arms = [ArmConfig(name=PLAIN, kind="none")]
    for name, path in drafts.items():
        if name == PLAIN:
            raise ValueError(f"a draft may not be named {PLAIN!r} (reserved for plain decoding)")
        arms.append(ArmConfig(name=name, kind="draft", draft=str(path), num_assistant_tokens=config.num_assistant_tokens,
                              num_assistant_tokens_schedule=config.schedule))
    return ModelsConfig(target=TargetConfig(path=target, device=device, dtype="float32", max_new_tokens=config.max_new_tokens),
                        arms=tuple(arms))


def evaluate_drafts(target: str, drafts: Mapping[str, str], prompts: pd.DataFrame, config: DraftEvalConfig = DraftEvalConfig(), *,
                    threads: int | None = None, device: str = "cpu", calibration: Any = None,
                    progress: bool = True) -> DraftEvalReport:
    """Evaluate each draft (name -> HF folder) against plain decoding of ``target`` per domain.

    ``calibration``: a ``decoding.pricing.Calibration`` to price the counts with; None
    calibrates on this machine first (``decoding.calibrate.calibrate``)."""
    from tqdm.auto import tqdm

    from decoding.calibrate import calibrate
    from decoding.session import DecodingSession

    config.validate()
    if not drafts:
        raise ValueError("give at least one draft to evaluate")
    for name, path in drafts.items():
        if not (Path(path) / "config.json").exists() and not str(path).startswith("packaged:"):
            raise FileNotFoundError(f"draft {name!r}: {path} is not a Hugging Face folder (no config.json)")
    chosen = select_prompts(prompts, config)
    t_start = time.perf_counter()
    session = DecodingSession(models_config(target, drafts, config, device), threads=threads)
    if calibration is None:
        calibration = calibrate(session, context_len=64, repeats=9, on_unstable="warn")
    encoded = [session.encode(p, config.max_new_tokens) for p in chosen["prompt"].astype(str)]
    arms = [PLAIN] + list(drafts)
    for arm in arms:  # warm-up: the first calls of a model pay one-off costs
        for _ in range(config.warmup):
            session.assisted(encoded[0], None if arm == PLAIN else arm, max_new_tokens=config.max_new_tokens)
    records = []
    bar = tqdm(total=len(encoded) * len(arms), desc="drafts eval", unit="run", disable=not progress)
    try:
        for i, ids in enumerate(encoded):
            plain = session.assisted(ids, None, repeats=config.repeats, max_new_tokens=config.max_new_tokens)
            bar.update(1)
            records.append(_record(chosen.iloc[i], PLAIN, plain, len(ids)))
            for arm in drafts:
                out = session.assisted(ids, arm, repeats=config.repeats, reference=plain.tokens, max_new_tokens=config.max_new_tokens)
                rec = _record(chosen.iloc[i], arm, out, len(ids))
                rec["plain_wall_s"] = plain.wall_time_s
                records.append(rec)
                bar.update(1)
    finally:
        bar.close()
    rows = pd.DataFrame.from_records(records)
    results = summarize(rows, calibration.relative_costs(), calibration.relative_verify_cost(), calibration.relative_round_cost())
    return DraftEvalReport(results=results, rows=rows, calibration=calibration, config=config, n_threads=session.n_threads,
                           seconds=time.perf_counter() - t_start)


def _record(row: pd.Series, arm: str, out: Any, prompt_len: int) -> dict[str, Any]:
    return {
        "query_id": str(row["query_id"]), "domain": str(row["domain"]), "draft": arm, "prompt_tokens": prompt_len,
        "n_new_tokens": out.n_new_tokens, "target_calls": out.target_calls, "draft_calls": out.draft_calls,
        "proposed_tokens": out.draft_tokens, "accepted_tokens": out.accepted_tokens, "wall_s": out.wall_time_s,
        "plain_wall_s": out.wall_time_s if arm == PLAIN else float("nan"),
        "lossless": True if arm == PLAIN else bool(out.lossless),
    }


def summarize(rows: pd.DataFrame, relative_costs: Mapping[str, float], verify_cost: float = 0.0,
              round_cost: float = 0.0) -> list[DomainResult]:
    """Per-(draft, domain) totals from per-prompt rows (columns as built by ``evaluate_drafts``).

    ``relative_costs``: draft name -> one draft step's cost / one target step's; ``verify_cost``
    and ``round_cost``: what a drafted token adds to a verification pass and what an assisted
    round adds to a step, in target steps (``Calibration.relative_verify_cost`` /
    ``relative_round_cost``). Speed-ups are ratios of totals over the same prompts: wall = plain
    seconds / assisted seconds; count = ``decoding.pricing.speedup_count`` on the summed counts.
    """
    from decoding.pricing import speedup_count

    plain_wall = rows[rows["draft"] == PLAIN].groupby("domain")["wall_s"].sum()
    out = []
    for (arm, dom), g in rows.groupby(["draft", "domain"], sort=True):
        proposed = int(g["proposed_tokens"].sum())
        n_new = int(g["n_new_tokens"].sum())
        tcalls = int(g["target_calls"].sum())
        wall = float(g["wall_s"].sum())
        out.append(DomainResult(
            draft=str(arm), domain=str(dom), n_prompts=len(g), n_new_tokens=n_new, target_calls=tcalls,
            draft_calls=int(g["draft_calls"].sum()), proposed_tokens=proposed, accepted_tokens=int(g["accepted_tokens"].sum()),
            acceptance_rate=float(g["accepted_tokens"].sum() / proposed) if proposed else float("nan"),
            tokens_per_target_call=n_new / tcalls if tcalls else float("nan"),
            wall_s=wall, plain_wall_s=float(plain_wall.get(dom, float("nan"))),
            speedup_wall=float(plain_wall.get(dom, float("nan")) / wall) if wall > 0 else float("nan"),
            speedup_count=speedup_count(n_new, tcalls, int(g["draft_calls"].sum()), float(relative_costs.get(arm, 0.0)),
                                        proposed, verify_cost, 0.0 if arm == PLAIN else round_cost) if tcalls else float("nan"),
            n_lossless=int(g["lossless"].sum()),
        ))
    out.sort(key=lambda r: (r.draft != PLAIN, r.draft, r.domain))
    return out


def format_table(results: Sequence[DomainResult]) -> str:
    """A plain-text table, one line per (draft, domain)."""
    head = f"{'draft':<22} {'domain':<12} {'n':>3} {'accept':>7} {'tok/call':>8} {'wall x':>7} {'count x':>7} {'lossless':>9}"
    lines = [head, "-" * len(head)]
    for r in results:
        acc = "-" if math.isnan(r.acceptance_rate) else f"{r.acceptance_rate:.3f}"
        lines.append(f"{r.draft[:22]:<22} {r.domain[:12]:<12} {r.n_prompts:>3} {acc:>7} {r.tokens_per_target_call:>8.2f} "
                     f"{r.speedup_wall:>7.2f} {r.speedup_count:>7.2f} {r.n_lossless:>4}/{r.n_prompts:<4}")
    return "\n".join(lines)
