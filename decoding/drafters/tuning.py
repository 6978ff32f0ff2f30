"""A drafter's settings as frozen types, a grid of them replayed on validation prompts, and the pick.

A setting travels as its type; its ``name`` (``"k2-gate0.3"``) is only a label in tables and JSON,
read back with ``parse`` where a file holds one.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence, TypeVar

import numpy as np

from .pricing import acceptance, price_totals, sum_counts

#: the grid a head's tuned setting is picked from, on validation prompts only
TUNE_LENGTHS = (2, 3, 4)
TUNE_GATES = (0.0, 0.2, 0.3, 0.4, 0.5)
#: the acceptance a pick needs on validation (the fastest setting reaching it wins)
MIN_ACCEPTANCE = 0.45


@dataclass(frozen=True)
class HeadSetting:
    """A head's draft length ``k`` and confidence ``gate`` (a round stops at its first token less likely; 0: never)."""

    k: int
    gate: float = 0.0

    @property
    def name(self) -> str:
        return f"k{self.k}-gate{float(self.gate)}"

    @classmethod
    def parse(cls, name: str) -> "HeadSetting":
        """``"k2-gate0.3"`` -> ``HeadSetting(2, 0.3)`` (a name a file kept)."""
        m = re.fullmatch(r"k(\d+)-gate([0-9.]+)", name)
        if not m:
            raise ValueError(f"a head setting must read 'k<draft length>-gate<confidence>' (e.g. 'k2-gate0.3'); got {name!r}")
        return cls(int(m.group(1)), float(m.group(2)))


@dataclass(frozen=True)
class StoreSetting:
    """A retrieval store's draft length ``tokens`` and gates (``min_count`` continuations seen, ``min_fraction`` of them agreeing)."""

    tokens: int
    min_count: int
    min_fraction: float

    @property
    def name(self) -> str:
        return f"k{self.tokens}-count{self.min_count}-frac{float(self.min_fraction)}"


@dataclass(frozen=True)
class StoreHeadSetting:
    """A store where it has a continuation, a head elsewhere."""

    store: StoreSetting
    head: HeadSetting

    @property
    def name(self) -> str:
        return f"{self.store.name}+head-{self.head.name}"


Setting = TypeVar("Setting", HeadSetting, StoreSetting, StoreHeadSetting)


def head_grid(lengths: Sequence[int] = TUNE_LENGTHS, gates: Sequence[float] = TUNE_GATES) -> list[HeadSetting]:
    return [HeadSetting(k, g) for k, g in itertools.product(lengths, gates)]


def store_grid(tokens: Sequence[int], min_counts: Sequence[int], min_fractions: Sequence[float]) -> list[StoreSetting]:
    return [StoreSetting(k, c, f) for k, c, f in itertools.product(tokens, min_counts, min_fractions)]


def head_replay(chains: list[tuple[np.ndarray, np.ndarray]], prompts: list[list[int]], outputs: list[list[int]],
                max_new_tokens: int, setting: HeadSetting) -> list[dict[str, int]]:
    """Each prompt's exact counts with a head at ``setting`` (``decoding.heads.replay_chains``);
    ``chains``: ``draft_chains_many(..., with_confidence=True)`` of the same prompts, at least ``setting.k`` long."""
    from .. import heads

    return [heads.replay_chains(tokens, p, o, max_new_tokens, setting.k, conf, setting.gate)
            for (tokens, conf), p, o in zip(chains, prompts, outputs)]


def setting_entry(rows: Iterable[Mapping[str, int]], profile: Any, step_s: float) -> dict[str, float]:
    """One grid entry: the count speed-up of the summed counts under ``profile`` (a drafter step of ``step_s``) and the acceptance."""
    total = sum_counts(rows)
    return {"count": price_totals(total, profile, step_s), "acceptance": acceptance(total)}


def head_setting_table(chains: list[tuple[np.ndarray, np.ndarray]], prompts: list[list[int]], outputs: list[list[int]],
                       max_new_tokens: int, profile: Any, step_s: float,
                       grid: Sequence[HeadSetting] | None = None) -> dict[HeadSetting, dict[str, float]]:
    """Per setting of ``grid`` (default ``head_grid()``): the head's count speed-up under ``profile`` (a
    head step of ``step_s`` seconds) and its acceptance, on these prompts."""
    return {s: setting_entry(head_replay(chains, prompts, outputs, max_new_tokens, s), profile, step_s)
            for s in (grid if grid is not None else head_grid())}


def pick_setting(table: Mapping[Setting, Mapping[str, float]], min_acceptance: float = MIN_ACCEPTANCE) -> Setting | None:
    """The fastest setting of ``table`` (its ``count``: the count speed-up under the profile it was priced with) whose acceptance is at least ``min_acceptance``; None if none is."""
    ok = {s: v for s, v in table.items() if v["acceptance"] >= min_acceptance}
    return max(ok, key=lambda s: ok[s]["count"]) if ok else None


def table_json(table: Mapping[Any, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """A settings table keyed by the settings' names (for JSON)."""
    return {s.name: dict(v) for s, v in table.items()}
