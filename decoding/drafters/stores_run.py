"""Per-domain retrieval stores beside a heads run: built, tuned on validation, replayed (cross-fitted), priced, selected, live.

``run_stores(StoresRunConfig(...))`` is what ``examples/datastores.py`` runs (its docstring tells
the steps); it reads a ``heads_run`` folder (its states, heads, logs and router models file).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .heads_run import Layout
from .logs import QCOLS, write_priced_log
from .models_file import stores_models_files
from .pricing import own_domain_table
from .tuning import (MIN_ACCEPTANCE, TUNE_GATES, TUNE_LENGTHS, StoreHeadSetting, StoreSetting, head_grid, pick_setting,
                     setting_entry, store_grid, table_json)

STORE_TOKENS = (2, 3, 4, 6, 8)
MIN_COUNTS = (1, 2, 3)
MIN_FRACTIONS = (0.0, 0.3, 0.5)
#: the store gates tried under a head (``store-head-D``)
HEAD_STORE_GATES = (StoreSetting(4, 1, 0.0), StoreSetting(4, 2, 0.3), StoreSetting(4, 2, 0.5), StoreSetting(4, 3, 0.5),
                    StoreSetting(6, 3, 0.5), StoreSetting(8, 3, 0.6))
#: cross-fitting folds of each domain's train prompts: a train prompt's counts come from a store built without its fold
FOLDS = 5


def _say(message: str) -> None:
    print(f"[stores] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class StoresRunConfig:
    heads_dir: Path  #: a folder ``run_heads`` wrote (states, heads, logs, models-router.toml)
    out: Path
    source_log: Path  #: the log that heads run read
    models: Path  #: its models file
    h200_profile: Path
    threads: int | None = None
    seed: int = 0
    live_check: int = 8
    router_live: int = 2
    live_per_domain: int = 2
    budget: str = "default"
    learners: tuple[str, ...] | None = None


def read_states(cfg: StoresRunConfig) -> tuple[pd.DataFrame, list[list[int]], list[list[int]], list[Any]]:
    """The heads run's prompts (query_id, prompt, domain, split: the log's, then ``mined``), their ids,
    the teacher's greedy continuations and the target's hidden states, as the heads run kept them."""
    from .states import cached_teacher_outputs, run_states

    plain, kept = run_states(cfg.heads_dir, cfg.source_log)
    prompts, outputs, states = kept[0], kept[1], kept[2]
    frame = plain[QCOLS].astype({"domain": str, "split": str})
    extra_path = cfg.heads_dir / "extra-prompts.parquet"
    if extra_path.exists():
        extra = pd.read_parquet(extra_path)
        e_prompts, e_outputs, e_states, _ = cached_teacher_outputs(None, extra, cfg.heads_dir / "extra-states")
        frame = pd.concat([frame, extra.assign(split="mined")[QCOLS]], ignore_index=True)
        prompts, outputs, states = prompts + e_prompts, outputs + e_outputs, states + e_states
    return frame.reset_index(drop=True), prompts, outputs, states


def _each(store: Any, n: int) -> list[Any]:
    return list(store) if isinstance(store, (list, tuple)) else [store] * n


def store_rows(store: Any, items: list[tuple[list[int], list[int]]], max_new: int, s: StoreSetting) -> list[dict[str, int]]:
    """Each item's exact counts with a store (``store``: one for all, or one per item)."""
    from ..datastore import DatastoreDraft, replay_datastore

    return [replay_datastore(DatastoreDraft(st, s.tokens, s.min_count, s.min_fraction), p, g, max_new)
            for st, (p, g) in zip(_each(store, len(items)), items)]


def store_head_rows(store: Any, items: list[tuple[list[int], list[int]]], chains: list[Any], max_new: int,
                    s: StoreHeadSetting) -> list[dict[str, int]]:
    """Each item's exact counts with a store (one, or one per item) and, where it has nothing, the head's chain."""
    from .. import heads
    from ..datastore import DatastoreDraft

    out = []
    for st, (p, g), (tok, conf) in zip(_each(store, len(items)), items, chains):
        look = DatastoreDraft(st, s.store.tokens, s.store.min_count, s.store.min_fraction)
        out.append(heads.replay_first_chains(look.propose, tok, p, g, max_new, s.head.k, conf, s.head.gate))
    return out


