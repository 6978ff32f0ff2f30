"""examples/alpha_sweep.py at a tiny size on the tiny models: as alpha grows, the policy moves to cheaper arms."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from logging_data import create_log, open_log, validate_log

ROOT = Path(__file__).resolve().parents[2]
ALPHAS = (0.0, 0.1, 0.3, 1.0, 1000.0)  # the last: any calibrated early-exit cost outweighs any alignment


def _load():
    spec = importlib.util.spec_from_file_location("alpha_sweep", ROOT / "examples" / "alpha_sweep.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sentences():
    spec = importlib.util.spec_from_file_location("shared_test_models", ROOT / "tests" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.SENTENCES


def tiny_prompts(n: int, seed: int) -> pd.DataFrame:
    """``n`` prompts of the tiny tokenizer's words: a window of one sentence, sometimes repeated (lookup finds it)."""
    rng = np.random.default_rng(seed)
    sentences = [s.split() for s in _sentences()]
    rows = []
    for i in range(n):
        k = int(rng.integers(len(sentences)))
        words = sentences[k]
        start = int(rng.integers(0, max(1, len(words) - 4)))
        text = words[start:start + int(rng.integers(4, 9))]
        if rng.random() < 0.5:
            text = text + text[: len(text) // 2]
        rows.append({"query_id": f"t{i:03d}", "prompt": " ".join(text), "domain": "code" if k == 4 else "text",
                     "split": "test" if i % 3 == 2 else "train"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def swept(write_tiny_models, tmp_path_factory):
    import torch

    from decoding.models import ArmConfig

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("alpha_sweep")
    arms = [ArmConfig.of("plain", "none"), ArmConfig.of("lookup", "prompt_lookup", prompt_lookup_num_tokens=3),
            *(ArmConfig.of(f"exit{layer}", "early_exit", assistant_early_exit=layer, num_assistant_tokens=3) for layer in (1, 2))]
    models = write_tiny_models(root / "models.toml", arms)
    prompts = root / "prompts.parquet"
    tiny_prompts(36, seed=1).to_parquet(prompts)
    mod = _load()
    res = mod.main(None, root / "out", ALPHAS, "regression", models, prompts, seed=0, threads=1, progress=False)
    return mod, res, root


def test_cost_falls_as_alpha_grows(swept):
    _, res, root = swept
    costs = [r["mean_chosen_cost"] for r in res["sweep"]]
    assert [r["alpha"] for r in res["sweep"]] == list(ALPHAS)
    assert all(b <= a + 1e-12 for a, b in zip(costs, costs[1:])), costs
    assert res["cost_non_increasing"] is True
    assert res["arm_cost"]["plain"] == 0 and res["arm_cost"]["lookup"] == 0
    assert res["arm_cost"]["exit1"] > 0 and res["arm_cost"]["exit2"] > 0  # timed: their order is noise on a tiny model
    # at alpha = 0 some prompt goes to an early exit (so the fall is real), at a large alpha none does
    assert costs[0] > 0
    big = res["sweep"][-1]
    assert big["share_zero_cost"] == pytest.approx(1.0) and big["mean_chosen_cost"] == 0
    assert big["arm_share"]["exit1"] == 0 and big["arm_share"]["exit2"] == 0
    for r in res["sweep"]:
        assert sum(r["arm_share"].values()) == pytest.approx(1.0)
        assert r["policy_reward"] <= r["oracle_reward"] + 1e-12
    assert res["n_prompts"]["test"] == 12 and res["n_prompts"]["train"] == 24
    assert json.loads((root / "out" / "alpha_sweep.json").read_text())["sweep"][0]["alpha"] == 0.0
    for png in res["figures"]:
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the base log is alignment-only: nothing measured
    base = open_log(res["log"])
    assert base.metadata.extra["build"]["measure"] is False
    assert base.read("outcomes")["wall_time_s"].isna().all()


def test_numbers_match_a_direct_computation(swept):
    mod, res, root = swept
    from bandit.runs import load_run

    base = open_log(res["log"]).read("outcomes")
    for r in res["sweep"][1:3]:
        folder = root / "out" / "alphas" / f"alpha={r['alpha']:g}"
        log = open_log(folder / "log")
        assert validate_log(folder / "log").ok and log.metadata.reward.alpha == r["alpha"]
        df = log.read("outcomes").merge(base[["query_id", "arm", "reward"]], on=["query_id", "arm"], suffixes=("", "_base"))
        plain = df["arm"] == "plain"
        assert (df.loc[plain, "reward"] == 0).all()
        expect = df.loc[~plain, "align_accept"] - r["alpha"] * df.loc[~plain, "arm_cost"]
        assert np.allclose(df.loc[~plain, "reward"], expect, atol=1e-12)
        test = df[df["split"] == "test"]
        prompts = test.drop_duplicates("query_id").sort_values("query_id")[["query_id", "prompt"]].reset_index(drop=True)
        chosen = np.asarray(load_run(folder / "run").probabilities(prompts)).argmax(axis=1)
        arms = np.array(res["arms"])[chosen]
        picked = test.set_index(["query_id", "arm"]).loc[list(zip(prompts["query_id"], arms))]
        assert r["mean_chosen_cost"] == pytest.approx(picked["arm_cost"].mean())
        assert r["policy_reward"] == pytest.approx(picked["reward"].mean())
        assert r["arm_share"]["lookup"] == pytest.approx(float(np.mean(arms == "lookup")))
        wide = test.pivot(index="query_id", columns="arm", values="reward")
        assert r["oracle_reward"] == pytest.approx(wide.max(axis=1).mean())


def test_reusing_the_built_log_gives_the_same_sweep(swept, tmp_path):
    mod, res, _ = swept
    again = mod.main(res["log"], tmp_path / "again", ALPHAS[:3], "regression", plots=False, progress=False)
    for a, b in zip(res["sweep"][:3], again["sweep"]):
        assert a["arm_share"] == pytest.approx(b["arm_share"]) and a["mean_chosen_cost"] == pytest.approx(b["mean_chosen_cost"])


def _bad_log(res, tmp_path, change):
    base = open_log(res["log"])
    frame = base.read("outcomes")
    log = create_log(tmp_path / "bad", base.metadata)
    log.append("outcomes", change(frame))
    return tmp_path / "bad"


@pytest.mark.parametrize("kwargs, pattern", [
    ({"alphas": ()}, r"alphas must hold at least one value"),
    ({"alphas": (0.1, 0.1)}, r"alphas must not repeat; 0.1 appears more than once"),
    ({"alphas": (0.0, -1.0)}, r"every alpha must be a finite number >= 0; got -1.0"),
    ({"alphas": (float("nan"),)}, r"every alpha must be a finite number >= 0; got nan"),
    ({"policy": "nope"}, r"nope"),
    ({"settings": {"alphaa": 1.0}}, r"policy 'regression' has no setting 'alphaa'"),
    ({"models": "m.toml"}, r"models and prompts are for building a log; a log was given"),
])
def test_bad_arguments(swept, tmp_path, kwargs, pattern):
    mod, res, _ = swept
    args = {"alphas": ALPHAS, "policy": "regression", **kwargs}
    with pytest.raises(ValueError, match=pattern):
        mod.main(res["log"], tmp_path / "out", progress=False, plots=False, **args)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, pattern", [
    (lambda f: f.assign(split="train"), r"has no test rows \(splits found: train\)"),
    (lambda f: f.assign(align_accept=f["align_accept"].where(f["arm"] != "lookup")),
     r"needs align_accept for every arm but `none`; 36 row\(s\) have none \(first: query_id=t\d+, arm=lookup\)"),
])
def test_bad_logs(swept, tmp_path, change, pattern):
    mod, res, _ = swept
    bad = _bad_log(res, tmp_path, change)
    with pytest.raises(ValueError, match=pattern):
        mod.main(bad, tmp_path / "out", ALPHAS, progress=False, plots=False)
    assert not (tmp_path / "out" / "alphas").exists()


def test_script_help_runs_without_models():
    import subprocess

    r = subprocess.run([sys.executable, str(ROOT / "examples" / "alpha_sweep.py"), "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "--alphas" in r.stdout and "example: python examples/alpha_sweep.py" in r.stdout
