"""examples/gpu_heads.py on this CPU: real heads (trained here, briefly) of two domains, the model given
in two parts as on a GPU machine; and its refusals of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from decoding.drafters.pricing import price_totals

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "gpu_heads.py"


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900, cwd=REPO)


def _heads_run(folder: Path, domains: dict[str, str], extra: dict | None = None) -> Path:
    """A heads folder as examples/heads.py leaves it: one head per domain, trained on two code prompts'
    greedy outputs for one epoch (real heads, poor ones), and heads.json with ``domains``' settings."""
    from decoding import heads
    from decoding.models import load_models_config
    from decoding.session import DecodingSession

    session = DecodingSession(load_models_config(REPO / "examples" / "models" / "smollm2-joint.toml"), threads=2)
    prompts = [session.encode(p) for p in ("Write a Python function that adds two numbers.", "Translate to French: good morning")]
    outputs = [list(map(int, o)) for o in session.greedy(prompts, max_new_tokens=12)]
    rows, _ = heads.collect(session.target.model, prompts, outputs)
    vocab = heads.frequent_vocabulary(rows.x_next2, 64, session.eos_ids)
    for d in domains:
        head, record = heads.train_head(session.target.model, rows, vocab, epochs=1, seed=0)
        heads.save_head(head, folder / "heads" / d, record)
    saved = {"tuned": {d: {"setting": s} for d, s in domains.items()}, "head_step_s_h200_assumed": 0.0021, **(extra or {})}
    (folder / "heads.json").write_text(json.dumps(saved))
    return folder


@pytest.fixture(scope="module")
def heads_folder(smollm2, tmp_path_factory):
    folder = tmp_path_factory.mktemp("heads_run")
    totals = {"n_prompts": 3, "n_new_tokens": 144, "target_calls": 90, "draft_tokens": 200, "draft_calls": 180}
    return _heads_run(folder, {"code": "k2-gate0.3", "translate": "k3-gate0.0"}, {
        # a break-even any step meets, and one no step here meets; the totals of one arm
        "h200_break_even_head_step_s": {"head-code-tuned": 10.0, "head-translate-tuned": 1e-9, "head-code-k3": None},
        "own_domain_test_totals": {"head-code-tuned": {"domain": "code", **totals}}})


@pytest.mark.slow
@pytest.mark.benchmark  # a benchmark command (BENCHMARKS.md), not in the README's test command
def test_runs_end_to_end_from_model_parts(heads_folder, tmp_path):
    from decoding.pricing import load_calibration
    from decoding.packaged import packaged_model_path

    data = Path(packaged_model_path("smollm2-135m")).read_bytes()
    cut = 60 * 2**20
    parts = [tmp_path / "model.gguf.part-aa", tmp_path / "model.gguf.part-ab"]
    parts[0].write_bytes(data[:cut])
    parts[1].write_bytes(data[cut:])
    out = tmp_path / "out"
    r = _run(["--heads", str(heads_folder), "--model", *map(str, parts), "--device", "cpu", "--per-domain", "1", "--repeats", "1",
              "--max-new-tokens", "8", "--threads", "2", "--out", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "joined 2 parts" in r.stderr and "# Heads on" in r.stdout
    for name in ("models.toml", "profile.json", "decodes.parquet", "summary.json", "summary.md"):
        assert (out / name).exists(), name
    s = json.loads((out / "summary.json").read_text())
    # 2 prompts (one per domain) x (plain, plain through the loop, lookup, 2 own heads, the other domain's tuned head)
    assert s["identical_to_greedy"] == "12/12" and s["n_prompts"] == 2 and s["tuned"] == {"code": "k2-gate0.3", "translate": "k3-gate0.0"}
    v = s["verdicts"]
    assert set(v) == {"head-code-k3", "head-code-tuned", "head-translate-k3", "head-translate-tuned"}
    assert all(x["step_s"] > 0 for x in v.values())
    assert v["head-code-tuned"]["meets_1_2x_on_own_test"] is True and v["head-translate-tuned"]["meets_1_2x_on_own_test"] is False
    assert v["head-code-k3"]["meets_1_2x_on_own_test"] is False  # no break-even: a free step falls short
    assert v["head-translate-k3"]["meets_1_2x_on_own_test"] is None  # the run gave none
    tot = {"n_new_tokens": 144, "target_calls": 90, "draft_tokens": 200, "draft_calls": 180}
    h200 = load_calibration(REPO / "examples" / "profiles" / "h200-smollm2-135m-fp32.json")
    assert v["head-code-tuned"]["own_test_count_h200_measured"] == pytest.approx(price_totals(tot, h200, v["head-code-tuned"]["step_s"]))
    assert v["head-translate-tuned"]["own_test_count_h200_measured"] is None
    live = s["live"]
    assert live["head-code-tuned"]["code"]["own_domain"] and not live["head-code-tuned"]["translate"]["own_domain"]
    assert set(live["lookup-n3-k10"]) == {"code", "translate"} and set(live["head-translate-k3"]) == {"translate"}
    assert all(x["wall_over_loop"] > 0 and x["count_h200_measured"] > 0 for by in live.values() for x in by.values())
    profile = json.loads((out / "profile.json").read_text())
    assert profile["calibration"]["arm_step_s"]["head-code-tuned"] == pytest.approx(v["head-code-tuned"]["step_s"])


@pytest.mark.parametrize("case, expect", [
    ("no_heads_json", "no heads.json there"),
    ("missing_domain", "holds heads for"),
    ("parts_not_gguf", "are not a GGUF file"),
    ("missing_part", "do not exist"),
    ("out_not_empty", "not empty"),
])
def test_refuses_bad_input(case, expect, tmp_path):
    heads = tmp_path / "run"
    (heads / "heads" / "code").mkdir(parents=True)
    (heads / "heads" / "code" / "head.safetensors").write_bytes(b"")
    if case != "no_heads_json":
        tuned = {"code": {"setting": "k3-gate0.0"}, **({"translate": {"setting": "k2-gate0.3"}} if case == "missing_domain" else {})}
        (heads / "heads.json").write_text(json.dumps({"tuned": tuned}))
    model = ["packaged:smollm2-135m"]
    if case in ("parts_not_gguf", "missing_part"):
        model = [str(tmp_path / "a"), str(tmp_path / "b")]
        (tmp_path / "a").write_bytes(b"NOTGGUF")
        if case == "parts_not_gguf":
            (tmp_path / "b").write_bytes(b"x")
    out = tmp_path / "out"
    if case == "out_not_empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    r = _run(["--heads", str(heads), "--model", *model, "--device", "cpu", "--out", str(out)])
    assert r.returncode != 0 and expect in r.stderr, r.stderr[-2000:]
    if case == "out_not_empty":
        assert (out / "keep.txt").read_text() == "mine"
