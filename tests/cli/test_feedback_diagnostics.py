"""Feedback that contradicts itself is named at import and at evaluate (issue 30, item 3).

Bad inputs are refused with a message naming the flag, the column, the row and the value, and
leave every file as it was (checksums before and after) with no log written; propensities that
disagree with how often each action is logged give one warning line with the numbers; valid
feedback (a correct uniform logger, a deterministic logger with one action per context) gives
none.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from estimators import normaliser_gap
from logging_data import open_log
from logging_data.propensities import check_propensities

K = 3


def _uniform(n: int = 60, seed: int = 0, **extra) -> pd.DataFrame:
    """A correct uniform logger over K arms: actions drawn with probability 1/K, propensity 1/K."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.integers(0, K, n), "r": rng.random(n).round(3), "p": 1 / K, **extra})


def _cycled(n: int, p: float, **extra) -> pd.DataFrame:
    """Every arm logged exactly n / K times, each row recording propensity ``p``."""
    return pd.DataFrame({"a": np.arange(n) % K, "r": (np.arange(n) % 2).astype(float), "p": p, **extra})


def _import(*args) -> object:
    return CliRunner().invoke(cli, ["import", *map(str, args)])


def _warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


# -- import: bad input refused, nothing written -----------------------------------------------------
# (id, rows of the file, extra arguments, exit status, pattern of the message)
N30 = _cycled(30, 1 / K)
REFUSED = [
    ("position-fraction", N30.assign(pos=[0, 1.7] + [0] * 28), ["--position", "pos"], 1,
     r"f\.csv: --position 'pos' must hold non-negative integers \(within int64\); 1 row\(s\) are not, first at line 3: '1\.7'"),
    ("position-beyond-int64", N30.assign(pos=[str(2**70)] + ["0"] * 29), ["--position", "pos"], 1,
     r"--position 'pos' must hold non-negative integers \(within int64\); 1 row\(s\) are not, first at line 2: '1180591620717411303424'"),
    ("position-2**63", N30.assign(pos=["1", str(2**63)] + ["0"] * 28), ["--position", "pos"], 1,
     r"--position 'pos' must hold non-negative integers .* first at line 3: '9223372036854775808'"),
    ("position-negative", N30.assign(pos=[0, 0, -1] + [0] * 27), ["--position", "pos"], 1,
     r"--position 'pos' must hold non-negative integers .* first at line 4: '-1'"),
    ("position-empty", N30.assign(pos=[0, 0, 0, None] + [0] * 26), ["--position", "pos"], 1,
     r"--position 'pos' must hold non-negative integers .* first at line 5: ''"),
    ("context-position-clash", N30.assign(position=0, pos=0), ["--context", "position", "--position", "pos"], 1,
     r"f\.csv: --context 'position' and --position 'pos' would both be stored as x_position"),
    ("context-named-position", N30.assign(position=0), ["--context", "position"], 1,
     r"--context 'position' would be stored as x_position, the column of --position"),
    ("id-empty", N30.assign(id=["u0", "u1", None] + [f"u{i}" for i in range(3, 30)]), ["--id-col", "id"], 1,
     r"f\.csv: --id-col 'id' is empty in 1 row\(s\), first at line 4; every row needs an id"),
    ("policy-id-empty", N30, ["--policy-id", ""], 2, r"Invalid value for '--policy-id': must be a non-empty name .*got ''"),
    ("policy-id-blank", N30, ["--policy-id", "  "], 2, r"Invalid value for '--policy-id': must be a non-empty name .*got '  '"),
    ("reward-1e300", N30.assign(r=[0.0, 1e300] + [0.0] * 28), [], 1,
     r"f\.csv: --reward 'r' must be at most 1e\+12 in magnitude; 1 row\(s\) are not, first at line 3: 1e\+300"),
    ("reward-huge-negative", N30.assign(r=[0.0] * 29 + [-1e13]), [], 1,
     r"--reward 'r' must be at most 1e\+12 in magnitude; 1 row\(s\) are not, first at line 31: -1"),
    ("reward-infinite", N30.assign(r=[0.0, float("inf")] + [0.0] * 28), [], 1,
     r"--reward 'r' must hold finite numbers; 1 row\(s\) do not, first at line 3: 'inf'"),
    ("deterministic-three-actions", _cycled(30, 1.0), [], 1,
     r"f\.csv: --propensity 'p' contradicts the logged actions: arms '0', '1', '2' are logged with propensity 1 "
     r"\(a deterministic choice\) with no context columns \(every row one context\), yet 3 arms are logged there: "
     r"'0' x10, '1' x10, '2' x10 of 30 rows \(first at line 2 and line 3\).*name them with --context"),
    ("deterministic-two-actions-in-a-segment", pd.DataFrame({"a": [0, 0, 1, 1, 1, 0], "r": 1.0, "p": 1.0, "s": [0, 0, 1, 1, 1, 1]}),
     ["--context", "s"], 1,
     r"arms '1', '0' are logged with propensity 1 \(a deterministic choice\) in context s=1, yet 2 arms are logged there: "
     r"'1' x3, '0' x1 of 4 rows \(first at line 4 and line 7\).*depends on more than s, name those columns with --context too"),
    ("deterministic-beside-a-stochastic-arm", pd.DataFrame({"a": [0, 0, 0, 1], "r": 1.0, "p": [1.0, 1.0, 1.0, 0.25]}), [], 1,
     r"arm '0' is logged with propensity 1 \(a deterministic choice\) .* '0' x3, '1' x1 of 4 rows \(first at line 2 and line 5\)"),
]


