"""Quiet, truthful output (issue 30, item 4).

What a user sees on stderr when it is a pipe: warnings one line each (``warning: ...``), repeats
folded with a count, no Python source lines, no third-party banner, no progress bar. What the
report of ``bandit-log evaluate`` says: whether and how the intervals were clipped (with the
unclipped ends), which features the reward model read (and that they were standardized), which
policy file was scored, and a true-value legend only where there are true values. The CLI and
Python's ``estimate()`` give the same intervals; ``--context`` takes a glob; ``--features``
defaults to the imported context.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from logging_data import open_log
from logging_data.console import flush_warnings, one_line_warnings, warning_line

ROOT = Path(__file__).resolve().parents[2]
K = 3
N_CONTEXT = 21
#: what Python's own warning format adds: "path.py:12: SomeWarning: ..." and the source line under it
SOURCE_LINE = re.compile(r"\.py:\d+:|warnings\.warn\(|^\s{2}\S")
#: a progress bar drawn on a pipe: carriage returns, "|███|" bars, "12/272 [00:01<" counters
PROGRESS_BAR = re.compile(r"\r|\d+%\||\d+/\d+ \[\d")


def _bandit_log(*args: object, timeout: int = 300) -> subprocess.CompletedProcess:
    """``bandit-log ARGS`` as a user runs it: a new process, stderr a pipe."""
    return subprocess.run([sys.executable, "-m", "bandit.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _assert_quiet(stderr: str) -> list[str]:
    """No source line, no banner, no progress bar; every warning one line and none repeated. The warning lines."""
    assert not PROGRESS_BAR.search(stderr), stderr
    assert "Gym has been unmaintained" not in stderr and "gymnasium" not in stderr.lower(), stderr
    lines = stderr.splitlines()
    for line in lines:
        assert not SOURCE_LINE.search(line), line
    warned = [line for line in lines if line.startswith("warning:")]
    assert len(warned) == len(set(warned)), warned
    return warned


# -- the printer ----------------------------------------------------------------------------------
PRINTER = """
import warnings
from logging_data.console import one_line_warnings
with one_line_warnings():
    for _ in range(3):
        warnings.warn_explicit("the same thing", UserWarning, "somewhere.py", 7)
    warnings.warn("another thing\\non two lines", RuntimeWarning)
    warnings.warn("the same thing", DeprecationWarning)  # same text, other category: its own line
