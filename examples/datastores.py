"""Task-aligned retrieval datastores beside the heads: one store per domain of what the target itself
wrote there, replayed on every prompt of the joint log, priced on this CPU and on the H200, selected on validation.

    python examples/heads.py --out out/heads                             # first: states, mined prompts, heads, logs
    python examples/datastores.py --heads out/heads --out out/stores     # ~30 min on 2 CPU cores

A store (``decoding.datastore``, arm kind ``datastore``) drafts with no model: it matches the end of
the context against the target's greedy continuations of the domain's *training* prompts (the
log's train split and the mined ones ``examples/heads.py`` generated; never a validation or test
prompt) and proposes what most often followed (REST-style retrieval, one store per domain as
TaskSpec's drafts are one per task). Steps:

1. per domain, the store of the teacher's continuations of its train and mined prompts
   (``OUT/stores/<domain>``);
2. on the validation prompts only, per domain: ``store-D``, the fastest store setting under the
   H200 profile (``STORE_TOKENS`` x ``MIN_COUNTS`` x ``MIN_FRACTIONS``); ``store-D-tuned``, the fastest
   whose acceptance reaches 0.45; ``store-head-D`` (kind ``datastore_head``: the store where it has a
   continuation, the domain's head elsewhere), the fastest store gates x head setting
   (``heads.TUNE_LENGTHS`` x ``heads.TUNE_GATES``) whose acceptance reaches 0.45;
3. every store arm replayed on every prompt of the log (exact: a store's counts replay from the
   target's greedy output; with a head, from its chains as ``examples/heads.py`` replays them),
   *cross-fitted* on the train split: a train prompt is replayed with a store built without its
   fold (``FOLDS``), since the whole store holds its own output and would make the store look
   near-perfect to the learners trained on that split; checked against the project's live loop
   on a sample of validation and test prompts (identical to greedy, the replayed counts);
4. the heads run's two logs (``log-cpu``, ``log-h200``) with the store arms added: a store's lookup
   priced at its step measured on this CPU (host work on a GPU machine too), a store-then-head
   arm's draft calls at the head's step of that log; every policy trained on train, the
   project's rule selects on validation, the test split scores it against the best single arm, and
   the selected policy decodes ``--router-live-per-domain`` test prompts per domain live;
5. live on this CPU (``--live-per-domain``): plain decoding, ``lookup-n3-k10`` and every store arm,
   measured by ``bandit-log build``'s builder (wall and count speed-ups, identical to greedy).

Writes ``OUT/stores.json`` (every number), ``OUT/models-stores.toml``, ``OUT/models-router.toml``, the logs and the selections.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling examples, also when this file is loaded by path
import heads as heads_run  # noqa: E402

STORE_TOKENS = (2, 3, 4, 6, 8)
MIN_COUNTS = (1, 2, 3)
MIN_FRACTIONS = (0.0, 0.3, 0.5)
#: the store gates tried under a head (``store-head-D``)
HEAD_STORE_GATES = ((4, 1, 0.0), (4, 2, 0.3), (4, 2, 0.5), (4, 3, 0.5), (6, 3, 0.5), (8, 3, 0.6))
MIN_ACCEPTANCE = heads_run.MIN_ACCEPTANCE
#: cross-fitting folds of each domain's train prompts: a train prompt's counts come from a store built without its fold
FOLDS = 5


def _say(message: str) -> None:
    print(f"[stores] {message}", file=sys.stderr, flush=True)


def read_states(heads_dir: Path) -> tuple[pd.DataFrame, list[list[int]], list[list[int]], list[Any]]:
    """The heads run's prompts (query_id, domain, split: the log's, then ``mined``), their ids, the
    teacher's greedy continuations and the target's hidden states, as ``examples/heads.py`` kept them."""
    from logging_data import open_log

    index = heads_dir / "states" / "index.json"
    if not index.exists():
        raise SystemExit(f"--heads {heads_dir}: no states there (run examples/heads.py --out {heads_dir} first)")
    ids = json.loads(index.read_text())["query_ids"]  # the prompts that run used (all of the log's, or its --max-prompts)
    plain = heads_run.plain_rows(open_log(heads_run.JOINT_LOG).read("outcomes"), None).set_index("query_id").loc[ids].reset_index()
    kept = heads_run._load_states(heads_dir / "states", ids)
    if kept is None:
        raise SystemExit(f"--heads {heads_dir}: its states are incomplete (run examples/heads.py --out {heads_dir} again)")
    prompts, outputs, states = kept[0], kept[1], kept[2]
    frame = plain[["query_id", "prompt", "domain", "split"]].astype({"domain": str, "split": str})
    extra_path = heads_dir / "extra-prompts.parquet"
    if extra_path.exists():
        extra = pd.read_parquet(extra_path)
        e_prompts, e_outputs, e_states, _ = heads_run.cached_teacher_outputs(None, extra, heads_dir / "extra-states")
        frame = pd.concat([frame, extra.assign(split="mined")[["query_id", "prompt", "domain", "split"]]], ignore_index=True)
        prompts, outputs, states = prompts + e_prompts, outputs + e_outputs, states + e_states
    return frame.reset_index(drop=True), prompts, outputs, states


def totals(rows: list[dict[str, int]]) -> dict[str, int]:
    keys = ("n_new_tokens", "target_calls", "draft_tokens", "draft_calls", "accepted_tokens")
    return {k: int(sum(r[k] for r in rows)) for k in keys}


def price(t: dict[str, int], h200: Any, step_s: float) -> float:
    """The count speed-up (ratio of totals) of summed counts under ``h200``, a draft call costing ``step_s``."""
    from decoding.calibrate import speedup_count

    return speedup_count(t["n_new_tokens"], t["target_calls"], t["draft_calls"], step_s / h200.step_s, t["draft_tokens"],
                         h200.relative_verify_cost(), h200.relative_round_cost())


def _each(store: Any, n: int) -> list[Any]:
    return list(store) if isinstance(store, (list, tuple)) else [store] * n


def store_rows(store: Any, items: list[tuple[list[int], list[int]]], max_new: int, k: int, min_count: int, min_fraction: float) -> list[dict[str, int]]:
    """Each item's exact counts with a store (``store``: one for all, or one per item)."""
    from decoding.datastore import DatastoreDraft, replay_datastore

    return [replay_datastore(DatastoreDraft(st, k, min_count, min_fraction), p, g, max_new) for st, (p, g) in zip(_each(store, len(items)), items)]