def _setting_json(d: str, s: StoreSetting | StoreHeadSetting, entry: dict[str, float]) -> dict[str, Any]:
    store = s.store if isinstance(s, StoreHeadSetting) else s
    head = {"head_tokens": s.head.k, "head_gate": s.head.gate} if isinstance(s, StoreHeadSetting) else {}
    return {"domain": d, "kind": "datastore_head" if head else "datastore", "store_tokens": store.tokens, "min_count": store.min_count,
            "min_fraction": store.min_fraction, **head, "validation_count": entry["count"],
            "validation_acceptance": entry["acceptance"]}


def build_stores(seed: int, frame: pd.DataFrame, outputs: list[list[int]], domains: list[str]) -> tuple[dict, dict, dict]:
    """Per domain: a store of its train and mined prompts' outputs, and per train prompt of the log
    the store of its fold (built without it). (stores, their sizes, prompt index -> cross-fitted store)"""
    from ..datastore import Datastore

    stores, info, store_of = {}, {}, {}
    rng = np.random.default_rng(seed)
    for d in domains:
        idx = np.flatnonzero((frame["domain"] == d).to_numpy() & frame["split"].isin(["train", "mined"]).to_numpy())
        stores[d] = Datastore([outputs[i] for i in idx])
        info[d] = {"train_prompts": int(len(idx)), "tokens": stores[d].n_tokens, "keys": stores[d].n_keys, "folds": FOLDS}
        train = rng.permutation(np.flatnonzero(((frame["domain"] == d) & (frame["split"] == "train")).to_numpy()))
        for fold in (f for f in np.array_split(train, FOLDS) if len(f)):
            held = set(fold.tolist())
            cross = Datastore([outputs[i] for i in idx if i not in held])
            store_of.update({int(i): cross for i in fold})
        _say(f"   {d}: {len(idx)} prompts, {stores[d].n_tokens} tokens, {stores[d].n_keys} n-grams")
    return stores, info, store_of


def tune_stores(frame: pd.DataFrame, items: list, stores: dict, chains: dict | None, chain_of: dict, domains: list[str], max_new: int,
                h200: Any, head_h200: float) -> tuple[dict[str, tuple[str, Any]], dict[str, dict], dict]:
    """Per domain, on its validation prompts (none: every domain's), priced under ``h200`` (a store's lookup free, a head's step
    ``head_h200``): ``store-D`` (the fastest store setting), ``store-D-tuned`` (the fastest reaching
    ``MIN_ACCEPTANCE``) and, with the heads' ``chains``, ``store-head-D`` (a store gate x head setting). (arms, their JSON, tables)"""
    arms, settings, tables = {}, {}, {}
    for d in domains:
        val = np.flatnonzero(((frame["domain"] == d) & (frame["split"] == "validation")).to_numpy())
        val = val if len(val) else np.flatnonzero((frame["split"] == "validation").to_numpy())  # none: every domain's
        its = [items[i] for i in val]
        table = {s: setting_entry(store_rows(stores[d], its, max_new, s), h200, 0.0)
                 for s in store_grid(STORE_TOKENS, MIN_COUNTS, MIN_FRACTIONS)}
        joint = {StoreHeadSetting(g, h): setting_entry(store_head_rows(stores[d], its, [chains[d][chain_of[i]] for i in val], max_new,
                                                                       StoreHeadSetting(g, h)), h200, head_h200)
                 for g in HEAD_STORE_GATES for h in head_grid(TUNE_LENGTHS, TUNE_GATES)} if chains is not None else {}
        picks = ((f"store-{d}", pick_setting(table, 0.0), table),
                 (f"store-{d}-tuned", pick_setting(table, MIN_ACCEPTANCE) or pick_setting(table, 0.0), table),
                 *([(f"store-head-{d}", pick_setting(joint, MIN_ACCEPTANCE) or pick_setting(joint, 0.0), joint)] if joint else []))
        for name, s, tab in picks:
            arms[name] = (d, s)
            settings[name] = _setting_json(d, s, tab[s])
            _say(f"   {name}: {settings[name]} ")
        tables[d] = {"store": table_json(table), "store_head": table_json(joint)}
    return arms, settings, tables