@pytest.mark.parametrize("rows, extra, status, pattern", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_import_refuses_contradicting_feedback(tmp_path, rows, extra, status, pattern, checksum):
    f = tmp_path / "f.csv"
    rows.to_csv(f, index=False)
    before = checksum(f)
    r = _import(f, "--out", tmp_path / "log", "--action", "a", "--reward", "r", "--propensity", "p", *extra)
    assert r.exit_code == status, r.output
    assert re.search(pattern, r.stderr, re.S), r.stderr
    assert "Traceback" not in r.output and (status == 2 or len(r.stderr.strip().splitlines()) == 1), r.stderr
    assert checksum(f) == before and not (tmp_path / "log").exists()


# -- import: disagreeing propensities warned, one line each with the numbers --------------------------
WARNED = [
    # every row says 0.9 while each of three arms is logged a third of the time
    ("propensity-0.9-everywhere", _cycled(30, 0.9), [],
     [rf"arm '{a}' is logged in 10 of 30 rows \(33\.3%\) with mean propensity 0\.9 \(about 27 rows expected; p = 2e-13\) "
      r"\(no --context given: every row one context\)" for a in "012"]),
    # right in segment 0, a third of the truth in segment 1
    ("propensity-wrong-in-one-segment", pd.concat([_cycled(30, 1 / K, s=0), _cycled(60, 0.1, s=1)], ignore_index=True),
     ["--context", "s"],
     [rf"arm '{a}' is logged in 20 of 60 rows in context s=1 \(33\.3%\) with mean propensity 0\.1 \(about 6 rows expected; "
      r"p = \de-\d+\) \(contexts: s\)" for a in "012"]),
]


@pytest.mark.parametrize("rows, extra, lines", [c[1:] for c in WARNED], ids=[c[0] for c in WARNED])
def test_import_warns_when_propensities_disagree_with_the_logged_actions(tmp_path, rows, extra, lines, checksum):
    f = tmp_path / "f.csv"
    rows.to_csv(f, index=False)
    before = checksum(f)
    r = _import(f, "--out", tmp_path / "log", "--action", "a", "--reward", "r", "--propensity", "p", "--json", *extra)
    assert r.exit_code == 0, r.output
    warned = _warning_lines(r.stderr)
    assert len(warned) == len(lines) == len(r.stderr.strip().splitlines()), r.stderr  # one line each, no source lines
    for line, pattern in zip(warned, lines):
        assert re.search(r"^warning: .*f\.csv: --propensity 'p' disagrees with how often the actions are logged: " + pattern + "$",
                         line), line
    assert [f"warning: {w}" for w in json.loads(r.stdout)["warnings"]] == warned
    assert checksum(f) == before and open_log(tmp_path / "log").n_rows("decisions") == len(rows)  # a warning, not a refusal


# -- import: valid feedback, no word --------------------------------------------------------------------
def _per_segment_logger(n: int = 90, seed: int = 3) -> pd.DataFrame:
    """A stochastic logger whose probabilities depend on a segment, with the right propensities."""
    rng = np.random.default_rng(seed)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]])
    s = rng.integers(0, 3, n)
    a = np.array([rng.choice(K, p=probs[g]) for g in s])
    return pd.DataFrame({"a": a, "r": rng.random(n).round(3), "p": probs[s, a], "s": s})


