"""Learners from scikit-learn, saved as plain arrays: reward regression, best-arm classifier, TaskSpec router.

- ``regression``: one ridge regressor per arm predicts that arm's reward from the prompt
  features; the policy is greedy on the predictions or a softmax at ``temperature``.
- ``classifier``: a multinomial logistic regression predicts the best arm directly (labels: the
  best arm per prompt under full information; under bandit feedback the best arm under doubly
  robust pseudo-rewards, ``dr_pseudo_rewards``), each prompt weighted by what choosing right is
  worth there (best minus mean reward).
- ``taskspec``: the TaskSpec-style router: a logistic regression from prompt to domain label,
  then the arm best on average for that domain in training.

Every fitted model is linear, so it is saved as ``coef.npy``/``intercept.npy`` (float64) and
evaluated here with numpy; scikit-learn is needed only to fit. Nothing is pickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bandit.data import TrainingData
from bandit.policy import greedy, softmax

from ._common import PolicyConfigBase, SavedStatePolicy, arm_values, best_arm, check_choice, check_number, one_hot


# -- linear models as arrays ----------------------------------------------------------------------
def fit_logistic(x: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, C: float, max_iter: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit a (multinomial) logistic regression; returns (classes int64 (c,), coef (c', d), intercept (c',)).

    With a single class present the model is constant: classes (1,), coef zeros (1, d).
    Binary problems keep scikit-learn's one-row coef (c' = 1); see ``logistic_proba``.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    classes = np.unique(labels).astype(np.int64)
    if classes.size == 1:
        return classes, np.zeros((1, x.shape[1])), np.zeros(1)
    model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported through n_iter in the metrics instead
        model.fit(x, labels, sample_weight=weights)
    return model.classes_.astype(np.int64), np.asarray(model.coef_, np.float64), np.asarray(model.intercept_, np.float64)


def logistic_proba(x: np.ndarray, n_classes: int, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Class probabilities float64 (n, n_classes) exactly as scikit-learn's ``predict_proba``."""
    if n_classes == 1:
        return np.ones((x.shape[0], 1))
    z = x @ coef.T + intercept
    if n_classes == 2:
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.column_stack([1.0 - p1, p1])
    return softmax(z)


def _spread(probs: np.ndarray, classes: np.ndarray, n_arms: int) -> np.ndarray:
    """Class probabilities (n, c) into arm columns (n, n_arms); arms never seen as a class get 0."""
    out = np.zeros((probs.shape[0], n_arms))
    out[:, classes] = probs
    return out


# -- reward regression -----------------------------------------------------------------------------
def fit_ridge_per_arm(x: np.ndarray, data: TrainingData, alpha: float, importance_weighted: bool = True
                      ) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """One ridge regression per arm on the rows where that arm's reward is known.

    Returns (coef float64 (n_arms, d), intercept float64 (n_arms,), rows per arm, arms without
    data). Full information: every finite reward of the arm. Bandit feedback: the rows that
    chose the arm, weighted by 1 / propensity when ``importance_weighted``. An arm with no row
    predicts the lowest observed reward everywhere (so it is never preferred blindly).
    """
    from sklearn.linear_model import Ridge

    k, d = data.n_arms, x.shape[1]
    coef, intercept = np.zeros((k, d)), np.zeros(k)
    n_rows, untrained = [], []
    if data.is_full_information:
        fallback = float(np.nanmin(data.rewards)) if np.isfinite(data.rewards).any() else 0.0
    else:
        fallback = float(data.observed.min())
    for a in range(k):
        if data.is_full_information:
            rows = np.isfinite(data.rewards[:, a])
            y, w = data.rewards[rows, a], None
        else:
            rows = data.actions == a
            y = data.observed[rows]
            w = 1.0 / data.propensities[rows] if importance_weighted else None
        n_rows.append(int(rows.sum()))
        if not rows.any():
            intercept[a] = fallback
            untrained.append(a)
            continue
        model = Ridge(alpha=alpha).fit(x[rows], y, sample_weight=w)
        coef[a], intercept[a] = model.coef_, model.intercept_
    return coef, intercept, n_rows, untrained


def dr_pseudo_rewards(x: np.ndarray, data: TrainingData, alpha: float) -> np.ndarray:
    """Doubly robust pseudo-rewards float64 (n, n_arms) from bandit feedback (Dudik et al., 2011).

    ``r_hat(x, a) + 1[a = logged] (r - r_hat(x, logged)) / propensity``, with ``r_hat`` a ridge
    regression per arm: an unbiased reward for every arm when either the model or the
    propensities are right, so full-information learners can train on it.
    """
    coef, intercept, _, _ = fit_ridge_per_arm(x, data, alpha, importance_weighted=True)
    gamma = x @ coef.T + intercept
    rows = np.arange(data.n)
    gamma[rows, data.actions] += (data.observed - gamma[rows, data.actions]) / data.propensities
    return gamma


