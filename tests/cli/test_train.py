"""``bandit-log train`` and ``bandit-log compare`` through the real click group."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from bandit.testing import write_simulated_log


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "log"
    write_simulated_log(path, n_prompts=160, n_arms=3, n_domains=3, seed=4, validation_fraction=0.25)
    return path


@pytest.fixture(scope="module")
def no_validation_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "log"
    write_simulated_log(path, n_prompts=120, n_arms=3, n_domains=3, seed=4)
    return path


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_train_json_prints_one_document_and_writes_the_run(log_path, tmp_path):
    out = tmp_path / "ridge"
    result = _run("train", log_path, "--policy", "regression", "--set", "alpha=0.5", "--set", "output=softmax",
                  "--featurizer-set", "n_word_features=256", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["run"] == str(out) and doc["policy"] == "regression"
    assert doc["config"]["settings"]["alpha"] == 0.5 and doc["config"]["settings"]["output"] == "softmax"
    assert doc["config"]["featurizer"] == {"name": "hashed", "settings": {"n_word_features": 256}}
    assert doc["metrics"]["featurizer"]["dim"] == 256 + 1024
    assert (out / "model" / "policy.json").is_file()
    assert "training regression" in result.stderr


def test_train_retrains_from_a_run_config_with_overrides(log_path, tmp_path):
    assert _run("train", log_path, "--policy", "classifier", "--set", "featurizer=tfidf-svd", "--featurizer-set", "n_components=6",
                "--out", tmp_path / "a", "--no-progress").exit_code == 0
    result = _run("train", log_path, "--config", tmp_path / "a" / "config.json", "--set", "output=greedy",
                  "--out", tmp_path / "b", "--no-progress", "--json")
    assert result.exit_code == 0, result.stderr
    config = json.loads(result.stdout)["config"]
    assert config["policy"] == "classifier" and config["settings"]["output"] == "greedy"
    assert config["featurizer"] == {"name": "tfidf-svd", "settings": {"n_components": 6}}
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"epsilon": 0.25}))
    result = _run("train", log_path, "--policy", "epsilon-greedy", "--config", flat, "--out", tmp_path / "c", "--no-progress", "--json")
    assert json.loads(result.stdout)["config"]["settings"]["epsilon"] == 0.25


@pytest.mark.parametrize("args, pattern", [
    (["--policy", "regression", "--set", "alpah=1"], "error: policy 'regression' has no setting 'alpah'; valid settings: alpha, featurizer"),
    (["--policy", "regression", "--set", "alpha"], "error: --set takes key=value; got 'alpha'"),
    (["--policy", "regression", "--set", "alpha=much"], "error: policy 'regression': setting alpha must be a number; got 'much'"),
    (["--policy", "nope"], "error: unknown policy 'nope'; known policies: bcq, classifier"),
    (["--policy", "fixed"], "error: fixed policy: set arm=NAME; the arms are arm0, arm1, arm2"),
    (["--policy", "oracle", "--feedback", "bandit"], "error: policy 'oracle' trains on full feedback only"),
    (["--policy", "uniform", "--split", "validation"], "error: .*no outcomes rows with split='validation'"),
    (["--policy", "uniform", "--featurizer-set", "n_components=3"], "error: featurizer 'hashed' does not accept settings"),
    (["--policy", "uniform", "--set", "featurizer=nope"], "error: unknown featurizer 'nope'; known featurizers: hashed, minilm"),
])
def test_train_errors_are_one_line_with_exit_1(no_validation_log, tmp_path, args, pattern):
    import re

    result = _run("train", no_validation_log, *args, "--out", tmp_path / "x", "--no-progress")
    assert result.exit_code == 1
    assert re.search(pattern, result.stderr), result.stderr
    assert result.stdout == "" and not (tmp_path / "x").exists()


def test_compare_reports_estimates_and_true_values(log_path, tmp_path):
    for name, extra in (("ridge", []), ("oracle", []), ("arm0", ["--set", "arm=arm0"])):
        policy = "fixed" if name == "arm0" else "regression" if name == "ridge" else "oracle"
        assert _run("train", log_path, "--policy", policy, *extra, "--out", tmp_path / name, "--no-progress").exit_code == 0
    result = _run("compare", log_path, tmp_path / "ridge", tmp_path / "oracle", tmp_path / "arm0",
                  "--estimator", "ips", "--estimator", "dr", "--json", "--report", tmp_path / "report")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    off = doc["off_policy"]
    assert off["split"] == "test" and {(r["policy"], r["estimator"]) for r in off["rows"]} == {
        (p, e) for p in ("ridge", "oracle", "arm0") for e in ("ips", "dr")}
    truth = doc["true_values"]
    assert truth["split"] == "test"
    ref = truth["references"]
    assert truth["runs"]["oracle"]["value"] == pytest.approx(ref["oracle"])
    assert truth["runs"]["arm0"]["value"] == pytest.approx(ref["arms"]["arm0"])
    assert ref["best_arm_value"] < truth["runs"]["ridge"]["value"] <= ref["oracle"]
    assert (tmp_path / "report" / "report.html").is_file()
    sel = doc["selection"]
    assert sel["split"] == "validation" and sel["method"] == "exact"
    names = {c["name"] for c in sel["candidates"]}
    assert names == {"ridge", "uniform", "fixed:arm0", "fixed:arm1", "fixed:arm2"}  # the oracle and the fixed run are not candidates
    assert sel["chosen"] in names and sel["reason"]
    text = _run("compare", log_path, tmp_path / "ridge", tmp_path / "oracle").stdout
    assert "off-policy estimates on" in text and "% of oracle" in text
    assert "[validation split] selection (exact" in text and f"chose {sel['chosen']}:" in text


def test_compare_selects_off_policy_on_a_decisions_only_log(log_path, tmp_path):
    from logging_data import create_log, open_log

    src = open_log(log_path)
    only = tmp_path / "decisions-only"
    create_log(only, src.metadata).append("decisions", src.read("decisions"))
    assert _run("train", log_path, "--policy", "regression", "--out", tmp_path / "ridge", "--no-progress").exit_code == 0
    result = _run("compare", only, tmp_path / "ridge", "--json")
    assert result.exit_code == 0, result.stderr
    sel = json.loads(result.stdout)["selection"]
    assert sel["method"] == "off-policy:dr" and sel["n"] > 0
    assert "off-policy DR estimates" in result.stderr


def test_compare_without_decisions_gives_true_values_and_refuses_other_arms(tmp_path):
    path = tmp_path / "log"
    write_simulated_log(path, n_prompts=40, n_arms=2, n_domains=2, seed=0, decisions=False)
    assert _run("train", path, "--policy", "uniform", "--out", tmp_path / "u", "--no-progress").exit_code == 0
    result = _run("compare", path, tmp_path / "u", "--json")
    doc = json.loads(result.stdout)
    assert "off_policy" not in doc and doc["true_values"]["runs"]["u"]["value"] == pytest.approx(doc["true_values"]["references"]["uniform"])
    assert doc["warnings"] == []
    from logging_data import LogMetadata, RewardDefinition, create_log, open_log

    relabelled = tmp_path / "relabelled"
    meta = open_log(path).metadata
    create_log(relabelled, LogMetadata(arms=meta.arms, reward=RewardDefinition(kind="speedup_wall"))).append(
        "outcomes", open_log(path).read("outcomes"))
    result = _run("compare", relabelled, tmp_path / "u", "--json")
    assert result.exit_code == 0 and "u was trained under reward" in json.loads(result.stdout)["warnings"][0]
    other = tmp_path / "other"
    write_simulated_log(other, n_prompts=40, n_arms=3, n_domains=2, seed=0, decisions=False)
    result = _run("compare", other, tmp_path / "u")
    assert result.exit_code == 1 and "trained on arms arm0, arm1; log" in result.stderr


def test_help_shows_examples():
    for command in ("train", "compare"):
        result = _run(command, "--help")
        assert result.exit_code == 0 and f"bandit-log {command} LOG" in result.stdout


def test_overwrite_never_replaces_the_log_or_anything_but_a_run(log_path, tmp_path):
    from logging_data import open_log

    before = open_log(log_path).read("outcomes")
    r = _run("train", log_path, "--policy", "uniform", "--out", log_path, "--overwrite", "--no-progress")
    assert r.exit_code == 1 and "is a log (it has _log.json), not a run folder" in r.stderr
    pd_equal = before.equals(open_log(log_path).read("outcomes"))
    assert pd_equal
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    r = _run("train", log_path, "--policy", "uniform", "--out", other, "--overwrite", "--no-progress")
    assert r.exit_code == 1 and "is not a run folder (no config.json, metrics.json, fingerprint.json; it holds keep.txt)" in r.stderr
    assert (other / "keep.txt").read_text() == "mine"
    assert _run("train", log_path, "--policy", "uniform", "--out", tmp_path / "run", "--no-progress").exit_code == 0
    assert _run("train", log_path, "--policy", "uniform", "--out", tmp_path / "run", "--overwrite", "--no-progress").exit_code == 0


def test_no_progress_bars_when_stderr_is_not_a_terminal(log_path, tmp_path):
    r = _run("train", log_path, "--policy", "regression", "--out", tmp_path / "r")
    assert r.exit_code == 0 and "it/s" not in r.stderr and "training:" not in r.stderr


def test_a_lossless_failure_has_its_own_exit_status(tmp_path, monkeypatch):
    import decoding.build as build_mod
    from bandit.cli._common import EXIT_LOSSLESS_FAILED

    def failing(*args, **kwargs):
        return build_mod.BuildSummary(str(tmp_path / "log"), 1, 1, 3, 0, 1, 0.1, {})

    monkeypatch.setattr(build_mod, "build_log", failing)
    from decoding.models import ArmConfig, ModelsConfig, write_models_file

    models = write_models_file(tmp_path / "m.toml", ModelsConfig.of("x", [ArmConfig.of("plain", "none")]))
    (tmp_path / "p.parquet").write_bytes(b"")
    r = CliRunner().invoke(cli, ["build", str(tmp_path / "p.parquet"), "--models", str(models), "--out", str(tmp_path / "log")])
    assert r.exit_code == EXIT_LOSSLESS_FAILED == 3 and "lossless failures: 1" in r.stderr


@pytest.mark.parametrize("command", ["train", "evaluate", "compare"])
def test_readers_refuse_a_log_that_breaks_its_contract(tmp_path, command):
    """A part copied in by hand duplicates every key: train, evaluate and compare say so instead of
    reading duplicated rows (nothing is written)."""
    import shutil

    path = tmp_path / "log"
    write_simulated_log(path, n_prompts=30, n_arms=2, n_domains=2, seed=0)
    assert _run("train", path, "--policy", "uniform", "--out", tmp_path / "u", "--no-progress").exit_code == 0
    part = sorted((path / "outcomes").glob("part-*.parquet"))[0]
    shutil.copy(part, part.with_name("part-copied-by-hand.parquet"))
    args = {"train": ["train", path, "--policy", "uniform", "--out", tmp_path / "x", "--no-progress"],
            "evaluate": ["evaluate", path], "compare": ["compare", path, tmp_path / "u"]}[command]
    r = _run(*args)
    assert r.exit_code == 1 and "breaks the log contract" in r.stderr and "repeat a (query_id, arm) key" in r.stderr
    assert r.stdout == "" and not (tmp_path / "x").exists()