def store_head_rows(store: Any, items: list[tuple[list[int], list[int]]], chains: list[Any], max_new: int, gates: tuple[int, int, float],
                    k: int, gate: float) -> list[dict[str, int]]:
    """Each item's exact counts with a store (one, or one per item) and, where it has nothing, the head's chain."""
    from decoding import heads
    from decoding.datastore import DatastoreDraft

    out = []
    for st, (p, g), (tok, conf) in zip(_each(store, len(items)), items, chains):
        look = DatastoreDraft(st, *gates)
        out.append(heads.replay_first_chains(look.propose, tok, p, g, max_new, k, conf, gate))
    return out


def pick(table: dict[str, dict[str, float]], min_acceptance: float) -> str:
    """The fastest entry of ``table`` whose acceptance reaches ``min_acceptance`` (the fastest of all when none does)."""
    ok = {n: v for n, v in table.items() if v["acceptance"] >= min_acceptance} or table
    return max(ok, key=lambda n: ok[n]["count_h200"])


def store_toml(name: str, domain: str, setting: dict[str, Any], heads_dir: Path) -> str:
    """One ``[[arms]]`` table (stores under ``stores/`` beside the models file, heads by absolute path)."""
    text = f'\n[[arms]]\nname = "{name}"\nkind = "{setting["kind"]}"\ndatastore = "stores/{domain}"\n'
    tokens_key = "datastore_tokens" if setting["kind"] == "datastore_head" else "num_assistant_tokens"
    text += f"{tokens_key} = {setting['store_tokens']}\nmin_count = {setting['min_count']}\nmin_fraction = {setting['min_fraction']}\n"
    if setting["kind"] == "datastore_head":
        text += f"head = {json.dumps(str((heads_dir / 'heads' / domain).resolve()))}\nnum_assistant_tokens = {setting['head_tokens']}\n"
        text += f"assistant_confidence_threshold = {setting['head_gate']}\n" if setting["head_gate"] else ""
    return text


