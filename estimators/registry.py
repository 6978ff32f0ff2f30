"""Estimators by name: ``get_estimator("dr")``, ``make_estimator("ips", {"clip": 20})``.

Every registered estimator passes ``estimators.testing.check_estimator``; a new estimator is
added here and gets that whole contract suite in the tests for free.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Mapping

from .base import EstimatorBase
from .direct import DM
from .doubly_robust import DR, SNDR, DRos, SwitchDR
from .weighting import IPS, SNIPS

ESTIMATORS: dict[str, type[EstimatorBase]] = {cls.name: cls for cls in (DM, IPS, SNIPS, DR, SNDR, SwitchDR, DRos)}
# Open Bandit Pipeline's estimator names (``estimator_name``) and class names -> this project's names.
OBP_ESTIMATOR_NAMES: dict[str, str] = {
    "ipw": "ips", "snipw": "snips", "dr-os": "dros", "switch_dr": "switch-dr",
    "InverseProbabilityWeighting": "ips", "SelfNormalizedInverseProbabilityWeighting": "snips",
    "DirectMethod": "dm", "DoublyRobust": "dr", "SelfNormalizedDoublyRobust": "sndr",
    "SwitchDoublyRobust": "switch-dr", "DoublyRobustWithShrinkage": "dros",
}
# OBP's one hyperparameter ``lambda_`` is a different setting in each estimator here.
OBP_LAMBDA = {"ips": "clip", "switch-dr": "tau", "dros": "lam"}


class OBPNameWarning(UserWarning):
    """An Open Bandit Pipeline name was accepted; the message gives this project's name for it."""


def estimator_names() -> tuple[str, ...]:
    return tuple(ESTIMATORS)


def make_estimator(name: str, settings: Mapping[str, float] | None = None) -> EstimatorBase:
    """The estimator registered as ``name`` with ``settings`` (unknown setting names are errors).

    Open Bandit Pipeline's names are accepted with an ``OBPNameWarning`` that says this project's:
    ``ipw``, ``snipw``, ``dr-os`` and OBP's class names; ``lambda_`` as the estimator's one
    hyperparameter (``clip`` of ips, ``tau`` of switch-dr, ``lam`` of dros).
    """
    settings = dict(settings or {})
    if name not in ESTIMATORS and name in OBP_ESTIMATOR_NAMES:
        ours = OBP_ESTIMATOR_NAMES[name]
        warnings.warn(f"estimator {name!r} is Open Bandit Pipeline's name; here it is {ours!r}", OBPNameWarning, stacklevel=3)
        name = ours
    if name not in ESTIMATORS:
        raise KeyError(f"unknown estimator {name!r}; known estimators: {', '.join(ESTIMATORS)} "
                       f"(Open Bandit Pipeline's names {', '.join(n for n in OBP_ESTIMATOR_NAMES if n.islower())} are accepted too)")
    cls = ESTIMATORS[name]
    allowed = [f.name for f in dataclasses.fields(cls)]
    if "lambda_" in settings:
        if name not in OBP_LAMBDA:
            raise ValueError(f"estimator {name!r} has no setting lambda_ (Open Bandit Pipeline's hyperparameter): "
                             f"{'it has no settings' if not allowed else 'its settings are: ' + ', '.join(allowed)}; "
                             f"lambda_ is {', '.join(f'{o} of {e}' for e, o in OBP_LAMBDA.items())} here")
        ours = OBP_LAMBDA[name]
        warnings.warn(f"lambda_ is Open Bandit Pipeline's name; {name}'s setting is {ours!r}", OBPNameWarning, stacklevel=3)
        settings[ours] = settings.pop("lambda_")
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(
            f"estimator {name!r} has no setting(s) {', '.join(unknown)}; "
            f"its settings are: {', '.join(allowed) if allowed else '(none)'}"
        )
    return cls(**settings)


def get_estimator(name: str) -> EstimatorBase:
    """The estimator registered as ``name``, with its default settings."""
    return make_estimator(name)


def parse_estimator(spec: str) -> EstimatorBase:
    """An estimator from a command-line spec ``name[:key=value,...]``, e.g. ``ips:clip=20``."""
    name, _, rest = spec.strip().partition(":")
    settings: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"estimator spec {spec!r}: expected key=value after ':', found {item!r}")
        try:
            settings[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"estimator spec {spec!r}: setting {key.strip()!r} must be a number; got {value!r}") from None
    return make_estimator(name, settings)
