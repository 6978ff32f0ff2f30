"""``bandit-log drafters heads`` and ``drafters store`` end to end on the tiny target (in-process CliRunner):
the models file loads, the new log validates and holds every count, the replayed counts of the new
arms equal live decoding through the written models file; bad input is refused before any model loads,
with one line, and leaves nothing behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from logging_data import open_log

COUNTS = ["n_new_tokens", "target_calls", "draft_calls", "draft_tokens", "accepted_tokens"]
SPLITS = ("train",) * 3 + ("validation",) * 2 + ("test",) * 2


def _invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def world(tiny_models, write_tiny_models, tmp_path_factory):
    """The tiny target's models file (plain, one prompt-lookup arm) and a replayed count log of 14 prompts in two domains."""
    from ..conftest import SENTENCES

    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.models import ArmConfig, load_models_config
    from decoding.pricing import Calibration

    root = tmp_path_factory.mktemp("drafters_cli")
    models = write_tiny_models(root / "models.toml", (ArmConfig.of("plain", "none"),
                                                      ArmConfig.of("lookup", "prompt_lookup", prompt_lookup_num_tokens=3)))
    rows = []
    for domain, offset in (("copy", 0), ("free", 3)):
        for i, split in enumerate(SPLITS):
            words = SENTENCES[(i + offset) % len(SENTENCES)].split()
            rows.append({"query_id": f"{domain}-{i}", "prompt": " ".join(words[i % 3:] + words[:i % 3]), "domain": domain, "split": split})
    pd.DataFrame(rows).to_parquet(root / "prompts.parquet")
    cal = Calibration(target_step_s=0.01, arm_step_s={}, verify_token_s=0.0005, round_overhead_s=0.002, plain_step_s=0.01)
    build_log(root / "prompts.parquet", load_models_config(models), root / "log",
              BuildConfig(reward=reward_definition("speedup_count"), measure=False, batch_size=8), threads=1, progress=False,
              calibration=cal)
    return {"root": root, "models": models, "log": root / "log"}


@pytest.fixture(scope="module")
def heads_out(world):
    out = world["root"] / "heads-out"
    r = _invoke("drafters", "heads", world["log"], "--models", world["models"], "--out", out, "--threads", 1, "--epochs", 1,
                "--live-check", 2, "--select", "--budget", "tiny", "--learners", "regression", "--json")
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout)


def _live_counts(models_path: Path, log: pd.DataFrame, arms: list[str], query_ids: list[str]) -> None:
    """Each arm decoded live through ``models_path`` on ``query_ids``: the target's greedy output, with the log's counts."""
    from decoding.models import load_models_config
    from decoding.session import DecodingSession

    session = DecodingSession(load_models_config(models_path), threads=1)
    plain = log[log["arm"] == "plain"].set_index("query_id")
    for q in query_ids:
        ids = session.encode(plain.at[q, "prompt"])
        reference = session.greedy([ids])[0]
        for arm in arms:
            row = log[(log["query_id"] == q) & (log["arm"] == arm)].iloc[0]
            live = session.looped(ids, arm, reference=reference)
            assert live.lossless is True, (q, arm)
            assert (live.target_calls, live.draft_tokens, live.draft_calls, live.n_new_tokens) == (
                row["target_calls"], row["draft_tokens"], row["draft_calls"], row["n_new_tokens"]), (q, arm)


def _check_output(world, out: Path, doc: dict, kind: str) -> pd.DataFrame:
    """What both commands write: models.toml (the source's arms, then the new ones), a log that validates with
    every arm on every prompt and the source rows' counts unchanged, the summary; no cache left."""
    from decoding.models import load_models_config

    models = load_models_config(out / "models.toml")
    assert models.arm_names[:2] == ("plain", "lookup") and list(models.arm_names[2:]) == doc["arms"]
    assert {models.arm(a).kind for a in doc["arms"]} <= kind
    r = _invoke("validate", out / "log")
    assert r.exit_code == 0, r.output
    log = open_log(out / "log").read("outcomes")
    assert log.groupby("arm").size().to_dict() == {a: 14 for a in models.arm_names}
    assert not log[COUNTS].isna().any().any() and (log["speedup_count"] > 0).all()
    source = open_log(world["log"]).read("outcomes").set_index(["query_id", "arm"])[COUNTS]
    assert log.set_index(["query_id", "arm"]).loc[source.index, COUNTS].equals(source)
    assert doc["live_check"]["checked"] > 0 and doc["live_check"]["same_counts"] == doc["live_check"]["checked"]
    assert json.loads((out / "summary.json").read_text())["domains"] == ["copy", "free"]
    assert not (out / "states").exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))
    return log


def test_heads_end_to_end(world, heads_out):
    out, doc = heads_out
    log = _check_output(world, out, doc, {"head", "lookup_head"})
    assert set(doc["tuned"]) == {"copy", "free"} and doc["lookup"] == "lookup" and doc["head_step_s"] > 0
    assert len(doc["arms"]) == 12 and (out / "heads" / "copy" / "head.safetensors").exists()
    assert doc["selection"]["winner"] and (out / "select" / "selection.json").exists()
    # independently of the command's own check: two prompts decoded live through the written models file
    _live_counts(out / "models.toml", log, ["head-copy-tuned", "lookup-head-free-gated"], ["copy-5", "free-6"])
    r = _invoke("train", out / "log", "--policy", "regression", "--out", world["root"] / "run-heads")  # the log trains a policy
    assert r.exit_code == 0, r.output


