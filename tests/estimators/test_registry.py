"""The registry and the shared contract suite, run over every registered estimator."""

from __future__ import annotations

import math

import pytest

import estimators as E
from estimators.testing import CHECKS, check_estimator


@pytest.mark.parametrize("name", E.estimator_names())
def test_every_registered_estimator_meets_the_contract(name):
    check_estimator(E.get_estimator(name))


def test_registry_lists_the_issue_estimators():
    assert set(E.estimator_names()) == {"dm", "ips", "snips", "dr", "sndr", "switch-dr", "dros"}


def test_contract_suite_catches_a_broken_estimator():
    from dataclasses import dataclass
    from typing import ClassVar

    @dataclass(frozen=True)
    class Broken(E.EstimatorBase):  # order-dependent: weights the first row heavily
        name: ClassVar[str] = "broken"

        def contributions(self, batch):
            c = batch.weights * batch.rewards
            c = c.copy()
            c[0] *= 50
            return c

    with pytest.raises(AssertionError, match="broken"):
        check_estimator(Broken())
    assert len(CHECKS) >= 8


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("ips", E.IPS()),
        ("ips:clip=20", E.IPS(clip=20.0)),
        (" switch-dr:tau=5 ", E.SwitchDR(tau=5.0)),
        ("dros:lam=2.5", E.DRos(lam=2.5)),
        ("snips", E.SNIPS()),
    ],
)
def test_parse_estimator(spec, expected):
    assert E.parse_estimator(spec) == expected


@pytest.mark.parametrize(
    "spec, exc, pattern",
    [
        ("ipss", KeyError, r"unknown estimator 'ipss'; known estimators: dm, ips"),
        ("ips:clp=3", ValueError, r"estimator 'ips' has no setting\(s\) clp; its settings are: clip"),
        ("snips:clip=3", ValueError, r"estimator 'snips' has no setting\(s\) clip; its settings are: \(none\)"),
        ("ips:clip", ValueError, r"expected key=value after ':', found 'clip'"),
        ("ips:clip=big", ValueError, r"setting 'clip' must be a number; got 'big'"),
        ("ips:clip=0", ValueError, r"IPS: `clip` must be a number > 0; got 0\.0"),
        ("switch-dr:tau=-1", ValueError, r"SwitchDR: `tau` must be a number > 0"),
        ("dros:lam=nan", ValueError, r"DRos: `lam` must be a number > 0"),
    ],
)
def test_bad_estimator_specs(spec, exc, pattern):
    with pytest.raises(exc, match=pattern):
        E.parse_estimator(spec)


def test_settings_round_trip():
    est = E.make_estimator("ips", {"clip": 7})
    assert est.settings() == {"clip": 7}
    assert E.get_estimator("ips").settings() == {"clip": math.inf}
