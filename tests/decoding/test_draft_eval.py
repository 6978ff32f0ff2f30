"""decoding.draft_eval: per-domain acceptance, tokens per call, speed-ups and the lossless check."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from decoding import distill as D
from decoding.draft_eval import PLAIN, DraftEvalConfig, evaluate_drafts, format_table, select_prompts, summarize

DOMAIN_A = ["the quick brown fox jumps over the lazy dog", "the cat sat on the mat and the dog sat on the log",
            "the quick brown fox jumps over the lazy dog and the cat"]
DOMAIN_B = ["def add ( a , b ) : return a + b", "translate this sentence into french please",
            "summarize the following text in one line"]


def _prompts() -> pd.DataFrame:
    texts = DOMAIN_A + DOMAIN_B
    return pd.DataFrame({"query_id": [f"q{i}" for i in range(6)], "prompt": texts,
                         "domain": ["a"] * 3 + ["b"] * 3, "split": ["train", "train", "test", "train", "train", "test"]})


@pytest.fixture(scope="module")
def draft_a(tiny_models, tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    model, tok, path = D.load_target(tiny_models["target"])
    out = tmp_path_factory.mktemp("draft_a") / "draft-a"
    cfg = D.DistillConfig(domain="a", max_prompts=None, max_new_tokens=10, top_k=8, steps=40, batch_size=2, lr=1e-2,
                          checkpoint_every=40)
    arch = D.DraftArchitecture(n_layers=1, hidden_size=16, intermediate_size=32, n_heads=2, n_kv_heads=1)
    D.distill_draft(model, tok, DOMAIN_A[:2], out, config=cfg, arch=arch, target_name=path, progress=False)
    return out


@pytest.fixture(scope="module")
def report(tiny_models, draft_a):
    cfg = DraftEvalConfig(split=None, per_domain=3, max_new_tokens=10, num_assistant_tokens=3, warmup=0)
    return evaluate_drafts(tiny_models["target"], {"draft-a": str(draft_a), "fixture-draft": tiny_models["draft"]},
                           _prompts(), cfg, threads=1, progress=False)


def test_assisted_decoding_with_a_distilled_draft_equals_plain_greedy(report):
    rows = report.rows
    assert set(rows["draft"]) == {PLAIN, "draft-a", "fixture-draft"}
    assert rows["lossless"].all()
    assert all(r.lossless for r in report.results) and report.to_json()["all_lossless"]


def test_counts_are_consistent(report):
    rows = report.rows
    plain = rows[rows["draft"] == PLAIN]
    assert (plain["draft_calls"] == 0).all() and (plain["target_calls"] == plain["n_new_tokens"]).all()
    assisted = rows[rows["draft"] != PLAIN]
    assert (assisted["accepted_tokens"] <= assisted["proposed_tokens"]).all()
    assert (assisted["accepted_tokens"] == assisted["n_new_tokens"] - assisted["target_calls"]).all()
    # every prompt of a domain generated the same number of tokens under every arm (greedy)
    n_new = rows.pivot(index="query_id", columns="draft", values="n_new_tokens")
    assert (n_new.nunique(axis=1) == 1).all()
    for r in report.results:
        assert r.n_prompts == 3
        if r.draft == PLAIN:
            assert math.isnan(r.acceptance_rate) and r.tokens_per_target_call == pytest.approx(1.0)
            assert r.speedup_wall == pytest.approx(1.0)
        else:
            assert 0.0 <= r.acceptance_rate <= 1.0
            assert r.tokens_per_target_call == pytest.approx(r.n_new_tokens / r.target_calls)


def test_count_speedup_follows_the_calibration(report):
    from decoding.pricing import speedup_count

    cal = report.calibration
    rel = cal.relative_costs()
    for r in report.results:
        if r.draft != PLAIN:
            expected = speedup_count(r.n_new_tokens, r.target_calls, r.draft_calls, rel[r.draft], r.proposed_tokens,
                                     cal.relative_verify_cost(), cal.relative_round_cost())
            assert r.speedup_count == pytest.approx(expected)
    doc = report.to_json()
    assert set(doc["relative_costs"]) >= {"draft-a", "fixture-draft"}
    assert "draft-a" in format_table(report.results)


def test_summarize_by_hand():
    rows = pd.DataFrame([
        # query, domain, arm, n_new, target_calls, draft_calls, proposed, accepted, wall, lossless
        ("q1", "a", PLAIN, 10, 10, 0, 0, 0, 1.0, True),
        ("q2", "a", PLAIN, 10, 10, 0, 0, 0, 3.0, True),
        ("q1", "a", "d", 10, 4, 12, 12, 6, 0.5, True),
        ("q2", "a", "d", 10, 6, 12, 12, 4, 1.5, False),
    ], columns=["query_id", "domain", "draft", "n_new_tokens", "target_calls", "draft_calls", "proposed_tokens",
                "accepted_tokens", "wall_s", "lossless"])
    res = {r.draft: r for r in summarize(rows, {"d": 0.25})}
    d = res["d"]
    assert d.acceptance_rate == pytest.approx(10 / 24)
    assert d.tokens_per_target_call == pytest.approx(20 / 10)
    assert d.speedup_wall == pytest.approx(4.0 / 2.0)
    assert d.speedup_count == pytest.approx(20 / (10 + 24 * 0.25))
    assert d.n_lossless == 1 and not d.lossless
    assert res[PLAIN].speedup_count == pytest.approx(1.0)


def test_select_prompts_is_seeded_and_per_domain():
    frame = pd.DataFrame({"prompt": [f"p{i}" for i in range(40)], "domain": ["a", "b"] * 20, "split": "test"})
    cfg = DraftEvalConfig(per_domain=5, seed=3)
    a, b = select_prompts(frame, cfg), select_prompts(frame, cfg)
    assert a.equals(b) and a["domain"].value_counts().to_dict() == {"a": 5, "b": 5}
    assert not a.equals(select_prompts(frame, DraftEvalConfig(per_domain=5, seed=4)))


@pytest.mark.parametrize("frame, cfg, pattern", [
    (pd.DataFrame({"prompt": ["x"]}), DraftEvalConfig(), r"need column\(s\) domain; found prompt"),
    (pd.DataFrame({"prompt": ["x"], "domain": ["a"]}), DraftEvalConfig(split="test"), r"split='test' needs a `split` column"),
    (pd.DataFrame({"prompt": ["x"], "domain": ["a"], "split": ["train"]}), DraftEvalConfig(split="test"),
     r"no prompts of domain\(s\) \(any\) in split 'test'; present: none"),
    (pd.DataFrame({"prompt": ["x"], "domain": ["a"], "split": ["test"]}), DraftEvalConfig(domains=("zz",)),
     r"no prompts of domain\(s\) zz in split 'test'; present: a"),
])
def test_bad_prompt_selection(frame, cfg, pattern):
    with pytest.raises(ValueError, match=pattern):
        select_prompts(frame, cfg)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"per_domain": 0}, r"`per_domain` must be an integer >= 1; got 0"),
    ({"num_assistant_tokens": True}, r"`num_assistant_tokens` must be an integer >= 1; got True"),
    ({"warmup": -1}, r"`warmup` must be an integer >= 0; got -1"),
    ({"schedule": "fast"}, r"`schedule` must be constant, heuristic or heuristic_transient; got 'fast'"),
])
def test_bad_eval_config(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        DraftEvalConfig(**kwargs).validate()


def test_missing_draft_folder_is_named(tiny_models, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"draft 'x': .*nope is not a Hugging Face folder"):
        evaluate_drafts(tiny_models["target"], {"x": str(tmp_path / "nope")}, _prompts(), DraftEvalConfig(split=None), progress=False)
    with pytest.raises(ValueError, match="at least one draft"):
        evaluate_drafts(tiny_models["target"], {}, _prompts(), DraftEvalConfig(split=None), progress=False)
