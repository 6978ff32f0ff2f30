"""Nothing a user does loses data, round 3 (issue 30): one table over every surface the issue lists.

Each case is (id, command line, outcome class, pattern). Every case runs in-process through the
CLI's entry point on one shared folder of inputs (logs, runs, a Hugging Face folder, a distilled
draft, prompt files, cost profiles, logged feedback, policy tables, drafter artifacts, the tiny
models and a model cache), and every file under it is hashed before and after. The outcome
classes:

- ``REFUSED``: exit status 1 (or 2, click's usage error) and exactly one error line, matching the
  pattern, which names the file, option, column or key and what was expected;
- ``WARNED``: exit status 0 and a ``warning:`` line matching the pattern (the numbers said);
- ``OK``: exit status 0 (valid input handled right; the pattern, when given, is matched in the
  output, and a check may look at what was written).

Every case, whatever its class: no input file changed, added or removed (0 destructive), no
traceback and no Python warning source line in stderr; a bad input never exits 0 without a
message (0 silent) and its message names the thing (0 vague). A case's own output goes to a
fresh folder outside the inputs.

Then the controls the table cannot express: a failed build or decode into a new --out leaves
nothing that blocks the corrected re-run while a log with rows is resumed as before; a failed
report or overwrite keeps the old output.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from bandit.testing import write_simulated_log

REFUSED, WARNED, OK = "refused", "warned", "ok"
W, M, O = "{w}", "{m}", "{o}"  # the inputs' folder, the tiny models' folder, the case's own output folder
SITE = sysconfig.get_paths()["purelib"]
WARNING_SOURCE = re.compile(r"^\s*\S+\.py:\d+: \w*Warning|^\s+warnings\.warn\(", re.M)


def _tree(*roots: Path) -> dict[str, str]:
    """Every file and folder under ``roots``: path -> sha256 of its bytes ("dir" for folders). Lock files
    and the validation cache (``.validated.json``, what reading a log records) are left out."""
    found = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.name.endswith(".lock") or p.name == ".validated.json":
                continue
            found[str(p)] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# -- the inputs -----------------------------------------------------------------------------------
def _profile(calibration: dict, **change) -> dict:
    record = {**calibration, **change}
    for key, value in list(record.items()):
        if value is _DROP:
            del record[key]
    return {"calibration": record, "models": {"target": "packaged:smollm2-135m"}}


_DROP = object()


def _write_feedback(root: Path) -> None:
    """Logged bandit feedback, good and bad (OBP's column names), and target policy tables."""
    rng = np.random.default_rng(0)
    n, k = 90, 3
    x = rng.normal(size=(n, 3))
    action = np.arange(n) % k
    good = pd.DataFrame({"action": action, "reward": rng.binomial(1, 0.3, n).astype(float), "pscore": 1 / k,
                         "user_feature_0": x[:, 0], "user_feature_1": x[:, 1], "user_feature_2": x[:, 2],
                         "segment": (x[:, 0] > 0).astype(int), "pos": 0, "uid": [f"u{i}" for i in range(n)]})
    fb = root / "fb"
    fb.mkdir()
    good.to_csv(fb / "good.csv", index=False)
    good.to_parquet(fb / "good.parquet", index=False)
    variants = {
        "p09": good.assign(pscore=0.9),
        "p0": good.assign(pscore=[0.0] + [1 / k] * (n - 1)),
        "p2": good.assign(pscore=[2.0] + [1 / k] * (n - 1)),
        "pnan": good.assign(pscore=[np.nan] + [1 / k] * (n - 1)),
        "det3": good.assign(pscore=1.0),
        "pos17": good.assign(pos=[0, 1.7] + [0] * (n - 2)),
        "pos270": good.assign(pos=[str(2**70)] + ["0"] * (n - 1)),
        "posneg": good.assign(pos=[0, 0, -1] + [0] * (n - 3)),
        "position": good.assign(position=0),
        "idempty": good.assign(uid=["u0", None] + [f"u{i}" for i in range(2, n)]),
        "iddup": good.assign(uid=["u0", "u0"] + [f"u{i}" for i in range(2, n)]),
        "r1e300": good.assign(reward=[1e300] + [0.0] * (n - 1)),
        "rinf": good.assign(reward=[float("inf")] + [0.0] * (n - 1)),
        "rtext": good.assign(reward=["lots"] + [0.0] * (n - 1)),
        "actnan": good.assign(action=[None] + list(action[1:])),
    }
    for name, frame in variants.items():
        frame.to_csv(fb / f"{name}.csv", index=False)
    (fb / "empty.csv").write_text("action,reward,pscore\n")
    (fb / "notcsv.csv").write_bytes(b"\x00\x01\x02 not a table")
    (fb / "ragged.csv").write_text("action,reward,pscore\n0,1,0.5\n1,0,0.5,7,8\n")
    # target policies as action probabilities
    pi = np.where(x[:, :1] > 0, [[0.1, 0.8, 0.1]], [[0.8, 0.1, 0.1]])
    pd.DataFrame({str(a): pi[:, a] for a in range(k)}).to_csv(fb / "target.csv", index=False)
    pd.DataFrame({"arm": ["0", "1", "2"], "0": [1.0, 0, 0], "1": [0, 1.0, 0], "2": [0, 0, 1.0]}).to_csv(fb / "by-arm.csv", index=False)
    pd.DataFrame({"reward": [0.0, 1.0], "0": [1.0, 0], "1": [0, 1.0], "2": [0, 0.0]}).to_csv(fb / "by-reward.csv", index=False)
    pd.DataFrame({"segment": [0, 1], "0": [0.5, 0.1], "1": [0.5, 0.8], "2": [0.0, 0.1]}).to_csv(fb / "by-segment.csv", index=False)
    pd.DataFrame({"0": pi[:, 0], "1": pi[:, 1]}).to_csv(fb / "two-arms.csv", index=False)
    pd.DataFrame({"0": [0.9] * n, "1": [0.9] * n, "2": [0.9] * n}).to_csv(fb / "sums.csv", index=False)
    pd.DataFrame({"0": [0.5] * (n - 5), "1": [0.5] * (n - 5), "2": [0.0] * (n - 5)}).to_csv(fb / "short.csv", index=False)
    np.save(fb / "pickled.npy", np.array([{"a": 1}] * n, dtype=object), allow_pickle=True)
    np.save(fb / "target.npy", pi)
    np.save(fb / "bad-shape.npy", pi[:, :2])


def _write_artifacts(root: Path, tiny_models: dict) -> None:
    """Drafter artifacts made for the tiny target, and each way one goes wrong."""
    art = root / "art"
    art.mkdir()
    head, store = Path(tiny_models["head"]), Path(tiny_models["datastore"])

    def variant(name: str, src: Path, change) -> None:
        shutil.copytree(src, art / name)
        change(art / name)

    def edit(file: str, **fields):
        def change(folder: Path) -> None:
            record = json.loads((folder / file).read_text())
            record.update(fields)
            (folder / file).write_text(json.dumps(record))
        return change

    def tokenizer_of_another(file: str):
        def change(folder: Path) -> None:
            record = json.loads((folder / file).read_text())
            record["made_for"]["tokenizer"]["sha256"] = "0" * 64
            (folder / file).write_text(json.dumps(record))
        return change

    variant("head-badjson", head, lambda f: (f / "head.json").write_text("{not json"))
    variant("head-huge", head, edit("head.json", hidden=10**9))
    variant("head-other-tokenizer", head, tokenizer_of_another("head.json"))
    variant("head-other-target", head, lambda f: edit("head.json", made_for={
        **json.loads((f / "head.json").read_text())["made_for"], "target": str(root / "elsewhere")})(f))
    variant("head-pickled", head, lambda f: (f / "head.safetensors").write_bytes(b"\x80\x04\x95" + b"\x00" * 64))
    variant("head-truncated", head, lambda f: (f / "head.safetensors").write_bytes((f / "head.safetensors").read_bytes()[:-40]))
    variant("store-other-tokenizer", store, tokenizer_of_another("datastore.json"))
    variant("store-pickled", store, lambda f: np.savez(f / "datastore.npz", tokens=np.asarray([[1], "x"], dtype=object),
                                                       lengths=np.asarray([1, 1])))
    variant("store-badjson", store, lambda f: (f / "datastore.json").write_text("[1, 2"))
    (art / "head-missing").mkdir()


def _models(path: Path, target: str, *arms: str) -> None:
    path.write_text(f'[target]\npath = "{target}"\ndevice = "cpu"\nmax_new_tokens = 4\nchat_template = false\n\n'
                    '[[arms]]\nname = "plain"\nkind = "none"\n\n[[arms]]\nname = "lookup"\nkind = "prompt_lookup"\n'
                    'prompt_lookup_num_tokens = 2\n' + "".join(f"\n[[arms]]\n{a}\n" for a in arms))


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("round3")
    log = root / "log"
    write_simulated_log(log, n_prompts=40, seed=1, validation_fraction=0.2)
    r = _invoke("train", log, "--policy", "regression", "--out", root / "run", "--no-progress")
    assert r.exit_code == 0, r.output
    shutil.copytree(log, root / "other")
    hf = root / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (hf / "model.safetensors").write_bytes(b"\x00" * 64)
    project = root / "project"
    project.mkdir()
    (project / "config.json").write_text("{}")
    shutil.copytree(log, project / "log")
    shutil.copytree(root / "run", root / "runplus")
    (root / "runplus" / "notes.txt").write_text("mine")
    draft = root / "draft"
    draft.mkdir()
    (draft / ".settings.json").write_text("{}")
    prompts = pd.DataFrame({"query_id": ["a", "b", "c", "d"], "prompt": ["the cat sat on the mat the cat", "def add ( a , b ) :",
                                                                           "the quick brown fox", "a draft model proposes tokens"],
                            "domain": ["x", "code", "x", "code"], "split": ["train", "train", "validation", "test"]})
    prompts.to_parquet(draft / "p.parquet", index=False)
    prompts.to_parquet(root / "prompts.parquet", index=False)
    prompts.to_csv(root / "prompts.csv", index=False)
    prompts.rename(columns={"prompt": "text"}).to_csv(root / "prompts-text-col.csv", index=False)
    prompts.assign(prompt=["the cat", "", "a fox", "a cow"]).to_csv(root / "prompts-empty.csv", index=False)
    prompts.assign(query_id=["a", "a", "c", "d"]).to_csv(root / "prompts-dup.csv", index=False)
    # prompt text files: one prompt a line, whatever else the text holds
    (root / "odd.txt").write_bytes("\ufeffthe cat sat\u2028on the mat\nthe quick\x0cbrown fox\r\n\n  \na draft model\u2029proposes\n"
                                   .encode("utf-8"))
    (root / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    pd.DataFrame({"k": [1, 2]}).to_parquet(root / "foreign.parquet")
    (root / "afile").write_text("not a folder")
    (root / "notes.json").write_text(json.dumps({"mine": True}))
    # the model cache, as packaged models leave it, and tiny models files
    cache = root / "cache"
    (cache / "models" / "smollm2-135m").mkdir(parents=True)
    (cache / "models" / "smollm2-135m" / "config.json").write_text("{}")
    target = tiny_models["target"]
    _models(root / "models.toml", target)
    _models(root / "models-hf.toml", str(hf))
    _write_artifacts(root, tiny_models)
    art = root / "art"
    for name in ("head-badjson", "head-huge", "head-other-tokenizer", "head-other-target", "head-pickled", "head-truncated",
                 "head-missing"):
        _models(root / f"models-{name}.toml", target, f'name = "head"\nkind = "head"\nhead = "{art / name}"\nnum_assistant_tokens = 2')
    for name in ("store-other-tokenizer", "store-pickled", "store-badjson"):
        _models(root / f"models-{name}.toml", target, f'name = "s"\nkind = "datastore"\ndatastore = "{art / name}"')
    _models(root / "models-head.toml", target, f'name = "head"\nkind = "head"\nhead = "{tiny_models["head"]}"\nnum_assistant_tokens = 2')
    _models(root / "models-store.toml", target, f'name = "s"\nkind = "datastore"\ndatastore = "{tiny_models["datastore"]}"')
    _models(root / "models-k-absurd.toml", target, 'name = "d"\nkind = "draft"\ndraft = "' + tiny_models["draft"] + '"\n'
            'num_assistant_tokens = 100000')
    _models(root / "models-other-tok.toml", target, 'name = "d"\nkind = "draft"\ndraft = "' + tiny_models["other"] + '"')
    _models(root / "models-missing-target.toml", str(root / "no-such-model"))
    # a measured log with counts (reprice's input), a log reprice made, a log import made
    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.pricing import Calibration
    from decoding.models import load_models_config

    cal = Calibration(target_step_s=0.01, arm_step_s={}, verify_token_s=0.001, round_overhead_s=0.004, plain_step_s=0.01)
    build_log(root / "prompts.parquet", load_models_config(root / "models.toml"), root / "counted",
              BuildConfig(reward=reward_definition("speedup_count")), threads=1, progress=False, calibration=cal)
    for args in (["reprice", root / "counted", "--out", root / "repriced"],
                 ["reprice", root / "counted", "--out", root / "repriced-plus"],
                 ["reprice", root / "counted", "--out", root / "repriced-more"]):
        r = _invoke(*args)
        assert r.exit_code == 0, r.output
    (root / "repriced-plus" / "notes.txt").write_text("mine")
    _write_feedback(root)
    fb = root / "fb"
    common = ["--action", "action", "--reward", "reward", "--propensity", "pscore"]
    for name in ("imported", "imported-plus", "imported-more"):
        r = _invoke("import", fb / "good.csv", "--out", root / name, *common, "--context", "user_feature_*")
        assert r.exit_code == 0, r.output
    (root / "imported-plus" / "notes.txt").write_text("mine")
    from logging_data import open_log

    for name, table in (("imported-more", "decisions"), ("repriced-more", "outcomes")):  # rows another command appended
        more = open_log(root / name)
        frame = more.read(table)
        frame["query_id"] = frame["query_id"].astype(str) + "-more"
        more.append(table, frame)
    calibration = json.loads((root / "counted" / "_log.json").read_text())["extra"]["calibration"]
    profiles = root / "profiles"
    profiles.mkdir()
    for name, change in {"good": {}, "zero": {"target_step_s": 0.0}, "negative": {"verify_token_s": -0.001},
                         "huge": {"target_step_s": 1e300}, "no-verify": {"verify_token_s": _DROP},
                         "no-round": {"round_overhead_s": _DROP}, "no-plain": {"plain_step_s": _DROP},
                         "string": {"target_step_s": "0.3"}, "list": {"arm_step_s": [1, 2]}}.items():
        (profiles / f"{name}.json").write_text(json.dumps(_profile(calibration, **change)))
    drafters = {**calibration, "arm_step_s": {**calibration["arm_step_s"], "head": 0.001, "s": 0.0, "d": 0.002}}
    (profiles / "drafters.json").write_text(json.dumps({"calibration": drafters}))  # prices the drafting arms too
    (profiles / "nan.json").write_text(json.dumps(_profile(calibration, target_step_s=float("nan"))))
    (profiles / "notjson.json").write_text("target_step_s = 0.01")
    (profiles / "array.json").write_text("[0.01, 0.02]")
    # reports, as evaluate writes them
    r = _invoke("evaluate", log, "--estimator", "ips", "--report", root / "report")
    assert r.exit_code == 0, r.output
    shutil.copytree(root / "report", root / "reportplus")
    (root / "reportplus" / "notes.txt").write_text("mine")
    outs = tmp_path_factory.mktemp("round3_out")
    return {"root": root, "models": Path(tiny_models["root"]), "outs": outs}


# -- the table ------------------------------------------------------------------------------------
LOG, RUN = f"{W}/log", f"{W}/run"
FB = f"{W}/fb"
IMPORT = ["--action", "action", "--reward", "reward", "--propensity", "pscore"]
BUILD = ["build", f"{W}/prompts.parquet", "--models", f"{W}/models.toml"]
DECODE = ["decode", f"{W}/prompts.parquet", "--policy", RUN, "--models", f"{W}/models.toml"]
DISTILL = ["drafts", "distill", "--target", f"{W}/hf", "--prompts", f"{W}/prompts.parquet", "--domain", "x"]
CLUSTER = ["drafts", "cluster", "--prompts", f"{W}/prompts.parquet", "--k", "2"]
EVAL_TABLE = ["evaluate", f"{W}/imported", "--estimator", "ips", "--policy-table"]
ALIGN = ["--alignment-only", "--reward", "speedup_count", "--calibration", f"{W}/counted", "--threads", "1"]
MEASURED = ["--reward", "speedup_count", "--calibration", f"{W}/profiles/drafters.json", "--threads", "1", "--limit", "2"]
NOT_EMPTY = r"a directory that is not empty and is not a"
IN_CACHE = r"is inside the project's model cache .*cache \(\$DRAFTPICK_CACHE"
IN_SITE = r"is inside the installed packages' folder .*site-packages"
PROFILES = f"{W}/profiles"


def _lines(*expected: str):
    """A check: the built log holds exactly the ``expected`` prompts: a text file is split on line ends only
    (not on a form feed or U+2028/U+2029 inside a line), without its BOM, carriage returns or blank lines."""
    def check(out: Path) -> None:
        from logging_data import open_log

        prompts = open_log(out / "log").read("outcomes").drop_duplicates("query_id")["prompt"].tolist()
        assert sorted(prompts) == sorted(expected), prompts
    return check


def _log_rows(table: str, n: int, name: str = "log"):
    """A check: the log ``name`` written in the case's folder is valid and holds ``n`` rows of ``table``."""
    def check(out: Path) -> None:
        from logging_data import open_log, validate_log

        assert validate_log(out / name).ok and open_log(out / name).n_rows(table) == n
    return check


def _report(out: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]


# (id, argv, class, pattern, check of the output folder or None)
CASES: list[tuple] = []


def case(id_: str, argv: list, kind: str, pattern: str | None = None, check=None) -> None:
    CASES.append((id_, argv, kind, pattern, check))


# 1. writes that destroy or corrupt: every writing command x every bad place
for name, where, pattern in [
    ("the-log", LOG, r"log: is a log \(it has _log\.json\), not a run folder"),
    ("a-project-holding-the-log", f"{W}/project", r"project: " + NOT_EMPTY + r" run folder .*it holds config\.json, log"),
    ("a-hf-model", f"{W}/hf", r"hf: " + NOT_EMPTY + r" run folder .*config\.json, model\.safetensors"),
    ("a-run-holding-notes", f"{W}/runplus", r"runplus: a run folder that also holds notes\.txt, which bandit-log train never writes"),
    ("a-report", f"{W}/report", r"report: " + NOT_EMPTY + r" run folder"),
    ("an-imported-log", f"{W}/imported", r"imported: is a log \(it has _log\.json\), not a run folder"),
    ("a-draft", f"{W}/draft", r"draft: " + NOT_EMPTY + r" run folder .*it holds \.settings\.json, p\.parquet"),
    ("a-file", f"{W}/afile", r"afile: exists and is a file; expected a run folder"),
    ("the-model-cache", f"{W}/cache/runs/r", IN_CACHE),
    ("a-cached-model", f"{W}/cache/models/smollm2-135m", IN_CACHE),
    ("site-packages", f"{SITE}/draftpick-run", IN_SITE),
]:
    case(f"train-over-{name}", ["train", LOG, "--policy", "uniform", "--out", where, "--overwrite"], REFUSED, pattern)
case("train-into-the-log-tables", ["train", LOG, "--policy", "uniform", "--out", f"{LOG}/decisions/run"], REFUSED,
     r"--out .*log/decisions/run is inside LOG .*log, an input of this command")
case("train-into-another-log", ["train", LOG, "--policy", "uniform", "--out", f"{W}/other/outcomes/run"], REFUSED,
     r"is inside the log .*other \(at outcomes/run\)")
case("train-existing-run-without-overwrite", ["train", LOG, "--policy", "uniform", "--out", RUN], REFUSED,
     r"run exists; pass --overwrite to replace it")
case("train-over-its-own-config", ["train", LOG, "--config", f"{RUN}/config.json", "--out", RUN, "--overwrite"], REFUSED,
     r"--out .*run holds --config .*run/config\.json, an input")
case("train-new-run", ["train", LOG, "--policy", "uniform", "--out", f"{O}/run", "--no-progress"], OK)

REPRICE = ["reprice", f"{W}/counted", "--out"]
for name, where, extra, pattern in [
    ("into-the-source-tables", f"{W}/counted/outcomes/priced", [], r"--out .*counted/outcomes/priced is inside LOG .*counted, an input"),
    ("onto-the-source", f"{W}/counted", [], r"counted: a log already exists here, not one bandit-log reprice made"),
    ("onto-the-source-overwrite", f"{W}/counted", ["--overwrite"], r"counted: a log already exists here, not one bandit-log reprice made"),
    ("onto-another-log", f"{W}/other", ["--overwrite"], r"other: a log already exists here, not one bandit-log reprice made; it is never replaced"),
    ("onto-an-imported-log", f"{W}/imported", ["--overwrite"], r"imported: a log already exists here, not one bandit-log reprice made"),
    ("into-another-log", f"{W}/other/x", [], r"is inside the log .*other \(at x\)"),
    ("onto-a-run", RUN, ["--overwrite"], r"run: " + NOT_EMPTY + r" log made by bandit-log reprice"),
    ("onto-a-hf-model", f"{W}/hf", ["--overwrite"], r"hf: " + NOT_EMPTY),
    ("onto-a-file", f"{W}/afile", [], r"Invalid value for '--out': Directory .*afile' is a file"),
    ("its-own-without-overwrite", f"{W}/repriced", [], r"repriced exists; pass --overwrite to replace it"),
    ("its-own-holding-notes", f"{W}/repriced-plus", ["--overwrite"], r"repriced-plus: a log made by bandit-log reprice that also holds notes\.txt"),
    ("its-own-appended-to", f"{W}/repriced-more", ["--overwrite"],
     r"repriced-more: not replaced: 1 part\(s\) of outcomes were appended after bandit-log reprice wrote it"),
    ("into-the-cache", f"{W}/cache/priced", [], IN_CACHE),
    ("into-site-packages", f"{SITE}/priced", [], IN_SITE),
]:
    case(f"reprice-{name}", REPRICE + [where, *extra], REFUSED, pattern)
case("reprice-new", REPRICE + [f"{O}/priced", "--reward", "time_saved_count"], OK, None, _log_rows("outcomes", 8, "priced"))

IMPORTING = ["import", f"{FB}/good.csv", *IMPORT, "--out"]
for name, where, extra, pattern in [
    ("into-a-log", f"{LOG}/decisions/imported", [], r"is inside the log .*log \(at decisions/imported\)"),
    ("onto-a-hf-model", f"{W}/hf", ["--overwrite"], r"hf: " + NOT_EMPTY + r" log made by bandit-log import"),
    ("onto-a-built-log", f"{W}/other", ["--overwrite"], r"other: a log already exists here, not one bandit-log import made"),
    ("onto-a-repriced-log", f"{W}/repriced", ["--overwrite"], r"repriced: a log already exists here, not one bandit-log import made"),
    ("onto-a-run", RUN, [], r"run: " + NOT_EMPTY + r" log made by bandit-log import"),
    ("around-its-file", FB, [], r"fb: " + NOT_EMPTY),
    ("its-own-without-overwrite", f"{W}/imported", [], r"imported exists; pass --overwrite to replace it"),
    ("its-own-holding-notes", f"{W}/imported-plus", ["--overwrite"], r"imported-plus: a log made by bandit-log import that also holds notes\.txt"),
    ("its-own-appended-to", f"{W}/imported-more", ["--overwrite"],
     r"imported-more: not replaced: 1 part\(s\) of decisions were appended after bandit-log import wrote it"),
    ("into-the-cache", f"{W}/cache/log", [], IN_CACHE),
    ("into-site-packages", f"{SITE}/imported", [], IN_SITE),
    ("onto-a-file", f"{W}/afile", [], r"afile"),
]:
    case(f"import-{name}", IMPORTING + [where, *extra], REFUSED, pattern)
case("import-new", IMPORTING + [f"{O}/log", "--context", "user_feature_*"], OK, None, _log_rows("decisions", 90))

for name, argv, pattern in [
    ("onto-a-hf-model", BUILD + ["--out", f"{W}/hf"], r"hf: " + NOT_EMPTY + r" log"),
    ("into-the-target-model", ["build", f"{W}/prompts.parquet", "--models", f"{W}/models-hf.toml", "--out", f"{W}/hf/log"],
     r"--out .*hf/log is inside the \[target\] model .*hf, an input"),
    ("into-a-log", BUILD + ["--out", f"{W}/other/outcomes/log"], r"is inside the log .*other"),
    ("onto-a-run", BUILD + ["--out", RUN], r"run: " + NOT_EMPTY + r" log"),
    ("around-its-prompts", ["build", f"{W}/draft/p.parquet", "--models", f"{W}/models.toml", "--out", f"{W}/draft"],
     r"draft: " + NOT_EMPTY + r" log"),
    ("around-the-model-cache", BUILD + ["--out", W], r"round3\d* holds the project's model cache .*cache \(\$DRAFTPICK_CACHE\)"),
    ("onto-its-prompts", BUILD + ["--out", f"{W}/prompts.parquet"], r"prompts\.parquet"),
    ("into-the-cache", BUILD + ["--out", f"{W}/cache/log"], IN_CACHE),
    ("onto-a-cached-model", BUILD + ["--out", f"{W}/cache/models/smollm2-135m"], IN_CACHE),
    ("into-site-packages", BUILD + ["--out", f"{SITE}/log"], IN_SITE),
    ("resume-with-other-arms", BUILD + ["--out", LOG], r"log: the existing log's arms .* differ from the models file's"),
    ("resume-a-log-of-another-reward", BUILD + ["--out", f"{W}/counted", "--reward", "align_accept"],
     r"counted: the existing log's reward .* differs from the requested"),
    ("into-the-tiny-target", BUILD + ["--out", f"{M}/target/log"], r"is inside the \[target\] model .*target, an input"),
]:
    case(f"build-{name}", argv, REFUSED, pattern)

for name, where, pattern in [
    ("into-the-run", f"{RUN}/decisions", r"--out .*run/decisions is inside --policy .*run, an input"),
    ("into-a-log-table", f"{LOG}/decisions/new", r"is inside the log .*log \(at decisions/new\)"),
    ("onto-a-hf-model", f"{W}/hf", r"hf: " + NOT_EMPTY + r" log"),
    ("into-the-cache", f"{W}/cache/log", IN_CACHE),
    ("onto-a-report", f"{W}/report", r"report: " + NOT_EMPTY + r" log"),
]:
    case(f"decode-{name}", DECODE + ["--out", where], REFUSED, pattern)

CALIBRATE = ["calibrate", "--models", f"{W}/models.toml", "--out"]
for name, where, extra, pattern in [
    ("into-the-target", f"{M}/target/costs.json", [], r"is inside the \[target\] model .*target, an input"),
    ("into-a-log", f"{LOG}/costs.json", [], r"is inside the log .*log \(at costs\.json\)"),
    ("onto-a-profile", f"{PROFILES}/good.json", [], r"good\.json exists; pass --overwrite to replace it"),
    ("onto-foreign-json", f"{W}/notes.json", ["--overwrite"], r"notes\.json: exists and is not a cost profile written by bandit-log calibrate"),
    ("onto-the-models-file", f"{W}/models.toml", ["--overwrite"], r"models\.toml: a cost profile is a JSON file"),
    ("into-the-cache", f"{W}/cache/costs.json", [], IN_CACHE),
    ("into-site-packages", f"{SITE}/costs.json", [], IN_SITE),
    ("into-a-missing-folder", f"{W}/nowhere/costs.json", [], r"nowhere/costs\.json: the folder .*nowhere does not exist"),
]:
    case(f"calibrate-{name}", CALIBRATE + [where, *extra], REFUSED, pattern)

for name, argv, kind, pattern in [
    ("into-a-table", ["--report", f"{LOG}/outcomes"], REFUSED, r"outcomes: " + NOT_EMPTY + r" report folder"),
    ("into-the-log", ["--report", f"{LOG}/report"], REFUSED, r"is inside LOG .*log, an input"),
    ("onto-a-hf-model", ["--report", f"{W}/hf", "--overwrite"], REFUSED, r"hf: " + NOT_EMPTY + r" report folder"),
    ("onto-a-run", ["--report", RUN, "--overwrite"], REFUSED, r"run: " + NOT_EMPTY + r" report folder"),
    ("onto-a-report-without-overwrite", ["--report", f"{W}/report"], REFUSED, r"report exists; pass --overwrite to replace it"),
    ("onto-a-report-holding-notes", ["--report", f"{W}/reportplus", "--overwrite"], REFUSED,
     r"reportplus: a report folder that also holds notes\.txt, which bandit-log evaluate or compare --report never writes"),
    ("onto-a-file", ["--report", f"{W}/afile"], REFUSED, r"afile"),
    ("into-the-cache", ["--report", f"{W}/cache/report"], REFUSED, IN_CACHE),
    ("new", ["--report", f"{O}/report"], OK, r"wrote .*report\.html"),
]:
    case(f"evaluate-report-{name}", ["evaluate", LOG, "--estimator", "ips", *argv], kind, pattern,
         (lambda out: _report(out / "report")) if kind == OK else None)
for name, argv, kind, pattern in [
    ("into-the-run", ["--report", f"{RUN}/report"], REFUSED, r"is inside RUN .*run, an input"),
    ("onto-a-report-without-overwrite", ["--report", f"{W}/report"], REFUSED, r"report exists; pass --overwrite to replace it"),
    ("onto-a-hf-model", ["--report", f"{W}/hf", "--overwrite"], REFUSED, r"hf: " + NOT_EMPTY + r" report folder"),
    ("onto-a-report-holding-notes", ["--report", f"{W}/reportplus", "--overwrite"], REFUSED, r"reportplus: a report folder that also holds notes\.txt"),
    ("new", ["--report", f"{O}/report"], OK, r"wrote .*report\.html"),
]:
    case(f"compare-report-{name}", ["compare", LOG, RUN, "--estimator", "ips", *argv], kind, pattern,
         (lambda out: _report(out / "report")) if kind == OK else None)

for name, argv, pattern in [
    ("prompts-into-a-log", ["prompts", "--out", f"{LOG}/outcomes/p.parquet", "--per-domain", "1", "--domains", "code"],
     r"is inside the log .*log \(at outcomes/p\.parquet\)"),
    ("prompts-overwrite-a-foreign-file", ["prompts", "--out", f"{W}/foreign.parquet", "--overwrite", "--per-domain", "1", "--domains", "code"],
     r"foreign\.parquet: exists and is not a prompt set"),
    ("prompts-into-the-cache", ["prompts", "--out", f"{W}/cache/p.parquet", "--per-domain", "1", "--domains", "code"], IN_CACHE),
    ("distill-onto-the-target", DISTILL + ["--out", f"{W}/hf"], r"hf: " + NOT_EMPTY + r" distilled draft"),
    ("distill-onto-the-target-overwrite", DISTILL + ["--out", f"{W}/hf", "--overwrite"], r"hf: " + NOT_EMPTY + r" distilled draft"),
    ("distill-into-the-target", DISTILL + ["--out", f"{W}/hf/draft"], r"is inside --target .*hf, an input"),
    ("distill-into-a-log", DISTILL + ["--out", f"{LOG}/draft"], r"is inside the log .*log \(at draft\)"),
    ("distill-around-its-prompts", ["drafts", "distill", "--target", f"{W}/hf", "--prompts", f"{W}/draft/p.parquet", "--domain", "x",
                                    "--out", f"{W}/draft"], r"--out .*draft holds --prompts .*draft/p\.parquet, an input"),
    ("distill-into-the-cache", DISTILL + ["--out", f"{W}/cache/models/d"], IN_CACHE),
    ("cluster-into-a-log", CLUSTER + ["--out", f"{LOG}/outcomes/c.parquet"], r"is inside the log .*log"),
    ("cluster-over-a-foreign-file", CLUSTER + ["--out", f"{W}/foreign.parquet"], r"foreign\.parquet: exists and is not a prompt table"),
    ("cluster-into-the-cache", CLUSTER + ["--out", f"{W}/cache/c.parquet"], IN_CACHE),
    ("eval-rows-into-the-target", ["drafts", "eval", "--target", f"{W}/hf", "--draft", RUN, "--prompts", f"{W}/prompts.parquet",
                                   "--rows", f"{W}/hf/rows.parquet"], r"--rows .*hf/rows\.parquet is inside --target .*hf, an input"),
]:
    case(name, argv, REFUSED, pattern)

# 2. cost profiles: trusted only when every field is a finite, positive number of seconds
for name, pattern in [
    ("zero", r"zero\.json.*target_step_s"), ("negative", r"negative\.json.*verify_token_s"), ("nan", r"nan\.json.*target_step_s"),
    ("huge", r"huge\.json.*target_step_s"), ("no-verify", r"no-verify\.json.*verify_token_s"),
    ("no-round", r"no-round\.json.*round_overhead_s"), ("no-plain", r"no-plain\.json.*plain_step_s"),
    ("string", r"string\.json.*target_step_s.*'0\.3' \(str\)"), ("list", r"list\.json.*arm_step_s"),
    ("notjson", r"notjson\.json: not a JSON document"), ("array", r"array\.json: expected a JSON object; found list"),
]:
    case(f"reprice-profile-{name}", REPRICE + [f"{O}/priced", "--calibration", f"{PROFILES}/{name}.json"], REFUSED, pattern)
case("reprice-profile-missing", REPRICE + [f"{O}/priced", "--calibration", f"{PROFILES}/absent.json"], REFUSED,
     r"absent\.json: no such file or log directory")
case("reprice-profile-a-folder", REPRICE + [f"{O}/priced", "--calibration", RUN], REFUSED, r"run: a directory, but not a log")
case("reprice-profile-good", REPRICE + [f"{O}/priced", "--calibration", f"{PROFILES}/good.json"], OK, None, _log_rows("outcomes", 8, "priced"))
case("build-profile-zero", BUILD + ["--out", f"{O}/log", "--calibration", f"{PROFILES}/zero.json"], REFUSED, r"zero\.json.*target_step_s")
case("build-profile-string", BUILD + ["--out", f"{O}/log", "--calibration", f"{PROFILES}/string.json"], REFUSED, r"string\.json.*target_step_s")

# 3. bandit feedback that contradicts itself, at import and at evaluate
for name, extra, kind, pattern in [
    ("p09", [], WARNED, r"--propensity 'pscore' disagrees with how often the actions are logged: arm '0' is logged in 30 of 90 rows"),
    ("p0", [], REFUSED, r"p0\.csv: --propensity 'pscore'.*line 2"),
    ("p2", [], REFUSED, r"p2\.csv: --propensity 'pscore'.*line 2"),
    ("pnan", [], REFUSED, r"pnan\.csv: --propensity 'pscore'.*line 2"),
    ("det3", [], REFUSED, r"det3\.csv: --propensity 'pscore' contradicts the logged actions: .*propensity 1 \(a deterministic choice\)"),
    ("pos17", ["--position", "pos"], REFUSED, r"pos17\.csv: --position 'pos' must hold non-negative integers .*line 3: '1\.7'"),
    ("pos270", ["--position", "pos"], REFUSED, r"--position 'pos' must hold non-negative integers .*'1180591620717411303424'"),
    ("posneg", ["--position", "pos"], REFUSED, r"--position 'pos' must hold non-negative integers .*line 4: '-1'"),
    ("position", ["--context", "position"], REFUSED, r"--context 'position' would be stored as x_position"),
    ("idempty", ["--id-col", "uid"], REFUSED, r"idempty\.csv: --id-col 'uid' is empty in 1 row\(s\), first at line 3"),
    ("iddup", ["--id-col", "uid"], REFUSED, r"iddup\.csv: --id-col 'uid'.*u0"),
    ("r1e300", [], REFUSED, r"r1e300\.csv: --reward 'reward' must be at most 1e\+12 in magnitude"),
    ("rinf", [], REFUSED, r"rinf\.csv: --reward 'reward' must hold finite numbers"),
    ("rtext", [], REFUSED, r"rtext\.csv: --reward 'reward'.*'lots'"),
    ("actnan", [], REFUSED, r"actnan\.csv: --action 'action'.*line 2"),
    ("empty", [], REFUSED, r"empty\.csv.*no rows"),
    ("notcsv", [], REFUSED, r"notcsv\.csv"),
    ("ragged", [], REFUSED, r"ragged\.csv"),
    ("good", ["--policy-id", ""], REFUSED, r"Invalid value for '--policy-id': must be a non-empty name"),
    ("good", ["--context", "no_such_*"], REFUSED, r"--context 'no_such_\*'.*matches no column"),
    ("good", ["--context", "missing"], REFUSED, r"good\.csv: .*'missing'"),
    ("good", ["--arms", "0,1"], REFUSED, r"good\.csv: --action 'action' has values not in --arms: 2"),
    ("good", ["--context", "user_feature_*", "--context", "segment", "--position", "pos", "--id-col", "uid"], OK, None),
    ("good", ["--format", "parquet"], REFUSED, r"good\.csv"),
]:
    label = f"import-{name}" + ("-" + re.sub(r"[^a-z0-9]+", "-", " ".join(extra).lower()).strip("-") if extra else "")
    case(label, ["import", f"{FB}/{name}.csv", *IMPORT, "--out", f"{O}/log", *extra], kind, pattern,
         _log_rows("decisions", 90) if kind != REFUSED else None)
case("import-parquet", ["import", f"{FB}/good.parquet", *IMPORT, "--out", f"{O}/log", "--context", "user_feature_*"], OK, None,
     _log_rows("decisions", 90))
for name, table, extra, kind, pattern in [
    ("keyed-by-arm", "by-arm.csv", [], REFUSED, r"by-arm\.csv: .*'arm'.*context columns"),
    ("keyed-by-reward", "by-reward.csv", [], REFUSED, r"by-reward\.csv: .*'reward'.*context columns"),
    ("two-arms", "two-arms.csv", [], REFUSED, r"two-arms\.csv.*'2'"),
    ("rows-not-summing-to-1", "sums.csv", [], REFUSED, r"sums\.csv.*sum"),
    ("too-few-rows", "short.csv", [], REFUSED, r"short\.csv.*85.*90"),
    ("pickled-npy", "pickled.npy", [], REFUSED, r"pickled\.npy.*object"),
    ("npy-bad-shape", "bad-shape.npy", [], REFUSED, r"bad-shape\.npy.*\(90, 2\)"),
    ("npy", "target.npy", [], OK, None),
    ("per-decision", "target.csv", [], OK, None),
    ("per-decision-policy-id-empty", "target.csv", ["--policy-id", ""], REFUSED, r"Invalid value for '--policy-id': must be a non-empty policy_id"),
    ("per-decision-unknown-policy-id", "target.csv", ["--policy-id", "nobody"], REFUSED, r"--policy-id nobody: not in the decisions table"),
]:
    case(f"evaluate-table-{name}", EVAL_TABLE + [f"{FB}/{table}", *extra], kind, pattern)
case("evaluate-table-by-segment-not-imported", EVAL_TABLE + [f"{FB}/by-segment.csv"], REFUSED, r"by-segment\.csv.*segment")

# 4. drafter artifacts: each refused naming the arm and the file, before anything decodes
for name, pattern in [
    ("head-badjson", r"arm 'head'.*head-badjson/head\.json"),
    ("head-huge", r"arm 'head'.*head-huge.*hidden"),
    ("head-other-tokenizer", r"arm 'head'.*head-other-tokenizer was made for another tokenizer"),
    ("head-other-target", r"arm 'head'.*head-other-target was made for another target: .*allow_other_target = true"),
    ("head-pickled", r"arm 'head'.*head-pickled/head\.safetensors"),
    ("head-truncated", r"arm 'head'.*head-truncated/head\.safetensors"),
    ("head-missing", r"arm 'head'.*head-missing.*expected head\.json and head\.safetensors"),
    ("store-other-tokenizer", r"arm 's'.*store-other-tokenizer was made for another tokenizer"),
    ("store-pickled", r"arm 's'.*store-pickled/datastore\.npz.*object"),
    ("store-badjson", r"arm 's'.*store-badjson/datastore\.json"),
    ("k-absurd", r"arm 'd'.*num_assistant_tokens.*100000"),
    ("other-tok", r"arm 'd'.*(tokenizer|vocabulary)"),
    ("missing-target", r"no-such-model: no such file or directory"),
]:
    case(f"build-artifact-{name}", ["build", f"{W}/prompts.parquet", "--models", f"{W}/models-{name}.toml", "--out", f"{O}/log",
                                    *MEASURED], REFUSED, pattern)

# 5. prompt files: one prompt a line, whatever the text holds; bad columns named before anything loads
case("build-txt-odd-separators", ["build", f"{W}/odd.txt", "--models", f"{W}/models.toml", "--out", f"{O}/log", *ALIGN], OK, None,
     _lines("the cat sat\u2028on the mat", "the quick\x0cbrown fox", "a draft model\u2029proposes"))
case("build-txt-latin1", ["build", f"{W}/latin1.txt", "--models", f"{W}/models.toml", "--out", f"{O}/log", *ALIGN], REFUSED,
     r"latin1\.txt.*UTF-8")
case("build-csv-missing-prompt-column", ["build", f"{W}/prompts-text-col.csv", "--models", f"{W}/models.toml", "--out", f"{O}/log", *ALIGN],
     REFUSED, r"prompts-text-col\.csv.*'prompt'")
case("build-csv-prompt-col", ["build", f"{W}/prompts-text-col.csv", "--prompt-col", "text", "--models", f"{W}/models.toml", "--out",
                              f"{O}/log", *ALIGN], OK, None, _log_rows("outcomes", 8))
case("build-csv-empty-prompt", ["build", f"{W}/prompts-empty.csv", "--models", f"{W}/models.toml", "--out", f"{O}/log", *ALIGN],
     REFUSED, r"prompts-empty\.csv.*empty")
case("build-csv-duplicate-ids", ["build", f"{W}/prompts-dup.csv", "--models", f"{W}/models.toml", "--out", f"{O}/log", *ALIGN],
     REFUSED, r"prompts-dup\.csv.*'a'")
case("build-prompts-missing", ["build", f"{W}/no-such.parquet", "--models", f"{W}/models.toml", "--out", f"{O}/log", *ALIGN],
     REFUSED, r"no-such\.parquet")
case("build-prompts-format-mismatch", ["build", f"{W}/prompts.csv", "--prompts-format", "parquet", "--models", f"{W}/models.toml",
                                       "--out", f"{O}/log", *ALIGN], REFUSED, r"prompts\.csv")
case("build-a-head-made-for-the-target", ["build", f"{W}/prompts.parquet", "--models", f"{W}/models-head.toml", "--out", f"{O}/log",
                                          *MEASURED], OK, None, _log_rows("outcomes", 6))
case("build-a-store-made-for-the-target", ["build", f"{W}/prompts.parquet", "--models", f"{W}/models-store.toml", "--out", f"{O}/log",
                                           *MEASURED], OK, None, _log_rows("outcomes", 6))

# 6. the Open Bandit round trip: import, evaluate with a policy table, the report
OBP = ["evaluate", f"{W}/imported", "--policy-table", f"{FB}/target.csv"]
for name, extra, kind, pattern in [
    ("default-features-are-the-imported-context", ["--estimator", "dm"], OK, r"reward model features: 3 context column\(s\) x_user_feature_0"),
    ("prompt-features-on-empty-prompts", ["--estimator", "dr", "--features", "prompt"], WARNED, r"prompt"),
    ("reward-range-bad", ["--reward-range", "0-1"], REFUSED, r"--reward-range.*expected LOW,HIGH"),
    ("reward-range-three-numbers", ["--reward-range", "0,1,2"], REFUSED, r"--reward-range.*expected LOW,HIGH"),
    ("reward-range-explicit", ["--estimator", "ips", "--reward-range", "0,1"], OK, None),
    ("reward-range-none", ["--estimator", "ips", "--reward-range", "none"], OK, None),
    ("estimator-unknown", ["--estimator", "magic"], REFUSED, r"magic"),
    ("estimator-bad-setting", ["--estimator", "ips:clip=-1"], REFUSED, r"clip"),
    ("report", ["--estimator", "ips", "--estimator", "dr", "--report", f"{O}/report"], OK, r"wrote .*report\.html"),
]:
    case(f"obp-{name}", OBP + extra, kind, pattern)
case("obp-features-context-on-a-built-log", ["evaluate", LOG, "--estimator", "dm", "--features", "context"], REFUSED,
     r"log: --features context needs numeric x_\* columns")

# 7. the main command's stderr: warnings one line each, no source lines (every case checks that too)
case("evaluate-log-low-ess", ["evaluate", LOG, "--baseline", "fixed:arm0", "--estimator", "ips"], OK, None)
case("describe-log", ["describe", LOG], OK, r"arms:")
case("validate-log", ["validate", LOG], OK, r"ok")
case("validate-not-a-log", ["validate", RUN], REFUSED, r"run")
case("simulate-into-a-run", ["simulate", RUN, "--policy", "uniform"], REFUSED, r"run")


def test_the_table_is_large_and_covers_every_surface():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert len(CASES) >= 150, len(CASES)
    for prefix in ("train-", "reprice-", "import-", "build-", "decode-", "calibrate-", "evaluate-report-", "compare-report-",
                   "prompts-", "distill-", "cluster-", "eval-rows-", "reprice-profile-", "evaluate-table-", "build-artifact-",
                   "build-txt-", "obp-"):
        assert any(i.startswith(prefix) for i in ids), prefix
    assert {c[2] for c in CASES} == {REFUSED, WARNED, OK}


def _fill(arg, world: dict, out: Path) -> str:
    return str(arg).replace(W, str(world["root"])).replace(M, str(world["models"])).replace(O, str(out))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_case(world, case, monkeypatch):
    id_, argv, kind, pattern, check = case
    monkeypatch.setenv("DRAFTPICK_CACHE", str(world["root"] / "cache"))
    out = world["outs"] / id_
    argv = [_fill(a, world, out) for a in argv]
    before = _tree(world["root"], world["models"])
    r = _invoke(*argv)
    command = " ".join(argv)
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit), f"{command}\n{r.output}"
    assert not WARNING_SOURCE.search(r.stderr), f"{command}: a Python warning's source line\n{r.stderr}"
    assert _tree(world["root"], world["models"]) == before, f"{command} changed an input (destructive)"
    errors = [line for line in r.stderr.splitlines() if line.startswith(("error: ", "Error: "))]
    if kind == REFUSED:
        assert r.exit_code in (1, 2), f"{command} exited {r.exit_code} (silent: a bad input accepted)\n{r.output}"
        assert len(errors) == 1, f"{command}: expected one error line\n{r.stderr}"
        assert re.search(pattern, errors[0]), f"{command} (vague: the message does not match {pattern!r})\n{errors[0]}"
        leftovers = [p for p in out.rglob("*") if not p.name.endswith(".lock")] if out.exists() else []
        assert not leftovers, f"{command} refused but left {leftovers}"
        return
    assert r.exit_code == 0, f"{command} exited {r.exit_code}\n{r.output}"
    assert not errors, r.stderr
    if kind == WARNED:
        warned = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
        assert any(re.search(pattern, line) for line in warned), f"{command} (silent: no warning matching {pattern!r})\n{r.stderr}"
    elif pattern:
        assert re.search(pattern, r.output), f"{command}: expected {pattern!r} in\n{r.output}"
    if check is not None:
        check(out)


# -- controls: a failure leaves the old output or nothing; resuming works as before ------------------
def _build_argv(world, out, *extra):
    return ["build", world["root"] / "prompts.parquet", "--models", world["root"] / "models.toml", "--out", out,
            "--reward", "speedup_count", "--calibration", world["root"] / "counted", "--threads", "1", "--batch-size", "1", *extra]


def _fail_on_call(monkeypatch, module, name: str, n: int):
    """Make ``module.name`` raise on its ``n``-th call (an arm that cannot run), counting from 1."""
    real, calls = getattr(module, name), []

    def fake(*args, **kwargs):
        calls.append(1)
        if len(calls) >= n:
            raise RuntimeError(f"arm 'lookup' cannot run (simulated, call {len(calls)})")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, fake)