ACCEPTED = [
    ("uniform-logger", _uniform(60), []),
    ("uniform-logger-large", _uniform(3000, seed=1), []),
    ("deterministic-one-action-per-segment", pd.DataFrame({"a": [0, 0, 1, 1, 2], "r": 1.0, "p": 1.0, "s": [5, 5, 7, 7, 9]}),
     ["--context", "s"]),
    ("deterministic-one-action-per-position", pd.DataFrame({"a": [0, 1, 0, 1], "r": 1.0, "p": 1.0, "pos": [0, 1, 0, 1]}),
     ["--position", "pos"]),
    ("deterministic-one-action-per-prompt", pd.DataFrame({"a": [0, 1, 2], "r": 1.0, "p": 1.0, "q": ["x", "y", "z"]}),
     ["--prompt-col", "q"]),
    ("stochastic-per-segment", _per_segment_logger(), ["--context", "s"]),
    ("propensities-rounded-to-two-decimals", _cycled(300, 0.33), []),
    ("position-integers-to-int64-max", _uniform(3, pos=["0", "7", str(2**63 - 1)]), ["--position", "pos"]),
    ("reward-at-the-bound", _uniform(3).assign(r=[1e12, -1e12, 0.0]), []),
]


@pytest.mark.parametrize("rows, extra", [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_import_accepts_consistent_feedback_without_a_word(tmp_path, rows, extra):
    f = tmp_path / "f.csv"
    rows.to_csv(f, index=False)
    r = _import(f, "--out", tmp_path / "log", "--action", "a", "--reward", "r", "--propensity", "p", "--json", *extra)
    assert r.exit_code == 0, r.output
    assert _warning_lines(r.stderr) == [] and json.loads(r.stdout)["warnings"] == []
    decisions = open_log(tmp_path / "log").read("decisions")
    assert len(decisions) == len(rows)
    if "--position" in extra:
        assert str(decisions["x_position"].dtype).lower() == "int64"
        assert decisions["x_position"].tolist() == [int(v) for v in rows["pos"]]  # exact, even at 2**63 - 1


# -- evaluate ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """Imported logs: 'wrong' (propensity 0.9 on every row, three arms a third each) and 'right' (uniform)."""
    root = tmp_path_factory.mktemp("feedback")
    out = {}
    for name, rows in (("wrong", _cycled(30, 0.9, s=np.arange(30) // 15)), ("right", _uniform(60, seed=5, s=np.arange(60) % 2))):
        rows.to_csv(root / f"{name}.csv", index=False)
        r = _import(root / f"{name}.csv", "--out", root / name, "--action", "a", "--reward", "r", "--propensity", "p",
                    "--context", "s")
        assert r.exit_code == 0, r.output
        out[name] = root / name
    out["root"] = root
    return out


EVALUATE_WARNINGS = [
    r"the logged propensities disagree with how often each arm is logged: arm '\d' is logged in 5 of 15 rows in context "
    r"x_s=\d \(33\.3%\) with mean propensity 0\.9 \(about 13\.5 rows expected; p = \de-\d+\); 6 \(context, arm\) pairs "
    r"disagree; weighting estimators \(IPS, SNIPS, DR\) rest on these propensities",
    r"IPS and SNIPS disagree by up to a factor 2\.7: the mean importance weight \(SNIPS's normaliser, 1 in expectation\) is "
    r"uniform 0\.37 \+- 0, fixed:0 0\.37 \+- 0\.\d+; the propensities may be wrong, or the target takes arms the logger "
    r"seldom or never takes in some contexts",
]


def test_evaluate_names_disagreeing_propensities_and_the_ips_snips_gap_in_one_line_each(logs, checksum):
    before = checksum(logs["wrong"])
    r = CliRunner().invoke(cli, ["evaluate", str(logs["wrong"]), "--baseline", "uniform", "--baseline", "fixed:0",
                                 "--estimator", "ips", "--estimator", "snips", "--json"])
    assert r.exit_code == 0, r.output
    # the command prints its warnings as lines (library callers get Python warnings: tests/cli/test_quiet_output.py)
    assert len(_warning_lines(r.stderr)) == 2, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["warnings"]) == 2, doc["warnings"]
    for message, pattern in zip(doc["warnings"], EVALUATE_WARNINGS):
        assert re.fullmatch(pattern, message), message
    rows = {(row["policy"], row["estimator"]): row["estimate"] for row in doc["rows"]}
    assert rows["uniform", "snips"] / rows["uniform", "ips"] == pytest.approx(1 / 0.37, rel=0.01)  # the gap the line names
    assert checksum(logs["wrong"]) == before


def test_evaluate_prints_each_warning_as_one_line(logs):
    """As a user sees it (pytest would catch Python warnings in-process): ``warning: ...``, one line each."""
    r = subprocess.run([sys.executable, "-m", "bandit.cli.main", "evaluate", str(logs["wrong"]), "--baseline", "uniform",
                        "--baseline", "fixed:0", "--estimator", "ips", "--estimator", "snips"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0] == "evaluating 2 policies x 2 estimators on 30 decisions" and len(lines) == 3, r.stderr
    for line, pattern in zip(lines[1:], EVALUATE_WARNINGS):
        assert re.fullmatch("warning: " + pattern, line), line


def test_evaluate_of_a_correct_uniform_logger_says_nothing(logs):
    r = CliRunner().invoke(cli, ["evaluate", str(logs["right"]), "--baseline", "uniform", "--baseline", "fixed:1",
                                 "--estimator", "ips", "--estimator", "snips", "--json"])
    assert r.exit_code == 0, r.output
    assert _warning_lines(r.stderr) == [] and json.loads(r.stdout)["warnings"] == []


# (id, key column of the table, exit status, pattern); every table maps its key to arm probabilities
TABLE_KEYS = [
    (key, key, 1, rf"t\.csv: column '{key}' is the decisions' {key} column \(what was logged or observed\), not a context; a "
                  r"policy table's key columns must be context columns \(context columns: prompt, domain, split, x_s\)")
    for key in ("arm", "reward", "propensity", "policy_id")
] + [("not-a-column", "segment", 1, r"column 'segment' is neither an arm nor query_id.*context columns: prompt, domain, split, x_s")]


@pytest.mark.parametrize("key, status, pattern", [c[1:] for c in TABLE_KEYS], ids=[c[0] for c in TABLE_KEYS])
def test_policy_table_keys_must_be_context_columns(logs, tmp_path, key, status, pattern, checksum):
    values = open_log(logs["right"]).read("decisions")[key if key != "segment" else "x_s"].drop_duplicates().tolist()
    table = tmp_path / "t.csv"
    pd.DataFrame({key: values, "0": 1.0, "1": 0.0, "2": 0.0}).to_csv(table, index=False)
    before = {p: checksum(p) for p in (logs["right"], table)}
    r = CliRunner().invoke(cli, ["evaluate", str(logs["right"]), "--policy-table", str(table), "--estimator", "ips"])
    assert r.exit_code == status, r.output
    assert re.search(pattern, r.stderr), r.stderr
    assert {p: checksum(p) for p in before} == before


def test_policy_table_keyed_by_a_context_column_is_scored(logs, tmp_path):
    """The control: the same table keyed by the imported context column s is a context policy."""
    table = tmp_path / "by_s.csv"
    pd.DataFrame({"s": [0, 1], "0": [1.0, 0.0], "1": [0.0, 1.0], "2": [0.0, 0.0]}).to_csv(table, index=False)
    r = CliRunner().invoke(cli, ["evaluate", str(logs["right"]), "--policy-table", str(table), "--estimator", "ips", "--json"])
    assert r.exit_code == 0, r.output
    decisions = open_log(logs["right"]).read("decisions")
    chosen = decisions["arm"].astype(int).to_numpy() == decisions["x_s"].to_numpy()
    expected = float((chosen * decisions["reward"].to_numpy() * K).mean())
    assert json.loads(r.stdout)["rows"][0]["estimate"] == pytest.approx(expected)


@pytest.mark.parametrize("value", ["", " "])
def test_evaluate_refuses_an_empty_policy_id(logs, value, checksum):
    before = checksum(logs["right"])
    r = CliRunner().invoke(cli, ["evaluate", str(logs["right"]), "--policy-id", value])
    assert r.exit_code == 2 and re.search(r"Invalid value for '--policy-id': must be a non-empty policy_id; got", r.stderr), r.output
    assert checksum(logs["right"]) == before


# -- the statistics underneath ----------------------------------------------------------------------
def test_the_binomial_p_value_is_the_exact_zero_truncated_one():
    binom = pytest.importorskip("scipy.stats").binom
    for n, k, p in [(30, 10, 0.9), (30, 5, 1 / 3), (200, 50, 0.2), (50, 1, 0.5), (40, 33, 0.95)]:
        arms = np.r_[np.zeros(k, int), np.ones(n - k, int)]
        props = np.where(arms == 0, p, 1 - p)
        ours = {m.arm: m.p_value for m in check_propensities(arms, props, alpha=1.0, tolerance=0.0).mismatches}
        den = binom.sf(0, n, p)
        want = min(1.0, 2 * min((binom.cdf(k, n, p) - binom.pmf(0, n, p)) / den, binom.sf(k - 1, n, p) / den))
        assert ours.get("0", 1.0) == pytest.approx(want, rel=1e-9, abs=1e-300), (n, k, p)


def test_loggers_that_depend_on_hidden_context_are_not_accused():
    """Propensities that vary inside one context (a logger reading something the log leaves out) are
    tested only for an excess of 1/propensity, which no logger produces: a sharp softmax over
    hidden scores passes, the same log with one arm's propensities divided by 4 does not."""
    rng = np.random.default_rng(11)
    n = 2000
    scores = rng.normal(size=(n, K)) / 0.2
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    a = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    p = probs[np.arange(n), a]
    short = [float((1 / p[a == arm]).sum() / n) for arm in range(K)]
    assert min(short) < 0.7 and check_propensities(a, p).ok  # 1/propensity sums 30% short: rare tiny propensities missing
    shrunk = np.where(a == 0, p / 4, p)
    assert [m.arm for m in check_propensities(a, shrunk).mismatches] == ["0"]


@pytest.mark.parametrize("weights, gap", [
    (np.ones(50), None),  # the target is the logger
    (np.r_[np.zeros(199), 1000.0], None),  # one huge weight: far from 1, but within its standard error
    (np.zeros(10), None),  # no weight at all: the support warning speaks
    (np.full(30, 1 / 2.7), (1 / 2.7, 0.0)),  # the 0.9-everywhere log under a uniform target
    (np.r_[np.full(100, 1.05), np.full(100, 0.95)], None),  # 1 on average
    (np.full(40, 1.08), None),  # 8%: within the tolerance
])
def test_the_snips_normaliser_gap(weights, gap):
    got = normaliser_gap(weights)
    assert got == (pytest.approx(gap) if gap is not None else None)
