"""``TrainingData``: the typed batch every policy's ``fit`` takes (never a dict).

Two kinds of feedback, from the two tables of a log (see ``logging_data.schema``):

- full information (outcomes table): ``rewards`` is float64 (n, n_arms), the reward of every arm
  for every prompt; NaN where an arm was not measured for a prompt.
- bandit feedback (decisions table): ``actions`` int64 (n,), ``observed`` float64 (n,), the reward
  of the chosen arm, and ``propensities`` float64 (n,), the logging policy's exact probability of
  that choice.

Exactly one of the two is set. ``features`` is float32 (n, d) from a featurizer; row i of every
array is prompt ``query_ids[i]``. Action ids are 0-based indices into ``arm_names``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TrainingData:
    features: np.ndarray
    arm_names: tuple[str, ...]
    query_ids: tuple[str, ...]
    rewards: np.ndarray | None = None
    actions: np.ndarray | None = None
    observed: np.ndarray | None = None
    propensities: np.ndarray | None = None
    domains: tuple[str | None, ...] = field(default=())

    def __post_init__(self) -> None:
        x = np.asarray(self.features)
        if x.ndim != 2:
            raise ValueError(f"features must have shape (n, d); got shape {x.shape}")
        n, k = x.shape[0], len(self.arm_names)
        if len(self.query_ids) != n:
            raise ValueError(f"query_ids has {len(self.query_ids)} entries; features has {n} rows")
        full = self.rewards is not None
        bandit = self.actions is not None
        if full == bandit:
            raise ValueError("TrainingData needs exactly one of rewards (full information) or actions/observed/propensities (bandit feedback)")
        if full:
            r = np.asarray(self.rewards, dtype=np.float64)
            if r.shape != (n, k):
                raise ValueError(f"rewards must have shape (n, n_arms) = ({n}, {k}); got {r.shape}")
            object.__setattr__(self, "rewards", r)
        else:
            if self.observed is None or self.propensities is None:
                raise ValueError("bandit feedback needs actions, observed and propensities together")
            a = np.asarray(self.actions, dtype=np.int64)
            o = np.asarray(self.observed, dtype=np.float64)
            p = np.asarray(self.propensities, dtype=np.float64)
            for name, arr in (("actions", a), ("observed", o), ("propensities", p)):
                if arr.shape != (n,):
                    raise ValueError(f"{name} must have shape ({n},); got {arr.shape}")
            if n and (a.min() < 0 or a.max() >= k):
                bad = int(np.flatnonzero((a < 0) | (a >= k))[0])
                raise ValueError(f"actions must be in [0, {k}); row {bad} (query_id={self.query_ids[bad]}) has {a[bad]}")
            bad = np.flatnonzero(~((p > 0) & (p <= 1)))
            if bad.size:
                raise ValueError(f"propensities must be in (0, 1]; {bad.size} rows are not (first: query_id={self.query_ids[bad[0]]}, value {p[bad[0]]})")
            object.__setattr__(self, "actions", a)
            object.__setattr__(self, "observed", o)
            object.__setattr__(self, "propensities", p)
        object.__setattr__(self, "features", x.astype(np.float32, copy=False))
        object.__setattr__(self, "arm_names", tuple(self.arm_names))
        object.__setattr__(self, "query_ids", tuple(self.query_ids))

    @property
    def n(self) -> int:
        return self.features.shape[0]

    @property
    def n_arms(self) -> int:
        return len(self.arm_names)

    @property
    def is_full_information(self) -> bool:
        return self.rewards is not None