@pytest.mark.parametrize("precreated", [False, True], ids=["new-folder", "empty-folder"])
def test_a_build_failing_before_its_first_rows_leaves_nothing_and_the_corrected_rerun_works(world, tmp_path, monkeypatch,
                                                                                            precreated):
    import decoding.build as B
    from logging_data import open_log, validate_log

    out = tmp_path / "log"
    if precreated:
        out.mkdir()
    _fail_on_call(monkeypatch, B, "_build_batch", 1)
    r = _invoke(*_build_argv(world, out))
    assert r.exit_code == 1 and "arm 'lookup' cannot run" in r.stderr, r.output
    assert (list(out.iterdir()) == [] if precreated else not out.exists()), list(out.iterdir())
    assert [p.name for p in tmp_path.iterdir()] == (["log"] if precreated else [])  # no debris beside it either
    monkeypatch.undo()
    r = _invoke(*_build_argv(world, out, "--json"))  # the corrected command starts afresh
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n_rows_written"] == 8 and validate_log(out).ok and open_log(out).n_rows("outcomes") == 8


def test_a_build_failing_after_rows_keeps_them_and_resumes_by_key(world, tmp_path, monkeypatch):
    import decoding.build as B
    from logging_data import open_log, validate_log

    out = tmp_path / "log"
    _fail_on_call(monkeypatch, B, "_build_batch", 3)  # two prompts' rows appended, then a failure
    r = _invoke(*_build_argv(world, out))
    assert r.exit_code == 1 and "cannot run" in r.stderr
    assert validate_log(out).ok and open_log(out).n_rows("outcomes") == 4
    _fail_on_call(monkeypatch, B, "_build_batch", 1)  # a resume that fails at once keeps what the log holds
    before = _tree(out)
    assert _invoke(*_build_argv(world, out)).exit_code == 1 and _tree(out) == before
    monkeypatch.undo()
    r = _invoke(*_build_argv(world, out, "--json"))
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert (summary["n_rows_skipped"], summary["n_rows_written"]) == (4, 4) and open_log(out).n_rows("outcomes") == 8