def replay_stores(frame: pd.DataFrame, log_idx: np.ndarray, items: list, arms: dict, stores: dict, store_of: dict, chains: dict | None,
                  max_new: int) -> pd.DataFrame:
    """Every store arm replayed on the log's prompts (``log_idx``): one row of counts per prompt and arm.
    Cross-fitted: a train prompt's counts come from a store built without it (its own output would be in
    it); validation and test prompts use the whole store, as a models file does."""
    rows = []
    log_items = [items[i] for i in log_idx]
    for name, (d, s) in arms.items():
        per_item = [store_of.get(int(i), stores[d]) for i in log_idx]
        reps = (store_head_rows(per_item, log_items, chains[d], max_new, s) if isinstance(s, StoreHeadSetting)
                else store_rows(per_item, log_items, max_new, s))
        rows += [{"query_id": frame.at[int(i), "query_id"], "arm": name, **r} for i, r in zip(log_idx, reps)]
    return pd.DataFrame(rows)


def check_stores_live(session: Any, frame: pd.DataFrame, prompts: list, outputs: list, arms: dict, replayed: pd.DataFrame, n: int,
                      seed: int) -> list[dict[str, Any]]:
    """On ``n`` sampled validation or test prompts (the whole store's, as live), every store arm of their
    domain decoded live by ``session`` (a models file naming the arms): identical to greedy, and with the replayed counts."""
    checks = []
    held_out = np.flatnonzero(frame["split"].isin(["validation", "test"]).to_numpy())
    for i in np.random.default_rng(seed + 1).choice(held_out, size=min(n, len(held_out)), replace=False):
        for name in (n for n, (d, _) in arms.items() if d == frame.at[int(i), "domain"]):
            live = session.looped(prompts[i], name, reference=outputs[i])
            rep = replayed[(replayed["query_id"] == frame.at[int(i), "query_id"]) & (replayed["arm"] == name)].iloc[0]
            checks.append({"query_id": frame.at[int(i), "query_id"], "arm": name, "lossless": live.lossless is True,
                           "same_counts": (live.target_calls, live.draft_tokens, live.draft_calls)
                           == (int(rep["target_calls"]), int(rep["draft_tokens"]), int(rep["draft_calls"]))})
    _say(f"   live check: {sum(c['lossless'] for c in checks)}/{len(checks)} identical to greedy, "
         f"{sum(c['same_counts'] for c in checks)}/{len(checks)} with the replayed counts")
    return checks


def store_steps(arms: dict, stores: dict, contexts: list[list[int]]) -> dict[str, float]:
    """Median seconds of one lookup of each store arm (not the store-head ones) on this machine, over ``contexts``."""
    from ..calibrate import StepTimer
    from ..datastore import DatastoreDraft

    timer = StepTimer(64, 50, 5, lambda: None)
    steps = {}
    for name, (d, s) in arms.items():
        if isinstance(s, StoreSetting):
            drafter = DatastoreDraft(stores[d], s.tokens, s.min_count, s.min_fraction)
            steps[name] = float(np.median([timer.call(lambda c=c: drafter.propose(c)) for c in contexts]))
    return steps


def store_log_arms(arms: dict, settings: dict, cost_of: Any) -> tuple[Any, ...]:
    """The store arms as a log's ``logging_data.Arm``s, each costing ``cost_of(name)`` target steps."""
    from logging_data import Arm

    return tuple(Arm(n, settings[n]["kind"], float(cost_of(n)),
                     {"domain": settings[n]["domain"], "store_tokens": settings[n]["store_tokens"], "min_count": settings[n]["min_count"],
                      "min_fraction": settings[n]["min_fraction"],
                      **({"head_tokens": settings[n]["head_tokens"], "confidence": settings[n]["head_gate"]}
                         if settings[n]["kind"] == "datastore_head" else {})})
                 for n in arms)