def models_files(out: Path, heads_dir: Path, settings: dict[str, dict[str, Any]]) -> tuple[Path, Path]:
    """``OUT/models-stores.toml`` (plain, ``lookup-n3-k10``, every store arm) and ``OUT/models-router.toml``
    (every arm of the logs: the heads run's router file, its heads by absolute path, plus the store arms)."""
    from decoding.models import load_models_config

    joint = load_models_config(heads_run.MODELS)
    lookup, t = joint.arm(heads_run.LIVE_LOOKUP), joint.target
    arms = "".join(store_toml(name, s["domain"], s, heads_dir) for name, s in settings.items())
    live = (f'[target]\npath = "{t.path}"\ndevice = "{t.device}"\nmax_new_tokens = {t.max_new_tokens}\n\n'
            '[[arms]]\nname = "plain"\nkind = "none"\n\n'
            f'[[arms]]\nname = "{heads_run.LIVE_LOOKUP}"\nkind = "prompt_lookup"\nprompt_lookup_num_tokens = {lookup.prompt_lookup_num_tokens}\n'
            f'max_matching_ngram_size = {lookup.max_matching_ngram_size}\n' + arms)
    router_src = heads_dir / "models-router.toml"
    if not router_src.exists():
        raise SystemExit(f"--heads {heads_dir}: no models-router.toml there (an examples/heads.py run writes it)")
    router = router_src.read_text().replace('head = "heads/', f'head = "{(heads_dir / "heads").resolve()}/')
    router += "\n# each domain's retrieval datastore (examples/datastores.py), alone and before its head\n" + arms
    paths = out / "models-stores.toml", out / "models-router.toml"
    paths[0].write_text(live)
    paths[1].write_text(router)
    for p in paths:
        load_models_config(p)  # parses, or says why here
    return paths


