"""The run folder: train -> write -> load round trip, fingerprint, atomic writes, resumable checkpoints."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from bandit.configs import make_config
from bandit.runs import load_run, train_run
from bandit.testing import simulated_outcomes, write_simulated_log
from logging_data import open_log
from logging_data.simulate import EpsilonGreedyLogging, simulate_decisions


@pytest.fixture(scope="module")
def log_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "log"
    write_simulated_log(path, n_prompts=120, n_arms=3, n_domains=3, seed=2)
    return path


def _test_prompts(log_path):
    out = open_log(log_path).read("outcomes")
    return out[out["split"] == "test"].drop_duplicates("query_id").reset_index(drop=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip_writes_every_part_and_loads_the_same_policy(log_path, tmp_path):
    config = make_config("regression", {"featurizer": "tfidf-svd", "alpha": 0.5})
    run = train_run(log_path, config, tmp_path / "ridge", featurizer_settings={"n_components": 8}, progress=False)
    assert sorted(p.name for p in (tmp_path / "ridge").iterdir()) == ["config.json", "featurizer", "fingerprint.json", "metrics.json", "model"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ridge"]  # no staging or checkpoint leftovers
    loaded = load_run(tmp_path / "ridge")
    frame = _test_prompts(log_path)
    assert np.array_equal(loaded.probabilities(frame), run.probabilities(frame))
    assert loaded.config == config and loaded.name == "ridge" and loaded.arm_names == ("arm0", "arm1", "arm2")

    record = json.loads((tmp_path / "ridge" / "config.json").read_text())
    assert record["policy"] == "regression" and record["settings"]["alpha"] == 0.5
    assert record["featurizer"] == {"name": "tfidf-svd", "settings": {"n_components": 8}}
    assert [a["name"] for a in record["arms"]] == ["arm0", "arm1", "arm2"]
    assert (record["feedback"], record["split"], record["reward"]["kind"]) == ("full", "train", "custom")

    metrics = json.loads((tmp_path / "ridge" / "metrics.json").read_text())
    assert metrics["featurizer"]["name"] == "tfidf-svd" and metrics["featurizer"]["dim"] == 8
    assert 0 < metrics["featurizer"]["seconds_per_prompt"] < 1 and metrics["train_seconds"] >= 0
    assert metrics["policy"]["rows_per_arm"] == {a: metrics["n_train_prompts"] for a in ("arm0", "arm1", "arm2")}
    values = metrics["train_values"]
    assert values["uniform"] < values["policy"] <= values["oracle"] + 1e-12


def test_fingerprint_names_the_data_it_saw(log_path, tmp_path):
    run = train_run(log_path, make_config("uniform"), tmp_path / "u", progress=False)
    fp = json.loads((tmp_path / "u" / "fingerprint.json").read_text())
    log = open_log(log_path)
    outcomes = log.read("outcomes")
    assert fp["log_path"] == str(log_path.resolve()) and fp["table"] == "outcomes"
    assert fp["rows"] == int((outcomes["split"] == "train").sum()) and fp["rows_in_table"] == len(outcomes)
    assert fp["n_prompts"] == run.metrics["n_train_prompts"] == outcomes[outcomes["split"] == "train"]["query_id"].nunique()
    assert fp["schema_version"] == log.metadata.schema_version and fp["reward"] == log.metadata.reward.to_json()
    assert [p["sha256"] for p in fp["parts"]] == [_sha(p) for p in log.parts("outcomes")]
    assert fp["sha256"] == hashlib.sha256("".join(_sha(p) for p in log.parts("outcomes")).encode()).hexdigest()


def test_fingerprint_changes_when_the_log_grows(tmp_path):
    path = tmp_path / "log"
    log = write_simulated_log(path, n_prompts=40, n_arms=3, n_domains=2, seed=0, decisions=False)
    before = train_run(path, make_config("uniform"), tmp_path / "a", split="all", progress=False).fingerprint
    extra = simulated_outcomes(10, 3, 2, seed=1)
    extra["query_id"] = "new-" + extra["query_id"]
    log.append("outcomes", extra)
    after = train_run(path, make_config("uniform"), tmp_path / "b", split="all", progress=False).fingerprint
    assert after["rows"] == before["rows"] + 30 and after["sha256"] != before["sha256"]
    assert after["parts"][0] == before["parts"][0]


def test_a_failure_while_writing_leaves_no_run_and_keeps_an_old_one(log_path, tmp_path, monkeypatch):
    from bandit.policies.baselines import UniformPolicy

    good = train_run(log_path, make_config("uniform"), tmp_path / "run", progress=False)
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}

    def failing_save(self, path):
        (Path(path) / "half-written.npy").write_bytes(b"\x93NUMPY")
        raise OSError("disk full")

    monkeypatch.setattr(UniformPolicy, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        train_run(log_path, make_config("uniform", {"seed": 1}), tmp_path / "fresh", progress=False)
    with pytest.raises(OSError, match="disk full"):
        train_run(log_path, make_config("uniform", {"seed": 1}), tmp_path / "run", overwrite=True, progress=False)
    # no half run and no staging folder; the checkpoint folders stay (hidden) for a resume
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fresh.checkpoints", ".run.checkpoints", "run"]
    after = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert after == before and good.config.seed == 0


def test_an_existing_run_is_refused_before_any_work_unless_overwrite(log_path, tmp_path):
    train_run(log_path, make_config("uniform"), tmp_path / "run", progress=False)
    with pytest.raises(FileExistsError, match="already exists"):
        train_run(log_path, make_config("uniform"), tmp_path / "run", progress=False)
    train_run(log_path, make_config("uniform", {"seed": 4}), tmp_path / "run", overwrite=True, progress=False)
    assert load_run(tmp_path / "run").config.seed == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# -- interruption and resume: a learner with steps and checkpoints ----------------------------------
class _StepLearner:
    """Two 'steps'; writes a checkpoint after the first and is interrupted there once."""

    interrupt = True

    def __init__(self, config, arms):
        self.config, self.arm_names = config, tuple(a.name for a in arms)

    def fit(self, data, checkpoint_dir=None):
        ckpt = Path(checkpoint_dir) / "step-1.json"
        resumed = ckpt.exists()
        if not resumed:
            ckpt.write_text(json.dumps({"step": 1}))
            if _StepLearner.interrupt:
                raise KeyboardInterrupt
        self.training_metrics_ = {"resumed_from_checkpoint": resumed}
        return self

    def probabilities(self, x):
        return np.full((len(x), len(self.arm_names)), 1 / len(self.arm_names))

    def save(self, path):
        (Path(path) / "done.json").write_text("{}")


@dataclasses.dataclass(frozen=True)
class _StepConfig:
    featurizer: str = "hashed"
    seed: int = 0
    name: ClassVar[str] = "steps"

    def create(self, arms):
        return _StepLearner(self, arms)


def test_an_interrupted_training_leaves_no_run_and_resumes_from_its_checkpoint(log_path, tmp_path):
    _StepLearner.interrupt = True
    with pytest.raises(KeyboardInterrupt):
        train_run(log_path, _StepConfig(), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    assert (tmp_path / ".run.checkpoints" / "step-1.json").exists()
    run = train_run(log_path, _StepConfig(), tmp_path / "run", progress=False)
    assert run.metrics["policy"] == {"resumed_from_checkpoint": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # checkpoints removed once written


def test_checkpoints_of_another_config_are_not_resumed(log_path, tmp_path):
    _StepLearner.interrupt = True
    with pytest.raises(KeyboardInterrupt):
        train_run(log_path, _StepConfig(seed=1), tmp_path / "run", progress=False)
    _StepLearner.interrupt = False
    try:
        run = train_run(log_path, _StepConfig(seed=2), tmp_path / "run", progress=False)
    finally:
        _StepLearner.interrupt = True
    assert run.metrics["policy"] == {"resumed_from_checkpoint": False}


# -- what is read -----------------------------------------------------------------------------------
def test_bandit_feedback_picks_one_logging_policy(tmp_path):
    path = tmp_path / "log"
    log = write_simulated_log(path, n_prompts=60, n_arms=3, n_domains=2, seed=1)
    outcomes = log.read("outcomes")
    log.append("decisions", simulate_decisions(outcomes, log.metadata.arm_names, EpsilonGreedyLogging(arm=1, epsilon=0.3),
                                               np.random.default_rng(0), policy_id="eps"))
    with pytest.raises(ValueError, match="decisions from 2 logging policies \\(eps, uniform\\); choose one with policy_id"):
        train_run(path, make_config("regression"), tmp_path / "r", feedback="bandit", progress=False)
    with pytest.raises(ValueError, match="no decisions with policy_id='nope' \\(policy_ids: eps, uniform\\)"):
        train_run(path, make_config("regression"), tmp_path / "r", feedback="bandit", policy_id="nope", progress=False)
    run = train_run(path, make_config("regression"), tmp_path / "r", feedback="bandit", policy_id="eps", progress=False)
    decisions = log.read("decisions")
    assert run.fingerprint["rows"] == int(((decisions["policy_id"] == "eps") & (decisions["split"] == "train")).sum())
    assert run.fingerprint["table"] == "decisions" and "train_values" not in run.metrics


def test_the_oracle_memorises_every_split_and_answers_for_held_out_prompts(log_path, tmp_path):
    run = train_run(log_path, make_config("oracle"), tmp_path / "oracle", progress=False)
    assert run.record["split"] is None and run.fingerprint["split"] is None
    frame = _test_prompts(log_path)
    outcomes = open_log(log_path).read("outcomes")
    best = outcomes.loc[outcomes.groupby("query_id")["reward"].idxmax()].set_index("query_id")["arm"]
    probs = load_run(tmp_path / "oracle").probabilities(frame)
    assert [run.arm_names[i] for i in probs.argmax(axis=1)] == best.loc[frame["query_id"]].tolist()
    arm, propensity, seconds = run.choose("any text", np.random.default_rng(0), query_id=frame["query_id"][0])
    assert arm == best.loc[frame["query_id"][0]] and propensity == 1.0 and seconds >= 0


def test_choose_gives_one_arm_its_propensity_and_the_time_spent(log_path, tmp_path):
    run = train_run(log_path, make_config("epsilon-greedy", {"epsilon": 0.3}), tmp_path / "eg", progress=False)
    arm, propensity, seconds = run.choose("some prompt", np.random.default_rng(3))
    probs = run.probabilities(_test_prompts(log_path).iloc[:1])
    assert propensity == pytest.approx(probs[0, run.arm_names.index(arm)]) and 0 <= seconds < 5


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"feedback": "bandits"}, ValueError, "feedback must be one of full, bandit; got 'bandits'"),
    ({"split": "dev"}, ValueError, "split must be train, validation, test or all; got 'dev'"),
    ({"split": "validation"}, ValueError, "no outcomes rows with split='validation' \\(splits present: test, train\\)"),
    ({"featurizer_settings": {"n_compnents": 3}}, TypeError, "does not accept settings \\['n_compnents'\\]"),
])
def test_bad_training_requests_are_refused(log_path, tmp_path, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        train_run(log_path, make_config("uniform"), tmp_path / "x", progress=False, **kwargs)
    assert not (tmp_path / "x").exists()


def test_feedback_the_log_or_policy_cannot_give_is_refused(tmp_path):
    path = tmp_path / "log"
    write_simulated_log(path, n_prompts=20, n_arms=2, n_domains=2, seed=0, decisions=False)
    with pytest.raises(ValueError, match="needs the decisions table, which this log does not have; it has outcomes: use feedback=full"):
        train_run(path, make_config("uniform"), tmp_path / "x", feedback="bandit", progress=False)
    with pytest.raises(ValueError, match="policy 'oracle' trains on full feedback only"):
        train_run(path, make_config("oracle"), tmp_path / "x", feedback="bandit", progress=False)
    with pytest.raises(ValueError, match="fixed policy: arm 'arm7' is not one of them"):
        train_run(path, make_config("fixed", {"arm": "arm7"}), tmp_path / "x", progress=False)


def test_a_run_refuses_other_arms_and_frames_without_prompts(log_path, tmp_path):
    run = train_run(log_path, make_config("uniform"), tmp_path / "u", progress=False)
    with pytest.raises(ValueError, match="trained on arms arm0, arm1, arm2; the log has arms arm0, arm2, arm1"):
        run.check_arms(("arm0", "arm2", "arm1"))
    with pytest.raises(ValueError, match="missing prompt"):
        run.probabilities(_test_prompts(log_path)[["query_id"]])
    (tmp_path / "u" / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a complete run folder \\(missing metrics.json"):
        load_run(tmp_path / "u")


def test_array_names_in_policy_json_cannot_leave_the_run_folder(tmp_path):
    """A crafted policy.json naming ``../x`` as an array is refused before any file outside is read."""
    write_simulated_log(tmp_path / "log", n_prompts=30, n_arms=2, n_domains=2, seed=0, decisions=False)
    train_run(tmp_path / "log", make_config("regression", {}), tmp_path / "run", progress=False)
    state = next((tmp_path / "run").rglob("policy.json"))
    record = json.loads(state.read_text())
    record["arrays"] = ["../../outside"]
    state.write_text(json.dumps(record))
    np.save(tmp_path / "outside.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"array name '\.\./\.\./outside' is not a plain name"):
        load_run(tmp_path / "run")