def run_stores(cfg: StoresRunConfig) -> dict[str, Any]:
    """The whole run (``examples/datastores.py``); writes ``out/stores.json`` and returns every number."""
    import torch

    from logging_data import open_log

    from .. import heads
    from ..pricing import Calibration, load_calibration
    from ..models import load_models_config
    from ..pipeline import selection_summary
    from .live import measure_live, steps_by_kind
    from .states import target_session

    heads_dir, out = cfg.heads_dir, cfg.out
    if not (heads_dir / "heads.json").exists():
        raise SystemExit(f"--heads {heads_dir}: no heads.json there (run examples/heads.py --out {heads_dir} first)")
    saved = json.loads((heads_dir / "heads.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t_all = time.perf_counter()
    seconds: dict[str, float] = {}
    h200 = load_calibration(cfg.h200_profile)
    head_h200 = float(saved.get("head_step_s_h200_assumed", 0.0021))

    _say("1/5 the heads run's greedy outputs and states; one store per domain from its train and mined prompts")
    t = time.perf_counter()
    frame, prompts, outputs, states = read_states(cfg)
    domains = sorted(frame["domain"].unique())
    max_new = load_models_config(cfg.models).target.max_new_tokens
    stores, store_info, store_of = build_stores(cfg.seed, frame, outputs, domains)
    seconds["stores"] = time.perf_counter() - t

    _say("2/5 each domain's settings, picked on its validation prompts")
    t = time.perf_counter()
    session = target_session(load_models_config(cfg.models), cfg.threads)
    for d in domains:  # each store records the target whose greedy outputs it holds
        stores[d].save(out / "stores" / d, {"domain": d, "made_by": "examples/datastores.py", "heads_run": str(heads_dir),
                                            "prompts": store_info[d]["train_prompts"]}, made_for=session.target_identity)
    trained = {d: heads.load_head(heads_dir / "heads" / d, session.target_identity) for d in domains}
    log_idx = np.flatnonzero(frame["split"].isin(["train", "validation", "test"]).to_numpy())  # the log's prompts, in its order
    items = [(prompts[i], outputs[i]) for i in range(len(frame))]
    chains = {d: heads.draft_chains_many(trained[d], session.target.model,
                                         [(states[i], prompts[i] + outputs[i], len(prompts[i]) - 1) for i in log_idx],
                                         max(TUNE_LENGTHS), with_confidence=True) for d in domains}
    chain_of = {int(i): j for j, i in enumerate(log_idx)}
    arms, settings, tables = tune_stores(frame, items, stores, chains, chain_of, domains, max_new, h200, head_h200)
    seconds["pick"] = time.perf_counter() - t

    _say("3/5 every store arm replayed on every prompt of the log; live check on a sample")
    t = time.perf_counter()
    replayed = replay_stores(frame, log_idx, items, arms, stores, store_of, chains, max_new)
    models_live, router_models = stores_models_files(out, cfg.models, heads_dir, arms)
    del session  # one target in memory at a time
    live_session = target_session(load_models_config(models_live), cfg.threads)
    checks = check_stores_live(live_session, frame, prompts, outputs, arms, replayed, cfg.live_check, cfg.seed)
    del live_session  # the selection's and the live step's sessions load their own
    seconds["replay_and_check"] = time.perf_counter() - t

    _say("4/5 the heads run's logs with the store arms; train, select on validation, test")
    store_cpu = store_steps(arms, stores, [prompts[i] + outputs[i][:j] for i in log_idx[:50] for j in (0, 10, 20)])
    result: dict[str, Any] = {"heads_run": str(heads_dir), "stores": store_info, "settings": settings, "validation_tables": tables,
                              "live_check": checks, "store_step_s_cpu": store_cpu, "torch_threads": int(torch.get_num_threads())}
    new_rows = replayed.merge(frame[QCOLS], on="query_id")
    for name in ("cpu", "h200"):
        src = open_log(heads_dir / f"log-{name}")
        cal = Calibration.from_json(src.metadata.extra["calibration"])
        head_step = float(saved["head_step_s_cpu"]) if name == "cpu" else head_h200
        steps = {**dict(cal.arm_step_s), **{n: (store_cpu[n] if isinstance(s, StoreSetting) else head_step) for n, (_, s) in arms.items()}}
        cal = Calibration(**{**cal.to_json(), "arm_step_s": steps})
        all_arms = tuple(src.metadata.arms) + store_log_arms(arms, settings, lambda n: steps[n] / cal.step_s)
        path = out / f"log-{name}"
        frame_all = write_priced_log(path, src.read("outcomes"), new_rows, all_arms, cal,
                                     src.metadata.reward.priced_by + "; stores' lookup measured on this CPU",
                                     {"made_by": "examples/datastores.py", "source": str(heads_dir / f"log-{name}")})
        t = time.perf_counter()
        result[name] = selection_summary(path, out / f"select-{name}", router_models, live_per_domain=cfg.router_live, seed=cfg.seed,
                                         threads=cfg.threads, budget=cfg.budget, learners=cfg.learners)
        seconds[f"select_{name}"] = time.perf_counter() - t
        result[name]["store_arms_test"] = own_domain_table(frame_all, {n: d for n, (d, _) in arms.items()})
    if cfg.live_per_domain > 0:
        _say(f"5/5 live on this CPU: {cfg.live_per_domain} test prompt(s) per domain, every store arm")
        t = time.perf_counter()
        test = frame.iloc[log_idx]
        test = test[test["split"] == "test"].groupby("domain", group_keys=False).head(cfg.live_per_domain)
        result["live"] = measure_live(models_live, test[QCOLS], out, h200, steps_by_kind({"datastore": None, "datastore_head": head_h200}),
                                      cfg.threads, "examples/datastores.py (live)")
        del result["live"]["models"]
        seconds["live"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_all
    result["seconds"] = seconds
    (out / "stores.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


@dataclass(frozen=True)
class StoresAddConfig:
    """Stores for a user's own log (``bandit-log drafters store``): no heads run, this machine's pricing."""

    out: Path
    source_log: Path  #: a full-information log with a plain arm and ``target_output``
    models: Path  #: its models file
    calibration: Path | None = None  #: this machine's pricing: a cost profile or a log (None: the source log's calibration)
    max_prompts: int | None = None  #: about this many of the log's prompts, spread over its domain x split cells (None: all)
    seed: int = 0
    threads: int | None = None
    live_check: int = 4  #: prompts whose replayed counts are checked against live decoding
    select: bool = False  #: train, select on validation and test on the new log
    live_per_domain: int = 0  #: test prompts per domain measured live with every store arm (and the selected policy)
    budget: str = "default"
    learners: tuple[str, ...] | None = None
    layout: Layout = Layout(models="models.toml", log="log", select="select", summary="summary.json", made_by="bandit-log drafters store")
    train_prompts: int = 0  #: each domain's store topped up to this many train prompts with mined ones and the target's outputs (0: none)
    #: where the target's greedy outputs (and the mined prompts') are kept while the run lasts (None: under ``out``)
    cache: Path | None = None


def add_stores(cfg: StoresAddConfig) -> dict[str, Any]:
    """One store per domain of ``cfg.source_log`` (its train prompts' greedy outputs, cross-fitted), its
    settings picked on validation under this machine's pricing (a lookup costs nothing there), every store
    arm replayed on every prompt and checked live on a sample, the priced log and the models file (the
    source's arms and the store arms); writes ``cfg.layout.summary`` and returns every number."""
    from logging_data import open_log

    from ..models import load_models_config
    from ..pricing import Calibration, load_calibration
    from .logs import query_columns
    from .models_file import stores_models_file
    from .states import cached_greedy_outputs, plain_rows, target_session

    out, seconds, t_all = cfg.out, {}, time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    joint = open_log(cfg.source_log)
    outcomes = joint.read("outcomes")
    plain = plain_rows(outcomes, cfg.max_prompts, None)
    session = target_session(load_models_config(cfg.models), cfg.threads)
    _say(f"1/4 the target's greedy outputs of {len(plain)} prompts; one store per domain from its train prompts")
    cache = cfg.cache or out
    prompts, outputs, _, _, n_redo = cached_greedy_outputs(session, plain, cache / "states")
    frame = plain[QCOLS].astype({"domain": str, "split": str}).reset_index(drop=True)
    log_idx = np.arange(len(frame))  # the log's prompts; mined ones (split "mined") only fill the stores
    mined: dict[str, Any] = {"counts": {}}
    if cfg.train_prompts > 0:
        from .mining import mined_with_outputs

        t = time.perf_counter()
        extra, mined, kept = mined_with_outputs(session, plain, plain_rows(outcomes, None), cfg.train_prompts, cfg.seed, cache, out)
        prompts, outputs = prompts + kept[0], outputs + kept[1]
        frame = pd.concat([frame, extra.assign(split="mined")[QCOLS].astype({"domain": str})], ignore_index=True)
        seconds["mined_teacher_outputs"] = time.perf_counter() - t
    domains = sorted(frame["domain"].unique())
    stores, store_info, store_of = build_stores(cfg.seed, frame, outputs, domains)
    for d in domains:  # each store records the target whose greedy outputs it holds
        stores[d].save(out / "stores" / d, {"domain": d, "made_by": cfg.layout.made_by, "source": str(cfg.source_log),
                                            "prompts": store_info[d]["train_prompts"]}, made_for=session.target_identity)
    seconds["stores"] = time.perf_counter() - t_all

    _say("2/4 each domain's settings, picked on its validation prompts; every store arm replayed on every prompt")
    own = load_calibration(cfg.calibration) if cfg.calibration else Calibration.from_json(joint.metadata.extra["calibration"])
    items, max_new = list(zip(prompts, outputs)), session.max_new_tokens
    arms, settings, tables = tune_stores(frame, items, stores, None, {}, domains, max_new, own, 0.0)
    replayed = replay_stores(frame, log_idx, items, arms, stores, store_of, None, max_new)
    models_path = stores_models_file(out, cfg.models, arms, cfg.layout.models)
    del session  # one target in memory at a time: the live check loads the new models file's target and store arms
    checks = check_stores_live(target_session(load_models_config(models_path), cfg.threads), frame, prompts, outputs, arms,
                               replayed, cfg.live_check, cfg.seed) if cfg.live_check > 0 else []

    _say("3/4 each store's lookup timed here; the priced log")
    steps = store_steps(arms, stores, [prompts[i] + outputs[i][:j] for i in log_idx[:50] for j in (0, 10, 20)])
    cal = Calibration(**{**own.to_json(), "arm_step_s": {**dict(own.arm_step_s), **steps}})
    label = f"this machine: {f'cost profile {cfg.calibration}' if cfg.calibration else 'the source log calibration'}; stores' lookup measured here"
    log_path = out / cfg.layout.log.format(pricing="cpu")
    priced = write_priced_log(log_path, outcomes[outcomes["query_id"].isin(plain["query_id"])],
                              replayed.merge(plain[query_columns(plain)], on="query_id"),
                              tuple(joint.metadata.arms) + store_log_arms(arms, settings, lambda n: steps[n] / cal.step_s), cal, label,
                              {"made_by": cfg.layout.made_by, "source": str(cfg.source_log)})
    result: dict[str, Any] = {"n_prompts": int(len(plain)), "regenerated": n_redo, "domains": domains, "stores": store_info,
                              "mined_train_prompts": mined,
                              "settings": settings, "validation_tables": tables, "live_check": checks, "store_step_s": steps,
                              "priced_by": label, "store_arms_test": own_domain_table(priced, {n: d for n, (d, _) in arms.items()})}
    _add_selection_and_live(cfg, result, log_path, models_path, plain, own, seconds)
    seconds["total"] = time.perf_counter() - t_all
    result["seconds"] = seconds
    (out / cfg.layout.summary).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def _add_selection_and_live(cfg: StoresAddConfig, result: dict[str, Any], log_path: Path, models_path: Path, plain: pd.DataFrame,
                            own: Any, seconds: dict[str, float]) -> None:
    """Step 4: the selection on the new log (``cfg.select``: ``result["cpu"]``) and every store arm measured
    live (``cfg.live_per_domain``: ``result["live"]``)."""
    from ..pipeline import selection_summary
    from .live import measure_live, steps_by_kind

    t = time.perf_counter()
    if cfg.select:
        _say("4/4 train, select on validation, test")
        result["cpu"] = selection_summary(log_path, cfg.out / cfg.layout.select.format(pricing="cpu"), models_path,
                                         live_per_domain=cfg.live_per_domain, seed=cfg.seed, threads=cfg.threads, budget=cfg.budget,
                                         learners=cfg.learners)
    if cfg.live_per_domain > 0:
        _say(f"4/4 live here: {cfg.live_per_domain} test prompt(s) per domain, every store arm")
        test = plain[plain["split"].astype(str) == "test"].groupby("domain", observed=True, group_keys=False).head(cfg.live_per_domain)
        result["live"] = measure_live(models_path, test[QCOLS], cfg.out, own, steps_by_kind({"datastore": None}), cfg.threads,
                                      f"{cfg.layout.made_by} (live)")
    seconds["select_and_live"] = time.perf_counter() - t