def main(heads_dir: str | Path, out: str | Path, threads: int | None = None, seed: int = 0, live_check: int = 8,
         router_live: int = 2, live_per_domain: int = 2, budget: str = "default", learners: tuple[str, ...] | None = None) -> dict[str, Any]:
    import torch

    from decoding import heads
    from decoding.calibrate import Calibration, StepTimer, load_calibration
    from decoding.datastore import Datastore, DatastoreDraft
    from decoding.models import load_models_config
    from decoding.reprice import price_counts
    from decoding.session import DecodingSession
    from logging_data import Arm, LogMetadata, RewardDefinition, create_log, open_log

    heads_dir, out = Path(heads_dir), Path(out)
    saved_path = heads_dir / "heads.json"
    if not saved_path.exists():
        raise SystemExit(f"--heads {heads_dir}: no heads.json there (run examples/heads.py --out {heads_dir} first)")
    saved = json.loads(saved_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    t_all = time.perf_counter()
    seconds: dict[str, float] = {}
    h200 = load_calibration(heads_run.H200)
    head_h200 = float(saved.get("head_step_s_h200_assumed", heads_run.H200_HEAD_STEP_S))

    _say("1/5 the heads run's greedy outputs and states; one store per domain from its train and mined prompts")
    t = time.perf_counter()
    frame, prompts, outputs, states = read_states(heads_dir)
    domains = sorted(frame["domain"].unique())
    max_new = load_models_config(heads_run.MODELS).target.max_new_tokens
    stores, store_info = {}, {}
    store_of: dict[int, Any] = {}  # a train prompt of the log -> the store of its fold (built without it)
    rng = np.random.default_rng(seed)
    for d in domains:
        idx = np.flatnonzero((frame["domain"] == d).to_numpy() & frame["split"].isin(["train", "mined"]).to_numpy())
        stores[d] = Datastore([outputs[i] for i in idx])
        store_info[d] = {"train_prompts": int(len(idx)), "tokens": stores[d].n_tokens, "keys": stores[d].n_keys, "folds": FOLDS}
        train = rng.permutation(np.flatnonzero(((frame["domain"] == d) & (frame["split"] == "train")).to_numpy()))
        for fold in (f for f in np.array_split(train, FOLDS) if len(f)):
            held = set(fold.tolist())
            cross = Datastore([outputs[i] for i in idx if i not in held])
            store_of.update({int(i): cross for i in fold})
        _say(f"   {d}: {len(idx)} prompts, {stores[d].n_tokens} tokens, {stores[d].n_keys} n-grams")
    seconds["stores"] = time.perf_counter() - t

    _say("2/5 each domain's settings, picked on its validation prompts")
    t = time.perf_counter()
    session = DecodingSession(load_models_config(heads_run.MODELS), threads=threads)
    model = session.target.model
    for d in domains:  # each store records the target whose greedy outputs it holds
        stores[d].save(out / "stores" / d, {"domain": d, "made_by": "examples/datastores.py", "heads_run": str(heads_dir),
                                            "prompts": store_info[d]["train_prompts"]}, made_for=session.target_identity)
    trained = {d: heads.load_head(heads_dir / "heads" / d, session.target_identity) for d in domains}
    log_idx = np.flatnonzero(frame["split"].isin(["train", "validation", "test"]).to_numpy())  # the log's prompts, in its order
    items = [(prompts[i], outputs[i]) for i in range(len(frame))]
    chains = {d: heads.draft_chains_many(trained[d], model, [(states[i], prompts[i] + outputs[i], len(prompts[i]) - 1) for i in log_idx],
                                         max(heads_run.TUNE_LENGTHS), with_confidence=True) for d in domains}
    chain_of = {int(i): j for j, i in enumerate(log_idx)}
    settings, tables = {}, {}
    for d in domains:
        val = np.flatnonzero(((frame["domain"] == d) & (frame["split"] == "validation")).to_numpy())
        its = [items[i] for i in val]
        table = {}
        for k, mc, mf in itertools.product(STORE_TOKENS, MIN_COUNTS, MIN_FRACTIONS):
            tot = totals(store_rows(stores[d], its, max_new, k, mc, mf))
            table[f"k{k}-count{mc}-frac{mf}"] = {"count_h200": price(tot, h200, 0.0),
                                                  "acceptance": tot["accepted_tokens"] / max(tot["draft_tokens"], 1),
                                                  "setting": (k, mc, mf)}
        joint = {}
        for (k, mc, mf), (hk, hg) in itertools.product(HEAD_STORE_GATES, itertools.product(heads_run.TUNE_LENGTHS, heads_run.TUNE_GATES)):
            tot = totals(store_head_rows(stores[d], its, [chains[d][chain_of[i]] for i in val], max_new, (k, mc, mf), hk, hg))
            joint[f"k{k}-count{mc}-frac{mf}+head-k{hk}-gate{hg}"] = {
                "count_h200": price(tot, h200, head_h200), "acceptance": tot["accepted_tokens"] / max(tot["draft_tokens"], 1),
                "setting": (k, mc, mf, hk, hg)}
        fast, bar, both = pick(table, 0.0), pick(table, MIN_ACCEPTANCE), pick(joint, MIN_ACCEPTANCE)
        for name, entry, kind in ((f"store-{d}", table[fast], "datastore"), (f"store-{d}-tuned", table[bar], "datastore"),
                                  (f"store-head-{d}", joint[both], "datastore_head")):
            s = entry["setting"]
            settings[name] = {"domain": d, "kind": kind, "store_tokens": s[0], "min_count": s[1], "min_fraction": s[2],
                              **({"head_tokens": s[3], "head_gate": s[4]} if kind == "datastore_head" else {}),
                              "validation_count_h200": entry["count_h200"], "validation_acceptance": entry["acceptance"]}
            _say(f"   {name}: {settings[name]} ")
        tables[d] = {"store": {n: {k: v for k, v in e.items() if k != "setting"} for n, e in table.items()},
                     "store_head": {n: {k: v for k, v in e.items() if k != "setting"} for n, e in joint.items()}}
    seconds["pick"] = time.perf_counter() - t

    _say("3/5 every store arm replayed on every prompt of the log; live check on a sample")
    t = time.perf_counter()
    rows = []
    for name, s in settings.items():
        gates = (s["store_tokens"], s["min_count"], s["min_fraction"])
        log_items = [items[i] for i in log_idx]
        # cross-fitted: a train prompt's counts come from a store built without it (its own output would be in it);
        # validation and test prompts use the whole store, as a models file does
        per_item = [store_of.get(int(i), stores[s["domain"]]) for i in log_idx]
        if s["kind"] == "datastore":
            reps = store_rows(per_item, log_items, max_new, *gates)
        else:
            reps = store_head_rows(per_item, log_items, chains[s["domain"]], max_new, gates, s["head_tokens"], s["head_gate"])
        rows += [{"query_id": frame.at[int(i), "query_id"], "arm": name, **r} for i, r in zip(log_idx, reps)]
    replayed = pd.DataFrame(rows)
    models_live, router_models = models_files(out, heads_dir, settings)
    live_session = DecodingSession(load_models_config(models_live), threads=threads)
    checks = []
    held_out = np.flatnonzero(frame["split"].isin(["validation", "test"]).to_numpy())  # the whole store's prompts, as live
    sample = np.random.default_rng(seed + 1).choice(held_out, size=min(live_check, len(held_out)), replace=False)
    for i in sample:
        for name in (n for n, s in settings.items() if s["domain"] == frame.at[int(i), "domain"]):
            live = live_session.looped(prompts[i], name, reference=outputs[i])
            rep = replayed[(replayed["query_id"] == frame.at[int(i), "query_id"]) & (replayed["arm"] == name)].iloc[0]
            checks.append({"query_id": frame.at[int(i), "query_id"], "arm": name, "lossless": live.lossless is True,
                           "same_counts": (live.target_calls, live.draft_tokens, live.draft_calls)
                           == (int(rep["target_calls"]), int(rep["draft_tokens"]), int(rep["draft_calls"]))})
    _say(f"   live check: {sum(c['lossless'] for c in checks)}/{len(checks)} identical to greedy, "
         f"{sum(c['same_counts'] for c in checks)}/{len(checks)} with the replayed counts")
    seconds["replay_and_check"] = time.perf_counter() - t

    _say("4/5 the heads run's logs with the store arms; train, select on validation, test")
    store_cpu = {}
    timer = StepTimer(64, 50, 5, lambda: None)
    for name, s in settings.items():
        if s["kind"] == "datastore":
            drafter = DatastoreDraft(stores[s["domain"]], s["store_tokens"], s["min_count"], s["min_fraction"])
            contexts = [prompts[i] + outputs[i][:j] for i in log_idx[:50] for j in (0, 10, 20)]
            store_cpu[name] = float(np.median([timer.call(lambda c=c: drafter.propose(c)) for c in contexts]))
    result: dict[str, Any] = {"heads_run": str(heads_dir), "stores": store_info, "settings": settings, "validation_tables": tables,
                              "live_check": checks, "store_step_s_cpu": store_cpu, "torch_threads": int(torch.get_num_threads())}
    qcols = ["query_id", "prompt", "domain", "split"]
    counts = ["n_new_tokens", "target_calls", "draft_calls", "draft_tokens", "accepted_tokens"]
    new_rows = replayed.merge(frame[qcols], on="query_id")
    sys.path.insert(0, str(HERE))
    import quickstart

    for name in ("cpu", "h200"):
        src = open_log(heads_dir / f"log-{name}")
        base = src.read("outcomes")
        cal = Calibration.from_json(src.metadata.extra["calibration"])
        head_step = float(saved["head_step_s_cpu"]) if name == "cpu" else head_h200
        steps = {**dict(cal.arm_step_s), **{n: (store_cpu[n] if s["kind"] == "datastore" else head_step) for n, s in settings.items()}}
        cal = Calibration(**{**cal.to_json(), "arm_step_s": steps})
        arms = tuple(src.metadata.arms) + tuple(
            Arm(n, s["kind"], float(steps[n] / cal.step_s), {"domain": s["domain"], "store_tokens": s["store_tokens"], "min_count": s["min_count"],
                                                           "min_fraction": s["min_fraction"],
                                                           **({"head_tokens": s["head_tokens"], "confidence": s["head_gate"]}
                                                              if s["kind"] == "datastore_head" else {})})
            for n, s in settings.items())
        kinds = {a.name: a.kind for a in arms}
        frame_all = pd.concat([base[qcols + ["arm"] + counts], new_rows[qcols + ["arm"] + counts]], ignore_index=True)
        frame_all["speedup_count"] = price_counts(frame_all, kinds, cal)
        frame_all["reward"] = frame_all["speedup_count"]
        frame_all["arm_cost"] = frame_all["arm"].map({a.name: a.cost for a in arms}).astype(float)
        reward = RewardDefinition(kind="speedup_count", metric="", description="count speed-up of the project's loop",
                                  priced_by=src.metadata.reward.priced_by + "; stores' lookup measured on this CPU")
        meta = LogMetadata(arms=arms, reward=reward, extra={"calibration": cal.to_json(), "made_by": "examples/datastores.py",
                                                            "source": str(heads_dir / f"log-{name}")})
        path = out / f"log-{name}"
        if path.exists():
            shutil.rmtree(path)
        create_log(path, meta).append("outcomes", frame_all)
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            q = quickstart.main("default", out / f"select-{name}", log=path, models=router_models, live_per_domain=router_live, seed=seed,
                                threads=threads, progress=False, budget=budget, learners=learners)
        if caught:
            (out / f"select-{name}" / "warnings.txt").write_text("\n".join(sorted({f"{w.category.__name__}: {w.message}" for w in caught})) + "\n")
        seconds[f"select_{name}"] = time.perf_counter() - t
        test = pd.DataFrame(q["test_offline"])
        result[name] = {"winner": q["winner"], "selection_reason": q["selection"]["reason"], "test_against_best_arm": q["test_against_best_arm"],
                        "per_arm_by_domain": heads_run._arm_table(path),
                        "test_overall": test[test["domain"] == "(all)"].set_index("policy")["count"].to_dict(),
                        "live": q["live"], "live_lossless_failures": q["live_lossless_failures"]}
        result[name]["store_arms_test"] = own_domain_table(frame_all, settings)
    if live_per_domain > 0:
        _say(f"5/5 live on this CPU: {live_per_domain} test prompt(s) per domain, every store arm")
        t = time.perf_counter()
        test = frame.iloc[log_idx]
        test = test[test["split"] == "test"].groupby("domain", group_keys=False).head(live_per_domain)
        result["live"] = live_stores(out, models_live, test[qcols], h200, head_h200, threads)
        seconds["live"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_all
    result["seconds"] = seconds
    (out / "stores.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def own_domain_table(frame: pd.DataFrame, settings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per store arm, on the test split: its count speed-up (ratio of totals) per domain, its acceptance on its own."""
    f = frame[frame["split"].astype(str) == "test"]
    out = {}
    for name, s in settings.items():
        part = f[f["arm"].astype(str) == name]
        by = {}
        for d, p in part.groupby(part["domain"].astype(str)):
            n = p["n_new_tokens"].astype(float)
            by[d] = float(n.sum() / (n / p["speedup_count"]).sum())
        own = part[part["domain"].astype(str) == s["domain"]]
        out[name] = {"domain": s["domain"], "own": by.get(s["domain"]), "elsewhere": {d: v for d, v in by.items() if d != s["domain"]},
                     "acceptance_own": float(own["accepted_tokens"].sum() / max(float(own["draft_tokens"].sum()), 1.0))}
    return out


def live_stores(out: Path, models_path: Path, prompts: pd.DataFrame, h200: Any, head_h200: float, threads: int | None) -> dict[str, Any]:
    """Plain decoding, ``lookup-n3-k10`` and every store arm on ``prompts``, measured by ``bandit-log build``'s
    builder (its own calibration): per arm and domain, wall and count speed-ups and the same counts under the H200 profile."""
    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.calibrate import Calibration
    from decoding.models import load_models_config
    from decoding.reprice import price_counts
    from logging_data import open_log

    models = load_models_config(models_path)
    path = out / "live-prompts.parquet"
    prompts.to_parquet(path)
    log_path = out / "log-live"
    if log_path.exists():
        shutil.rmtree(log_path)
    cfg = BuildConfig(reward=reward_definition("speedup_wall"), batch_size=4, calibration_repeats=5)
    summary = build_log(path, models, log_path, cfg, threads=threads, progress=False, command="examples/datastores.py (live)")
    log = open_log(log_path)
    frame = log.read("outcomes")
    kinds = {a.name: a.kind for a in log.metadata.arms}
    own = Calibration.from_json(log.metadata.extra["calibration"])
    steps = {a: (own.arm_step_s.get(a, 0.0) if kinds[a] == "datastore" else head_h200 if kinds[a] == "datastore_head" else 0.0) for a in kinds}
    frame["count_h200"] = price_counts(frame, kinds, Calibration(**{**h200.to_json(), "arm_step_s": steps}))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for (arm, d), part in frame.groupby([frame["arm"].astype(str), frame["domain"].astype(str)]):
        n = part["n_new_tokens"].astype(float)
        table.setdefault(arm, {})[d] = {
            "wall": float(part["plain_wall_time_s"].sum() / part["wall_time_s"].sum()),
            "count_cpu": float(n.sum() / (n / part["speedup_count"]).sum()),
            "count_h200": float(n.sum() / (n / part["count_h200"]).sum()),
            "acceptance": float(part["accepted_tokens"].sum() / max(float(part["draft_tokens"].sum()), 1.0)),
            "identical": float(part["lossless"].astype(bool).mean()), "n_prompts": int(len(part))}
    return {"n_prompts": int(len(prompts)), "n_lossless_failures": summary.n_lossless_failures,
            "calibration": log.metadata.extra["calibration"], "per_arm_by_domain": table}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", required=True, help="a folder examples/heads.py wrote (states, heads, logs)")
    parser.add_argument("--out", default="out/stores")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--live-per-domain", type=int, default=2, help="test prompts per domain measured live (0: none)")
    parser.add_argument("--router-live-per-domain", type=int, default=2,
                        help="test prompts per domain the selected policy decodes live, under each pricing (0: none)")
    a = parser.parse_args()
    res = main(a.heads, a.out, a.threads, a.seed, router_live=a.router_live_per_domain, live_per_domain=a.live_per_domain)
    for name in ("cpu", "h200"):
        r = res[name]
        print(f"\n{name}: selected {r['winner']}; test: {json.dumps(r['test_against_best_arm']['count_total'])}")
        for arm, v in r["store_arms_test"].items():
            print(f"  {arm:24s} own {v['own']:.3f} (acceptance {v['acceptance_own']:.3f}); elsewhere "
                  + ", ".join(f"{d} {x:.3f}" for d, x in v["elsewhere"].items()))
