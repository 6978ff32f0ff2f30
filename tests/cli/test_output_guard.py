"""Nothing a user does loses data: every writing command against every bad output path.

The table: (id, command line, exit status, message pattern). Every case runs on one shared
folder of inputs (a log, a run, a Hugging Face model folder, a distilled draft, prompt and
decision files, a models file) and hashes every file under it before and after: a refused
command writes, changes and removes nothing, anywhere. Then the controls: re-runs with
--overwrite still work, a failure mid-write leaves the previous output (or nothing) and never
debris that blocks the corrected re-run, and validate --clean waits for a build's lock.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from bandit.testing import write_simulated_log


def _tree(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: relative path -> sha256 of its bytes (folders: "dir")."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    log = root / "log"
    write_simulated_log(log, n_prompts=40, seed=1, validation_fraction=0.2)
    r = _invoke("train", log, "--policy", "regression", "--out", root / "run", "--no-progress")
    assert r.exit_code == 0, r.output
    shutil.copytree(log, root / "other")  # a log no command below reads
    hf = root / "hf"  # a Hugging Face model folder (the guard refuses before anything loads it)
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (hf / "model.safetensors").write_bytes(b"\x00" * 64)
    (hf / "tokenizer.json").write_text("{}")
    project = root / "project"  # a project folder: a config.json and the very log being trained on
    project.mkdir()
    (project / "config.json").write_text("{}")
    shutil.copytree(log, project / "log")
    shutil.copytree(root / "run", root / "runlog")  # a run folder with a log inside it
    shutil.copytree(log, root / "runlog" / "log")
    shutil.copytree(root / "run", root / "runplus")  # a run folder with the user's notes in it
    (root / "runplus" / "notes.txt").write_text("mine")
    draft = root / "draft"  # a distilled draft folder holding its prompts file
    draft.mkdir()
    (draft / ".settings.json").write_text("{}")
    prompts = pd.DataFrame({"query_id": ["a", "b", "c", "d"], "prompt": ["the cat", "the dog", "a fox", "a cow"],
                            "domain": ["x", "x", "y", "y"], "split": ["train"] * 4})
    prompts.to_parquet(draft / "p.parquet", index=False)
    prompts.to_parquet(root / "prompts.parquet", index=False)
    prompts.to_csv(root / "prompts.csv", index=False)
    pd.DataFrame({"k": [1, 2]}).to_parquet(root / "foreign.parquet")
    (root / "logged.csv").write_text("a,r,p\n0,1,0.5\n1,0,0.5\n")
    (root / "models.toml").write_text('[target]\npath = "hf"\n[[arms]]\nname = "plain"\nkind = "none"\n')
    (root / "afile").write_text("not a folder")
    return root


W = "{w}"  # the world folder, filled in per case
BUILD = ["build", f"{W}/prompts.csv", "--models", f"{W}/models.toml"]
DECODE = ["decode", f"{W}/prompts.csv", "--policy", f"{W}/run", "--models", f"{W}/models.toml"]
IMPORT = ["import", f"{W}/logged.csv", "--action", "a", "--reward", "r", "--propensity", "p"]
DISTILL = ["drafts", "distill", "--target", f"{W}/hf", "--prompts", f"{W}/prompts.parquet", "--domain", "x"]
CLUSTER = ["drafts", "cluster", "--prompts", f"{W}/prompts.parquet", "--k", "2"]
NOT_LOG = r"a directory that is not empty and is not a log"

# (id, argv, exit status, pattern the one-line message must match)
CASES = [
    # train --out / --overwrite: only a run folder, holding nothing else, and never an input or inside a log
    ("train-over-the-log", ["train", f"{W}/log", "--policy", "uniform", "--out", f"{W}/log", "--overwrite"], 1,
     r"log: is a log \(it has _log\.json\), not a run folder"),
    ("train-over-a-project-folder-holding-the-log", ["train", f"{W}/project/log", "--policy", "uniform", "--out", f"{W}/project",
                                                    "--overwrite"], 1,
     r"project: a directory that is not empty and is not a run folder \(no metrics\.json, fingerprint\.json; it holds config\.json, log\)"),
    ("train-over-a-hugging-face-folder", ["train", f"{W}/log", "--policy", "uniform", "--out", f"{W}/hf", "--overwrite"], 1,
     r"hf: a directory that is not empty and is not a run folder .*it holds config\.json, model\.safetensors, tokenizer\.json"),
    ("train-over-a-run-holding-the-log", ["train", f"{W}/runlog/log", "--policy", "uniform", "--out", f"{W}/runlog", "--overwrite"], 1,
     r"--out .*runlog holds LOG .*runlog/log, an input of this command"),
    ("train-over-a-run-holding-notes", ["train", f"{W}/log", "--policy", "uniform", "--out", f"{W}/runplus", "--overwrite"], 1,
     r"runplus: a run folder that also holds notes\.txt, which bandit-log train never writes"),
    ("train-over-its-own-config", ["train", f"{W}/log", "--config", f"{W}/run/config.json", "--out", f"{W}/run", "--overwrite"], 1,
     r"--out .*run holds --config .*run/config\.json, an input of this command"),
    ("train-into-the-log-tables", ["train", f"{W}/log", "--policy", "uniform", "--out", f"{W}/log/decisions/run"], 1,
     r"--out .*log/decisions/run is inside LOG .*log, an input of this command"),
    ("train-into-another-log", ["train", f"{W}/log", "--policy", "uniform", "--out", f"{W}/other/outcomes/run"], 1,
     r"--out .*other/outcomes/run is inside the log .*other \(at outcomes/run\); a log holds only its own tables"),
    ("train-over-a-file", ["train", f"{W}/log", "--policy", "uniform", "--out", f"{W}/afile", "--overwrite"], 1,
     r"afile: exists and is a file; expected a run folder"),
    ("train-existing-run-no-overwrite", ["train", f"{W}/log", "--policy", "uniform", "--out", f"{W}/run"], 1,
     r"run exists; pass --overwrite to replace it"),
    # reprice: a new log, never inside the source (its help promises the source is not touched)
    ("reprice-into-the-source-tables", ["reprice", f"{W}/log", "--out", f"{W}/log/outcomes/priced"], 1,
     r"--out .*log/outcomes/priced is inside LOG .*log, an input of this command"),
    ("reprice-onto-the-source", ["reprice", f"{W}/log", "--out", f"{W}/log"], 1, r"log: a log already exists here"),
    ("reprice-onto-another-log", ["reprice", f"{W}/log", "--out", f"{W}/other"], 1, r"other: a log already exists here"),
    ("reprice-into-another-log", ["reprice", f"{W}/log", "--out", f"{W}/other/x"], 1, r"is inside the log .*other \(at x\)"),
    ("reprice-onto-a-run", ["reprice", f"{W}/log", "--out", f"{W}/run"], 1, NOT_LOG),
    # import: a new log
    ("import-into-a-log", IMPORT + ["--out", f"{W}/log/decisions/imported"], 1, r"is inside the log .*log \(at decisions/imported\)"),
    ("import-onto-a-model", IMPORT + ["--out", f"{W}/hf"], 1, r"hf: " + NOT_LOG),
    # build and decode: a log (resumed or appended to), never around or inside the models they read
    ("build-onto-the-target-model", BUILD + ["--out", f"{W}/hf"], 1, r"hf: " + NOT_LOG),
    ("build-into-the-target-model", BUILD + ["--out", f"{W}/hf/log"], 1, r"--out .*hf/log is inside the \[target\] model .*hf, an input"),
    ("build-into-a-log", BUILD + ["--out", f"{W}/other/outcomes/log"], 1, r"is inside the log .*other"),
    ("decode-into-the-run", DECODE + ["--out", f"{W}/run/decisions"], 1, r"--out .*run/decisions is inside --policy .*run, an input"),
    ("decode-into-a-log-table", DECODE + ["--out", f"{W}/log/decisions/new"], 1, r"is inside the log .*log \(at decisions/new\)"),
    # calibrate: a new JSON file, never inside a model or a log
    ("calibrate-into-the-target", ["calibrate", "--models", f"{W}/models.toml", "--out", f"{W}/hf/costs.json"], 1,
     r"is inside the \[target\] model .*hf, an input"),
    ("calibrate-into-a-log", ["calibrate", "--models", f"{W}/models.toml", "--out", f"{W}/log/costs.json"], 1,
     r"is inside the log .*log \(at costs\.json\)"),
    # reports
    ("evaluate-report-into-a-table", ["evaluate", f"{W}/log", "--report", f"{W}/log/outcomes"], 1,
     r"outcomes: a directory that is not empty and is not a report folder"),
    ("evaluate-report-into-the-log", ["evaluate", f"{W}/log", "--report", f"{W}/log/report"], 1, r"is inside LOG .*log, an input"),
    ("evaluate-report-onto-a-model", ["evaluate", f"{W}/log", "--report", f"{W}/hf"], 1, r"hf: a directory that is not empty and is not a report folder"),
    ("compare-report-into-the-run", ["compare", f"{W}/log", f"{W}/run", "--report", f"{W}/run/report"], 1, r"is inside RUN .*run, an input"),
    # prompts, drafts
    ("prompts-into-a-log", ["prompts", "--out", f"{W}/log/outcomes/p.parquet", "--per-domain", "1", "--domains", "code"], 1,
     r"is inside the log .*log \(at outcomes/p\.parquet\)"),
    ("prompts-overwrite-a-foreign-file", ["prompts", "--out", f"{W}/foreign.parquet", "--overwrite", "--per-domain", "1", "--domains", "code"], 1,
     r"foreign\.parquet: exists and is not a prompt set"),
    ("distill-onto-the-target", DISTILL + ["--out", f"{W}/hf"], 1, r"hf: a directory that is not empty and is not a distilled draft"),
    ("distill-onto-the-target-overwrite", DISTILL + ["--out", f"{W}/hf", "--overwrite"], 1, r"hf: a directory that is not empty and is not a distilled draft"),
    ("distill-into-the-target", DISTILL + ["--out", f"{W}/hf/draft"], 1, r"is inside --target .*hf, an input"),
    ("distill-into-a-log", DISTILL + ["--out", f"{W}/log/draft"], 1, r"is inside the log .*log \(at draft\)"),
    ("distill-around-its-prompts", ["drafts", "distill", "--target", f"{W}/hf", "--prompts", f"{W}/draft/p.parquet", "--domain", "x",
                                    "--out", f"{W}/draft"], 1, r"--out .*draft holds --prompts .*draft/p\.parquet, an input"),
    ("cluster-into-a-log", CLUSTER + ["--out", f"{W}/log/outcomes/c.parquet"], 1, r"is inside the log .*log"),
    ("cluster-over-a-foreign-file", CLUSTER + ["--out", f"{W}/foreign.parquet"], 1, r"foreign\.parquet: exists and is not a prompt table"),
    ("eval-rows-into-the-target", ["drafts", "eval", "--target", f"{W}/hf", "--draft", f"{W}/run", "--prompts", f"{W}/prompts.parquet",
                                   "--rows", f"{W}/hf/rows.parquet"], 1, r"--rows .*hf/rows\.parquet is inside --target .*hf, an input"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_bad_output_is_refused_and_nothing_changes(world, case):
    _, argv, status, pattern = case
    argv = [a.replace(W, str(world)) for a in argv]
    before = _tree(world)
    r = _invoke(*argv)
    assert r.exit_code == status, f"{' '.join(argv)}\nexit {r.exit_code}\n{r.output}"
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in r.output and len(errors) == 1, r.output
    assert re.search(pattern, errors[0]), f"{' '.join(argv)}\n{r.stderr}"
    assert _tree(world) == before, f"{' '.join(argv)} changed the files"


def test_the_table_covers_every_writing_command():
    covered = {c[1][0] if c[1][0] != "drafts" else f"drafts {c[1][1]}" for c in CASES}
    assert covered >= {"train", "reprice", "import", "build", "decode", "calibrate", "evaluate", "compare", "prompts",
                       "drafts distill", "drafts cluster", "drafts eval"}


# -- controls: the normal re-runs still work ----------------------------------------------------------
def test_train_overwrite_replaces_its_own_run_and_leaves_no_debris(world, tmp_path):
    out = tmp_path / "runs" / "ridge"
    assert _invoke("train", world / "log", "--policy", "regression", "--out", out, "--no-progress").exit_code == 0
    first = json.loads((out / "config.json").read_text())
    r = _invoke("train", world / "log", "--policy", "regression", "--set", "alpha=3", "--out", out, "--overwrite", "--no-progress")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["settings"]["alpha"] == 3 != first["settings"]["alpha"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["ridge"]  # no staging, no old copy, no checkpoints


def test_a_failed_overwrite_leaves_the_previous_run_intact(world, tmp_path, monkeypatch):
    import bandit.runs

    out = tmp_path / "run"
    assert _invoke("train", world / "log", "--policy", "uniform", "--out", out, "--no-progress").exit_code == 0
    before = _tree(out)
    real = bandit.runs._write_json

    def fail_at_metrics(path, obj):
        if Path(path).name == "metrics.json":
            raise OSError("disk full (simulated)")
        real(path, obj)

    monkeypatch.setattr(bandit.runs, "_write_json", fail_at_metrics)
    r = _invoke("train", world / "log", "--policy", "uniform", "--set", "seed=5", "--out", out, "--overwrite", "--no-progress")
    assert r.exit_code == 1 and "disk full" in r.stderr
    assert _tree(out) == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.tmp")]  # the half-written run is gone


def test_a_failed_import_leaves_nothing_and_the_corrected_rerun_works(world, tmp_path, monkeypatch):
    from logging_data.io import Log

    out = tmp_path / "imported"
    real = Log.append

    def fail(self, table, frame):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Log, "append", fail)
    r = _invoke(*[a.replace(W, str(world)) for a in IMPORT], "--out", out)
    assert r.exit_code == 1 and "disk full" in r.stderr
    assert list(tmp_path.iterdir()) == []  # no log, no hidden staging folder
    monkeypatch.setattr(Log, "append", real)
    r = _invoke(*[a.replace(W, str(world)) for a in IMPORT], "--out", out, "--policy-id", "corrected")
    assert r.exit_code == 0, r.output
    assert _invoke("validate", out).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imported"]


def test_reports_are_replaced_with_overwrite_and_prompt_tables_rewritten_in_place(world, tmp_path):
    rep = tmp_path / "report"
    for extra in ([], ["--overwrite"]):
        r = _invoke("evaluate", world / "log", "--estimator", "ips", "--report", rep, *extra)
        assert r.exit_code == 0, r.output
        before = _tree(rep)
        r = _invoke("evaluate", world / "log", "--estimator", "ips", "--report", rep)  # a report exists: --overwrite needed
        assert r.exit_code == 1 and "pass --overwrite to replace it" in r.stderr and _tree(rep) == before
    assert sorted(p.name for p in rep.iterdir()) == ["report.html", "report.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging folder, no old copy
    out = tmp_path / "c.parquet"
    for _ in range(2):
        r = _invoke("drafts", "cluster", "--prompts", world / "prompts.parquet", "--k", "2", "--out", out)
        assert r.exit_code == 0, r.output
    assert len(pd.read_parquet(out)) == 4


def test_validate_clean_waits_for_a_build_lock(world, tmp_path):
    from logging_data import open_log
    from logging_data.shards import Shard

    log = tmp_path / "log"
    shutil.copytree(world / "log", log)
    stale = log / "outcomes" / ".part-1.parquet.tmp"
    stale.write_bytes(b"half a part")
    opened = open_log(log)
    for shard in (None, Shard(0, 2)):
        with opened.writer("bandit-log build prompts.csv --models m.toml --out LOG", shard):
            r = _invoke("validate", log, "--clean")
        assert r.exit_code == 1 and stale.exists(), r.output
        assert re.search(r"writing this log .*bandit-log build prompts\.csv.*nothing was removed", r.stderr), r.stderr
    r = _invoke("validate", log, "--clean")
    assert r.exit_code == 0 and not stale.exists() and "removed 1 temporary file(s)" in r.stderr


def test_distill_debris_never_blocks_and_overwrite_replaces_only_a_draft(tiny_models, tmp_path, monkeypatch):
    import decoding.distill as D

    prompts = tmp_path / "p.parquet"
    words = ["the quick brown fox", "a draft model proposes tokens", "translate this sentence", "summarize the following text"]
    pd.DataFrame({"query_id": [f"q{i}" for i in range(4)], "prompt": words, "domain": ["d"] * 4,
                  "split": ["train"] * 4}).to_parquet(prompts, index=False)
    out = tmp_path / "drafts" / "d"
    base = ["drafts", "distill", "--target", tiny_models["target"], "--prompts", prompts, "--domain", "d", "--out", out,
            "--layers", "1", "--hidden", "target", "--steps", "2", "--batch-size", "2", "--max-new-tokens", "4", "--top-k", "4"]
    real = D.save_draft
    monkeypatch.setattr(D, "save_draft", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full (simulated)")))
    r = _invoke(*base, "--lr", "0.01")
    assert r.exit_code == 1 and "disk full" in r.stderr
    assert not out.exists()  # a failed run leaves nothing at --out ...
    monkeypatch.setattr(D, "save_draft", real)
    r = _invoke(*base, "--lr", "0.02")  # ... so the corrected re-run (other settings) is not blocked
    assert r.exit_code == 0, r.output
    assert (out / "model.safetensors").is_file() and (out / "distill.json").is_file()
    before = _tree(out)
    r = _invoke(*base, "--lr", "0.03")
    assert r.exit_code == 1 and "other settings (lr: 0.02 -> 0.03" in r.stderr and "--overwrite" in r.stderr
    assert _tree(out) == before
    (out / "notes.txt").write_text("mine")
    r = _invoke(*base, "--lr", "0.03", "--overwrite")
    assert r.exit_code == 1 and "also holds notes.txt" in r.stderr
    (out / "notes.txt").unlink()
    r = _invoke(*base, "--lr", "0.03", "--overwrite")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "distill.json").read_text())["config"]["lr"] == 0.03
    assert sorted(p.name for p in out.parent.iterdir() if not p.name.startswith(".d.partial-")) == ["d"]
