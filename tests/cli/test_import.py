"""Outside bandit feedback: a CSV and a target-policy table go to an HTML report in two commands, and
the intervals cover a known true value at about the nominal rate over repeats."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from bandit.policy_table import PolicyTableError, load_policy_table
from logging_data import open_log, validate_log
from logging_data.importer import ImportError_, ImportMapping, read_decisions

K = 3
W = np.array([[1.0, -0.5], [-0.8, 0.9], [0.2, 0.1]])  # reward model weights per action
T = np.array([[2.0, -1.0], [-1.5, 1.5], [0.0, 0.0]])  # target policy's scores per action


def _mu(x):
    return 1 / (1 + np.exp(-(x @ W.T)))  # (n, K) expected reward, in (0, 1)


def _target(x):
    s = x @ T.T
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _true_value() -> float:
    x = np.random.default_rng(12345).normal(size=(400_000, 2))
    return float((_target(x) * _mu(x)).sum(axis=1).mean())


TRUE = _true_value()


def _write(tmp_path, n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    logging = np.full((n, K), 1 / K) * 0.5 + _target(-x) * 0.5  # a logging policy unlike the target, full support
    a = np.array([rng.choice(K, p=p) for p in logging])
    r = rng.binomial(1, _mu(x)[np.arange(n), a]).astype(float)
    logged = tmp_path / "logged.csv"
    pd.DataFrame({"id": [f"u{i}" for i in range(n)], "action": a, "reward": r, "pscore": logging[np.arange(n), a],
                  "x0": x[:, 0], "x1": x[:, 1]}).to_csv(logged, index=False)
    pi = _target(x)
    table = tmp_path / "target.csv"
    pd.DataFrame({"query_id": [f"u{i}" for i in range(n)], **{str(k): pi[:, k] for k in range(K)}}).to_csv(table, index=False)
    return logged, table


def test_csv_to_html_report_in_two_commands(tmp_path):
    logged, table = _write(tmp_path, 4000, seed=1)
    log = tmp_path / "log"
    r = CliRunner().invoke(cli, ["import", str(logged), "--out", str(log), "--action", "action", "--reward", "reward",
                                 "--propensity", "pscore", "--context", "x0", "--context", "x1", "--id-col", "id", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["arms"] == ["0", "1", "2"] and summary["context"] == ["x_x0", "x_x1"] and summary["n_rows"] == 4000
    assert validate_log(log).ok
    assert open_log(log).metadata.reward.kind == "custom"
    r = CliRunner().invoke(cli, ["evaluate", str(log), "--policy-table", str(table), "--features", "context", "--estimator", "ips",
                                 "--estimator", "dr", "--report", str(tmp_path / "report"), "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["estimator"]: row for row in json.loads(r.stdout)["rows"] if row["policy"] == "target"}
    for name in ("ips", "dr"):
        assert rows[name]["ci_low"] <= TRUE <= rows[name]["ci_high"], (name, rows[name], TRUE)
    assert rows["dr"]["ci_high"] - rows["dr"]["ci_low"] < rows["ips"]["ci_high"] - rows["ips"]["ci_low"]
    assert (tmp_path / "report" / "report.html").is_file()


def test_intervals_cover_the_true_value_at_about_the_nominal_rate(tmp_path):
    from bandit.report import evaluate_policies
    from estimators import parse_estimator

    repeats, hits = 30, {"ips": 0, "dr": 0}
    for seed in range(repeats):
        logged, table = _write(tmp_path, 1500, seed=100 + seed)
        frame, arms = read_decisions(logged, ImportMapping("action", "reward", "pscore", ("x0", "x1"), query_id="id"))
        _, probs = load_policy_table(table, frame, arms)
        x = frame[["x_x0", "x_x1"]].to_numpy()
        res = evaluate_policies(frame, arms, {"target": probs}, [parse_estimator("ips"), parse_estimator("dr")], features=x, seed=seed)
        for row in res.rows():
            hits[row["estimator"]] += row["ci_low"] <= TRUE <= row["ci_high"]
    # nominal 95%: over 30 repeats a coverage below 80% would be a 4-sigma event
    assert hits["ips"] / repeats >= 0.8 and hits["dr"] / repeats >= 0.8, hits


@pytest.mark.parametrize("content, mapping, pattern", [
    ("a,r,p\n1,1,0.5\n", ImportMapping("action", "r", "p"), r"--action 'action' is not a column; the file has a, r, p"),
    ("a,r,p\n1,1,0.5\n", ImportMapping("a", "r", "p", ("ctx",)), r"--context 'ctx' is not a column"),
    ("a,r,p\n1,x,0.5\n", ImportMapping("a", "r", "p"), r"--reward 'r' must hold finite numbers; 1 row\(s\) do not, first at line 2: 'x'"),
    ("a,r,p\n1,1,0\n", ImportMapping("a", "r", "p"), r"--propensity 'p' must be in \(0, 1\]; 1 row\(s\) are not, first at line 2: 0\.0"),
    ("a,r,p\n1,1,1.5\n", ImportMapping("a", "r", "p"), r"--propensity 'p' must be in \(0, 1\]"),
    ("a,r,p\n,1,0.5\n", ImportMapping("a", "r", "p"), r"--action 'a' is empty in 1 row\(s\), first at line 2"),
    ("a,r,p,i\n1,1,0.5,u\n2,1,0.5,u\n", ImportMapping("a", "r", "p", query_id="i"), r"--id-col 'i' must be unique; 'u' repeats \(line 2"),
    ("a,r,p\n", ImportMapping("a", "r", "p"), r"holds no rows"),
])
def test_import_mapping_mistakes_are_named(tmp_path, content, mapping, pattern):
    f = tmp_path / "f.csv"
    f.write_text(content)
    with pytest.raises((ImportError_, ValueError), match=pattern):
        read_decisions(f, mapping)


def test_policy_table_mistakes_are_named(tmp_path):
    frame = pd.DataFrame({"query_id": ["a", "b"]})
    cases = [
        (pd.DataFrame({"query_id": ["a", "b"], "x": [1, 1]}), r"no column for arm 'p' \(expected 'p' or 'p_p'\)"),
        (pd.DataFrame({"query_id": ["a", "b"], "p": [0.5, 1.0], "q": [0.5, 0.5]}), r"sum to 1; 1 row\(s\) do not, first row 1 \(query_id b\) sums to 1\.5"),
        (pd.DataFrame({"query_id": ["a"], "p": [1.0], "q": [0.0]}), r"no row for 1 logged query_id\(s\) \(first: 'b'\)"),
        (pd.DataFrame({"p": [1.0], "q": [0.0]}), r"1 rows and no query_id column; expected one row per decision \(2\)"),
        (pd.DataFrame({"query_id": ["a", "b"], "p": [-0.5, 1.0], "q": [1.5, 0.0]}), r"row 0 \(query_id a\) has a negative probability"),
    ]
    for table, pattern in cases:
        path = tmp_path / "t.csv"
        table.to_csv(path, index=False)
        with pytest.raises(PolicyTableError, match=pattern):
            load_policy_table(path, frame, ["p", "q"])
    np.save(tmp_path / "obp.npy", np.full((2, 2, 1), 0.5))
    name, probs = load_policy_table(tmp_path / "obp.npy", frame, ["p", "q"])  # OBP's (n, actions, positions=1)
    assert name == "obp" and probs.shape == (2, 2)
    np.save(tmp_path / "bad.npy", np.full((2, 3), 1 / 3))
    with pytest.raises(PolicyTableError, match=r"expected shape \(2, 2\) = \(decisions, arms p, q\); found \(2, 3\)"):
        load_policy_table(tmp_path / "bad.npy", frame, ["p", "q"])
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(PolicyTableError, match="not a plain numeric .npy array"):
        load_policy_table(tmp_path / "obj.npy", frame, ["p", "q"])


def test_obp_names_build_a_batch_or_say_which_name_to_use():
    from estimators import LoggedBatch
    from estimators.batch import BatchError

    n = 4
    dist = np.full((n, 2, 1), 0.5)
    b = LoggedBatch.from_obp(action=np.array([0, 1, 0, 1]), reward=np.ones(n), pscore=np.full(n, 0.5), action_dist=dist,
                             estimated_rewards_by_reg_model=np.zeros((n, 2, 1)), position=np.zeros(n, int))
    assert b.target_probs.shape == (n, 2) and b.reward_hat.shape == (n, 2)
    with pytest.raises(TypeError, match=r"unknown argument\(s\) context; it takes OBP's action, reward, pscore"):
        LoggedBatch.from_obp(action=[0], reward=[1.0], pscore=[1.0], action_dist=[[1.0]], context=[[0.0]])
    with pytest.raises(BatchError, match="has 3 positions"):
        LoggedBatch.from_obp(action=[0], reward=[1.0], pscore=[1.0], action_dist=np.full((1, 2, 3), 0.5))


def test_intervals_of_binary_rewards_stay_in_zero_one_and_a_given_range_is_checked():
    from bandit.report import evaluate_policies
    from estimators import parse_estimator

    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({"query_id": [f"q{i}" for i in range(n)], "prompt": "", "arm": rng.choice(["a", "b"], size=n),
                          "propensity": 0.5, "reward": (rng.random(n) < 0.02).astype(float), "policy_id": "logged"})
    probs = np.tile([1.0, 0.0], (n, 1))
    raw = evaluate_policies(frame, ["a", "b"], {"t": probs}, [parse_estimator("ips")], reward_range=(-10.0, 10.0))
    assert raw.rows()[0]["ci_low"] < 0  # the normal interval of a rare 0/1 reward reaches below 0 ...
    auto = evaluate_policies(frame, ["a", "b"], {"t": probs}, [parse_estimator("ips")])
    assert auto.reward_range == (0.0, 1.0) and auto.rows()[0]["ci_low"] == 0.0  # ... clipped for 0/1 rewards
    assert auto.rows()[0]["ci_high"] == raw.rows()[0]["ci_high"]
    with pytest.raises(ValueError, match=r"reward_range \(0, 0\.5\): \d+ logged reward\(s\) lie outside it"):
        evaluate_policies(frame, ["a", "b"], {"t": probs}, [parse_estimator("ips")], reward_range=(0.0, 0.5))


def test_a_policy_table_keyed_by_context_is_matched_to_every_decision(tmp_path):
    """A policy that depends only on a discrete context (a user segment, or the domain) is one row per context."""
    rng = np.random.default_rng(7)
    n = 6000
    seg = rng.integers(0, 3, n)
    a = rng.integers(0, K, n)  # uniform logging
    means = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.2], [0.3, 0.3, 0.7]])  # expected reward per (segment, action)
    r = rng.binomial(1, means[seg, a]).astype(float)
    logged = tmp_path / "logged.csv"
    pd.DataFrame({"action": a, "reward": r, "pscore": 1 / K, "segment": seg,
                  "domain": np.array(["code", "text", "text"])[seg]}).to_csv(logged, index=False)
    policy = np.array([[0.0, 1.0, 0.0], [0.8, 0.1, 0.1], [0.0, 0.0, 1.0]])
    table = tmp_path / "by_segment.csv"
    pd.DataFrame({"segment": [2, 0, 1], **{str(k): policy[[2, 0, 1], k] for k in range(K)}}).to_csv(table, index=False)
    frame, arms = read_decisions(logged, ImportMapping("action", "reward", "pscore", ("segment",)))
    name, probs = load_policy_table(table, frame, arms)
    assert name == "by_segment"
    np.testing.assert_array_equal(probs, policy[frame["x_segment"].to_numpy(dtype=int)])
    true = float(np.mean([(policy[s] * means[s]).sum() for s in range(3)]))  # segments are equally likely
    log = tmp_path / "log"
    r = CliRunner().invoke(cli, ["import", str(logged), "--out", str(log), "--action", "action", "--reward", "reward",
                                 "--propensity", "pscore", "--context", "segment"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["evaluate", str(log), "--policy-table", str(table), "--estimator", "ips", "--json"])
    assert r.exit_code == 0, r.output
    row = next(row for row in json.loads(r.stdout)["rows"] if row["policy"] == "by_segment")
    assert row["ci_low"] <= true <= row["ci_high"], (row, true)


def test_policy_table_context_key_mistakes_are_named(tmp_path):
    frame = pd.DataFrame({"query_id": ["a", "b", "c"], "domain": ["code", "text", "code"], "x_segment": [0, 1, 2]})
    cases = [
        (pd.DataFrame({"tier": [1], "p": [1.0], "q": [0.0]}),
         r"column 'tier' is neither an arm nor query_id.*no column 'tier' or 'x_tier'.*context columns: domain, x_segment"),
        (pd.DataFrame({"segment": [0, 0, 1, 2], "p": [1.0, 0.5, 0.5, 0.5], "q": [0.0, 0.5, 0.5, 0.5]}),
         r"context key segment=0 repeats \(row 1\); one row per context"),
        (pd.DataFrame({"segment": [0, 1], "p": [1.0, 0.5], "q": [0.0, 0.5]}),
         r"no row for the context of 1 decision\(s\) \(first: row 2, segment=2\)"),
        (pd.DataFrame({"domain": ["code"], "p": [1.0], "q": [0.0]}), r"no row for the context of 1 decision\(s\) \(first: row 1, domain='text'\)"),
    ]
    for table, pattern in cases:
        path = tmp_path / "t.csv"
        table.to_csv(path, index=False)
        with pytest.raises(PolicyTableError, match=pattern):
            load_policy_table(path, frame, ["p", "q"])
    path = tmp_path / "by_domain.csv"
    pd.DataFrame({"domain": ["text", "code"], "p": [0.25, 1.0], "q": [0.75, 0.0]}).to_csv(path, index=False)
    _, probs = load_policy_table(path, frame, ["p", "q"])
    np.testing.assert_array_equal(probs, [[1.0, 0.0], [0.25, 0.75], [1.0, 0.0]])
