"""bandit-log simulate: appends a simulated logging policy's decisions to the same log."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from logging_data import Arm, LogMetadata, create_log, open_log, validate_log
from logging_data.simulate import reward_matrix, synthetic_outcomes

ARMS = ("none", "small", "big")


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "log"
    log = create_log(path, LogMetadata(arms=tuple(Arm(a) for a in ARMS)))
    log.append("outcomes", synthetic_outcomes(40, ARMS, seed=0)[0])
    return str(path)


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_uniform_then_epsilon_greedy_then_softmax(log_path):
    res = run("simulate", log_path, "--seed", "1")
    assert res.exit_code == 0, res.output
    assert "appended 40 decisions by sim-uniform-seed1" in res.stdout
    res = run("simulate", log_path, "--policy", "epsilon-greedy", "--arm", "big", "--epsilon", "0.2", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)  # exactly one JSON document on stdout
    assert doc["policy_id"] == "sim-epsilon-greedy-big-eps0.2-seed0" and doc["n_decisions"] == 40
    assert sum(doc["arm_counts"].values()) == 40 and doc["min_propensity"] == pytest.approx(0.2 / 3)
    res = run("simulate", log_path, "--policy", "softmax", "--temperature", "0.05", "--policy-id", "soft")
    assert res.exit_code == 0, res.output
    log = open_log(log_path)
    decisions = log.read("decisions")
    assert len(decisions) == 120 and set(decisions["policy_id"]) == {"sim-uniform-seed1", "sim-epsilon-greedy-big-eps0.2-seed0", "soft"}
    assert validate_log(log_path).ok
    soft = decisions[decisions["policy_id"] == "soft"]
    qids, r = reward_matrix(log.read("outcomes"), ARMS)
    z = np.exp((r - r.max(axis=1, keepdims=True)) / 0.05)
    p = z / z.sum(axis=1, keepdims=True)
    idx = [ARMS.index(a) for a in soft["arm"]]
    np.testing.assert_allclose(soft["propensity"].to_numpy(), p[np.arange(40), idx], rtol=1e-12)


def test_same_policy_id_twice_is_refused_and_nothing_is_written(log_path):
    assert run("simulate", log_path).exit_code == 0
    parts = open_log(log_path).parts("decisions")
    res = run("simulate", log_path)
    assert res.exit_code == 1
    assert res.stderr.startswith(f"error: {log_path}: policy_id 'sim-uniform-seed0' already has") and "choose another --policy-id" in res.stderr
    assert open_log(log_path).parts("decisions") == parts


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--policy", "epsilon-greedy"], r"--policy epsilon-greedy needs --arm NAME"),
        (["--policy", "epsilon-greedy", "--arm", "huge"], r"error: --arm: unknown arm 'huge'; the log's arms are none, small, big"),
        (["--policy", "epsilon-greedy", "--arm", "big", "--epsilon", "0"], r"error: EpsilonGreedyLogging: `epsilon` must be in \(0, 1\]"),
        (["--policy", "softmax", "--temperature", "-1"], r"error: SoftmaxLogging: `temperature` must be a finite number > 0"),
        (["--policy", "greedy"], r"Invalid value for '--policy'"),
    ],
)
def test_bad_options(log_path, args, pattern):
    res = run("simulate", log_path, *args)
    assert res.exit_code != 0
    assert re.search(pattern, res.stderr), res.stderr
    assert not open_log(log_path).has("decisions")


def test_help_has_an_example():
    res = run("simulate", "--help")
    assert res.exit_code == 0 and "Example:" in res.stdout and "bandit-log simulate LOG" in res.stdout
