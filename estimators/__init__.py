"""Off-policy evaluation: estimators, intervals, diagnostics and cross-fitted reward models.

numpy and scikit-learn only. Build a ``LoggedBatch``, pick estimators (``get_estimator("dr")``
or the classes), call ``estimator.estimate(batch)`` for an ``Estimate``.
"""

from .base import DEFAULT_N_BOOTSTRAP, Estimate, Estimator, EstimatorBase, UndefinedEstimateError
from .batch import BatchError, LoggedBatch
from .diagnostics import Diagnostics, LowEffectiveSampleSizeWarning, SupportWarning, diagnose, effective_sample_size, normaliser_gap
from .direct import DM
from .doubly_robust import DR, SNDR, DRos, SwitchDR
from .intervals import AUTO_RANGE, CI_METHODS, Interval, bootstrap_interval, bootstrap_means, clip_interval, normal_interval, resolve_reward_range
from .registry import ESTIMATORS, estimator_names, get_estimator, make_estimator, parse_estimator
from .reward_model import CrossFitRewardModel
from .weighting import IPS, SNIPS

__all__ = [
    "AUTO_RANGE", "CI_METHODS", "DEFAULT_N_BOOTSTRAP", "DM", "DR", "DRos", "ESTIMATORS", "IPS", "SNDR", "SNIPS",
    "BatchError", "CrossFitRewardModel", "Diagnostics", "Estimate", "Estimator", "EstimatorBase", "UndefinedEstimateError",
    "Interval", "LoggedBatch", "LowEffectiveSampleSizeWarning", "SupportWarning", "SwitchDR",
    "bootstrap_interval", "bootstrap_means", "clip_interval", "diagnose", "effective_sample_size", "estimator_names",
    "get_estimator", "make_estimator", "normal_interval", "normaliser_gap", "parse_estimator", "resolve_reward_range",
]