# -- reward regression -----------------------------------------------------------------------------
class RegressionPolicy(SavedStatePolicy):
    """One ridge regression per arm: predicted reward float64 (n, n_arms) -> greedy or softmax."""

    def _fit(self, data: TrainingData) -> dict[str, Any]:
        x = data.features.astype(np.float64)
        self.coef_, self.intercept_, n_rows, untrained = fit_ridge_per_arm(x, data, self.config.alpha, self.config.importance_weighted)
        metrics: dict[str, Any] = {"rows_per_arm": dict(zip(self.arm_names, n_rows)),
                                   "arms_without_data": [self.arm_names[a] for a in untrained]}
        if data.is_full_information:
            resid = (self.predict_rewards(x) - data.rewards)[np.isfinite(data.rewards)]
            metrics["train_rmse"] = float(np.sqrt(np.mean(resid**2)))
        return metrics

    def predict_rewards(self, x: np.ndarray) -> np.ndarray:
        """Predicted reward of every arm, float64 (n, n_arms), for features (n, d)."""
        return np.asarray(x, np.float64) @ self.coef_.T + self.intercept_

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        pred = self.predict_rewards(x)
        return greedy(pred) if self.config.output == "greedy" else softmax(pred, self.config.temperature)

    def _state(self):
        return {}, {"coef": self.coef_, "intercept": self.intercept_}

    def _restore(self, meta, arrays) -> None:
        self.coef_, self.intercept_ = arrays["coef"], arrays["intercept"]


@dataclass(frozen=True)
class RegressionConfig(PolicyConfigBase):
    """Reward regression: one ridge regressor per arm over the prompt features."""

    alpha: float = 1.0  # ridge penalty (>= 0)
    output: str = "greedy"  # "greedy": argmax of predicted rewards; "softmax": softmax(pred / temperature)
    temperature: float = 0.1  # softmax temperature (> 0), in reward units; used when output="softmax"
    importance_weighted: bool = True  # bandit feedback: weight each row by 1 / propensity

    name: ClassVar[str] = "regression"
    policy_class: ClassVar[type] = RegressionPolicy

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number(self.name, "alpha", self.alpha, low=0.0)
        check_choice(self.name, "output", self.output, ("greedy", "softmax"))
        check_number(self.name, "temperature", self.temperature, low=0.0, low_open=True)
        if not isinstance(self.importance_weighted, bool):
            raise ValueError(f"{self.name}: importance_weighted must be true or false; got {self.importance_weighted!r}")


# -- best-arm classifier ---------------------------------------------------------------------------
class ClassifierPolicy(SavedStatePolicy):
    """Logistic regression from features to the best arm; probabilities from predict_proba or greedy."""

    def _fit(self, data: TrainingData) -> dict[str, Any]:
        x = data.features.astype(np.float64)
        r = data.rewards if data.is_full_information else dr_pseudo_rewards(x, data, self.config.ridge_alpha)
        keep = np.isfinite(r).any(axis=1)
        filled = np.where(np.isfinite(r), r, -np.inf)[keep]
        labels = filled.argmax(axis=1)
        weights = None
        if self.config.cost_sensitive:
            weights = filled.max(axis=1) - np.nanmean(r[keep], axis=1)  # what choosing right is worth here
            if not (weights > 0).any():
                weights = None  # every arm ties everywhere: plain labels
        x = x[keep]
        if weights is not None:
            weights = weights / weights.mean()
        self.classes_, self.coef_, self.intercept_ = fit_logistic(
            x, labels, weights, self.config.C, self.config.max_iter, self.config.seed)
        counts = np.bincount(labels, minlength=data.n_arms)
        return {"label_counts": dict(zip(self.arm_names, counts.tolist())),
                "train_accuracy": float((self._probabilities(x).argmax(axis=1) == labels).mean())}

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        probs = _spread(logistic_proba(x, self.classes_.size, self.coef_, self.intercept_), self.classes_, len(self.arm_names))
        return greedy(probs) if self.config.output == "greedy" else probs

    def _state(self):
        return {}, {"classes": self.classes_, "coef": self.coef_, "intercept": self.intercept_}

    def _restore(self, meta, arrays) -> None:
        self.classes_ = arrays["classes"].astype(np.int64)
        self.coef_, self.intercept_ = arrays["coef"], arrays["intercept"]


