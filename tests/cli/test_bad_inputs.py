"""The table of bad inputs: every command, every way a user gets it wrong.

Each case: the command line, the exit status (2: usage, 1: the input is wrong), a pattern the
one-line message must match (it names the file, option, row or key and what was expected), and
the checksum of every log on the command line before and after: a refused command changes
nothing. A case that exits 0 or prints a message without the name fails here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from bandit.testing import write_simulated_log


def _rewrite_part(log: Path, table: str, change) -> None:
    """Write one more part into ``log/table`` made by ``change(first part)``, bypassing every check."""
    first = sorted((log / table).glob("part-*.parquet"))[0]
    t = pq.read_table(first)
    pq.write_table(change(t), log / table / "part-99999999999999999999-feedbeef.parquet")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    good = root / "good"
    write_simulated_log(good, n_prompts=60, seed=2, validation_fraction=0.2)
    W = {"root": root, "good": good}

    def variant(name, make):
        path = root / name
        shutil.copytree(good, path)
        make(path)
        W[name] = path

    W["missing"] = root / "no-such-log"
    (root / "afile").write_text("not a log")
    W["afile"] = root / "afile"
    (root / "emptydir").mkdir()
    W["emptydir"] = root / "emptydir"
    variant("nometa", lambda p: (p / "_log.json").unlink())
    variant("badjson", lambda p: (p / "_log.json").write_text("{not json"))
    variant("wrongmeta", lambda p: (p / "_log.json").write_text(json.dumps({"arms": "plain"})))

    def truncate(p):
        part = sorted((p / "outcomes").glob("part-*.parquet"))[0]
        part.write_bytes(part.read_bytes()[:200])
    variant("truncated", truncate)

    def nan_reward(p):
        first = sorted((p / "outcomes").glob("part-*.parquet"))[0]
        t = pq.read_table(first)
        i = t.schema.get_field_index("reward")
        pq.write_table(t.set_column(i, t.schema.field("reward"), pa.array(np.full(t.num_rows, np.nan))), first)
    variant("nanreward", nan_reward)
    variant("dupkeys", lambda p: _rewrite_part(p, "outcomes", lambda t: t.slice(0, 5)))
    variant("foreign", lambda p: pq.write_table(pa.table({"a": [1, 2]}), p / "outcomes" / "part-00000000000000000001-aaaaaaaa.parquet"))
    variant("unknownarm", lambda p: _rewrite_part(p, "outcomes", lambda t: t.slice(0, 1).set_column(
        t.schema.get_field_index("arm"), "arm", pa.array(["ghost"])).set_column(
        t.schema.get_field_index("query_id"), "query_id", pa.array(["new-query"]))))

    def no_outcomes(p):
        shutil.rmtree(p / "outcomes")
    variant("nooutcomes", no_outcomes)

    def no_decisions(p):
        shutil.rmtree(p / "decisions")
    variant("nodecisions", no_decisions)

    r = CliRunner().invoke(cli, ["train", str(good), "--policy", "regression", "--out", str(root / "runs" / "ridge"), "--no-progress"])
    assert r.exit_code == 0, r.output
    W["run"] = root / "runs" / "ridge"
    # crafted artifacts: a pickled array and a garbage .npy in a regression run, a garbage VW model, a garbage safetensors
    shutil.copytree(root / "runs" / "ridge", root / "runs" / "pickled")
    np.save(root / "runs" / "pickled" / "model" / "coef.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    W["run_pickled"] = root / "runs" / "pickled"
    shutil.copytree(root / "runs" / "ridge", root / "runs" / "garbage")
    (root / "runs" / "garbage" / "model" / "coef.npy").write_bytes(b"\x93NUMPY garbage")
    W["run_garbage"] = root / "runs" / "garbage"
    for policy, name, artifact in (("vw", "vwrun", "model.vw"), ("reinforce", "rfrun", "model.safetensors")):
        extra = ["--set", "n_epochs=1"] if policy == "reinforce" else []
        r = CliRunner().invoke(cli, ["train", str(good), "--policy", policy, *extra, "--out", str(root / "runs" / name), "--no-progress"])
        assert r.exit_code == 0, r.output
        (root / "runs" / name / "model" / artifact).write_bytes(b"\xff" * 64)
        W[f"run_{name}"] = root / "runs" / name
    (root / "runs" / "halfrun").mkdir()
    W["halfrun"] = root / "runs" / "halfrun"
    (root / "prompts.csv").write_text("text\nhello\n")
    W["prompts_nocol"] = root / "prompts.csv"
    (root / "prompts.parquet").write_text("query_id,prompt\na,b\n")
    W["prompts_csv_as_parquet"] = root / "prompts.parquet"
    (root / "empty.txt").write_text("\n\n")
    W["prompts_empty"] = root / "empty.txt"
    (root / "dupe.csv").write_text("query_id,prompt\na,x\na,y\n")
    W["prompts_dupe"] = root / "dupe.csv"
    (root / "domains.csv").write_text("query_id,prompt,domain,split\na,x,code,train\nb,y,code,train\n")
    W["prompts_domains"] = root / "domains.csv"
    (root / "good.csv").write_text("query_id,prompt\na,x\nb,y\n")
    W["prompts_good"] = root / "good.csv"
    (root / "models_bad.toml").write_text("[target\npath=")
    W["models_bad"] = root / "models_bad.toml"
    (root / "models_nopath.toml").write_text("[target]\ndevice = \"cpu\"\n[[arms]]\nname = \"plain\"\nkind = \"none\"\n")
    W["models_nopath"] = root / "models_nopath.toml"
    (root / "models_key.toml").write_text("[target]\npath = \"m\"\nspeed = 3\n[[arms]]\nname = \"plain\"\nkind = \"none\"\n")
    W["models_key"] = root / "models_key.toml"
    (root / "models_kind.toml").write_text("[target]\npath = \"m\"\n[[arms]]\nname = \"plain\"\nkind = \"magic\"\n")
    W["models_kind"] = root / "models_kind.toml"
    (root / "models_dupe.toml").write_text("[target]\npath = \"m\"\n[[arms]]\nname = \"a\"\nkind = \"none\"\n[[arms]]\nname = \"a\"\nkind = \"none\"\n")
    W["models_dupe"] = root / "models_dupe.toml"
    (root / "models_missing_model.toml").write_text("[target]\npath = \"no/such/model\"\n[[arms]]\nname = \"plain\"\nkind = \"none\"\n")
    W["models_missing_model"] = root / "models_missing_model.toml"
    (root / "models_runarms.toml").write_text("[target]\npath = \"no/such/model\"\n" + "".join(
        f'[[arms]]\nname = "arm{i}"\nkind = "{k}"\n' + ("prompt_lookup_num_tokens = 3\n" if k == "prompt_lookup" else "")
        for i, k in enumerate(("none", "prompt_lookup", "prompt_lookup"))))
    W["models_runarms"] = root / "models_runarms.toml"
    (root / "logged.csv").write_text("a,r,p,x\n0,1,0.5,u\n1,0,0.5,v\n")
    W["logged"] = root / "logged.csv"
    (root / "badp.csv").write_text("a,r,p\n0,1,0.5\n1,0,2\n")
    W["logged_badp"] = root / "badp.csv"
    (root / "badarms.csv").write_text("query_id,x,y\na,0.5,0.5\n")
    W["table_badarms"] = root / "badarms.csv"
    (root / "cal.json").write_text("{\"target_step_s\": -1}")
    W["cal_bad"] = root / "cal.json"
    (root / "config_bad.json").write_text("[1, 2]")
    W["config_bad"] = root / "config_bad.json"
    return W


# -- the table ------------------------------------------------------------------------------------
# Broken logs: (variant, message pattern shared by every reading command).
BROKEN = [
    ("afile", r"afile"),
    ("emptydir", r"emptydir.*(not a log|no _log\.json)"),
    ("nometa", r"nometa.*(not a log|no _log\.json)"),
    ("badjson", r"badjson.*_log\.json"),
    ("wrongmeta", r"wrongmeta.*_log\.json"),
    ("truncated", r"truncated.*(part-\d+-\w+\.parquet|unreadable|not a readable)"),
    ("nanreward", r"nanreward.*reward"),
    ("dupkeys", r"dupkeys.*repeat a \(query_id, arm\) key"),
    ("foreign", r"foreign.*part-00000000000000000001-aaaaaaaa\.parquet"),
    ("unknownarm", r"unknownarm.*ghost"),
]

READERS = {
    "describe": lambda w, L: ["describe", L],
    "simulate": lambda w, L: ["simulate", L],
    "evaluate": lambda w, L: ["evaluate", L],
    "train": lambda w, L: ["train", L, "--policy", "regression", "--out", w["root"] / "out-train", "--no-progress"],
    "compare": lambda w, L: ["compare", L, w["run"]],
    "reprice": lambda w, L: ["reprice", L, "--out", w["root"] / "out-reprice"],
    "validate": lambda w, L: ["validate", L],
}

CASES = []
for command, argv in READERS.items():
    plain_arg = command in ("validate", "describe")  # LOG is read by the library (exit 1), else checked by click (exit 2)
    for variant, pattern in BROKEN:
        status = 2 if variant == "afile" and not plain_arg else 1
        pattern = r"afile.*(is a file|found a file)" if variant == "afile" else pattern
        CASES.append((f"{command}-{variant}", (lambda argv=argv, variant=variant: lambda w: argv(w, w[variant]))(), status, pattern, (variant,)))
    CASES.append((f"{command}-missing", (lambda argv=argv: lambda w: argv(w, w["missing"]))(), 1 if plain_arg else 2,
                  r"no-such-log.*(does not exist|no such log directory)", ()))

# One-off cases: (id, argv builder, exit status, pattern, logs to checksum)
G = "good"
CASES += [
    # simulate
    ("simulate-eps-no-arm", lambda w: ["simulate", w[G], "--policy", "epsilon-greedy"], 2, r"--policy epsilon-greedy needs --arm NAME", (G,)),
    ("simulate-eps-unknown-arm", lambda w: ["simulate", w[G], "--policy", "epsilon-greedy", "--arm", "ghost"], 1, r"--arm: unknown arm 'ghost'; the log's arms are arm0, arm1, arm2", (G,)),
    ("simulate-eps-range", lambda w: ["simulate", w[G], "--policy", "epsilon-greedy", "--arm", "arm0", "--epsilon", "1.5"], 1, r"epsilon.*1\.5", (G,)),
    ("simulate-eps-negative", lambda w: ["simulate", w[G], "--policy", "epsilon-greedy", "--arm", "arm0", "--epsilon", "-0.1"], 1, r"epsilon.*-0\.1", (G,)),
    ("simulate-temp-zero", lambda w: ["simulate", w[G], "--policy", "softmax", "--temperature", "0"], 1, r"temperature.*0", (G,)),
    ("simulate-bad-policy", lambda w: ["simulate", w[G], "--policy", "greedy"], 2, r"'greedy' is not one of 'uniform', 'epsilon-greedy', 'softmax'", (G,)),
    ("simulate-dup-policy-id", lambda w: ["simulate", w[G], "--policy-id", "uniform"], 1, r"good: policy_id 'uniform' already has 60 decisions in this log", (G,)),
    ("simulate-seed-text", lambda w: ["simulate", w[G], "--seed", "abc"], 2, r"'abc' is not a valid integer", (G,)),
    ("simulate-no-outcomes", lambda w: ["simulate", w["nooutcomes"]], 1, r"nooutcomes: the log has no outcomes table to simulate from", ("nooutcomes",)),
    # evaluate
    ("evaluate-unknown-baseline", lambda w: ["evaluate", w[G], "--baseline", "bts"], 1, r"baseline 'bts'", (G,)),
    ("evaluate-unknown-estimator", lambda w: ["evaluate", w[G], "--estimator", "magic"], 1, r"estimator 'magic'", (G,)),
    ("evaluate-estimator-bad-setting", lambda w: ["evaluate", w[G], "--estimator", "ips:clip=abc"], 1, r"clip", (G,)),
    ("evaluate-estimator-unknown-setting", lambda w: ["evaluate", w[G], "--estimator", "ips:bogus=1"], 1, r"bogus", (G,)),
    ("evaluate-level-range", lambda w: ["evaluate", w[G], "--level", "1.5"], 1, r"level.*1\.5", (G,)),
    ("evaluate-level-zero", lambda w: ["evaluate", w[G], "--level", "0"], 1, r"level.*0", (G,)),
    ("evaluate-bootstrap-zero", lambda w: ["evaluate", w[G], "--ci", "bootstrap", "--n-bootstrap", "0"], 1, r"n.bootstrap.*0", (G,)),
    ("evaluate-folds-one", lambda w: ["evaluate", w[G], "--folds", "1"], 1, r"folds.*1", (G,)),
    ("evaluate-bad-ci", lambda w: ["evaluate", w[G], "--ci", "exact"], 2, r"'exact' is not one of 'normal', 'bootstrap'", (G,)),
    ("evaluate-unknown-policy-id", lambda w: ["evaluate", w[G], "--policy-id", "nobody"], 1, r"nobody", (G,)),
    ("evaluate-run-missing", lambda w: ["evaluate", w[G], "--run", w["root"] / "runs" / "ghost"], 2, r"ghost.*does not exist", (G,)),
    ("evaluate-run-half", lambda w: ["evaluate", w[G], "--run", w["halfrun"]], 1, r"halfrun.*(config\.json|not a complete run)", (G,)),
    ("evaluate-run-file", lambda w: ["evaluate", w[G], "--run", w["afile"]], 1, r"afile", (G,)),
    ("evaluate-no-decisions", lambda w: ["evaluate", w["nodecisions"]], 1, r"nodecisions: the log has no decisions table \(simulate one with `bandit-log simulate", ("nodecisions",)),
    ("evaluate-fixed-unknown-arm", lambda w: ["evaluate", w[G], "--baseline", "fixed:ghost"], 1, r"ghost", (G,)),
    ("evaluate-report-is-file", lambda w: ["evaluate", w[G], "--report", w["afile"]], 2, r"afile", (G,)),
    # train
    ("train-unknown-policy", lambda w: ["train", w[G], "--policy", "magic", "--out", w["root"] / "t1"], 1, r"magic", (G,)),
    ("train-no-policy", lambda w: ["train", w[G], "--out", w["root"] / "t2"], 2, r"--policy", (G,)),
    ("train-unknown-setting", lambda w: ["train", w[G], "--policy", "regression", "--set", "bogus=1", "--out", w["root"] / "t3"], 1, r"bogus", (G,)),
    ("train-set-no-equals", lambda w: ["train", w[G], "--policy", "regression", "--set", "alpha", "--out", w["root"] / "t4"], 1, r"--set takes key=value; got 'alpha'", (G,)),
    ("train-bad-setting-type", lambda w: ["train", w[G], "--policy", "regression", "--set", "alpha=abc", "--out", w["root"] / "t5"], 1, r"alpha", (G,)),
    ("train-negative-alpha", lambda w: ["train", w[G], "--policy", "regression", "--set", "alpha=-1", "--out", w["root"] / "t6"], 1, r"alpha", (G,)),
    ("train-unknown-featurizer", lambda w: ["train", w[G], "--policy", "regression", "--set", "featurizer=magic", "--out", w["root"] / "t7"], 1, r"magic", (G,)),
    ("train-featurizer-bad-setting", lambda w: ["train", w[G], "--policy", "regression", "--featurizer-set", "bogus=1", "--out", w["root"] / "t8"], 1, r"bogus", (G,)),
    ("train-config-missing", lambda w: ["train", w[G], "--config", w["root"] / "nope.json", "--out", w["root"] / "t9"], 2, r"nope\.json", (G,)),
    ("train-config-not-object", lambda w: ["train", w[G], "--config", w["config_bad"], "--out", w["root"] / "t10"], 1, r"config_bad\.json", (G,)),
    ("train-out-is-log", lambda w: ["train", w[G], "--policy", "regression", "--out", w[G]], 1, r"good", (G,)),
    ("train-out-is-log-overwrite", lambda w: ["train", w[G], "--policy", "regression", "--out", w[G], "--overwrite"], 1, r"good", (G,)),
    ("train-out-exists", lambda w: ["train", w[G], "--policy", "regression", "--out", w["run"]], 1, r"ridge.*(exists|--overwrite)", (G,)),
    ("train-out-is-file", lambda w: ["train", w[G], "--policy", "regression", "--out", w["afile"]], 1, r"afile", (G,)),
    ("train-bandit-no-decisions", lambda w: ["train", w["nodecisions"], "--policy", "regression", "--feedback", "bandit", "--out", w["root"] / "t11"], 1, r"decisions", ("nodecisions",)),
    ("train-bandit-unknown-policy-id", lambda w: ["train", w[G], "--policy", "regression", "--feedback", "bandit", "--policy-id", "nobody", "--out", w["root"] / "t12"], 1, r"nobody", (G,)),
    ("train-bad-split", lambda w: ["train", w[G], "--policy", "regression", "--split", "dev", "--out", w["root"] / "t13"], 2, r"'dev' is not one of", (G,)),
    ("train-fixed-unknown-arm", lambda w: ["train", w[G], "--policy", "fixed", "--set", "arm=ghost", "--out", w["root"] / "t14"], 1, r"ghost", (G,)),
    ("train-no-out", lambda w: ["train", w[G], "--policy", "regression"], 2, r"--out", (G,)),
    # compare
    ("compare-no-runs", lambda w: ["compare", w[G]], 2, r"RUN", (G,)),
    ("compare-run-missing", lambda w: ["compare", w[G], w["root"] / "runs" / "ghost"], 2, r"ghost.*does not exist", (G,)),
    ("compare-run-half", lambda w: ["compare", w[G], w["halfrun"]], 1, r"halfrun", (G,)),
    ("compare-unknown-estimator", lambda w: ["compare", w[G], w["run"], "--estimator", "magic"], 1, r"magic", (G,)),
    ("compare-bad-select-on", lambda w: ["compare", w[G], w["run"], "--select-on", "dev"], 2, r"'dev' is not one of", (G,)),
    ("compare-unknown-policy-id", lambda w: ["compare", w[G], w["run"], "--policy-id", "nobody"], 1, r"nobody", (G,)),
    ("compare-report-is-file", lambda w: ["compare", w[G], w["run"], "--report", w["afile"]], 2, r"afile", (G,)),
    # reprice
    ("reprice-out-exists", lambda w: ["reprice", w[G], "--out", w["run"]], 1, r"ridge", (G,)),
    ("reprice-out-is-source", lambda w: ["reprice", w[G], "--out", w[G]], 1, r"good", (G,)),
    ("reprice-no-out", lambda w: ["reprice", w[G]], 2, r"--out", (G,)),
    ("reprice-bad-reward", lambda w: ["reprice", w[G], "--out", w["root"] / "r1", "--reward", "fast"], 2, r"'fast' is not one of", (G,)),
    ("reprice-calibration-missing", lambda w: ["reprice", w[G], "--out", w["root"] / "r2", "--calibration", w["root"] / "nope.json"], 1, r"nope\.json", (G,)),
    ("reprice-calibration-bad", lambda w: ["reprice", w[G], "--out", w["root"] / "r3", "--calibration", w["cal_bad"]], 1, r"cal\.json", (G,)),
    ("reprice-calibration-fit-missing", lambda w: ["reprice", w[G], "--out", w["root"] / "r4", "--calibration", f"fit:{w['root'] / 'nolog'}"], 1, r"nolog", (G,)),
    ("reprice-custom-reward", lambda w: ["reprice", w[G], "--out", w["root"] / "r5", "--reward", "speedup_count"], 1, r"good: the log records no calibration; give one \(--calibration\)", (G,)),
    # validate / describe options
    ("validate-bad-flag", lambda w: ["validate", w[G], "--fast"], 2, r"No such option '--fast'", (G,)),
    ("describe-bad-flag", lambda w: ["describe", w[G], "--arms"], 2, r"No such option '--arms'", (G,)),
    ("unknown-command", lambda w: ["learn", w[G]], 2, r"No such command 'learn'", (G,)),
]

# build and decode: models files and prompt files (each fails before any model loads)
BUILD = lambda w, prompts, models: ["build", prompts, "--models", models, "--out", w["root"] / "b-out"]  # noqa: E731
DECODE = lambda w, prompts, models: ["decode", prompts, "--policy", w["run"], "--models",  # noqa: E731
                                     w["models_runarms"] if models == w["models_missing_model"] else models, "--out", w["root"] / "d-out"]
for cmd, make in (("build", BUILD), ("decode", DECODE)):
    CASES += [
        (f"{cmd}-models-missing", lambda w, make=make: make(w, w["prompts_good"], w["root"] / "nope.toml"), 1, r"nope\.toml", ()),
        (f"{cmd}-models-bad-toml", lambda w, make=make: make(w, w["prompts_good"], w["models_bad"]), 1, r"models_bad\.toml", ()),
        (f"{cmd}-models-no-path", lambda w, make=make: make(w, w["prompts_good"], w["models_nopath"]), 1, r"models_nopath\.toml.*path", ()),
        (f"{cmd}-models-unknown-key", lambda w, make=make: make(w, w["prompts_good"], w["models_key"]), 1, r"models_key\.toml.*speed", ()),
        (f"{cmd}-models-unknown-kind", lambda w, make=make: make(w, w["prompts_good"], w["models_kind"]), 1, r"models_kind\.toml.*magic", ()),
        (f"{cmd}-models-dupe-arm", lambda w, make=make: make(w, w["prompts_good"], w["models_dupe"]), 1, r"models_dupe\.toml: arm names must be unique; repeated: a", ()),
        (f"{cmd}-prompts-missing", lambda w, make=make: make(w, w["root"] / "nope.csv", w["models_missing_model"]), 1, r"nope\.csv", ()),
        (f"{cmd}-prompts-no-column", lambda w, make=make: make(w, w["prompts_nocol"], w["models_missing_model"]), 1, r"prompts\.csv: no prompt column 'prompt'", ()),
        (f"{cmd}-prompts-csv-as-parquet", lambda w, make=make: make(w, w["prompts_csv_as_parquet"], w["models_missing_model"]), 1, r"prompts\.parquet: cannot be read as parquet", ()),
        (f"{cmd}-prompts-empty", lambda w, make=make: make(w, w["prompts_empty"], w["models_missing_model"]), 1, r"empty\.txt", ()),
        (f"{cmd}-prompts-dupe", lambda w, make=make: make(w, w["prompts_dupe"], w["models_missing_model"]), 1, r"dupe\.csv: query_id must be unique; query_id 'a'", ()),
        (f"{cmd}-model-path-missing", lambda w, make=make: make(w, w["prompts_good"], w["models_missing_model"]), 1, r"no/such/model", ()),
        (f"{cmd}-bad-split", lambda w, make=make: make(w, w["prompts_good"], w["models_missing_model"]) + ["--split", "dev"], 2, r"'dev' is not one of", ()),
        (f"{cmd}-limit-zero", lambda w, make=make: make(w, w["prompts_good"], w["models_missing_model"]) + ["--limit", "0"], 1, r"limit.*0", ()),
        (f"{cmd}-bad-device", lambda w, make=make: make(w, w["prompts_good"], w["models_missing_model"]) + ["--device", "tpu"], 2, r"'tpu' is not one of", ()),
        (f"{cmd}-threads-zero", lambda w, make=make: make(w, w["prompts_good"], w["models_missing_model"]) + ["--threads", "0"], 1, r"threads.*0", ()),
        (f"{cmd}-bad-format", lambda w, make=make: make(w, w["prompts_good"], w["models_missing_model"]) + ["--prompts-format", "xlsx"], 2, r"'xlsx' is not one of", ()),
        (f"{cmd}-id-col-missing", lambda w, make=make: make(w, w["prompts_good"], w["models_missing_model"]) + ["--id-col", "ident"], 1, r"good\.csv: no query_id column 'ident'", ()),
        (f"{cmd}-bad-reward", lambda w, make=make: make(w, w["prompts_good"], w["models_missing_model"]) + ["--reward", "fast"], 2, r"'fast' is not one of", ()),
    ]
CASES += [
    ("build-repeats-zero", lambda w: BUILD(w, w["prompts_good"], w["models_missing_model"]) + ["--repeats", "0"], 1, r"repeats.*0", ()),
    ("build-batch-zero", lambda w: BUILD(w, w["prompts_good"], w["models_missing_model"]) + ["--batch-size", "0"], 1, r"batch_size.*0", ()),
    ("build-out-is-log-other-arms", lambda w: ["build", w["prompts_good"], "--models", w["models_missing_model"], "--out", w[G]], 1, r"good", (G,)),
    ("build-out-is-run", lambda w: ["build", w["prompts_good"], "--models", w["models_missing_model"], "--out", w["run"]], 1, r"ridge: a directory that is not empty and is not a log", ()),
    ("build-alignment-only-wall", lambda w: BUILD(w, w["prompts_good"], w["models_missing_model"]) + ["--alignment-only", "--reward", "speedup_wall"], 1, r"alignment-only", ()),
    ("build-calibration-missing", lambda w: BUILD(w, w["prompts_good"], w["models_missing_model"]) + ["--calibration", w["root"] / "nope.json"], 1, r"nope\.json", ()),
    ("decode-run-missing", lambda w: ["decode", w["prompts_good"], "--policy", w["root"] / "runs" / "ghost", "--models", w["models_missing_model"], "--out", w["root"] / "d2"], 1, r"ghost", ()),
    ("decode-run-half", lambda w: ["decode", w["prompts_good"], "--policy", w["halfrun"], "--models", w["models_missing_model"], "--out", w["root"] / "d3"], 1, r"halfrun", ()),
    ("decode-out-is-run", lambda w: ["decode", w["prompts_good"], "--policy", w["run"], "--models", w["models_runarms"], "--out", w["run"]], 1, r"ridge: a directory that is not empty and is not a log", ()),
    # prompts / drafts
    ("prompts-bad-domain", lambda w: ["prompts", "--out", w["root"] / "p.parquet", "--domains", "poetry"], 1, r"poetry", ()),
    ("prompts-per-domain-zero", lambda w: ["prompts", "--out", w["root"] / "p.parquet", "--per-domain", "0"], 1, r"per.domain.*0", ()),
    ("prompts-out-not-parquet", lambda w: ["prompts", "--out", w["root"] / "p.csv"], 1, r"p\.csv", ()),
    ("prompts-out-folder-missing", lambda w: ["prompts", "--out", w["root"] / "nofolder" / "p.parquet"], 1, r"nofolder", ()),
    ("drafts-cluster-prompts-missing", lambda w: ["drafts", "cluster", "--prompts", w["root"] / "nope.csv", "--k", "2", "--out", w["root"] / "c.parquet"], 2, r"nope\.csv", ()),
    ("drafts-cluster-prompts-bad", lambda w: ["drafts", "cluster", "--prompts", w["prompts_nocol"], "--k", "2", "--out", w["root"] / "c.parquet"], 1, r"prompts\.csv: no prompt column", ()),
    ("drafts-cluster-k-zero", lambda w: ["drafts", "cluster", "--prompts", w["prompts_good"], "--k", "0", "--out", w["root"] / "c.parquet"], 1, r"k.*0", ()),
    ("drafts-cluster-out-is-input", lambda w: ["drafts", "cluster", "--prompts", w["prompts_good"], "--k", "2", "--out", w["prompts_good"]], 2, r"--out", ()),
    ("drafts-distill-target-missing", lambda w: ["drafts", "distill", "--target", w["root"] / "nomodel", "--prompts", w["prompts_domains"], "--domain", "code", "--out", w["root"] / "dr"], 1, r"nomodel", ()),
    # crafted artifacts in run folders: named, never unpickled
    ("evaluate-run-pickled-array", lambda w: ["evaluate", w[G], "--run", w["run_pickled"]], 1, r"pickled/model/coef\.npy: holds pickled \(object\) data, which is never loaded", (G,)),
    ("evaluate-run-garbage-array", lambda w: ["evaluate", w[G], "--run", w["run_garbage"]], 1, r"garbage/model/coef\.npy: (holds pickled|is not a numeric)", (G,)),
    ("evaluate-run-crafted-vw", lambda w: ["evaluate", w[G], "--run", w["run_vwrun"]], 1, r"vwrun/model/model\.vw: not a readable Vowpal Wabbit model", (G,)),
    ("evaluate-run-crafted-safetensors", lambda w: ["evaluate", w[G], "--run", w["run_rfrun"]], 1, r"rfrun/model/model\.safetensors: not a readable safetensors file", (G,)),
    ("compare-run-crafted-vw", lambda w: ["compare", w[G], w["run_vwrun"]], 1, r"model\.vw: not a readable Vowpal Wabbit model", (G,)),
    ("compare-run-pickled-array", lambda w: ["compare", w[G], w["run_pickled"]], 1, r"coef\.npy: holds pickled", (G,)),
    # import
    ("import-missing-file", lambda w: ["import", w["root"] / "nope.csv", "--out", w["root"] / "i1", "--action", "a", "--reward", "r", "--propensity", "p"], 2, r"nope\.csv.*does not exist", ()),
    ("import-no-action-flag", lambda w: ["import", w["logged"], "--out", w["root"] / "i2", "--reward", "r", "--propensity", "p"], 2, r"--action", ()),
    ("import-action-not-column", lambda w: ["import", w["logged"], "--out", w["root"] / "i3", "--action", "arm", "--reward", "r", "--propensity", "p"], 1, r"logged\.csv: --action 'arm' is not a column; the file has a, r, p, x", ()),
    ("import-propensity-range", lambda w: ["import", w["logged_badp"], "--out", w["root"] / "i4", "--action", "a", "--reward", "r", "--propensity", "p"], 1, r"badp\.csv: --propensity 'p' must be in \(0, 1\]", ()),
    ("import-context-text", lambda w: ["import", w["logged"], "--out", w["root"] / "i5", "--action", "a", "--reward", "r", "--propensity", "p", "--context", "x"], 1, r"--context 'x' must hold finite numbers", ()),
    ("import-out-is-log", lambda w: ["import", w["logged"], "--out", w[G], "--action", "a", "--reward", "r", "--propensity", "p"], 1, r"good: a log already exists here", (G,)),
    ("import-arms-missing-value", lambda w: ["import", w["logged"], "--out", w["root"] / "i6", "--action", "a", "--reward", "r", "--propensity", "p", "--arms", "0"], 1, r"--action 'a' has values not in --arms: 1", ()),
    ("import-txt", lambda w: ["import", w["prompts_empty"], "--out", w["root"] / "i7", "--action", "a", "--reward", "r", "--propensity", "p"], 1, r"empty\.txt: a text file holds prompts only", ()),
    ("evaluate-policy-table-missing", lambda w: ["evaluate", w[G], "--policy-table", w["root"] / "nope.csv"], 2, r"nope\.csv.*does not exist", (G,)),
    ("evaluate-policy-table-bad-arms", lambda w: ["evaluate", w[G], "--policy-table", w["table_badarms"]], 1, r"badarms\.csv: no column for arm 'arm0'", (G,)),
    ("evaluate-reward-range-text", lambda w: ["evaluate", w[G], "--reward-range", "abc"], 2, r"--reward-range.*expected LOW,HIGH \(two numbers\); got 'abc'", (G,)),
    ("evaluate-reward-range-narrow", lambda w: ["evaluate", w[G], "--reward-range", "100,101"], 1, r"reward_range \(100, 101\): \d+ logged reward\(s\) lie outside it", (G,)),
    ("evaluate-features-context-none", lambda w: ["evaluate", w[G], "--features", "context"], 1, r"good: --features context needs numeric x_\* columns", (G,)),
    ("drafts-eval-no-draft", lambda w: ["drafts", "eval", "--target", w["root"] / "nomodel", "--prompts", w["prompts_good"]], 2, r"--draft", ()),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(world, case, checksum):
    _, build_argv, status, pattern, logs = case
    argv = [str(a) for a in build_argv(world)]
    before = {name: checksum(world[name]) for name in logs}
    r = CliRunner().invoke(cli, argv)
    after = {name: checksum(world[name]) for name in logs}
    assert r.exit_code == status, f"{' '.join(argv)}\nexit {r.exit_code}, expected {status}\n{r.output}"
    assert len(r.stderr.strip().splitlines()) <= 12 or status == 2, r.stderr
    import re

    assert re.search(pattern, r.output if not r.stderr else r.stderr + r.stdout, re.S), f"{' '.join(argv)}\n{r.output}"
    assert before == after, f"{' '.join(argv)} changed {[n for n in logs if before[n] != after[n]]}"
    assert "Traceback" not in r.output


def test_the_table_is_large():
    assert len(CASES) >= 150, len(CASES)
