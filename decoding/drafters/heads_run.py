"""Per-domain heads on a target's hidden states, end to end: states, training, tuning, replay, pricing, selection, live.

``run_heads(HeadsRunConfig(...))`` is what ``examples/heads.py`` runs (its docstring tells the
steps and the numbers); every step is a function of this package: ``states``, ``mining``,
``tuning``, ``pricing``, ``logs``, ``models_file``, ``live`` and ``decoding.pipeline``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .logs import QCOLS, query_columns, write_priced_log
from .models_file import GATED, LIVE_LOOKUP, DRAFT_LENGTHS, head_arms_of, heads_models_file, router_models_file
from .pricing import break_even_head_step, own_domain_totals, sum_counts
from .states import cached_greedy_outputs, plain_rows
from .tuning import TUNE_LENGTHS, HeadSetting, head_replay, head_setting_table, pick_setting, table_json

#: the H200 step of a 2-layer width-256 draft model (../shared/profiles/h200-smollm2-135m.json), the
#: cost assumed for a head there (a head is fewer kernels than that draft; not measured on a GPU)
H200_HEAD_STEP_S = 0.0021
VOCAB_SIZE = 2048


def _say(message: str) -> None:
    print(f"[heads] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Layout:
    """Where a run writes its files under ``out`` (``{pricing}``: ``cpu``, ``h200``), and what it says made them."""

    models: str = "models-router.toml"  #: the source models file's arms and every head arm
    log: str = "log-{pricing}"  #: the priced log of each pricing
    select: str = "select-{pricing}"  #: each log's selection
    summary: str = "heads.json"  #: every number
    made_by: str = "examples/heads.py"


@dataclass(frozen=True)
class Pricing:
    """One way to price the counts: a cost profile (target step, round, verified token) and the heads' drafting step."""

    name: str  #: ``cpu`` (this machine) or ``h200`` (another machine's profile)
    profile: Any  #: a ``decoding.calibrate.Calibration``
    head_step_s: float
    label: str  #: what priced it, in words (a log's ``priced_by``)


@dataclass(frozen=True)
class HeadsRunConfig:
    """One heads run: the source log and its models file, the pricing, the sizes and where the files go."""

    out: Path
    source_log: Path  #: a full-information log with a plain arm and ``target_output`` (the shipped joint log)
    models: Path  #: its models file (the target; ``lookup``)
    #: another machine's cost profile (the H200's): each head's setting is tuned under it (a head step of
    #: ``H200_HEAD_STEP_S`` assumed) and a second log is priced by it; None: tuned under this machine's pricing
    h200_profile: Path | None = None
    max_prompts: int | None = None  #: the first ``max_prompts // cells`` of each domain x split (None: all)
    cells: int | None = 12  #: the domain x split cells ``max_prompts`` is spread over (None: the log's own)
    #: this machine's pricing: a cost profile or a log (None: the source log's calibration); the heads' step is measured here
    calibration: Path | None = None
    lookup: str | None = LIVE_LOOKUP  #: the prompt-lookup arm of ``models`` the ``lookup-head-*`` arms start from (None: none)
    select: bool = True  #: train, select on validation and test on each priced log
    layout: Layout = Layout()
    epochs: int = 4
    seed: int = 0
    threads: int | None = None
    live_check: int = 8  #: prompts whose replayed counts are checked against live decoding
    budget: str = "default"
    learners: tuple[str, ...] | None = None
    live_per_domain: int = 4  #: test prompts per domain measured live (0: none)
    prompt_rows: bool = True  #: train on the prompts' positions too (else the outputs' alone)
    router_live: int = 4  #: test prompts per domain the selected policy decodes live
    train_prompts: int = 1000  #: each domain's train prompts topped up to this many with mined ones (0: none)
    #: where the target's states and the mined prompts' outputs are kept while the run lasts (None: under ``out``)
    cache: Path | None = None
    #: the heads' drafting step, seconds, on the machine ``calibration`` describes (None: timed here); given
    #: when the calibration is another machine's profile (a GPU's), whose step this CPU cannot time
    head_step_s: float | None = None
    curve_shares: tuple[float, ...] = field(default=(0.25, 0.5, 1.0))

    def plain(self, outcomes: pd.DataFrame) -> pd.DataFrame:
        """The source log's plain rows this run uses."""
        return plain_rows(outcomes, self.max_prompts, self.cells)