@dataclass(frozen=True)
class _LogisticConfig(PolicyConfigBase):
    """Settings of a policy that fits a logistic regression (lbfgs)."""

    C: float = 1.0  # inverse L2 regularisation strength (> 0)
    max_iter: int = 500  # lbfgs iterations

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number(self.name, "C", self.C, low=0.0, low_open=True)
        check_number(self.name, "max_iter", self.max_iter, low=1, integer=True)


@dataclass(frozen=True)
class ClassifierConfig(_LogisticConfig):
    """Predict the best arm directly with a multinomial logistic regression."""

    C: float = 100.0  # inverse L2 regularisation strength (> 0)
    output: str = "proba"  # "proba": predict_proba as the policy (stochastic); "greedy": one-hot argmax
    cost_sensitive: bool = True  # weight each prompt by best reward - mean reward (else all equal)
    ridge_alpha: float = 1.0  # bandit feedback: ridge penalty of the reward model behind the DR pseudo-rewards

    name: ClassVar[str] = "classifier"
    policy_class: ClassVar[type] = ClassifierPolicy

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.name, "output", self.output, ("proba", "greedy"))
        check_number(self.name, "ridge_alpha", self.ridge_alpha, low=0.0)
        if not isinstance(self.cost_sensitive, bool):
            raise ValueError(f"{self.name}: cost_sensitive must be true or false; got {self.cost_sensitive!r}")


# -- TaskSpec router --------------------------------------------------------------------------------
class TaskSpecPolicy(SavedStatePolicy):
    """Prompt -> domain (logistic regression) -> the arm best on average for that domain."""

    def _fit(self, data: TrainingData) -> dict[str, Any]:
        domains = tuple(data.domains)
        if len(domains) != data.n:
            raise ValueError(f"{self.config.name}: needs a domain label per training prompt; the data has {len(domains)} labels for {data.n} prompts")
        missing = [i for i, d in enumerate(domains) if d is None or (isinstance(d, float) and np.isnan(d)) or d == ""]
        if missing:
            raise ValueError(f"{self.config.name}: {len(missing)} training prompt(s) have no domain label (first: query_id={data.query_ids[missing[0]]})")
        names = sorted({str(d) for d in domains})
        labels = np.array([names.index(str(d)) for d in domains], dtype=np.int64)
        overall = arm_values(data)
        best = []
        for j, dom in enumerate(names):
            values = arm_values(data, labels == j)
            # a domain where no arm was observed falls back to the overall best arm
            best.append(best_arm(values, self.config.name, f"for domain {dom!r}") if np.isfinite(values).any()
                        else best_arm(overall, self.config.name, "in the training data"))
        self.domains_ = tuple(names)
        self.domain_arms_ = np.asarray(best, dtype=np.int64)
        x = data.features.astype(np.float64)
        self.classes_, self.coef_, self.intercept_ = fit_logistic(x, labels, None, self.config.C, self.config.max_iter, self.config.seed)
        accuracy = float((self.domain_probabilities(x).argmax(axis=1) == labels).mean())
        return {"domain_arms": {d: self.arm_names[a] for d, a in zip(names, best)}, "train_domain_accuracy": accuracy}

    def domain_probabilities(self, x: np.ndarray) -> np.ndarray:
        """P(domain | prompt), float64 (n, n_domains) in the order of ``domains_``."""
        probs = logistic_proba(np.asarray(x, np.float64), self.classes_.size, self.coef_, self.intercept_)
        return _spread(probs, self.classes_, len(self.domains_))

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        dom = self.domain_probabilities(x)
        if self.config.routing == "hard":
            dom = greedy(dom)
        return dom @ one_hot(self.domain_arms_, len(self.arm_names))

    def _state(self):
        return {"domains": list(self.domains_)}, {"classes": self.classes_, "coef": self.coef_, "intercept": self.intercept_,
                                                  "domain_arms": self.domain_arms_}

    def _restore(self, meta, arrays) -> None:
        self.domains_ = tuple(meta["domains"])
        self.classes_ = arrays["classes"].astype(np.int64)
        self.coef_, self.intercept_ = arrays["coef"], arrays["intercept"]
        self.domain_arms_ = arrays["domain_arms"].astype(np.int64)


@dataclass(frozen=True)
class TaskSpecConfig(_LogisticConfig):
    """TaskSpec router: classify the prompt's domain, play the domain's best arm from training."""

    C: float = 10.0  # inverse L2 regularisation strength of the domain classifier (> 0)
    routing: str = "hard"  # "hard": the most likely domain's arm; "soft": arms weighted by P(domain | prompt)

    name: ClassVar[str] = "taskspec"
    policy_class: ClassVar[type] = TaskSpecPolicy

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.name, "routing", self.routing, ("hard", "soft"))
