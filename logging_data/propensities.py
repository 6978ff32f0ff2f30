"""Do the logged propensities agree with how often each arm was logged? (``check_propensities``)

A decisions row records the arm the logging policy chose and the probability it gave that arm.
Those probabilities are testable against the log itself. Rows are grouped by their context (the
columns the logger's choice may depend on: imported ``--context`` columns, the position, the
prompt, the domain; every row is one group when there are none), assuming the logger gives every
row of a group the same distribution over arms. Then, in a group of ``n`` rows:

- an arm logged ``k`` times with the same propensity ``p`` on every row is a draw
  ``k ~ Binomial(n, p)``: the exact binomial test. Only arms logged at least once in a group are
  seen, so it is the zero-truncated binomial (a group of one row says nothing). The expected
  count used is ``n`` times the harmonic mean of the arm's propensities, ``k / sum(1 / p)``, so
  the test compares ``sum(1 / p)`` over the arm's rows with ``n``: the identity
  ``E[1{arm} / p] = 1`` of every row where the logger can choose the arm.
- where an arm's propensities vary inside a group, the group does not fix the logger's
  distribution (it depends on something else too), and a shortfall of ``sum(1 / p)`` below
  ``n`` may mean only that the logger cannot choose the arm in some rows, or that rare tiny
  propensities did not come up. An excess cannot: ``E[sum(1 / p)] <= n`` under any logger. So
  such pairs are tested one-sided, ``(sum(1 / p) - n) / sqrt(sum((1 - p) / p^2))`` against the
  normal quantile.

  A pair is reported when its p-value is below ``alpha`` divided by the number of pairs tested
  (Bonferroni) *and* the arm is logged more than ``tolerance`` (relative) more or less often than
  its propensities say: propensities rounded to two decimals are not reported, a logger whose
  records are off by a factor is.
- an arm logged with propensity 1 (a deterministic choice) leaves no probability for any other
  arm in that context; another arm logged in the same group is a certain contradiction, unless
  the logger's choice depends on something the group key leaves out (which only the user knows,
  so the importer's error says to name it with ``--context``).

The result holds numbers, not text to parse; ``lines()`` and ``summary()`` make the one-line
messages the CLI prints. numpy and pandas only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np
import pandas as pd

class PropensityWarning(UserWarning):
    """The logged propensities disagree with how often each action is logged."""


#: family-wise false-alarm rate of the binomial test over every (context, arm) pair tested
ALPHA = 1e-3
#: relative gap between the logged count and the count the propensities predict that is worth a word
TOLERANCE = 0.1
#: a propensity at least this is a deterministic choice
DETERMINISTIC = 1.0 - 1e-12


@dataclass(frozen=True)
class ArmMismatch:
    """One (context, arm) pair whose logged count disagrees with its propensities.

    ``expected`` is ``n_rows`` times the harmonic mean of the arm's propensities there: the rows
    the propensities say the logger would give the arm. ``first_row`` is 0-based in the checked
    rows.
    """

    arm: str
    context: str
    n_rows: int
    n_logged: int
    mean_propensity: float
    expected: float
    p_value: float
    first_row: int

    def text(self) -> str:
        where = f" in context {self.context}" if self.context else ""
        return (f"arm {self.arm!r} is logged in {self.n_logged} of {self.n_rows} rows{where} "
                f"({self.n_logged / self.n_rows:.1%}) with mean propensity {self.mean_propensity:.3g} "
                f"(about {self.expected:.3g} rows expected; {_p_text(self.p_value)})")


@dataclass(frozen=True)
class DeterministicConflict:
    """A context where an arm was logged with propensity 1 and other arms were logged too.

    ``arms``: every arm logged in the context with its count, most logged first;
    ``deterministic``: the arms among them logged with propensity 1; ``first_row`` and
    ``other_row`` (0-based): a propensity-1 row and a row of another arm.
    """

    context: str
    n_rows: int
    deterministic: tuple[str, ...]
    arms: tuple[tuple[str, int], ...]
    first_row: int
    other_row: int

    def text(self) -> str:
        where = f"in context {self.context}" if self.context else "with no context columns (every row one context)"
        who = (f"arm {self.deterministic[0]!r} is" if len(self.deterministic) == 1
               else f"arms {', '.join(map(repr, self.deterministic))} are")
        counts = ", ".join(f"{a!r} x{c}" for a, c in self.arms)
        return (f"{who} logged with propensity 1 (a deterministic choice) {where}, yet {len(self.arms)} arms are logged "
                f"there: {counts} of {self.n_rows} rows")


@dataclass(frozen=True)
class PropensityCheck:
    """What ``check_propensities`` found: mismatches sorted by p-value, conflicts by group size."""

    n_rows: int
    key: tuple[str, ...]
    n_groups: int
    n_tested: int
    mismatches: tuple[ArmMismatch, ...]
    conflicts: tuple[DeterministicConflict, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.conflicts

    def lines(self) -> list[str]:
        """One line per mismatched arm (its worst context, and how many more), best evidence first."""
        out = []
        arms = list(dict.fromkeys(m.arm for m in self.mismatches))
        for arm in arms:
            mine = [m for m in self.mismatches if m.arm == arm]
            more = f" (and {len(mine) - 1} more context(s))" if len(mine) > 1 else ""
            out.append(mine[0].text() + more)
        return out

    def summary(self) -> str | None:
        """One line for the whole check, or None when nothing disagrees."""
        parts = []
        if self.conflicts:
            more = f" (and {len(self.conflicts) - 1} more context(s))" if len(self.conflicts) > 1 else ""
            parts.append(self.conflicts[0].text() + more)
        if self.mismatches:
            more = f"; {len(self.mismatches)} (context, arm) pairs disagree" if len(self.mismatches) > 1 else ""
            parts.append(self.mismatches[0].text() + more)
        if not parts:
            return None
        return ("the logged propensities disagree with how often each arm is logged: " + "; ".join(parts)
                + "; weighting estimators (IPS, SNIPS, DR) rest on these propensities")


def decision_context(decisions: pd.DataFrame) -> pd.DataFrame | None:
    """The columns of a decisions table the logger's choice may depend on: the ``x_*`` context
    columns (an imported position too), ``prompt``, ``domain`` and ``policy_id`` (several loggers
    may share a log), leaving out those holding one value (they split nothing); None when none is left."""
    names = [c for c in decisions.columns if str(c).startswith("x_")] + [c for c in ("prompt", "domain", "policy_id")
                                                                          if c in decisions.columns]
    kept = [c for c in names if decisions[c].nunique(dropna=False) > 1]
    return decisions[kept].reset_index(drop=True) if kept else None


def check_propensities(arms: Sequence, propensities: Sequence[float], context: pd.DataFrame | None = None, *,
                       alpha: float = ALPHA, tolerance: float = TOLERANCE) -> PropensityCheck:
    """Check ``propensities`` (float (n,), in (0, 1]) against how often each of ``arms`` (n,) is logged.

    ``context``: n rows of the columns the logger's choice may depend on (None or no columns: all
    rows are one context). See the module docstring for the test.
    """
    arm = pd.Series(np.asarray(arms, dtype=object)).astype(str)
    p = np.asarray(propensities, dtype=np.float64)
    n = len(arm)
    if len(p) != n or (context is not None and len(context) != n):
        raise ValueError(f"check_propensities: {n} arms, {len(p)} propensities and "
                         f"{'no' if context is None else len(context)} context rows must be as many")
    key = tuple(map(str, context.columns)) if context is not None else ()
    if n == 0:
        return PropensityCheck(0, key, 0, 0, (), ())
    if key:
        group = context.reset_index(drop=True).groupby(list(context.columns), dropna=False, sort=False).ngroup().to_numpy()
    else:
        group = np.zeros(n, dtype=np.int64)
    rows = pd.DataFrame({"g": group, "a": arm, "p": p, "inv": 1.0 / p, "inv_sq": (1.0 - p) / p**2, "det": p >= DETERMINISTIC,
                         "i": np.arange(n)})
    size = rows.groupby("g").size()
    cells = rows.groupby(["g", "a"], sort=False).agg(k=("i", "size"), inv=("inv", "sum"), inv_sq=("inv_sq", "sum"),
                                                     mean_p=("p", "mean"), min_p=("p", "min"), max_p=("p", "max"),
                                                     det=("det", "any"), first=("i", "min")).reset_index()
    cells["n"] = size.loc[cells["g"]].to_numpy()

    def where(i: int) -> str:
        return _key_text(context.iloc[i]) if key else ""

    conflicts = []
    n_arms = cells.groupby("g").size()
    suspect = cells[cells["det"] & (n_arms.loc[cells["g"]].to_numpy() > 1)]
    first_det = rows[rows["det"]].groupby("g")["i"].min()
    for g, cell in cells[cells["g"].isin(suspect["g"])].groupby("g", sort=False):
        cell = cell.sort_values(["k", "first"], ascending=[False, True])
        first = int(first_det.loc[g])
        other = int(cell.loc[cell["a"] != arm.iloc[first], "first"].min())
        conflicts.append(DeterministicConflict(where(first), int(cell["n"].iloc[0]), tuple(cell.loc[cell["det"], "a"]),
                                               tuple(zip(cell["a"], map(int, cell["k"]))), first, other))
    conflicts.sort(key=lambda c: (-c.n_rows, c.first_row))

    cells["constant"] = (cells["max_p"] - cells["min_p"]) <= 1e-9 * cells["max_p"]
    cells["pi"] = cells["k"] / cells["inv"]  # harmonic mean of the arm's propensities in the group
    tested = cells[(cells["n"] >= 2) & (cells["pi"] < DETERMINISTIC)]
    lf = _log_factorials(int(tested.loc[tested["constant"], "n"].max()) if tested["constant"].any() else 0)
    z_excess = NormalDist().inv_cdf(1 - alpha / max(len(tested), 1))
    mismatches = []
    for row in tested.itertuples(index=False):
        ratio = row.inv / row.n  # logged count / the count the propensities predict
        if 1 / (1 + tolerance) <= ratio <= 1 + tolerance:
            continue
        if row.constant:
            pv = _truncated_binomial_p(int(row.k), int(row.n), float(row.pi), lf)
            flagged = pv < alpha / len(tested)
        else:  # the group does not fix the logger's distribution: only an excess is certain to contradict
            z = (row.inv - row.n) / math.sqrt(row.inv_sq) if row.inv_sq > 0 else 0.0
            pv = 1 - NormalDist().cdf(z) if z > 0 else 1.0
            flagged = z > z_excess
        if flagged:
            mismatches.append(ArmMismatch(str(row.a), where(int(row.first)), int(row.n), int(row.k), float(row.mean_p),
                                          float(row.n * row.pi), pv, int(row.first)))
    mismatches.sort(key=lambda m: (m.p_value, -m.n_rows))
    return PropensityCheck(n, key, int(len(size)), int(len(tested)), tuple(mismatches), tuple(conflicts))


def _log_factorials(n: int) -> np.ndarray:
    """float64 (n + 1,): log(j!) for j = 0..n."""
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])


def _logsumexp(x: np.ndarray) -> float:
    if x.size == 0:
        return -math.inf
    m = float(x.max())
    return m + math.log(float(np.exp(x - m).sum())) if math.isfinite(m) else m


def _truncated_binomial_p(k: int, n: int, p: float, lf: np.ndarray) -> float:
    """Two-sided p-value of ``k`` (>= 1) under Binomial(n, p) conditioned on at least one success."""
    j = np.arange(1, n + 1)
    logpmf = lf[n] - lf[j] - lf[n - j] + j * math.log(p) + (n - j) * math.log1p(-p)
    log_den = _logsumexp(logpmf)  # P(X >= 1)
    lower = _logsumexp(logpmf[:k]) - log_den  # P(1 <= X <= k | X >= 1)
    upper = _logsumexp(logpmf[k - 1:]) - log_den  # P(X >= k | X >= 1)
    return float(min(1.0, 2.0 * math.exp(min(lower, upper))))


def _p_text(p: float) -> str:
    return "p < 1e-300" if p < 1e-300 else f"p = {p:.1g}"


def _key_text(row: pd.Series) -> str:
    """``segment=2, domain='code'``: a context as a person reads it (long text cut)."""
    def value(v) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{v:g}"
        text = repr(v if not isinstance(v, str) or len(v) <= 40 else v[:37] + "...")
        return text
    return ", ".join(f"{k}={value(v)}" for k, v in row.items())
