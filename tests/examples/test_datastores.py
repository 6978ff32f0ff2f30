"""examples/datastores.py at a tiny size, on the tiny heads run of tests/examples/conftest.py: a store per
domain from train and mined prompts only, settings picked on validation, replayed counts checked
live, the store arms added to both logs, the selection on each."""

from __future__ import annotations

import json

import pytest

from decoding.drafters.stores_run import HEAD_STORE_GATES, STORE_TOKENS
from logging_data import open_log, validate_log

pytestmark = [pytest.mark.slow, pytest.mark.benchmark]  # a benchmark command (BENCHMARKS.md), not in the README's test command


def test_datastores_example_runs_end_to_end(heads_run, load_example, tmp_path):
    ex = load_example("datastores")
    heads_dir, heads_res = heads_run
    out = tmp_path / "stores"
    res = ex.main(heads_dir, out, threads=2, live_check=2, router_live=1, live_per_domain=1, budget="tiny",
                  learners=("regression", "classifier"))
    domains = heads_res["domains"]
    # each store holds the teacher's continuations of its domain's train prompts: the log's one and the mined one
    assert {d: s["train_prompts"] for d, s in res["stores"].items()} == {d: 2 for d in domains}
    from decoding.datastore import load_datastore

    store = load_datastore(out / "stores" / "code")
    assert store.n_tokens == res["stores"]["code"]["tokens"] > 0
    names = {f"store-{d}{s}" for d in domains for s in ("", "-tuned")} | {f"store-head-{d}" for d in domains}
    assert set(res["settings"]) == names
    for name, s in res["settings"].items():  # a setting of the grids, picked on validation
        assert s["store_tokens"] in STORE_TOKENS + tuple(g.tokens for g in HEAD_STORE_GATES)
        assert s["kind"] == ("datastore_head" if name.startswith("store-head-") else "datastore")
    assert res["live_check"] and all(c["lossless"] and c["same_counts"] for c in res["live_check"])  # replay == the live loop
    assert all(v > 0 for v in res["store_step_s_cpu"].values())
    for pricing in ("cpu", "h200"):
        path = out / f"log-{pricing}"
        assert validate_log(path).ok
        log = open_log(path)
        kinds = {a.name: a.kind for a in log.metadata.arms}
        assert {kinds[n] for n in names} == {"datastore", "datastore_head"} and "head-code-tuned" in kinds  # the heads run's arms kept
        frame = log.read("outcomes")
        assert frame.groupby("arm").size().nunique() == 1  # every arm on every prompt
        r = res[pricing]
        assert r["winner"] and r["live_lossless_failures"] == 0 and all(row["identical_to_greedy"] == 1.0 for row in r["live"])
        assert set(r["store_arms_test"]) == names and all(v["own"] is not None for v in r["store_arms_test"].values())
    # the heads run's own rows are priced as they were there
    before = open_log(heads_dir / "log-h200").read("outcomes").set_index(["query_id", "arm"])["speedup_count"]
    after = open_log(out / "log-h200").read("outcomes").set_index(["query_id", "arm"])["speedup_count"]
    assert after.loc[before.index].to_numpy() == pytest.approx(before.to_numpy())
    live = res["live"]
    assert live["n_lossless_failures"] == 0 and set(live["per_arm_by_domain"]) == {"plain", "lookup-n3-k10"} | names
    assert json.loads((out / "stores.json").read_text())["settings"] == res["settings"]
