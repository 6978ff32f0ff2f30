"""Estimators by name: ``get_estimator("dr")``, ``make_estimator("ips", {"clip": 20})``.

Every registered estimator passes ``estimators.testing.check_estimator``; a new estimator is
added here and gets that whole contract suite in the tests for free.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from .base import EstimatorBase
from .direct import DM
from .doubly_robust import DR, SNDR, DRos, SwitchDR
from .weighting import IPS, SNIPS

ESTIMATORS: dict[str, type[EstimatorBase]] = {cls.name: cls for cls in (DM, IPS, SNIPS, DR, SNDR, SwitchDR, DRos)}


def estimator_names() -> tuple[str, ...]:
    return tuple(ESTIMATORS)


def make_estimator(name: str, settings: Mapping[str, float] | None = None) -> EstimatorBase:
    """The estimator registered as ``name`` with ``settings`` (unknown setting names are errors)."""
    if name not in ESTIMATORS:
        raise KeyError(f"unknown estimator {name!r}; known estimators: {', '.join(ESTIMATORS)}")
    cls = ESTIMATORS[name]
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(settings or {}) - set(allowed))
    if unknown:
        raise ValueError(
            f"estimator {name!r} has no setting(s) {', '.join(unknown)}; "
            f"its settings are: {', '.join(allowed) if allowed else '(none)'}"
        )
    return cls(**dict(settings or {}))


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
