"""bandit-log evaluate: baselines and trained runs x estimators on a decisions log."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from logging_data import Arm, LogMetadata, create_log, open_log
from logging_data.simulate import UniformLogging, reward_matrix, simulate_decisions, synthetic_outcomes

ARMS = ("none", "small", "big")


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("evaluate") / "log"
    log = create_log(path, LogMetadata(arms=tuple(Arm(a) for a in ARMS)))
    outcomes, _ = synthetic_outcomes(150, ARMS, noise=0.05, seed=2)
    log.append("outcomes", outcomes)
    log.append("decisions", simulate_decisions(outcomes, ARMS, UniformLogging(), np.random.default_rng(0), policy_id="uniform"))
    return str(path)


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_default_baselines_table(log_path):
    res = run("evaluate", log_path)
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].split() == ["policy", "estimator", "estimate", "ci", "ess", "true"]
    policies = {line.split()[0] for line in lines[1:]}
    assert policies == {"uniform", "fixed:none", "fixed:small", "fixed:big", "oracle"}
    assert len(lines) == 1 + 5 * 3  # default estimators: ips, snips, dr
    assert "evaluating 5 policies x 3 estimators on 150 decisions" in res.stderr


def test_json_has_truth_and_matches_the_outcomes(log_path):
    res = run("evaluate", log_path, "--baseline", "uniform", "--baseline", "fixed:big", "--baseline", "oracle",
              "--estimator", "ips", "--estimator", "dr", "--estimator", "switch-dr:tau=2", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [r["estimator"] for r in doc["rows"][:3]] == ["ips", "dr", "switch-dr"]
    log = open_log(log_path)
    _, r = reward_matrix(log.read("outcomes"), ARMS)
    truth = {row["policy"]: row["true_value"] for row in doc["rows"]}
    assert truth["uniform"] == pytest.approx(r.mean())
    assert truth["fixed:big"] == pytest.approx(r[:, 2].mean())
    assert truth["oracle"] == pytest.approx(r.max(axis=1).mean())
    for row in doc["rows"]:
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"] and row["ess"] > 0


def test_bootstrap_and_report(log_path, tmp_path):
    res = run("evaluate", log_path, "--baseline", "oracle", "--estimator", "dros", "--ci", "bootstrap", "--n-bootstrap", "50",
              "--report", str(tmp_path / "rep"), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ci"] == "bootstrap" and len(doc["rows"]) == 1
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["rows"] == doc["rows"]


def test_trained_run(log_path, tmp_path):
    from bandit.policies.regression import RegressionConfig
    from bandit.runs import train_run

    train_run(log_path, RegressionConfig(), tmp_path / "run", progress=False)
    res = run("evaluate", log_path, "--run", str(tmp_path / "run"), "--baseline", "uniform", "--estimator", "dr", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    rows = {r["policy"]: r for r in doc["rows"]}
    assert len(rows) == 2 and "uniform" in rows
    trained = next(r for name, r in rows.items() if name != "uniform")
    assert trained["true_value"] is not None
    assert trained["true_value"] > rows["uniform"]["true_value"]  # the regression policy learned the domains


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--baseline", "fixed:huge"], r"error: baseline 'fixed:huge': unknown arm 'huge'"),
        (["--estimator", "ipss"], r"error: .*unknown estimator 'ipss'"),
        (["--estimator", "ips:clp=2"], r"error: estimator 'ips' has no setting\(s\) clp"),
        (["--policy-id", "nobody"], r"error: --policy-id nobody: not in the decisions table \(policy_ids: uniform\)"),
        (["--level", "1.5"], r"error: `level` must be in \(0, 1\)"),
        (["--ci", "wald"], r"Invalid value for '--ci'"),
    ],
)
def test_bad_options(log_path, args, pattern):
    res = run("evaluate", log_path, *args)
    assert res.exit_code != 0 and res.stdout == ""
    assert re.search(pattern, res.stderr), res.stderr


def test_help_has_an_example():
    res = run("evaluate", "--help")
    assert res.exit_code == 0 and "Example:" in res.stdout and "--baseline uniform --baseline oracle" in res.stdout