def test_store_end_to_end_and_overwrite(world, tmp_path):
    out = tmp_path / "store-out"
    argv = ["drafters", "store", world["log"], "--models", world["models"], "--out", out, "--threads", 1, "--live-check", 1, "--json"]
    r = _invoke(*argv)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    log = _check_output(world, out, doc, {"datastore"})
    assert doc["arms"] == ["store-copy", "store-copy-tuned", "store-free", "store-free-tuned"]
    assert all(n > 0 for n in doc["store_step_s"].values()) and (out / "stores" / "free").is_dir()
    # validation and test prompts (a train prompt's counts come from a store without it: cross-fitted; live, the whole store)
    _live_counts(out / "models.toml", log, ["store-copy", "store-copy-tuned"], ["copy-3", "copy-6"])
    r = _invoke(*argv)
    assert r.exit_code == 1 and "pass --overwrite" in r.stderr
    r = _invoke(*argv[:-1], "--overwrite", "--max-prompts", 6)  # replaced whole
    assert r.exit_code == 0, r.output
    assert len(open_log(out / "log").read("outcomes")) == 6 * 6 and "4 store arms" in r.stdout


def test_store_tops_up_its_train_prompts_with_mined_ones(world, tmp_path, monkeypatch):
    """--train-prompts: the stores also hold the target's greedy outputs of prompts mined beyond the log (here a
    fixture stands in for this machine's text, which has none of the tiny log's domains); the log keeps its prompts."""
    import decoding.drafters.mining as mining

    from ..conftest import SENTENCES

    extra = pd.DataFrame({"query_id": ["m0", "m1", "m2"], "prompt": [SENTENCES[0], SENTENCES[1], SENTENCES[2].upper()],
                          "domain": ["copy", "copy", "free"]})
    asked = []

    def mine(log_prompts, train_prompts, seed, path, whole_log=None, **_):
        asked.append((train_prompts, len(log_prompts), len(whole_log)))
        return extra, {"request": {"train_prompts": train_prompts}, "counts": {"copy": 2, "free": 1}}

    monkeypatch.setattr(mining, "mine_train_prompts", mine)
    out = tmp_path / "store-mined"
    r = _invoke("drafters", "store", world["log"], "--models", world["models"], "--out", out, "--threads", 1, "--live-check", 1,
                "--train-prompts", 5, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert asked == [(5, 14, 14)]
    assert {d: s["train_prompts"] for d, s in doc["stores"].items()} == {"copy": 5, "free": 4}  # 3 of the log's + the mined
    _check_output(world, out, doc, {"datastore"})  # the log: its 14 prompts, no mined row
    assert json.loads((out / "summary.json").read_text())["mined_train_prompts"]["counts"] == {"copy": 2, "free": 1}
    assert not (out / "extra-states").exists()


def _bad_logs(world, root: Path) -> dict[str, Path]:
    """Logs a drafter can not start from: no plain arm, no target_output."""
    from decoding.drafters.logs import write_priced_log
    from decoding.pricing import Calibration

    source = open_log(world["log"])
    outcomes, cal = source.read("outcomes"), Calibration.from_json(source.metadata.extra["calibration"])
    lookup = [a for a in source.metadata.arms if a.name == "lookup"]
    write_priced_log(root / "no-plain", outcomes[outcomes["arm"] == "lookup"], outcomes.iloc[:0], lookup, cal, "test", {})
    write_priced_log(root / "no-output", outcomes, outcomes.iloc[:0], source.metadata.arms, cal, "test", {})
    return {"no-plain": root / "no-plain", "no-output": root / "no-output"}


BAD = [  # (case, arguments after the command and LOG, exit code, message pattern)
    ("missing log", {"log": "missing"}, 2, r"'.*missing' does not exist"),
    ("no plain arm", {"log": "no-plain"}, 2, r"Invalid value for LOG: .*no-plain: a full-information log with a 'plain' arm expected.*its arms are lookup"),
    ("no target_output", {"log": "no-output"}, 2, r"Invalid value for LOG: .*no-output: target_output expected on every plain row.*14 of 14 have none"),
    ("existing out", {"out": "existing"}, 1, r"heads-out exists; pass --overwrite to replace it"),
    ("foreign out", {"out": "foreign"}, 1, r"foreign: a directory that is not empty and is not a drafter output folder"),
    ("calibration not JSON", {"calibration": "bad.json"}, 2, r"Invalid value for --calibration: calibration .*bad.json: not a JSON document"),
    ("calibration missing", {"calibration": "nope.json"}, 2, r"Invalid value for --calibration: calibration .*nope.json: no such file"),
    ("lookup not a lookup arm", {"extra": ["--lookup", "plain"]}, 2,
     r"Invalid value for --lookup: expected a prompt_lookup arm of the models file \(lookup\) or 'none'; got 'plain'"),
    ("bad learner", {"extra": ["--select", "--learners", "nope"]}, 2, r"Invalid value for --learners: unknown learner\(s\) nope; known: regression"),
    ("head step not positive", {"extra": ["--head-step", "0"]}, 2, r"Invalid value for '--head-step': 0.0 is not in the range x>0"),
]


@pytest.mark.parametrize("case, given, code, pattern", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_before_anything_runs(world, heads_out, tmp_path, checksum, case, given, code, pattern):
    logs = _bad_logs(world, tmp_path) if given.get("log", "").startswith("no-") else {}
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    (tmp_path / "bad.json").write_text("{not json")
    out = {"existing": heads_out[0], "foreign": tmp_path / "foreign"}.get(given.get("out"), tmp_path / "new")
    log = logs.get(given.get("log"), tmp_path / given["log"] if "log" in given else world["log"])
    calibration = ["--calibration", tmp_path / given["calibration"]] if "calibration" in given else []
    before = {p: checksum(p) for p in (world["log"], heads_out[0], tmp_path / "foreign")}
    r = _invoke("drafters", "heads", log, "--models", world["models"], "--out", out, *calibration, *given.get("extra", []))
    assert r.exit_code == code, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith(("error: ", "Error: "))]
    assert len(errors) == 1 and re.search(pattern, errors[0]), r.stderr
    assert not (tmp_path / "new").exists() and before == {p: checksum(p) for p in before}


def test_a_failing_run_leaves_nothing(world, tmp_path, monkeypatch):
    import decoding.drafters.stores_run as stores_run

    def fail(cfg):
        (cfg.out / "stores").mkdir(parents=True)
        raise RuntimeError("disk full")

    monkeypatch.setattr(stores_run, "add_stores", fail)
    out = tmp_path / "out"
    r = _invoke("drafters", "store", world["log"], "--models", world["models"], "--out", out)
    assert r.exit_code == 1 and "disk full" in r.stderr
    assert list(tmp_path.iterdir()) == []  # neither the output nor its staging folder


def test_a_failed_run_keeps_the_targets_outputs_and_the_rerun_reads_them_back(world, tmp_path, monkeypatch):
    import decoding.drafters.states as states
    import decoding.drafters.stores_run as stores_run

    computed, tune = [], stores_run.tune_stores
    real_greedy = states.greedy_outputs

    def greedy(session, frame):  # the real computation, counted
        computed.append(len(frame))
        return real_greedy(session, frame)

    def broken(*args, **kwargs):
        raise RuntimeError("killed mid-run")

    monkeypatch.setattr(states, "greedy_outputs", greedy)
    monkeypatch.setattr(stores_run, "tune_stores", broken)
    out = tmp_path / "store-out"
    argv = ["drafters", "store", world["log"], "--models", world["models"], "--out", out, "--threads", 1, "--live-check", 1, "--json"]
    r = _invoke(*argv)
    assert r.exit_code == 1 and "killed mid-run" in r.stderr
    cache = tmp_path / ".store-out.cache"
    assert f"kept {cache}" in r.stderr and (cache / "states" / "chunk-000" / "index.json").exists() and not out.exists()
    monkeypatch.setattr(stores_run, "tune_stores", tune)
    r = _invoke(*argv)
    assert r.exit_code == 0, r.output
    assert computed == [14]  # the rerun read the first run's outputs back
    assert not cache.exists() and (out / "models.toml").exists()


def test_the_greedy_outputs_resume_at_their_first_missing_chunk(world, tmp_path, monkeypatch):
    """A drafter run killed during the target's forward passes keeps every finished chunk of prompts; the
    rerun computes only the rest, and gets the same outputs as one pass over every prompt."""
    import decoding.drafters.states as states
    from decoding.models import load_models_config
    from decoding.session import DecodingSession

    session = DecodingSession(load_models_config(world["models"]), threads=1)
    plain = states.plain_rows(open_log(world["log"]).read("outcomes"), None)
    real, calls = states.greedy_outputs, []

    def counted(session, part):
        calls.append(len(part))
        if len(calls) == 2 and not resumed:
            raise RuntimeError("killed")
        return real(session, part)

    monkeypatch.setattr(states, "greedy_outputs", counted)
    resumed = False
    with pytest.raises(RuntimeError, match="killed"):
        states.cached_greedy_outputs(session, plain, tmp_path / "s", chunk=5)
    assert calls == [5, 5] and (tmp_path / "s" / "chunk-000" / "index.json").exists()
    calls.clear()
    resumed = True
    got = states.cached_greedy_outputs(session, plain, tmp_path / "s", chunk=5)
    assert calls == [5, 4]  # the first chunk read back
    whole = real(session, plain)
    assert got[0] == whole[0] and got[1] == whole[1] and got[4] == whole[4]
    assert [s.shape for s in got[2]] == [s.shape for s in whole[2]]


def test_help_has_examples():
    for command in (["drafters"], ["drafters", "heads"], ["drafters", "store"]):
        r = _invoke(*command, "--help")
        assert r.exit_code == 0 and "bandit-log drafters " in r.output and "Example" in r.output