def head_step_seconds(head: Any, session: Any, repeats: int = 50) -> float:
    """Median seconds of one head drafting step on this machine, timed as the ``head`` arm kind times it
    (``decoding.arms.head.Head.step_seconds``)."""
    from types import SimpleNamespace

    from ..arms import KINDS
    from ..calibrate import StepTimer

    view = SimpleNamespace(arm_state={"head": head}, target=session.target)
    return KINDS["head"].step_seconds(view, SimpleNamespace(name="head", assistant_confidence_threshold=0.0),
                                      StepTimer(64, repeats, 5, lambda: None))


class _Data:
    """The run's prompts (the log's, then the mined ones), their ids, outputs, states and argmaxes."""

    def __init__(self, session: Any, plain: pd.DataFrame, states: tuple) -> None:
        self.session, self.plain = session, plain
        self.prompts, self.outputs, self.states, self.argmaxes, self.n_redo = states
        self.dom = plain["domain"].astype(str).to_numpy()
        self.splits = plain["split"].astype(str).to_numpy()

    def add(self, extra: pd.DataFrame, kept: tuple) -> None:
        self.prompts, self.outputs = self.prompts + kept[0], self.outputs + kept[1]
        self.states, self.argmaxes = self.states + kept[2], self.argmaxes + kept[3]
        self.dom = np.concatenate([self.dom, extra["domain"].astype(str).to_numpy()])
        self.splits = np.concatenate([self.splits, np.full(len(extra), "mined")])

    def idx(self, domain: str, split: str) -> np.ndarray:
        return np.flatnonzero((self.dom == domain) & (self.splits == split))

    def rows(self, index: np.ndarray, prompt_rows: bool) -> Any:
        from .. import heads

        return heads.collect_from_states([self.prompts[i] for i in index], [self.outputs[i] for i in index], [self.states[i] for i in index],
                                         [self.argmaxes[i] for i in index] if prompt_rows else None)

    def chains(self, head: Any, index: Any, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        from .. import heads

        return heads.draft_chains_many(head, self.session.target.model,
                                       [(self.states[i], self.prompts[i] + self.outputs[i], len(self.prompts[i]) - 1) for i in index], k,
                                       with_confidence=True)

    def of(self, index: Any) -> tuple[list[list[int]], list[list[int]]]:
        return [self.prompts[i] for i in index], [self.outputs[i] for i in index]

    def acceptance(self, head: Any, index: np.ndarray) -> dict[str, float]:
        """Ungated at k = 3, and gated (``GATED``): accepted / drafted, tokens per target call."""
        res = {}
        drafted = self.chains(head, index, max(3, GATED.k))
        for name, setting in (("", HeadSetting(3)), ("_gated", GATED)):
            tot = sum_counts(head_replay(drafted, *self.of(index), self.session.max_new_tokens, setting))
            res.update({f"acceptance{name}": tot["accepted_tokens"] / max(tot["draft_tokens"], 1),
                        f"tokens_per_call{name}": tot["n_new_tokens"] / max(tot["target_calls"], 1)})
        return res


def train_heads(data: _Data, cfg: HeadsRunConfig, domains: list[str]) -> tuple[dict, dict, dict]:
    """Per domain: a head on its train prompts (the log's and the mined ones), saved under ``out/heads``,
    and a learning curve on its validation prompts. (heads, curves, training records)"""
    from .. import heads

    trained, curve, records = {}, {}, {}
    rng, rng_mined = np.random.default_rng(cfg.seed), np.random.default_rng(cfg.seed + 2)
    for d in domains:
        train_idx, val_idx = data.idx(d, "train"), data.idx(d, "validation")
        rng.shuffle(train_idx)
        mined_idx = data.idx(d, "mined")
        rng_mined.shuffle(mined_idx)
        # shares of the log's train prompts (the same heads as without mined prompts), then all of them with the mined ones
        n_log = len(train_idx)
        sizes = sorted({max(2, int(round(share * n_log))) for share in cfg.curve_shares} | {n_log + len(mined_idx)})
        train_idx = np.concatenate([train_idx, mined_idx])
        curve[d] = []
        for size in sizes:
            idx = train_idx[:size]
            rows = data.rows(idx, cfg.prompt_rows)
            vocab = heads.frequent_vocabulary(rows.x_next2, VOCAB_SIZE, data.session.eos_ids)
            head, record = heads.train_head(data.session.target.model, rows, vocab, epochs=cfg.epochs, seed=cfg.seed)
            acc = data.acceptance(head, val_idx)
            curve[d].append({"train_prompts": int(len(idx)), "mined_prompts": int(max(0, len(idx) - n_log)),
                             "train_rows": record["n_rows"], **acc, "vocab_coverage_train": record["vocab_coverage"]})
            _say(f"   {d}: {len(idx)} train prompts ({record['n_rows']} rows) -> validation acceptance {acc['acceptance']:.3f}, "
                 f"{acc['tokens_per_call']:.2f} tokens per target call (k=3); gated at {GATED.gate} (k={GATED.k}): "
                 f"{acc['acceptance_gated']:.3f}, {acc['tokens_per_call_gated']:.2f}")
        trained[d], records[d] = head, record
        heads.save_head(head, cfg.out / "heads" / d, record, made_for=data.session.target_identity)
    return trained, curve, records


def tune_heads(data: _Data, drafted: dict, domains: list[str], pricing: Pricing) -> tuple[dict[str, HeadSetting], dict[str, Any]]:
    """Each head's setting, picked on its domain's validation prompts alone (the fastest under ``pricing``
    reaching ``MIN_ACCEPTANCE``, else the fastest; a domain with none: every domain's): (domain -> setting, the tables)."""
    tuned, tuning = {}, {}
    for d in domains:
        val_idx = data.idx(d, "validation")
        on = d if len(val_idx) else "every domain"  # a domain without validation prompts: picked on the whole validation split
        val_idx = val_idx if len(val_idx) else np.flatnonzero(data.splits == "validation")
        table = head_setting_table([drafted[d][i] for i in val_idx], *data.of(val_idx), data.session.max_new_tokens, pricing.profile,
                                   pricing.head_step_s)
        pick = pick_setting(table)
        tuned[d] = pick or pick_setting(table, 0.0)  # none reached the bar: the fastest
        tuning[d] = {"setting": tuned[d].name, "reached_min_acceptance": pick is not None, "priced_by": pricing.name,
                     "validation_prompts_of": on, "validation": table_json(table)}
        _say(f"   head-{d}-tuned: {tuned[d].name} (validation: {table[tuned[d]]['count']:.3f} under the {pricing.name} "
             f"pricing, acceptance {table[tuned[d]]['acceptance']:.3f})")
    return tuned, tuning


def replay_heads(data: _Data, drafted: dict, domains: list[str], tuned: dict[str, HeadSetting], lookup: Any | None) -> pd.DataFrame:
    """Every head arm (``head_arms_of``; ``lookup-*`` ones only with a ``lookup`` arm) replayed on every
    prompt of the log: one row of counts per prompt and arm."""
    from .. import heads

    rows = []
    max_new, eos = data.session.max_new_tokens, data.session.eos_ids
    for d in domains:
        for arm, s in head_arms_of(d, tuned, with_lookup=lookup is not None):
            for i, (ch, conf) in zip(range(len(data.plain)), drafted[d]):
                p, o = data.prompts[i], data.outputs[i]
                if arm.startswith("lookup-"):  # prompt lookup where it matches, this head elsewhere
                    r = heads.replay_lookup_chains(ch, p, o, max_new, s.k, lookup.prompt_lookup_num_tokens,
                                                   lookup.max_matching_ngram_size or 2, eos, conf, s.gate)
                else:
                    r = heads.replay_chains(ch, p, o, max_new, s.k, conf, s.gate)
                rows.append({"query_id": data.plain.at[i, "query_id"], "arm": arm, **r})
    return pd.DataFrame(rows)


def live_check(data: _Data, trained: dict, tuned: dict, replayed: pd.DataFrame, lookup: Any | None, n: int,
               seed: int) -> list[dict[str, Any]]:
    """On ``n`` sampled prompts, every head arm decoded live by the project's loop: identical to greedy, and with the replayed counts."""
    from .. import heads
    from ..arms.lookup_head import LookupThenHead
    from ..specloop import PromptLookup, StaticTarget, speculative_greedy

    session, plain = data.session, data.plain
    target = StaticTarget(session.target.model, 1024)
    checks = []
    for i in np.random.default_rng(seed + 1).choice(len(plain), size=min(n, len(plain)), replace=False):
        for arm, s in head_arms_of(str(data.dom[i]), tuned, with_lookup=lookup is not None):
            drafter = heads.HeadDraft(trained[str(data.dom[i])], session.target.model, s.k, s.gate)
            if arm.startswith("lookup-"):
                drafter = LookupThenHead(PromptLookup(lookup.prompt_lookup_num_tokens, lookup.max_matching_ngram_size or 2, session.eos_ids),
                                         drafter)
            live = speculative_greedy(target, data.prompts[i], drafter, session.max_new_tokens, session.eos_ids)
            rep = replayed[(replayed["query_id"] == plain.at[i, "query_id"]) & (replayed["arm"] == arm)].iloc[0]
            checks.append({"query_id": plain.at[i, "query_id"], "arm": arm, "lossless": list(live.tokens) == data.outputs[i],
                           "same_counts": (live.target_calls, live.draft_tokens, live.draft_calls)
                           == (int(rep["target_calls"]), int(rep["draft_tokens"]), int(rep["draft_calls"]))})
    return checks


def pricings(cfg: HeadsRunConfig, joint: Any, head_cpu: float) -> list[Pricing]:
    """``cpu``: this machine (``cfg.calibration``, else the source log's calibration; the heads' step
    ``head_cpu``, measured here, or ``cfg.head_step_s`` where given: then the calibration's machine need not
    be this one); and ``h200`` with ``cfg.h200_profile`` (the heads' step assumed)."""
    from ..pricing import Calibration, load_calibration

    if cfg.calibration is not None:
        own, where = load_calibration(cfg.calibration), f"cost profile {cfg.calibration}"
    else:
        own, where = Calibration.from_json(joint.metadata.extra["calibration"]), "the source log's calibration"
    if cfg.head_step_s is not None:
        label = f"{where}; heads' step given ({cfg.head_step_s * 1e3:.2f} ms)"
        head_cpu = cfg.head_step_s
    elif cfg.h200_profile is None:
        label = f"this machine: {where}; heads' step measured here ({head_cpu * 1e3:.2f} ms)"
    else:  # the shipped joint log's wording, kept
        label = f"this CPU: the joint log's calibration; heads' step measured here ({head_cpu * 1e3:.2f} ms)"
    found = [Pricing("cpu", own, head_cpu, label)]
    if cfg.h200_profile is not None:
        found.append(Pricing("h200", load_calibration(cfg.h200_profile), H200_HEAD_STEP_S,
                             f"cost profile {cfg.h200_profile} (cuda: NVIDIA H200); heads' step assumed {H200_HEAD_STEP_S * 1e3:.1f} ms"))
    return found


def head_log_arms(joint: Any, tuned: dict, domains: list[str], lookup: Any | None) -> tuple[tuple, dict[str, tuple[str, HeadSetting]]]:
    """The log's arms (``logging_data.Arm``: the source log's, then every head arm, costs set when priced) and each head arm's (domain, setting)."""
    from logging_data import Arm

    settings = {arm: (d, s) for d in domains for arm, s in head_arms_of(d, tuned, with_lookup=lookup is not None)}
    arms = tuple(joint.metadata.arms) + tuple(
        Arm(name=a, kind="lookup_head" if a.startswith("lookup-") else "head",
            attrs={"head": d, "draft_tokens": s.k, **({"confidence": s.gate} if s.gate else {}),
                   **({"lookup_tokens": lookup.prompt_lookup_num_tokens} if a.startswith("lookup-") else {})})
        for a, (d, s) in settings.items())
    return arms, settings


def priced_logs(cfg: HeadsRunConfig, joint: Any, outcomes: pd.DataFrame, plain: pd.DataFrame, replayed: pd.DataFrame,
                tuned: dict, domains: list[str], prices: list[Pricing], lookup: Any | None) -> tuple[dict, dict]:
    """One log per pricing (``cfg.layout.log``): the source log's arms and every head arm, each row's count
    speed-up priced by the pricing's profile with the heads' step. (paths, rows)"""
    from logging_data import Arm

    from ..pricing import Calibration, for_arms

    arms, settings = head_log_arms(joint, tuned, domains, lookup)
    base = outcomes[outcomes["query_id"].isin(plain["query_id"])]
    new_rows = replayed.merge(plain[query_columns(plain)], on="query_id")
    logs, priced = {}, {}
    for pricing in prices:
        steps = {**(dict(pricing.profile.arm_step_s) if pricing.name == "cpu" else {}), **{a: pricing.head_step_s for a in settings}}
        cal = for_arms(Calibration(**{**pricing.profile.to_json(), "arm_step_s": steps}), arms)
        costs = cal.relative_costs()
        priced_arms = [Arm(a.name, a.kind, float(costs.get(a.name, 0.0)), a.attrs) for a in arms]
        path = cfg.out / cfg.layout.log.format(pricing=pricing.name)
        priced[pricing.name] = write_priced_log(path, base, new_rows, priced_arms, cal, pricing.label,
                                                {"made_by": cfg.layout.made_by, "source": str(cfg.source_log)})
        logs[pricing.name] = path
    return logs, priced


def test_prompts(plain: pd.DataFrame, per_domain: int) -> pd.DataFrame:
    """The first ``per_domain`` test prompts of each domain (the live step's)."""
    test = plain[plain["split"].astype(str) == "test"].groupby("domain", observed=True, group_keys=False).head(per_domain)
    return test[QCOLS]


def live_heads(cfg: HeadsRunConfig, domains: list[str], prompts: pd.DataFrame, pricing: Pricing, tuned: dict | None) -> dict[str, Any]:
    """Plain decoding, ``cfg.lookup`` and every head (``models-heads.toml``) measured live on ``prompts``;
    the same counts priced under ``pricing`` (its profile, the heads' step it gives)."""
    from .live import measure_live, model_free_or

    models = heads_models_file(cfg.out, cfg.models, domains, tuned=tuned, lookup=cfg.lookup)
    return measure_live(models, prompts, cfg.out, pricing.profile, model_free_or(pricing.head_step_s), cfg.threads,
                        f"{cfg.layout.made_by} (live)", for_models=True)


@dataclass
class _Trained:
    """What the shared steps give: the data, the heads and their settings, the replayed counts and the live check."""

    data: _Data
    joint: Any
    outcomes: pd.DataFrame
    domains: list[str]
    mined: dict[str, Any]
    trained: dict
    curve: dict
    records: dict
    prices: list[Pricing]
    tuned: dict[str, HeadSetting]
    tuning: dict[str, Any]
    lookup: Any | None
    replayed: pd.DataFrame
    checks: list[dict[str, Any]]


def _train_and_replay(cfg: HeadsRunConfig, seconds: dict[str, float]) -> _Trained:
    """Steps 1-3: states (and mined prompts), a head per domain, the head step here, each head's setting
    tuned on validation (under the H200 profile when given, else this machine's pricing), every head arm
    replayed on every prompt, and checked live on a sample."""
    from logging_data import open_log

    from ..models import load_models_config
    from .states import target_session

    joint = open_log(cfg.source_log)
    outcomes = joint.read("outcomes")
    plain = cfg.plain(outcomes)
    session = target_session(load_models_config(cfg.models), cfg.threads)

    _say(f"1/5 greedy outputs and hidden states of {len(plain)} prompts")
    t = time.perf_counter()
    cache = cfg.cache or cfg.out
    data = _Data(session, plain, cached_greedy_outputs(session, plain, cache / "states"))
    seconds["hidden_states"] = time.perf_counter() - t
    _say(f"   {data.n_redo} regenerated; {seconds['hidden_states']:.0f} s")
    domains = sorted(plain["domain"].astype(str).unique())
    mined: dict[str, Any] = {"counts": {}}
    if cfg.train_prompts > 0:  # training prompts beyond the log's, with the teacher's continuations: split "mined"
        from .mining import mined_with_outputs

        t = time.perf_counter()
        extra, mined, kept = mined_with_outputs(session, plain, plain_rows(outcomes, None), cfg.train_prompts, cfg.seed, cache, cfg.out)
        data.add(extra, kept)
        seconds["mined_teacher_outputs"] = time.perf_counter() - t

    _say("2/5 one head per domain, and a learning curve on validation")
    t = time.perf_counter()
    trained, curve, records = train_heads(data, cfg, domains)
    seconds["train"] = time.perf_counter() - t
    _say("3/5 each head's setting picked on validation; replaying every head x k (and each head after prompt lookup) "
         "on every prompt; live check on a sample")
    t = time.perf_counter()
    prices = pricings(cfg, joint, head_step_seconds(trained[domains[0]], session, repeats=50) if cfg.head_step_s is None else cfg.head_step_s)
    everyone = np.arange(len(plain))
    # each head's chain from every position of every prompt (a chain's first k tokens are its k-token draft)
    drafted = {d: data.chains(trained[d], everyone, max(*DRAFT_LENGTHS, GATED.k, *TUNE_LENGTHS)) for d in domains}
    tuned, tuning = tune_heads(data, drafted, domains, prices[-1])
    lookup = session.config.arm(cfg.lookup) if cfg.lookup else None
    replayed = replay_heads(data, drafted, domains, tuned, lookup)
    seconds["replay"] = time.perf_counter() - t
    checks = live_check(data, trained, tuned, replayed, lookup, cfg.live_check, cfg.seed)
    _say(f"   live check: {sum(c['lossless'] for c in checks)}/{len(checks)} identical to greedy, "
         f"{sum(c['same_counts'] for c in checks)}/{len(checks)} with the replayed counts")
    return _Trained(data, joint, outcomes, domains, mined, trained, curve, records, prices, tuned, tuning, lookup, replayed, checks)


def run_heads(cfg: HeadsRunConfig) -> dict[str, Any]:
    """The whole run (``examples/heads.py``, ``bandit-log drafters heads``); writes ``cfg.layout.summary`` and returns every number."""
    import torch

    from ..pipeline import selection_summary

    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    seconds: dict[str, float] = {}
    run = _train_and_replay(cfg, seconds)
    data, domains, prices = run.data, run.domains, run.prices

    _say("4/5 the priced logs: " + ", ".join(p.name for p in prices))
    logs, priced = priced_logs(cfg, run.joint, run.outcomes, data.plain, run.replayed, run.tuned, domains, prices, run.lookup)
    result: dict[str, Any] = {"n_prompts": int(len(data.plain)), "regenerated": data.n_redo, "domains": domains, "learning_curve": run.curve,
                              "training": run.records, "live_check": run.checks, "head_step_s_cpu": prices[0].head_step_s,
                              "tuned": run.tuning, "torch_threads": int(torch.get_num_threads()), "mined_train_prompts": run.mined,
                              "lookup": cfg.lookup if run.lookup is not None else None,
                              "logs": {name: str(path) for name, path in logs.items()}}
    if cfg.h200_profile is not None:
        h200 = prices[-1].profile
        result.update({"head_step_s_h200_assumed": H200_HEAD_STEP_S,
                       # the H200 head step each head arm would need to reach 1.2x on its own domain (test): what a GPU run must beat
                       "h200_break_even_head_step_s": break_even_head_step(priced["h200"], h200),
                       # and each one's own-domain test counts: its speed-up there at any measured step (examples/gpu_heads.py)
                       "own_domain_test_totals": own_domain_totals(priced["h200"])})
    router_models = router_models_file(out, cfg.models, domains, run.tuned, lookup=cfg.lookup, name=cfg.layout.models)
    data.session = None  # one target in memory at a time: the selection's and the live step's sessions load their own
    if cfg.select:
        _say("5/5 train, select on validation, test: under each pricing")
        for name, path in logs.items():
            result[name] = selection_summary(path, out / cfg.layout.select.format(pricing=name), router_models,
                                             live_per_domain=cfg.router_live, seed=cfg.seed, threads=cfg.threads, budget=cfg.budget,
                                             learners=cfg.learners)
    if cfg.live_per_domain > 0:
        _say(f"6/6 live here: {cfg.live_per_domain} test prompt(s) per domain, heads as arms of a models file")
        t = time.perf_counter()
        result["live"] = live_heads(cfg, domains, test_prompts(data.plain, cfg.live_per_domain), prices[-1], run.tuned)
        seconds["live"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_all
    result["seconds"] = seconds
    (out / cfg.layout.summary).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def live_only(cfg: HeadsRunConfig) -> dict[str, Any]:
    """The live step alone, on the heads saved under ``out/heads`` by an earlier run with the same
    ``max_prompts`` (the same test prompts); writes ``out/heads-live.json``."""
    from logging_data import open_log

    from ..pricing import load_calibration

    domains = sorted(p.name for p in (cfg.out / "heads").iterdir() if (p / "head.safetensors").exists()) if (cfg.out / "heads").is_dir() else []
    if not domains:
        raise SystemExit(f"--live-only: no heads under {cfg.out / 'heads'}; run examples/heads.py without it first")
    if cfg.h200_profile is None:
        raise SystemExit("--live-only prices the live counts under the H200 profile; give one")
    plain = cfg.plain(open_log(cfg.source_log).read("outcomes"))
    saved = json.loads((cfg.out / "heads.json").read_text()) if (cfg.out / "heads.json").exists() else {}
    tuned = {d: HeadSetting.parse(v["setting"]) for d, v in saved.get("tuned", {}).items()}
    t = time.perf_counter()
    h200 = Pricing("h200", load_calibration(cfg.h200_profile), H200_HEAD_STEP_S, str(cfg.h200_profile))
    res = {"live": live_heads(cfg, domains, test_prompts(plain, cfg.live_per_domain), h200, tuned)}
    res["seconds"] = time.perf_counter() - t
    (cfg.out / "heads-live.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    return res