def test_a_rowless_log_left_by_a_killed_build_is_resumed_not_removed(world, tmp_path, monkeypatch):
    """``kill -9`` runs no cleanup: the log it created stays without rows. The re-run resumes it, and
    a re-run that fails too leaves it, since it existed before that command."""
    from contextlib import nullcontext

    import bandit.cli.decode as cli_decode
    import decoding.build as B
    from logging_data import open_log

    out = tmp_path / "log"
    monkeypatch.setattr(cli_decode, "new_log_or_nothing", lambda out: nullcontext())  # as if killed: nothing cleans up
    _fail_on_call(monkeypatch, B, "_build_batch", 1)
    assert _invoke(*_build_argv(world, out)).exit_code == 1
    assert (out / "_log.json").is_file() and not open_log(out).has("outcomes")
    monkeypatch.undo()
    _fail_on_call(monkeypatch, B, "_build_batch", 1)
    assert _invoke(*_build_argv(world, out)).exit_code == 1
    assert (out / "_log.json").is_file()  # existed before this command: kept
    monkeypatch.undo()
    r = _invoke(*_build_argv(world, out, "--json"))
    assert r.exit_code == 0 and json.loads(r.stdout)["n_rows_written"] == 8, r.output


def test_new_log_or_nothing_never_removes_a_log_another_process_holds(tmp_path):
    from logging_data import LogMetadata, create_log
    from logging_data.outputs import discard_rowless_log
    from logging_data.schema import Arm

    log = create_log(tmp_path / "log", LogMetadata(arms=(Arm(name="a"),)))
    with log.writer("another build"):
        assert discard_rowless_log(log.root) is False and (log.root / "_log.json").is_file()
    assert discard_rowless_log(log.root) is True and not log.root.exists()