"""


def test_warnings_print_one_line_each_with_repeats_folded_and_no_source_lines():
    r = subprocess.run([sys.executable, "-W", "always", "-c", PRINTER], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["warning: the same thing (3 times)", "warning: another thing on two lines",
                                     "warning: the same thing"], r.stderr


def test_flush_prints_what_was_collected_so_far_and_blocks_nest():
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with one_line_warnings(out):
            warnings.warn("step one", UserWarning)
            warnings.warn("step one", UserWarning)
            flush_warnings()
            assert out.getvalue() == "warning: step one (2 times)\n"
            inner = io.StringIO()
            with one_line_warnings(inner):
                warnings.warn("inner", UserWarning)
            assert inner.getvalue() == "warning: inner\n"
            warnings.warn("step two", UserWarning)
        assert out.getvalue() == "warning: step one (2 times)\nwarning: step two\n"
    assert warning_line("a\n  b", 1) == "warning: a b"


def test_gym_banner_is_dropped_where_d3rlpy_would_import_it():
    """``_d3rlpy()`` imports Gym through ``_quiet_gym`` first (the whole d3rlpy import, torch included,
    is left to the quickstart's test in tests/examples/test_quickstart_quiet.py)."""
    pytest.importorskip("gym")
    code = "from bandit.policies.offline_rl import _quiet_gym; import sys; _quiet_gym(); print('gym' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr
    assert "Gym" not in r.stderr and "gymnasium" not in r.stderr, r.stderr
    loud = subprocess.run([sys.executable, "-c", "import gym"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "Gym has been unmaintained" in loud.stderr or not loud.stderr  # the control: this gym prints a banner (or none)


def test_transformers_bars_are_off_when_stderr_is_not_a_terminal(capsys):
    """The GGUF conversion's own tqdm bar and transformers' switch are off inside ``quiet_progress``
    (pytest's captured stderr is not a terminal); the GGUF reader's bar is restored after."""
    pytest.importorskip("transformers")
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    from decoding.quiet import quiet_progress

    original = gguf_utils.tqdm
    with quiet_progress():
        assert not hf_logging.is_progress_bar_enabled()
        bar = gguf_utils.tqdm(range(3), file=sys.stderr)
        assert bar.disable
        list(bar)
    assert gguf_utils.tqdm is original
    assert "%|" not in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.benchmark  # converts the real GGUF (43 s): a benchmark command (BENCHMARKS.md)
def test_packaged_gguf_conversion_draws_no_bar_on_a_pipe(tmp_path):
    """The real conversion of the packaged SmolLM2-135M (a minute or more), into an empty cache."""
    pytest.importorskip("transformers")
    from decoding.packaged import PackagedModelNotFound, packaged_model_path

    try:
        packaged_model_path("smollm2-135m")
    except PackagedModelNotFound as exc:
        pytest.skip(str(exc))
    code = "from decoding.packaged import packaged_hf_dir; print(packaged_hf_dir('smollm2-135m'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=ROOT,
                       env={**__import__("os").environ, "DRAFTPICK_CACHE": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert (Path(r.stdout.strip()) / "config.json").is_file()
    assert not PROGRESS_BAR.search(r.stderr) and "Converting" not in r.stderr, r.stderr[:500]


# -- an Open Bandit style round trip -------------------------------------------------------------------
def _obp_files(root: Path, n: int = 300, seed: int = 0, rate: float = 0.02) -> tuple[Path, Path]:
    """A uniform logger over K actions with rare clicks and 21 ``user_feature_*`` context columns
    (the click rate grows with the first), and a target table that always takes action 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_CONTEXT))
    a = rng.integers(0, K, n)
    click = (rng.random(n) < rate * (1 + (x[:, 0] > 0))).astype(float)
    logged = root / "logged.csv"
    pd.DataFrame({"action": a, "click": click, "pscore": 1 / K, **{f"user_feature_{i}": x[:, i] for i in range(N_CONTEXT)},
                  "item_id": rng.integers(0, 5, n)}).to_csv(logged, index=False)
    target = root / "target.csv"
    pd.DataFrame({str(k): np.full(n, float(k == 0)) for k in range(K)}).to_csv(target, index=False)
    return logged, target


@pytest.fixture(scope="module")
def obp(tmp_path_factory):
    """The files and the log imported from them with ``--context 'user_feature_*'`` (a subprocess)."""
    root = tmp_path_factory.mktemp("obp")
    logged, target = _obp_files(root)
    r = _bandit_log("import", logged, "--out", root / "log", "--action", "action", "--reward", "click",
                    "--propensity", "pscore", "--context", "user_feature_*")
    assert r.returncode == 0, r.stderr
    return {"root": root, "logged": logged, "target": target, "log": root / "log", "import_stderr": r.stderr}


def test_context_glob_takes_every_matching_column_in_order(obp):
    _assert_quiet(obp["import_stderr"])
    log = open_log(obp["log"])
    expected = [f"x_user_feature_{i}" for i in range(N_CONTEXT)]
    assert [c for c in log.read("decisions").columns if c.startswith("x_")] == expected  # item_id not taken
    mapping = log.metadata.extra["import"]["mapping"]
    assert mapping["context"] == [c[2:] for c in expected] and mapping["context_patterns"] == ["user_feature_*"]
    from logging_data.importer import imported_context

    assert imported_context(log.metadata) == expected


@pytest.mark.parametrize("pattern, message", [
    ("nothing_*", r"--context 'nothing_\*' matches no column; the file has action, click, pscore, user_feature_0"),
    ("pscore*", r"--context 'pscore\*' matches no column"),  # the propensity column is not a context
])
def test_a_context_glob_matching_nothing_is_refused(obp, tmp_path, pattern, message):
    r = CliRunner().invoke(cli, ["import", str(obp["logged"]), "--out", str(tmp_path / "log"), "--action", "action",
                                 "--reward", "click", "--propensity", "pscore", "--context", pattern])
    assert r.exit_code == 1 and re.search(message, r.stderr), r.stderr
    assert not (tmp_path / "log").exists()


@pytest.fixture(scope="module")
def evaluated(obp):
    """``bandit-log evaluate LOG --policy-table target.csv --estimator ips --estimator dr --report`` (a subprocess):
    no --features, so the reward model reads the imported context."""
    report = obp["root"] / "report"
    r = _bandit_log("evaluate", obp["log"], "--policy-table", obp["target"], "--estimator", "ips", "--estimator", "dr",
                    "--report", report, "--json")
    assert r.returncode == 0, r.stderr
    return {"stderr": r.stderr, "doc": json.loads(r.stdout), "report": json.loads((report / "report.json").read_text()),
            "html": (report / "report.html").read_text()}


def test_evaluate_says_which_features_and_standardization_and_is_quiet(evaluated):
    _assert_quiet(evaluated["stderr"])
    line = next(x for x in evaluated["stderr"].splitlines() if x.startswith("reward model features:"))
    assert re.fullmatch(r"reward model features: 21 context column\(s\) x_user_feature_0, x_user_feature_1, x_user_feature_2, "
                        r"x_user_feature_3 and 17 more, each standardized \(mean 0, standard deviation 1 over these 300 "
                        r"decisions\) before fitting", line), line
    features = evaluated["report"]["features"]
    assert all(f"x_user_feature_{i}," in features or f"x_user_feature_{i} " in features for i in range(N_CONTEXT)), features
    assert "standardized" in features and "standardized" in evaluated["html"]
    assert "x_user_feature_20" in evaluated["html"]


def test_report_says_the_intervals_were_clipped_with_the_unclipped_ends(evaluated):
    rep = evaluated["report"]
    assert rep["reward_range"] == [0.0, 1.0] and rep["clip_rule"] == "auto: every logged reward is 0 or 1"
    ips = next(r for r in rep["rows"] if r["estimator"] == "ips")
    assert ips["clipped"] and ips["ci_low"] == 0.0 and ips["ci_low_unclipped"] < 0  # rare clicks: the normal interval dips below 0
    assert rep["n_clipped"] >= 1 and "clipped to the reward range [0, 1]" in evaluated["html"]
    assert f"[{ips['ci_low_unclipped']:.4g}," in evaluated["html"]  # the unclipped interval, in its own column
    assert any(line.startswith("note: intervals clipped to the reward range [0, 1]") for line in evaluated["stderr"].splitlines())


def test_report_names_the_policy_file_and_no_true_value_that_is_absent(evaluated, obp):
    from bandit.report import EvaluationResult, estimates_axis_label

    assert evaluated["report"]["sources"] == {"target": f"policy table {obp['target']}"}
    assert f"policy table {obp['target']}" in evaluated["html"]
    assert "true_value" not in evaluated["html"] and "covers_truth" not in evaluated["html"]
    assert "no true values" in evaluated["html"]
    result = EvaluationResult((), ("0",), 1, (), "normal", 0.95, None, ())
    assert "true value" not in estimates_axis_label(result)


def test_the_legend_keeps_the_true_value_where_there_is_one():
    import estimators as E
    from bandit.report import baseline_probs, estimates_axis_label, evaluate_policies, render_html
    from logging_data.simulate import UniformLogging, simulate_decisions, synthetic_outcomes

    arms = ("a", "b")
    outcomes, _ = synthetic_outcomes(60, arms, noise=0.05, seed=1)
    decisions = simulate_decisions(outcomes, arms, UniformLogging(), np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate_policies(decisions, arms, {"uniform": baseline_probs("uniform", decisions, arms)}, [E.IPS()], outcomes=outcomes)
    assert res.has_truth and "open diamond = true value" in estimates_axis_label(res)
    assert "true_value" in render_html(res)


def test_cli_and_python_estimate_give_the_same_intervals(obp, evaluated):
    import estimators as E
    from bandit.policy_table import load_policy_table
    from bandit.report import decision_actions

    decisions = open_log(obp["log"]).read("decisions")
    arms = open_log(obp["log"]).metadata.arm_names
    _, probs = load_policy_table(obp["target"], decisions, arms)
    batch = E.LoggedBatch(decision_actions(decisions, arms), decisions["reward"].to_numpy(float),
                          decisions["propensity"].to_numpy(float), probs)
    cli_ips = next(r for r in evaluated["doc"]["rows"] if r["estimator"] == "ips")
    py = E.IPS().estimate(batch, warn=False)  # the same default: auto
    assert (py.ci_low, py.ci_high, py.value) == (cli_ips["ci_low"], cli_ips["ci_high"], cli_ips["estimate"])
    assert py.clipped and py.reward_range == (0.0, 1.0) and py.ci_low_unclipped == cli_ips["ci_low_unclipped"]
    r = CliRunner().invoke(cli, ["evaluate", str(obp["log"]), "--policy-table", str(obp["target"]), "--estimator", "ips",
                                 "--reward-range", "none", "--json"])
    assert r.exit_code == 0, r.output
    raw_cli = json.loads(r.stdout)["rows"][0]
    raw = E.IPS().estimate(batch, warn=False, reward_range=None)
    assert (raw.ci_low, raw.ci_high) == (raw_cli["ci_low"], raw_cli["ci_high"]) and raw.ci_low < 0 and not raw_cli["clipped"]
    given = E.IPS().estimate(batch, warn=False, reward_range=(-1.0, 2.0))
    assert (given.ci_low, given.ci_high) == (raw.ci_low, raw.ci_high) and not given.clipped


@pytest.mark.parametrize("reward_range, message", [
    ((0.0, 0.5), r"reward_range \(0, 0\.5\): \d+ logged reward\(s\) lie outside it"),
    ((1.0, 0.0), r"reward_range must be \(low, high\) with low < high"),
    ("clip", r"reward_range must be 'auto', None or \(low, high\); got 'clip'"),
])
def test_a_bad_reward_range_is_named(reward_range, message):
    import estimators as E

    batch = E.LoggedBatch([0, 1], [0.0, 1.0], [0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match=message):
        E.IPS().estimate(batch, reward_range=reward_range)


def test_features_default_to_the_prompt_without_imported_context_and_say_the_prompts_are_empty(obp, tmp_path):
    r = CliRunner().invoke(cli, ["import", str(obp["logged"]), "--out", str(tmp_path / "bare"), "--action", "action",
                                 "--reward", "click", "--propensity", "pscore"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "bare"), "--policy-table", str(obp["target"]), "--estimator", "dr",
                                 "--json"])
    assert r.exit_code == 0, r.output
    warned = _assert_quiet(r.stderr)
    assert "reward model features: hashed word 1-2-grams of the prompt text" in r.stderr
    assert any("every prompt is empty" in w for w in warned), r.stderr
    assert json.loads(r.stdout)["features"].startswith("hashed word 1-2-grams")
    assert "--features context" not in " ".join(warned)  # no context to point to
    # an explicit --features prompt on a log with context: said, with the way out
    r = CliRunner().invoke(cli, ["evaluate", str(obp["log"]), "--policy-table", str(obp["target"]), "--estimator", "dr",
                                 "--features", "prompt", "--json"])
    assert r.exit_code == 0, r.output
    assert any("every prompt is empty" in w and "--features context" in w for w in json.loads(r.stdout)["warnings"])


def test_library_callers_get_python_warnings(obp):
    """``evaluate_policies`` warns as Python warnings (the CLI prints them as lines)."""
    from bandit.report import evaluate_policies
    from estimators import LowEffectiveSampleSizeWarning, parse_estimator

    decisions = open_log(obp["log"]).read("decisions")
    probs = np.zeros((len(decisions), K))
    probs[:, 0] = 1.0  # always action 0
    with pytest.warns(RuntimeWarning, match="every prompt is empty"):
        evaluate_policies(decisions, ("0", "1", "2"), {"t": probs}, [parse_estimator("dr")])
    tiny = decisions.iloc[:30].copy()
    first = int(np.flatnonzero(tiny["arm"].astype(str).to_numpy() == "0")[0])
    tiny.loc[tiny.index[first], "propensity"] = 0.001  # one weight of 1000: the effective sample size collapses
    with pytest.warns(LowEffectiveSampleSizeWarning, match=r"^t: effective sample size is 1\.\d of 30 rows"):
        evaluate_policies(tiny, ("0", "1", "2"), {"t": probs[:30]}, [parse_estimator("ips")])


def test_many_low_ess_policies_are_one_line_and_a_constant_arm_is_a_note_not_a_warning(tmp_path):
    """Every fixed arm under a uniform logger over 13 arms has a low effective sample size: one
    warning line for all of them. An arm whose reward is always 0 has zero-width intervals: one
    note, said once, and no warning."""
    rng = np.random.default_rng(2)
    n, arms = 390, 13
    a = rng.integers(0, arms, n)
    reward = np.where(a == 0, 0.0, rng.random(n).round(3))
    f = tmp_path / "many.csv"
    pd.DataFrame({"a": a, "r": reward, "p": 1 / arms}).to_csv(f, index=False)
    r = CliRunner().invoke(cli, ["import", str(f), "--out", str(tmp_path / "log"), "--action", "a", "--reward", "r",
                                 "--propensity", "p"])
    assert r.exit_code == 0, r.output
    r = _bandit_log("evaluate", tmp_path / "log", "--estimator", "ips", "--estimator", "snips")
    assert r.returncode == 0, r.stderr
    warned = _assert_quiet(r.stderr)
    low = [w for w in warned if "effective sample size" in w]
    assert len(low) == 1, warned
    many = re.search(r"(\d+) of 14 policies have an effective sample size below 10% of the 390 rows", low[0])
    assert many and int(many.group(1)) >= 8, low[0]
    assert not any("zero width" in w or "zero-width" in w for w in warned), warned
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: zero-width intervals")]
    assert len(notes) == 1 and "fixed:0 (ips, snips" in notes[0], r.stderr
