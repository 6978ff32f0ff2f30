"""decoding.drafters and the two pipeline modules, on tiny data (no model): what the heads and stores runs build on."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bandit.pipeline import arm_domain_speedups, held_out_slice, live_table
from decoding.pricing import load_calibration
from decoding.drafters.live import live_arm_domain_table, steps_by_kind
from decoding.drafters.logs import write_priced_log
from decoding.drafters.models_file import GATED, head_arm, head_arms_of, heads_models_file, router_models_file, store_arm
from decoding.drafters.pricing import own_domain_table, price_totals, sum_counts
from decoding.drafters.states import load_states, plain_rows, save_states
from decoding.drafters.tuning import HeadSetting, StoreHeadSetting, StoreSetting, pick_setting, table_json
from decoding.models import ModelsConfig, load_models_config, parse_models_config

H200 = Path(__file__).resolve().parents[2] / "examples" / "profiles" / "h200-smollm2-135m-fp32.json"


def _rows(arm: str, domain: str, split: str, n: list[int], speedups: list[float], **extra) -> list[dict]:
    return [{"query_id": f"{domain}-{split}-{i}", "arm": arm, "domain": domain, "split": split, "n_new_tokens": t,
             "speedup_count": s, **extra} for i, (t, s) in enumerate(zip(n, speedups))]


def test_states_round_trip_and_refuse_other_prompts(tmp_path):
    rng = np.random.default_rng(0)
    prompts, outputs = [[1, 2, 3], [4, 5]], [[6, 7], [8, 9, 10, 11]]
    states = [rng.normal(size=(len(p) + len(o), 4)).astype(np.float32) for p, o in zip(prompts, outputs)]
    args = [np.arange(len(p) + len(o)) for p, o in zip(prompts, outputs)]
    save_states(tmp_path / "s", ["a", "b"], prompts, outputs, states, args, 1)
    got = load_states(tmp_path / "s", ["a", "b"])
    assert got[0] == prompts and got[1] == outputs and got[4] == 1
    assert all(np.array_equal(a, b) for a, b in zip(got[2], states)) and all(np.array_equal(a, b) for a, b in zip(got[3], args))
    assert load_states(tmp_path / "s", ["b", "a"]) is None and load_states(tmp_path / "missing", ["a"]) is None


def test_kept_states_are_read_back_only_for_their_target_and_a_rewrite_drops_the_old_index_first(tmp_path, monkeypatch):
    prompts, outputs = [[1, 2]], [[3]]
    states, args = [np.zeros((3, 2), dtype=np.float32)], [np.arange(3)]
    mine, other = {"target": "tiny", "hidden_size": 2}, {"target": "other", "hidden_size": 2}
    save_states(tmp_path / "s", ["a"], prompts, outputs, states, args, 0, made_for=mine)
    assert load_states(tmp_path / "s", ["a"], mine) is not None and load_states(tmp_path / "s", ["a"]) is not None
    assert load_states(tmp_path / "s", ["a"], other) is None
    # a rewrite cut short (the disk fills after the states) leaves a folder that is not read back

    def full(*a, **k):
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError, match="No space"):
        save_states(tmp_path / "s", ["a"], prompts, [[4]], states, args, 0, made_for=mine)
    assert load_states(tmp_path / "s", ["a"], mine) is None


def test_plain_rows_takes_the_first_of_each_domain_and_split():
    frame = pd.DataFrame([{"query_id": f"q{i:02d}", "arm": arm, "domain": "ab"[i % 2], "split": "train"}
                          for i in range(30) for arm in ("plain", "lookup")])
    assert len(plain_rows(frame, None)) == 30 and set(plain_rows(frame, None)["arm"]) == {"plain"}
    got = plain_rows(frame, 24)  # 24 // 12 = 2 per domain x split
    assert got["query_id"].tolist() == ["q00", "q01", "q02", "q03"]


def test_pick_over_a_store_head_grid_and_its_json():
    fast, slow = StoreHeadSetting(StoreSetting(4, 1, 0.0), HeadSetting(2, 0.3)), StoreHeadSetting(StoreSetting(8, 3, 0.6), GATED)
    table = {fast: {"count": 1.4, "acceptance": 0.3}, slow: {"count": 1.2, "acceptance": 0.6}}
    assert pick_setting(table, 0.45) == slow and pick_setting(table, 0.0) == fast and pick_setting(table, 0.9) is None
    assert list(table_json(table)) == ["k4-count1-frac0.0+head-k2-gate0.3", "k8-count3-frac0.6+head-k5-gate0.4"]


def test_price_totals_prices_rounds_and_steps():
    h200 = load_calibration(H200)
    rounds = sum_counts([{"n_new_tokens": 4, "target_calls": 4, "draft_tokens": 0, "draft_calls": 0, "accepted_tokens": 0}] * 2)
    assert rounds["n_new_tokens"] == 8 and price_totals(rounds, h200, 0.001) == pytest.approx(1.0 / (1.0 + h200.relative_round_cost()))
    good = {"n_new_tokens": 10, "target_calls": 4, "draft_tokens": 9, "draft_calls": 9, "accepted_tokens": 6}
    assert price_totals(good, h200, 0.0) > price_totals(good, h200, 0.002) > 1.0


def test_ratio_of_totals_tables_weigh_long_outputs():
    frame = pd.DataFrame(_rows("head-a-k3", "a", "test", [10, 90], [2.0, 1.0], accepted_tokens=5, draft_tokens=10)
                         + _rows("head-a-k3", "b", "test", [10], [0.5], accepted_tokens=0, draft_tokens=10)
                         + _rows("head-a-k3", "a", "train", [10], [9.0], accepted_tokens=0, draft_tokens=1))
    want = 100 / (10 / 2.0 + 90 / 1.0)  # total tokens over total cost, not the mean of the speed-ups
    assert arm_domain_speedups(frame)["head-a-k3"] == {"a": pytest.approx(want), "b": pytest.approx(0.5)}
    own = own_domain_table(frame, {"head-a-k3": "a"})["head-a-k3"]
    assert own["own"] == pytest.approx(want) and own["elsewhere"] == {"b": pytest.approx(0.5)} and own["acceptance_own"] == 0.5
    live = frame.assign(count_h200=frame["speedup_count"] * 2, wall_time_s=1.0, plain_wall_time_s=[2.0, 1.0, 1.0, 1.0], lossless=True)
    table = live_arm_domain_table(live[live["split"] == "test"])
    assert table["head-a-k3"]["a"]["count_cpu"] == pytest.approx(want) and table["head-a-k3"]["a"]["count_h200"] == pytest.approx(2 * want)
    assert table["head-a-k3"]["a"]["wall"] == pytest.approx(1.5) and table["head-a-k3"]["a"]["identical"] == 1.0


def test_live_table_of_decisions():
    d = pd.DataFrame({"query_id": ["q1", "q2"], "domain": ["a", "b"], "n_new_tokens": [10, 30], "x_speedup_count": [2.0, 1.0],
                      "wall_time_s": [1.0, 3.0], "x_plain_wall_time_s": [2.0, 3.0], "lossless": [True, False],
                      "choose_time_s": [0.0, 0.4], "arm": ["x", "plain"]})
    t = live_table(d).set_index("domain")
    assert t.loc["(all)", "count"] == pytest.approx(40 / 35) and t.loc["(all)", "wall"] == pytest.approx(5 / 4)
    assert t.loc["(all)", "identical_to_greedy"] == 0.5 and t.loc["(all)", "choose_share"] == pytest.approx(0.1)
    held = held_out_slice(pd.DataFrame({"query_id": ["b", "a", "c"], "prompt": "p", "domain": "x", "split": ["test", "test", "train"]}), 1)
    assert held["query_id"].tolist() == ["a"]


def test_steps_by_kind_prices_the_measured_and_the_given():
    class Own:
        arm_step_s = {"store-a": 0.004}

    steps = steps_by_kind({"datastore": None, "datastore_head": 0.002})
    assert steps("store-a", "datastore", Own()) == 0.004 and steps("sh", "datastore_head", Own()) == 0.002
    assert steps("lookup", "prompt_lookup", Own()) == 0.0


def test_head_and_store_arms_parse_as_a_models_file(tmp_path):
    lookup = parse_models_config('[target]\npath = "t"\n[[arms]]\nname = "lookup-n3-k10"\nkind = "prompt_lookup"\n'
                                 'prompt_lookup_num_tokens = 10\nmax_matching_ngram_size = 3\n').arm("lookup-n3-k10")
    names = [n for n, _ in head_arms_of("code", {"code": HeadSetting(2, 0.3)})]
    assert names == ["head-code-k3", "head-code-k5", "head-code-k5-gated", "head-code-tuned", "lookup-head-code", "lookup-head-code-gated"]
    arms = [head_arm(n, "code", s, lookup) for n, s in head_arms_of("code", {"code": HeadSetting(2, 0.3)})]
    arms += [store_arm("store-code", "code", StoreSetting(4, 2, 0.3), tmp_path),
             store_arm("store-head-code", "code", StoreHeadSetting(StoreSetting(4, 1, 0.0), HeadSetting(2, 0.5)), tmp_path)]
    cfg = parse_models_config(ModelsConfig.of("t", arms).to_toml(), base_dir=tmp_path)
    tuned, gated, store, both = cfg.arm("head-code-tuned"), cfg.arm("lookup-head-code-gated"), cfg.arm("store-code"), cfg.arm("store-head-code")
    assert (tuned.kind, tuned.num_assistant_tokens, tuned.assistant_confidence_threshold, tuned.option("head")) == ("head", 2, 0.3, "heads/code")
    assert (gated.kind, gated.num_assistant_tokens, gated.prompt_lookup_num_tokens) == ("lookup_head", 5, 10)
    assert (store.kind, store.num_assistant_tokens, store.option("min_fraction")) == ("datastore", 4, 0.3)
    assert both.kind == "datastore_head" and both.option("head") == str((tmp_path / "heads" / "code").resolve())


def test_heads_models_files_name_every_head_arm(tmp_path):
    source = tmp_path / "joint.toml"
    source.write_text('[target]\npath = "packaged:smollm2-135m"\ndevice = "cpu"\nmax_new_tokens = 48\n\n[[arms]]\nname = "plain"\nkind = "none"\n\n'
                      '[[arms]]\nname = "lookup-n3-k10"\nkind = "prompt_lookup"\nprompt_lookup_num_tokens = 10\nmax_matching_ngram_size = 3\n')
    tuned = {"a": HeadSetting(2, 0.3), "b": HeadSetting(4)}
    for _ in range(2):  # a rerun replaces its files
        live, router = heads_models_file(tmp_path, source, ["a", "b"], tuned=tuned), router_models_file(tmp_path, source, ["a", "b"], tuned)
    live, router = load_models_config(live), load_models_config(router)
    assert live.target.path == "packaged:smollm2-135m" and live.target.max_new_tokens == 48
    assert live.arm_names == ("plain", "lookup-n3-k10", "head-a-k3", "head-a-tuned", "head-b-k3", "head-b-tuned",
                              "lookup-head-a", "lookup-head-a-gated", "lookup-head-b", "lookup-head-b-gated")
    assert router.arm_names == ("plain", "lookup-n3-k10", *(n for d in "ab" for n, _ in head_arms_of(d, tuned)))
    assert router.arm("head-b-tuned").num_assistant_tokens == 4 and router.arm("head-b-tuned").assistant_confidence_threshold is None
    assert router.resolve(router.arm("lookup-head-a").option("head")) == str(tmp_path / "heads" / "a")


def test_write_priced_log_prices_every_row_and_replaces_the_folder(tmp_path):
    from logging_data import Arm, open_log, validate_log

    from decoding.pricing import Calibration

    base = pd.DataFrame([{"query_id": f"q{i}", "prompt": f"p{i}", "domain": "a", "split": ["train", "validation", "test"][i % 3],
                          "arm": "plain", "n_new_tokens": 8, "target_calls": 8, "draft_calls": 0, "draft_tokens": 0, "accepted_tokens": 0}
                         for i in range(6)])
    replayed = base.assign(arm="head-a-k3", target_calls=4, draft_calls=6, draft_tokens=6, accepted_tokens=4)
    cal = Calibration(**{**load_calibration(H200).to_json(), "arm_step_s": {"plain": 0.0, "head-a-k3": 0.001}})
    arms = [Arm("plain", "none", 0.0, {}), Arm("head-a-k3", "head", 0.2, {"head": "a", "draft_tokens": 3})]
    path = tmp_path / "log"
    for _ in range(2):  # the second call replaces the first log whole
        frame = write_priced_log(path, base, replayed, arms, cal, "test pricing", {"made_by": "tests"})
    assert len(open_log(path).read("outcomes")) == 12 and validate_log(path).ok
    assert frame[frame["arm"] == "plain"]["speedup_count"].tolist() == pytest.approx([1.0] * 6)
    assert (frame[frame["arm"] == "head-a-k3"]["speedup_count"] > 1.0).all() and set(frame["arm_cost"]) == {0.0, 0.2}
    meta = open_log(path).metadata
    assert meta.reward.priced_by == "test pricing" and meta.extra["made_by"] == "tests" and json.dumps(meta.extra["calibration"])


def test_head_step_is_timed_as_the_head_kind_times_it():
    """``heads_run.head_step_seconds`` goes through ``decoding.arms.head.Head.step_seconds`` (a tiny model built here)."""
    from types import SimpleNamespace

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from decoding.drafters.heads_run import head_step_seconds
    from decoding.heads import feature_head

    with torch.random.fork_rng():
        torch.manual_seed(0)
        cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                                       num_key_value_heads=4, max_position_embeddings=64)
        model = transformers.LlamaForCausalLM(cfg).eval()
        head = feature_head(32, list(range(64)), n_blocks=1, expansion=1)
    step = head_step_seconds(head, SimpleNamespace(target=SimpleNamespace(model=model)), repeats=3)
    assert 0.0 < step < 1.0


def test_a_drafter_models_file_names_the_source_paths_absolutely(tmp_path):
    """A models file written into a drafter command's folder keeps pointing at the source's target and drafts."""
    from decoding.drafters.models_file import stores_models_file

    src = tmp_path / "src"
    for folder in ("target", "draft"):
        (src / folder).mkdir(parents=True)
    (src / "models.toml").write_text('[target]\npath = "target"\n[[arms]]\nname = "plain"\nkind = "none"\n'
                                     '[[arms]]\nname = "d"\nkind = "draft"\ndraft = "draft"\n')
    written = load_models_config(stores_models_file(tmp_path / "out", src / "models.toml", {"store-a": ("a", StoreSetting(4, 2, 0.3))}))
    assert written.resolve(written.target.path) == str(src / "target") and written.arm("d").draft == str(src / "draft")
    assert written.resolve(written.arm("store-a").option("datastore")) == str(tmp_path / "out" / "stores" / "a")


def test_a_given_head_step_prices_the_heads_instead_of_this_machines_timing(tmp_path):
    """--head-step: a GPU profile's heads are priced at the step measured there, not at this CPU's."""
    from decoding.drafters.heads_run import HeadsRunConfig, pricings
    from decoding.pricing import Calibration

    profile = tmp_path / "gpu.json"
    profile.write_text(json.dumps(Calibration(target_step_s=0.01).to_json()))
    base = HeadsRunConfig(out=tmp_path, source_log=tmp_path, models=tmp_path, calibration=profile)
    (timed,) = pricings(base, None, 0.0005)
    (given,) = pricings(dataclasses.replace(base, head_step_s=0.0021), None, 0.0005)
    assert timed.head_step_s == 0.0005 and "measured here (0.50 ms)" in timed.label
    assert given.head_step_s == 0.0021 and "given (2.10 ms)" in given.label and given.profile.target_step_s == 0.01


@pytest.mark.parametrize("layout", ["chunks", "one folder"])
def test_run_states_reads_a_heads_runs_states_in_either_layout(tmp_path, layout):
    """``run_states``: the research scripts' read-back of a heads run, chunked (now) or in one folder (before)."""
    from decoding.drafters.states import run_states
    from logging_data import Arm, LogMetadata, RewardDefinition, create_log

    rows = [{"query_id": q, "prompt": f"text {q}", "domain": "code", "split": "train", "arm": "plain", "reward": 0.0} for q in "ab"]
    create_log(tmp_path / "log", LogMetadata(arms=(Arm("plain", "none"),), reward=RewardDefinition())).append("outcomes", pd.DataFrame(rows))
    kept = {q: ([1, 2], [3 + i], [np.full((3, 2), i, dtype=np.float32)], [np.arange(3)]) for i, q in enumerate("ab")}
    folder = tmp_path / "run" / "states"
    if layout == "chunks":
        for c, q in enumerate("ab"):
            p, o, s, a = kept[q]
            save_states(folder / f"chunk-{c:03d}", [q], [p], [o], s, a, 0)
    else:
        save_states(folder, ["a", "b"], [[1, 2], [1, 2]], [[3], [4]], kept["a"][2] + kept["b"][2], kept["a"][3] + kept["b"][3], 1)
    plain, (prompts, outputs, states, _, _) = run_states(tmp_path / "run", tmp_path / "log")
    assert plain["query_id"].tolist() == ["a", "b"] and outputs == [[3], [4]] and float(states[1][0, 0]) == 1.0
    (folder / ("chunk-001" if layout == "chunks" else ".") / "states.npy").unlink()
    with pytest.raises(SystemExit, match="incomplete"):
        run_states(tmp_path / "run", tmp_path / "log")