def _fixed_calibration(world, monkeypatch):
    """Calibrating returns the counted log's step costs: no timing on a busy machine."""
    import decoding.calibrate as C

    fixed = C.Calibration.from_json(json.loads((world["root"] / "counted" / "_log.json").read_text())["extra"]["calibration"])
    monkeypatch.setattr(C, "calibrate", lambda session, **kw: fixed)


def test_a_decode_failing_before_its_first_decision_leaves_nothing(world, tmp_path, monkeypatch):
    import decoding.loop as L
    from logging_data import open_log

    run = tmp_path / "run"
    assert _invoke("train", world["root"] / "counted", "--policy", "uniform", "--out", run, "--no-progress").exit_code == 0
    argv = ["decode", world["root"] / "prompts.parquet", "--policy", run, "--models", world["root"] / "models.toml",
            "--threads", "1", "--out"]
    _fixed_calibration(world, monkeypatch)
    _fail_on_call(monkeypatch, L, "decode_arm", 1)
    r = _invoke(*argv, tmp_path / "new")
    assert r.exit_code == 1 and "cannot run" in r.stderr and not (tmp_path / "new").exists(), r.output
    existing = tmp_path / "existing"
    shutil.copytree(world["root"] / "counted", existing)
    before = _tree(existing)
    assert _invoke(*argv, existing).exit_code == 1 and _tree(existing) == before  # an existing log is never removed
    monkeypatch.undo()
    _fixed_calibration(world, monkeypatch)
    r = _invoke(*argv, tmp_path / "new")
    assert r.exit_code == 0, r.output
    assert open_log(tmp_path / "new").n_rows("decisions") == 4


@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_a_failed_report_overwrite_keeps_the_old_report(world, tmp_path, monkeypatch, command):
    import bandit.report

    rep = tmp_path / "report"
    shutil.copytree(world["root"] / "report", rep)
    before = _tree(rep)
    argv = [command, world["root"] / "log", *([world["root"] / "run"] if command == "compare" else []), "--estimator", "ips",
            "--report", rep, "--overwrite"]
    monkeypatch.setattr(bandit.report, "render_html", lambda result: (_ for _ in ()).throw(OSError("disk full (simulated)")))
    r = _invoke(*argv)
    assert r.exit_code == 1 and "disk full" in r.stderr
    assert _tree(rep) == before and [p.name for p in tmp_path.iterdir()] == ["report"]
    monkeypatch.undo()
    r = _invoke(*argv, "--estimator", "snips")
    assert r.exit_code == 0, r.output
    assert _tree(rep) != before and sorted(p.name for p in rep.iterdir()) == ["report.html", "report.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_import_and_reprice_overwrite_replace_only_their_own_log(world, tmp_path):
    from logging_data import open_log

    fb = world["root"] / "fb"
    out = tmp_path / "imported"
    base = ["import", fb / "good.csv", *IMPORT, "--out", out]
    assert _invoke(*base).exit_code == 0
    r = _invoke(*base, "--policy-id", "second")
    assert r.exit_code == 1 and "pass --overwrite to replace it" in r.stderr
    r = _invoke(*base, "--policy-id", "second", "--overwrite")
    assert r.exit_code == 0, r.output
    assert set(open_log(out).read("decisions")["policy_id"]) == {"second"}
    assert [p.name for p in tmp_path.iterdir()] == ["imported"]
    priced = tmp_path / "priced"
    base = ["reprice", world["root"] / "counted", "--out", priced]
    assert _invoke(*base).exit_code == 0
    r = _invoke(*base, "--reward", "time_saved_count", "--overwrite")
    assert r.exit_code == 0, r.output
    assert open_log(priced).metadata.reward.metric == "time_saved" and f"{priced}:" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imported", "priced"]


def test_calibrate_overwrite_replaces_a_profile_staged(world, tmp_path, monkeypatch):
    import decoding.pricing as P

    _fixed_calibration(world, monkeypatch)  # no timing: the profile's path is what is tested
    out = tmp_path / "here.json"
    argv = ["calibrate", "--models", world["root"] / "models.toml", "--threads", "1", "--out", out]
    assert _invoke(*argv).exit_code == 0
    before = out.read_bytes()
    r = _invoke(*argv)
    assert r.exit_code == 1 and "pass --overwrite to replace it" in r.stderr and out.read_bytes() == before
    monkeypatch.setattr(P, "write_profile", lambda path, record: (_ for _ in ()).throw(OSError("disk full (simulated)")))
    r = _invoke(*argv, "--overwrite")
    assert r.exit_code == 1 and "disk full" in r.stderr and out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["here.json"]
    monkeypatch.undo()
    _fixed_calibration(world, monkeypatch)
    r = _invoke(*argv, "--overwrite", "--context-len", "8")
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["command"].endswith("--context-len 8") and [p.name for p in tmp_path.iterdir()] == ["here.json"]


def test_the_model_cache_is_the_one_packaged_models_use(tmp_path, monkeypatch):
    from decoding.packaged import cache_dir
    from logging_data.outputs import model_cache_dir

    monkeypatch.setenv("DRAFTPICK_CACHE", str(tmp_path / "c"))
    assert cache_dir() == model_cache_dir() == tmp_path / "c"
