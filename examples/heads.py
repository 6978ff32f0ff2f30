"""Task-aligned drafting heads on the target's own hidden states: train one per domain, replay their counts on
every prompt of the shipped joint log, price them on this CPU and on the H200, and let the selection choose.

    python examples/heads.py      # SmolLM2-135M, the shipped joint log + mined training prompts; ~2.5 h on 2 CPU cores
                                  # (45 min of it the mined prompts' teacher continuations, 40 min the log's states: kept for reruns)
    python examples/heads.py --max-prompts 200 --train-prompts 0    # a quick look

Steps (``decoding.heads``):

1. the target's greedy output of every prompt of ``examples/data/smollm2-joint-log`` (its
   ``target_output``, re-tokenized; sequences whose every token is not the target's argmax are
   regenerated) and one batched forward over prompt + output: the hidden states;
   (kept in ``OUT/states``: a rerun reads them back); then training prompts mined on this machine
   beyond the log's (``--train-prompts``: each domain topped up to 1,000 where the machine has them;
   the log's prompts, any split, left out; ``OUT/extra-prompts.parquet``) and the teacher's greedy
   continuation of each, generated in batches (kept per chunk in ``OUT/extra-states``: resumable);
2. per domain, a head trained on that domain's *train* prompts (the log's and the mined ones), on the
   positions of the greedy outputs and of the prompts (labelled with the target's own choice;
   ``--output-rows-only``: the outputs' alone), vocabulary the domain's 2,048 most frequent next
   tokens; and a learning curve: its acceptance on the domain's validation prompts when trained on
   ``--curve`` shares of the log's train prompts and on all of them with the mined ones, ungated
   (k = 3) and gated (``GATE`` = 0.4, k = 5);
3. each head's own setting, picked on the validation prompts alone: the fastest draft length x gate
   (``TUNE_LENGTHS`` x ``TUNE_GATES``) under the H200 profile whose acceptance reaches
   ``MIN_ACCEPTANCE`` (``head-D-tuned``); then every head × draft length k in {3, 5}, gated at k = 5
   (``head-D-k5-gated``: a round stops at the head's first token less likely than ``GATE``), its
   tuned setting, and every head after prompt lookup
   (``lookup-head-D``: ``lookup-n3-k10``'s candidates where it matches, the head's 3 elsewhere;
   ``lookup-head-D-gated``: the gated head's up to 5; arm kind ``lookup_head``), replayed on every
   prompt: exact counts of the project's loop (``decoding.specloop``), checked against live
   decoding on a sample;
4. a log with the joint log's 13 arms (plain, prompt lookup) plus the head arms, priced under two
   cost profiles: this CPU (the joint log's calibration, the heads' step measured here) and the
   H200 (``examples/profiles/h200-smollm2-135m-fp32.json``; a head's step there is *assumed* to cost
   what a 2-layer 256-wide draft model measured there, 2.1 ms: not measured);
5. on each: every policy trained on train, the project's rule selects on validation, the test split
   scores it against the best single arm (``examples/quickstart.py``, live step skipped);
   and decodes the selected policy live on ``--router-live-per-domain`` test prompts per domain with
   ``OUT/models-router.toml`` (every arm of the log), plain decoding timed beside it;
6. live on this CPU (``--live-per-domain N`` test prompts per domain): ``OUT/models-heads.toml``
   names plain decoding, ``lookup-n3-k10`` and each head as ``kind = "head"`` arms (k = 3, tuned), and
   ``bandit-log build``'s builder measures them (wall times, counts, its own calibration of every
   arm's step, output checked against plain greedy): wall speed-up beside the count model, and the
   same counts priced under the H200 profile.

Writes ``OUT/heads.json`` (every number), the heads (safetensors), the logs and the reports.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
JOINT_LOG = HERE / "data" / "smollm2-joint-log"
MODELS = HERE / "models" / "smollm2-joint.toml"
H200 = HERE / "profiles" / "h200-smollm2-135m-fp32.json"
#: the H200 step of a 2-layer width-256 draft model (../shared/profiles/h200-smollm2-135m.json), the
#: cost assumed for a head there (a head is fewer kernels than that draft; not measured on a GPU)
H200_HEAD_STEP_S = 0.0021
DRAFT_LENGTHS = (3, 5)
VOCAB_SIZE = 2048
#: the confidence gate of the gated arms (``assistant_confidence_threshold``; chosen on validation
#: prompts with session 5's 100-prompt heads: it lifts a head's acceptance past 0.45 on its own domain)
GATE = 0.4
GATED_K = 5
#: the grid each domain's ``head-D-tuned`` arm is picked from, on validation prompts only: the fastest
#: (k, gate) under the H200 profile whose acceptance is at least ``MIN_ACCEPTANCE`` (the issue's bar)
TUNE_LENGTHS = (2, 3, 4)
TUNE_GATES = (0.0, 0.2, 0.3, 0.4, 0.5)
MIN_ACCEPTANCE = 0.45
#: at most this many mined training prompts from one source file (the shipped log's prompt set used 50)
PER_SOURCE = 50


def _say(message: str) -> None:
    print(f"[heads] {message}", file=sys.stderr, flush=True)


def greedy_outputs(session: Any, frame: pd.DataFrame) -> tuple[list[list[int]], list[list[int]], list[Any], list[Any], int]:
    """(prompt ids, greedy output ids, hidden states, the target's argmax after each position, how
    many outputs were regenerated) for the
    plain rows of the joint log: its ``target_output`` re-tokenized, kept where every token is the
    target's argmax (one batched forward checks it and gives the states), else generated again."""
    from decoding import heads

    tok = session.target.tokenizer
    eos = min(session.eos_ids) if session.eos_ids else None
    prompts, outputs = [], []
    for row in frame.itertuples():
        ids = session.encode(row.prompt)
        out = tok(row.target_output or "", add_special_tokens=False)["input_ids"]
        if int(row.n_new_tokens) > len(out) and eos is not None:
            out = out + [eos]
        prompts.append(ids)
        outputs.append([int(t) for t in out][: session.max_new_tokens])
    states = heads.hidden_states(session.target.model, [p + o for p, o in zip(prompts, outputs)], batch_size=16)
    redo = [i for i, ((_, arg), p, o) in enumerate(zip(states, prompts, outputs)) if not heads.is_greedy(arg, p + o, len(p))]
    for start in range(0, len(redo), 16):
        batch = redo[start:start + 16]
        for i, toks in zip(batch, session.greedy([prompts[i] for i in batch])):
            outputs[i] = list(toks)
    if redo:
        again = heads.hidden_states(session.target.model, [prompts[i] + outputs[i] for i in redo], batch_size=16)
        for i, st in zip(redo, again):
            states[i] = st
    return prompts, outputs, [h.numpy() for h, _ in states], [a.numpy() for _, a in states], len(redo)


def plain_rows(outcomes: pd.DataFrame, max_prompts: int | None) -> pd.DataFrame:
    """The joint log's plain rows by query id; ``max_prompts``: the first ``max_prompts // 12`` of each domain x split."""
    plain = outcomes[outcomes["arm"] == "plain"].sort_values("query_id").reset_index(drop=True)
    if max_prompts:
        plain = plain.groupby(["domain", "split"], observed=True, group_keys=False).head(max(1, max_prompts // 12))
    return plain.reset_index(drop=True)


def replay_totals(chains: list[tuple[np.ndarray, np.ndarray]], prompts: list[list[int]], outputs: list[list[int]], max_new_tokens: int,
                  k: int, gate: float) -> dict[str, int]:
    """The head's counts (``decoding.heads.replay_chains``: k tokens per round, cut at ``gate``) summed
    over prompts; ``chains``: ``draft_chains_many(..., with_confidence=True)`` of the same prompts."""
    from decoding import heads

    total = dict.fromkeys(("n_new_tokens", "target_calls", "draft_tokens", "draft_calls", "accepted_tokens"), 0)
    for (tokens, conf), p, o in zip(chains, prompts, outputs):
        for key, value in heads.replay_chains(tokens, p, o, max_new_tokens, k, conf, gate).items():
            total[key] += value
    return total


def setting_table(chains: list[tuple[np.ndarray, np.ndarray]], prompts: list[list[int]], outputs: list[list[int]],
                  max_new_tokens: int, h200: Any) -> dict[str, dict[str, float]]:
    """Per ``k{k}-gate{gate}`` of ``TUNE_LENGTHS`` x ``TUNE_GATES``: the head's count speed-up under the
    ``h200`` calibration (a head step at ``H200_HEAD_STEP_S``) and its acceptance, on these prompts;
    ``chains``: ``draft_chains_many(..., max(TUNE_LENGTHS), with_confidence=True)`` of them."""
    from decoding.calibrate import speedup_count

    c, v, r = H200_HEAD_STEP_S / h200.step_s, h200.relative_verify_cost(), h200.relative_round_cost()
    table = {}
    for k in TUNE_LENGTHS:
        for gate in TUNE_GATES:
            t = replay_totals(chains, prompts, outputs, max_new_tokens, k, gate)
            table[f"k{k}-gate{gate}"] = {
                "count_h200": speedup_count(t["n_new_tokens"], t["target_calls"], t["draft_calls"], c, t["draft_tokens"], v, r),
                "acceptance": t["accepted_tokens"] / max(t["draft_tokens"], 1)}
    return table


def pick_setting(table: dict[str, dict[str, float]], min_acceptance: float = MIN_ACCEPTANCE) -> str | None:
    """The fastest setting of ``table`` (``setting_table``) whose acceptance is at least ``min_acceptance``; None if none is."""
    ok = {name: v for name, v in table.items() if v["acceptance"] >= min_acceptance}
    return max(ok, key=lambda name: ok[name]["count_h200"]) if ok else None


def parse_setting(name: str) -> tuple[int, float]:
    """``"k2-gate0.3"`` -> (2, 0.3)."""
    k, gate = name.split("-gate")
    return int(k[1:]), float(gate)


def _load_states(folder: Path, ids: list[str]) -> tuple[list[list[int]], list[list[int]], list[Any], list[Any], int] | None:
    """What ``_save_states`` kept in ``folder`` for exactly these query ids; None if it holds anything else."""
    index_path, states_path, tokens_path = folder / "index.json", folder / "states.npy", folder / "tokens.npz"
    if not (index_path.exists() and states_path.exists() and tokens_path.exists()):
        return None
    index = json.loads(index_path.read_text())
    if index.get("query_ids") != ids:
        return None
    flat = np.load(states_path, mmap_mode="r")
    tok = np.load(tokens_path)
    cut = np.cumsum(tok["seq_len"])[:-1]
    seqs, args = np.split(tok["seqs"], cut), np.split(tok["argmax"], cut)
    starts = np.concatenate([[0], np.cumsum(tok["seq_len"])])
    prompts = [s[:int(p)].tolist() for s, p in zip(seqs, tok["prompt_len"])]
    outputs = [s[int(p):].tolist() for s, p in zip(seqs, tok["prompt_len"])]
    states = [np.asarray(flat[a:b]) for a, b in zip(starts[:-1], starts[1:])]
    return prompts, outputs, states, args, int(index["regenerated"])


def _save_states(folder: Path, ids: list[str], prompts: list[list[int]], outputs: list[list[int]], states: list[Any], args: list[Any],
                 n_redo: int) -> None:
    """Keep one step-1 result in ``folder`` (``states.npy`` float32, ``tokens.npz``; ``index.json`` last: the folder is whole)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "states.npy", np.concatenate(states).astype(np.float32))
    np.savez(folder / "tokens.npz", seqs=np.concatenate([np.asarray(p + o, dtype=np.int64) for p, o in zip(prompts, outputs)]),
             argmax=np.concatenate([np.asarray(a, dtype=np.int64) for a in args]),
             seq_len=np.asarray([len(p) + len(o) for p, o in zip(prompts, outputs)]), prompt_len=np.asarray([len(p) for p in prompts]))
    (folder / "index.json").write_text(json.dumps({"query_ids": ids, "regenerated": n_redo}) + "\n")


def cached_greedy_outputs(session: Any, frame: pd.DataFrame, folder: Path) -> tuple[list[list[int]], list[list[int]], list[Any], list[Any], int]:
    """``greedy_outputs``, kept in ``folder`` (``states.npy`` float32, ``tokens.npz``) and read back
    when it holds the same prompts: a rerun (or a run cut short after step 1) skips the forward."""
    ids = frame["query_id"].astype(str).tolist()
    kept = _load_states(folder, ids)
    if kept is not None:
        _say(f"   read back from {folder}")
        return kept
    prompts, outputs, states, args, n_redo = greedy_outputs(session, frame)
    _save_states(folder, ids, prompts, outputs, states, args, n_redo)
    return prompts, outputs, states, args, n_redo


def extra_site_dirs() -> list[Path]:
    """site-packages folders on this machine beyond this Python's (its base interpreter's, Debian's
    ``dist-packages``, the Google Cloud SDK's bundled packages): more docstrings to mine."""
    import site
    import sysconfig

    found = [Path(p) for p in site.getsitepackages()]
    found.append(Path(sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["purelib"]))
    found += [Path("/usr/lib/python3/dist-packages"), Path("/usr/lib/google-cloud-sdk/lib/third_party")]
    out: list[Path] = []
    for p in found:
        if p.is_dir() and p.resolve() not in [q.resolve() for q in out]:
            out.append(p)
    return out


def mine_train_prompts(log_prompts: pd.DataFrame, train_prompts: int, seed: int, path: Path,
                       whole_log: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Training prompts the log does not hold, to top each domain's train prompts up to ``train_prompts``
    where this machine has them: ``bandit-log prompts``' sources (``logging_data.prompts``, at most
    ``PER_SOURCE`` per file, every site-packages folder of ``extra_site_dirs``), in the builder's seeded
    order, any prompt of the log (any split) left out. ``log_prompts``: the log's plain rows in use
    (domain, split, prompt); ``whole_log``: every prompt of the log (domain, prompt; default
    ``log_prompts``), all left out. Kept at ``path`` (Parquet, with a ``.json`` beside it: the request, counts and the
    sources' origins and licences) and read back when the request is the same."""
    from logging_data.prompts import PromptSetConfig, SourceRoots, build_prompt_set

    domains = sorted(log_prompts["domain"].astype(str).unique())
    have = {d: int(((log_prompts["domain"] == d) & (log_prompts["split"] == "train")).sum()) for d in domains}
    need = {d: max(0, train_prompts - have[d]) for d in domains}
    whole_log = log_prompts if whole_log is None else whole_log
    exclude = set(whole_log["prompt"].astype(str))
    request = {"train_prompts": train_prompts, "seed": seed, "need": need, "log_prompts": int(len(exclude))}
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists() and json.loads(meta_path.read_text()).get("request") == request:
        return pd.read_parquet(path), json.loads(meta_path.read_text())
    wanted = [d for d in domains if need[d] > 0]
    if not wanted:
        return pd.DataFrame(columns=["query_id", "prompt", "domain"]), {"request": request, "counts": {}}
    total = int(whole_log.groupby("domain", observed=True).size().max())  # the builder's seeded order starts with the log's own
    config = PromptSetConfig(per_domain=total + train_prompts, seed=seed, domains=tuple(wanted), per_source=PER_SOURCE)
    built = build_prompt_set(config, SourceRoots(site_dirs=tuple(extra_site_dirs())), log=_say)
    frame = built.frame[~built.frame["prompt"].isin(exclude)]
    frame = frame[frame.groupby("domain").cumcount().to_numpy() < frame["domain"].map(need).to_numpy()]
    frame = frame[["query_id", "prompt", "domain"]].reset_index(drop=True)
    meta = {"request": request, "counts": frame.groupby("domain").size().astype(int).to_dict(),
            "config": built.metadata["config"], "roots": built.metadata["roots"], "origins": built.metadata["origins"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return frame, meta


def cached_teacher_outputs(session: Any, frame: pd.DataFrame, folder: Path, chunk: int = 128,
                           batch_size: int = 16) -> tuple[list[list[int]], list[list[int]], list[Any], list[Any]]:
    """The target's greedy continuation of each prompt of ``frame`` (generated in batches of
    ``batch_size``, left-padded) and one batched forward over prompt + continuation: prompt ids,
    continuation ids, hidden states, the target's argmax after each position. Kept per ``chunk``
    prompts under ``folder/chunk-NNN`` and read back: a run cut short resumes at its first missing chunk."""
    from decoding import heads

    prompts: list[list[int]] = []
    outputs: list[list[int]] = []
    states: list[Any] = []
    args: list[Any] = []
    t = time.perf_counter()
    n_chunks = -(-len(frame) // chunk)
    for c in range(n_chunks):
        part = frame.iloc[c * chunk:(c + 1) * chunk]
        ids = part["query_id"].astype(str).tolist()
        sub = folder / f"chunk-{c:03d}"
        kept = _load_states(sub, ids)
        if kept is None:
            p_ids = [session.encode(p) for p in part["prompt"]]
            o_ids: list[list[int]] = []
            for start in range(0, len(p_ids), batch_size):
                o_ids += [list(map(int, o)) for o in session.greedy(p_ids[start:start + batch_size])]
            st = heads.hidden_states(session.target.model, [p + o for p, o in zip(p_ids, o_ids)], batch_size=batch_size)
            kept = (p_ids, o_ids, [h.numpy() for h, _ in st], [a.numpy() for _, a in st], 0)
            _save_states(sub, ids, *kept)
            _say(f"   teacher outputs: chunk {c + 1}/{n_chunks} ({len(ids)} prompts), {time.perf_counter() - t:.0f} s so far")
        prompts += kept[0]
        outputs += kept[1]
        states += kept[2]
        args += kept[3]
    return prompts, outputs, states, args


def main(out: str | Path = "out/heads", max_prompts: int | None = None, epochs: int = 4, seed: int = 0,
         threads: int | None = None, live_check: int = 8, budget: str = "default",
         learners: tuple[str, ...] | None = None, live_per_domain: int = 4, prompt_rows: bool = True,
         router_live: int = 4, train_prompts: int = 1000, curve_shares: tuple[float, ...] = (0.25, 0.5, 1.0)) -> dict[str, Any]:
    import torch

    from decoding import heads
    from decoding.calibrate import Calibration, for_arms, load_calibration
    from decoding.models import load_models_config
    from decoding.reprice import price_counts
    from decoding.session import DecodingSession
    from decoding.arms.lookup_head import LookupThenHead
    from decoding.specloop import PromptLookup, StaticTarget, speculative_greedy
    from logging_data import Arm, LogMetadata, RewardDefinition, create_log, open_log

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    seconds: dict[str, float] = {}
    joint = open_log(JOINT_LOG)
    outcomes = joint.read("outcomes")
    plain = plain_rows(outcomes, max_prompts)
    session = DecodingSession(load_models_config(MODELS), threads=threads)

    _say(f"1/5 greedy outputs and hidden states of {len(plain)} prompts")
    t = time.perf_counter()
    prompts, outputs, states, argmaxes, n_redo = cached_greedy_outputs(session, plain, out / "states")
    seconds["hidden_states"] = time.perf_counter() - t
    _say(f"   {n_redo} regenerated; {seconds['hidden_states']:.0f} s")

    domains = sorted(plain["domain"].astype(str).unique())
    splits = plain["split"].astype(str).to_numpy()
    dom = plain["domain"].astype(str).to_numpy()
    mined: dict[str, Any] = {"counts": {}}
    if train_prompts > 0:  # training prompts beyond the log's, with the teacher's continuations: split "mined"
        t = time.perf_counter()
        extra, mined = mine_train_prompts(plain, train_prompts, seed, out / "extra-prompts.parquet",
                                          whole_log=plain_rows(outcomes, None))  # none of the log's prompts, any split
        _say(f"   mined training prompts beyond the log's (up to {train_prompts} per domain): "
             + (", ".join(f"{d} +{n}" for d, n in mined["counts"].items()) or "none needed"))
        e_prompts, e_outputs, e_states, e_args = cached_teacher_outputs(session, extra, out / "extra-states")
        prompts, outputs, states, argmaxes = prompts + e_prompts, outputs + e_outputs, states + e_states, argmaxes + e_args
        dom = np.concatenate([dom, extra["domain"].astype(str).to_numpy()])
        splits = np.concatenate([splits, np.full(len(extra), "mined")])
        seconds["mined_teacher_outputs"] = time.perf_counter() - t

    def rows_of(index: np.ndarray) -> heads.Rows:
        return heads.collect_from_states([prompts[i] for i in index], [outputs[i] for i in index], [states[i] for i in index],
                                         [argmaxes[i] for i in index] if prompt_rows else None)

    def chains(head: Any, index: Any, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        return heads.draft_chains_many(head, session.target.model,
                                       [(states[i], prompts[i] + outputs[i], len(prompts[i]) - 1) for i in index], k,
                                       with_confidence=True)

    def acceptance(head: Any, index: np.ndarray) -> dict[str, float]:
        """Ungated at k = 3, and gated (``GATE``) at ``GATED_K``: accepted / drafted, tokens per target call."""
        res = {}
        drafted_chains = chains(head, index, max(3, GATED_K))
        for name, k, gate in (("", 3, 0.0), ("_gated", GATED_K, GATE)):
            tot = replay_totals(drafted_chains, [prompts[i] for i in index], [outputs[i] for i in index], session.max_new_tokens, k, gate)
            res.update({f"acceptance{name}": tot["accepted_tokens"] / max(tot["draft_tokens"], 1),
                        f"tokens_per_call{name}": tot["n_new_tokens"] / max(tot["target_calls"], 1)})
        return res

    _say("2/5 one head per domain, and a learning curve on validation")
    t = time.perf_counter()
    trained, curve, records = {}, {}, {}
    rng, rng_mined = np.random.default_rng(seed), np.random.default_rng(seed + 2)
    for d in domains:
        train_idx = np.flatnonzero((dom == d) & (splits == "train"))
        val_idx = np.flatnonzero((dom == d) & (splits == "validation"))
        rng.shuffle(train_idx)
        mined_idx = np.flatnonzero((dom == d) & (splits == "mined"))
        rng_mined.shuffle(mined_idx)
        # shares of the log's train prompts (the same heads as without mined prompts), then all of them with the mined ones
        n_log = len(train_idx)
        sizes = sorted({max(2, int(round(share * n_log))) for share in curve_shares} | {n_log + len(mined_idx)})
        train_idx = np.concatenate([train_idx, mined_idx])
        curve[d] = []
        for size in sizes:
            idx = train_idx[:size]
            rows = rows_of(idx)
            vocab = heads.frequent_vocabulary(rows.x_next2, VOCAB_SIZE, session.eos_ids)
            head, record = heads.train_head(session.target.model, rows, vocab, epochs=epochs, seed=seed)
            acc = acceptance(head, val_idx)
            curve[d].append({"train_prompts": int(len(idx)), "mined_prompts": int(max(0, len(idx) - n_log)),
                             "train_rows": record["n_rows"], **acc,
                             "vocab_coverage_train": record["vocab_coverage"]})
            _say(f"   {d}: {len(idx)} train prompts ({record['n_rows']} rows) -> validation acceptance {acc['acceptance']:.3f}, "
                 f"{acc['tokens_per_call']:.2f} tokens per target call (k=3); gated at {GATE} (k={GATED_K}): "
                 f"{acc['acceptance_gated']:.3f}, {acc['tokens_per_call_gated']:.2f}")
        trained[d], records[d] = head, record
        heads.save_head(head, out / "heads" / d, record, made_for=session.target_identity)
    seconds["train"] = time.perf_counter() - t
    _say("3/5 each head's setting picked on validation; replaying every head x k (and each head after prompt lookup) "
         "on every prompt; live check on a sample")
    t = time.perf_counter()
    raw_h200 = load_calibration(H200)
    everyone = np.arange(len(plain))
    # each head's chain from every position of every prompt (a chain's first k tokens are its k-token draft)
    drafted = {d: chains(trained[d], everyone, max(*DRAFT_LENGTHS, GATED_K, *TUNE_LENGTHS)) for d in domains}
    tuned, tuning = {}, {}  # each head's (k, gate), picked on validation only
    for d in domains:
        val_idx = np.flatnonzero((dom == d) & (splits == "validation"))
        table = setting_table([drafted[d][i] for i in val_idx], [prompts[i] for i in val_idx],
                              [outputs[i] for i in val_idx], session.max_new_tokens, raw_h200)
        pick = pick_setting(table)
        name = pick or pick_setting(table, 0.0)  # none reached the bar: the fastest
        tuned[d] = parse_setting(name)
        tuning[d] = {"setting": name, "reached_min_acceptance": pick is not None, "validation": table}
        _say(f"   head-{d}-tuned: {name} (validation: {table[name]['count_h200']:.3f} under the H200 profile, "
             f"acceptance {table[name]['acceptance']:.3f})")

    lookup = session.config.arm(LIVE_LOOKUP)
    rows = []
    for d in domains:
        for arm, k, gate in head_arms_of(d, tuned):
            for i, (ch, conf) in zip(everyone, drafted[d]):
                if arm.startswith("lookup-"):  # prompt lookup where it matches, this head elsewhere
                    r = heads.replay_lookup_chains(ch, prompts[i], outputs[i], session.max_new_tokens, k, lookup.prompt_lookup_num_tokens,
                                                   lookup.max_matching_ngram_size or 2, session.eos_ids, conf, gate)
                else:
                    r = heads.replay_chains(ch, prompts[i], outputs[i], session.max_new_tokens, k, conf, gate)
                rows.append({"query_id": plain.at[i, "query_id"], "arm": arm, **r})
    replayed = pd.DataFrame(rows)
    seconds["replay"] = time.perf_counter() - t
    target = StaticTarget(session.target.model, 1024)
    checks = []
    sample = np.random.default_rng(seed + 1).choice(len(plain), size=min(live_check, len(plain)), replace=False)
    for i in sample:
        d = str(dom[i])
        for arm, k, gate in head_arms_of(d, tuned):
            drafter = heads.HeadDraft(trained[d], session.target.model, k, gate)
            if arm.startswith("lookup-"):
                drafter = LookupThenHead(PromptLookup(lookup.prompt_lookup_num_tokens, lookup.max_matching_ngram_size or 2, session.eos_ids),
                                         drafter)
            live = speculative_greedy(target, prompts[i], drafter, session.max_new_tokens, session.eos_ids)
            rep = replayed[(replayed["query_id"] == plain.at[i, "query_id"]) & (replayed["arm"] == arm)].iloc[0]
            checks.append({"query_id": plain.at[i, "query_id"], "arm": arm, "lossless": list(live.tokens) == outputs[i],
                           "same_counts": (live.target_calls, live.draft_tokens, live.draft_calls)
                           == (int(rep["target_calls"]), int(rep["draft_tokens"]), int(rep["draft_calls"]))})
    _say(f"   live check: {sum(c['lossless'] for c in checks)}/{len(checks)} identical to greedy, "
         f"{sum(c['same_counts'] for c in checks)}/{len(checks)} with the replayed counts")

    _say("4/5 head step on this CPU; two logs: this CPU's prices and the H200's")
    head_cpu = _head_step_seconds(trained[domains[0]], session, repeats=50)
    own = Calibration.from_json(joint.metadata.extra["calibration"])
    head_arms = [arm for d in domains for arm, _, _ in head_arms_of(d, tuned)]
    settings = {arm: (d, k, gate) for d in domains for arm, k, gate in head_arms_of(d, tuned)}
    cpu_cal = Calibration(**{**own.to_json(), "arm_step_s": {**dict(own.arm_step_s), **{a: head_cpu for a in head_arms}}})
    h200_cal = Calibration(**{**raw_h200.to_json(), "arm_step_s": {a: H200_HEAD_STEP_S for a in head_arms}})
    base = outcomes[outcomes["query_id"].isin(plain["query_id"])]
    qcols = ["query_id", "prompt", "domain", "split"]
    heads_rows = replayed.merge(plain[qcols], on="query_id")
    arms = tuple(joint.metadata.arms) + tuple(
        Arm(name=a, kind="lookup_head" if a.startswith("lookup-") else "head",
            attrs={"head": settings[a][0], "draft_tokens": settings[a][1], **({"confidence": settings[a][2]} if settings[a][2] else {}),
                   **({"lookup_tokens": lookup.prompt_lookup_num_tokens} if a.startswith("lookup-") else {})})
        for a in head_arms)
    kinds = {a.name: a.kind for a in arms}
    logs, priced = {}, {}
    for name, cal, label in (("cpu", cpu_cal, f"this CPU: the joint log's calibration; heads' step measured here ({head_cpu * 1e3:.2f} ms)"),
                             ("h200", h200_cal, f"cost profile {H200} (cuda: NVIDIA H200); heads' step assumed {H200_HEAD_STEP_S * 1e3:.1f} ms")):
        cal = for_arms(cal, arms)
        frame = pd.concat([base[qcols + ["arm", "n_new_tokens", "target_calls", "draft_calls", "draft_tokens", "accepted_tokens"]],
                           heads_rows[qcols + ["arm", "n_new_tokens", "target_calls", "draft_calls", "draft_tokens", "accepted_tokens"]]],
                          ignore_index=True)
        frame["speedup_count"] = price_counts(frame, kinds, cal)
        frame["reward"] = frame["speedup_count"]
        frame["arm_cost"] = frame["arm"].map(cal.relative_costs()).astype(float)
        reward = RewardDefinition(kind="speedup_count", metric="", description="count speed-up of the project's loop", priced_by=label)
        meta = LogMetadata(arms=tuple(Arm(a.name, a.kind, float(cal.relative_costs().get(a.name, 0.0)), a.attrs) for a in arms),
                           reward=reward, extra={"calibration": cal.to_json(), "made_by": "examples/heads.py",
                                                 "source": str(JOINT_LOG)})
        path = out / f"log-{name}"
        if path.exists():
            import shutil

            shutil.rmtree(path)
        create_log(path, meta).append("outcomes", frame)
        logs[name], priced[name] = path, frame

    _say("5/5 train, select on validation, test: under each pricing")
    sys.path.insert(0, str(HERE))
    import quickstart

    result: dict[str, Any] = {"n_prompts": int(len(plain)), "regenerated": n_redo, "domains": domains, "learning_curve": curve,
                              "training": records, "live_check": checks, "head_step_s_cpu": head_cpu,
                              "head_step_s_h200_assumed": H200_HEAD_STEP_S, "tuned": tuning, "torch_threads": int(torch.get_num_threads()),
                              "mined_train_prompts": mined,
                              # the H200 head step each head arm would need to reach 1.2x on its own domain (test): what a GPU run must beat
                              "h200_break_even_head_step_s": break_even_head_step(priced["h200"], raw_h200),
                              # and each one's own-domain test counts: its speed-up there at any measured step (examples/gpu_heads.py)
                              "own_domain_test_totals": own_domain_totals(priced["h200"])}
    router_models = router_models_file(out, domains, tuned)
    for name, path in logs.items():
        with warnings.catch_warnings(record=True) as caught:  # kept in a file, counted here
            warnings.simplefilter("always")
            q = quickstart.main("default", out / f"select-{name}", log=path, models=router_models, live_per_domain=router_live, seed=seed,
                                threads=threads, progress=False, budget=budget, learners=learners)
        if caught:
            (out / f"select-{name}" / "warnings.txt").write_text("\n".join(sorted({f"{w.category.__name__}: {w.message}" for w in caught})) + "\n")
        test = pd.DataFrame(q["test_offline"])
        result[name] = {"winner": q["winner"], "selection_reason": q["selection"]["reason"],
                        "test_against_best_arm": q["test_against_best_arm"],
                        "per_arm_by_domain": _arm_table(path)}
        result[name]["test_overall"] = test[test["domain"] == "(all)"].set_index("policy")["count"].to_dict()
        result[name]["live"] = q["live"]  # the selected policy decoding on this CPU, its counts priced as this log
        result[name]["live_lossless_failures"] = q["live_lossless_failures"]
    if live_per_domain > 0:
        _say(f"6/6 live on this CPU: {live_per_domain} test prompt(s) per domain, heads as arms of a models file")
        t = time.perf_counter()
        test = plain[plain["split"].astype(str) == "test"].groupby("domain", observed=True, group_keys=False).head(live_per_domain)
        result["live"] = live_heads(out, domains, test[qcols], raw_h200, threads, tuned)
        seconds["live"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_all
    result["seconds"] = seconds
    (out / "heads.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


LIVE_LOOKUP = "lookup-n3-k10"


def head_arms_of(domain: str, tuned: dict[str, tuple[int, float]] | None = None) -> list[tuple[str, int, float]]:
    """The replayed arms of one domain's head: (name, draft length, confidence gate); ``lookup-*``
    arms propose ``LIVE_LOOKUP``'s candidates where it matches, the head's elsewhere; ``tuned``
    (domain -> (k, gate), picked on validation): also ``head-D-tuned`` with that setting."""
    extra = [(f"head-{domain}-tuned", *tuned[domain])] if tuned and domain in tuned else []
    return ([(f"head-{domain}-k{k}", k, 0.0) for k in DRAFT_LENGTHS] + [(f"head-{domain}-k{GATED_K}-gated", GATED_K, GATE)] + extra
            + [(f"lookup-head-{domain}", 3, 0.0), (f"lookup-head-{domain}-gated", GATED_K, GATE)])


def head_arm_toml(name: str, domain: str, k: int, gate: float, lookup: Any) -> str:
    """One ``[[arms]]`` table of a models file for ``domain``'s head (under ``heads/``): ``kind =
    "lookup_head"`` with ``lookup``'s settings when ``name`` starts with ``lookup-``, else ``kind = "head"``."""
    text = (f'\n[[arms]]\nname = "{name}"\nkind = "{"lookup_head" if name.startswith("lookup-") else "head"}"\nhead = "heads/{domain}"\n'
            f"num_assistant_tokens = {k}\n")
    if name.startswith("lookup-"):
        text += f"prompt_lookup_num_tokens = {lookup.prompt_lookup_num_tokens}\nmax_matching_ngram_size = {lookup.max_matching_ngram_size}\n"
    return text + (f"assistant_confidence_threshold = {gate}\n" if gate else "")


def heads_models_file(out: Path, domains: list[str], k: int = 3, tuned: dict[str, tuple[int, float]] | None = None) -> Path:
    """``out/models-heads.toml``: the joint models file's target, plain decoding, ``LIVE_LOOKUP``, one
    ``kind = "head"`` arm per domain's head (saved under ``out/heads/<domain>``) and one
    ``kind = "lookup_head"`` arm per head (``LIVE_LOOKUP``'s candidates where it matches, else the head's),
    ungated and gated (``GATE``, ``GATED_K``); ``tuned``: each domain's ``head-D-tuned`` arm too."""
    from decoding.models import load_models_config

    joint = load_models_config(MODELS)
    lookup = joint.arm(LIVE_LOOKUP)
    t = joint.target
    text = (f'[target]\npath = "{t.path}"\ndevice = "{t.device}"\nmax_new_tokens = {t.max_new_tokens}\n\n'
            '[[arms]]\nname = "plain"\nkind = "none"\n\n'
            f'[[arms]]\nname = "{LIVE_LOOKUP}"\nkind = "prompt_lookup"\nprompt_lookup_num_tokens = {lookup.prompt_lookup_num_tokens}\n'
            f'max_matching_ngram_size = {lookup.max_matching_ngram_size}\n')
    for d in domains:
        text += head_arm_toml(f"head-{d}-k{k}", d, k, 0.0, lookup)
        if tuned and d in tuned:
            text += head_arm_toml(f"head-{d}-tuned", d, *tuned[d], lookup)
    for d in domains:  # prompt lookup where it matches, the domain's head where it does not (ungated, and gated)
        text += head_arm_toml(f"lookup-head-{d}", d, k, 0.0, lookup) + head_arm_toml(f"lookup-head-{d}-gated", d, GATED_K, GATE, lookup)
    path = out / "models-heads.toml"
    path.write_text(text)
    return path


def router_models_file(out: Path, domains: list[str], tuned: dict[str, tuple[int, float]] | None = None) -> Path:
    """``out/models-router.toml``: every arm of the logs the selection trains on, the joint models
    file's (plain decoding, twelve prompt-lookup settings) and each domain's head arms
    (``head_arms_of``), so that whichever policy is selected decodes live with ``bandit-log decode``."""
    from decoding.models import load_models_config

    lookup = load_models_config(MODELS).arm(LIVE_LOOKUP)
    text = MODELS.read_text(encoding="utf-8").rstrip() + "\n\n# each domain's head (examples/heads.py), alone and after prompt lookup\n"
    for d in domains:
        for name, k, gate in head_arms_of(d, tuned):
            text += head_arm_toml(name, d, k, gate, lookup)
    path = out / "models-router.toml"
    path.write_text(text)
    load_models_config(path)  # parses, or says why here
    return path


def live_heads(out: Path, domains: list[str], prompts: pd.DataFrame, h200: Any, threads: int | None,
               tuned: dict[str, tuple[int, float]] | None = None) -> dict[str, Any]:
    """Measure plain decoding, ``LIVE_LOOKUP`` and every head on ``prompts`` with the project's builder
    (a measured log, its own calibration): per arm and domain, wall and count speed-ups (ratios of
    totals), the same counts priced under ``h200`` (heads' step assumed), and the lossless check."""
    import shutil

    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.calibrate import Calibration, for_arms
    from decoding.models import load_models_config
    from decoding.reprice import price_counts
    from logging_data import open_log

    models = load_models_config(heads_models_file(out, domains, tuned=tuned))
    path = out / "live-prompts.parquet"
    prompts.to_parquet(path)
    log_path = out / "log-live"
    if log_path.exists():
        shutil.rmtree(log_path)
    cfg = BuildConfig(reward=reward_definition("speedup_wall"), batch_size=4, calibration_repeats=5)
    summary = build_log(path, models, log_path, cfg, threads=threads, progress=False, command="examples/heads.py (live)")
    log = open_log(log_path)
    frame = log.read("outcomes")
    kinds = {a.name: a.kind for a in log.metadata.arms}
    from decoding.arms import KINDS

    steps = {a.name: (0.0 if KINDS[a.kind].model_free else H200_HEAD_STEP_S) for a in log.metadata.arms}  # heads: assumed
    frame["count_h200"] = price_counts(frame, kinds, for_arms(Calibration(**{**h200.to_json(), "arm_step_s": steps}), models.arms))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for (arm, d), part in frame.groupby([frame["arm"].astype(str), frame["domain"].astype(str)]):
        n = part["n_new_tokens"].astype(float)
        table.setdefault(arm, {})[d] = {
            "wall": float(part["plain_wall_time_s"].sum() / part["wall_time_s"].sum()),
            "count_cpu": float(n.sum() / (n / part["speedup_count"]).sum()),
            "count_h200": float(n.sum() / (n / part["count_h200"]).sum()),
            "acceptance": float(part["accepted_tokens"].sum() / max(float(part["draft_tokens"].sum()), 1.0)),
            "identical": float(part["lossless"].astype(bool).mean()), "n_prompts": int(len(part))}
    calibration = log.metadata.extra["calibration"]
    return {"models": str(out / "models-heads.toml"), "n_prompts": int(len(prompts)), "n_lossless_failures": summary.n_lossless_failures,
            "calibration": calibration, "per_arm_by_domain": table}


def live_only(out: str | Path, max_prompts: int | None, live_per_domain: int, threads: int | None) -> dict[str, Any]:
    """Step 6 alone, on the heads saved under ``out/heads`` by an earlier run with the same ``max_prompts``
    (the same test prompts); writes ``out/heads-live.json``."""
    from decoding.calibrate import load_calibration
    from logging_data import open_log

    out = Path(out)
    domains = sorted(p.name for p in (out / "heads").iterdir() if (p / "head.safetensors").exists())
    if not domains:
        raise SystemExit(f"--live-only: no heads under {out / 'heads'}; run examples/heads.py without it first")
    plain = plain_rows(open_log(JOINT_LOG).read("outcomes"), max_prompts)
    test = plain[plain["split"].astype(str) == "test"].groupby("domain", observed=True, group_keys=False).head(live_per_domain)
    saved = json.loads((out / "heads.json").read_text()) if (out / "heads.json").exists() else {}
    tuned = {d: parse_setting(v["setting"]) for d, v in saved.get("tuned", {}).items()}
    t = time.perf_counter()
    res = {"live": live_heads(out, domains, test[["query_id", "prompt", "domain", "split"]], load_calibration(H200), threads, tuned)}
    res["seconds"] = time.perf_counter() - t
    (out / "heads-live.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    return res


def _arm_table(log_path: Path) -> dict[str, dict[str, float]]:
    """Test split: each arm's count speed-up (ratio of totals) per domain."""
    from logging_data import open_log

    f = open_log(log_path).read("outcomes")
    f = f[f["split"].astype(str) == "test"]
    table: dict[str, dict[str, float]] = {}
    for (arm, d), part in f.groupby([f["arm"].astype(str), f["domain"].astype(str)]):
        n = part["n_new_tokens"].astype(float)
        table.setdefault(arm, {})[d] = float(n.sum() / (n / part["speedup_count"]).sum())
    return table


def head_arm_domain(arm: str) -> str | None:
    """The domain of a head arm's name (``head_arms_of``'s naming: ``head-D-...``, ``lookup-head-D...``); None for any other arm."""
    if not arm.startswith(("head-", "lookup-head-")):
        return None
    return arm.removeprefix("lookup-").split("-")[1]


def own_domain_totals(outcomes: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per head arm of a log's ``outcomes``: its domain and its summed counts on that domain's test
    prompts (``n_new_tokens``, ``target_calls``, ``draft_tokens``, ``draft_calls``): what its own-domain
    test speed-up is, at any head step (``own_domain_speedup``)."""
    f = outcomes[outcomes["split"].astype(str) == "test"]
    out: dict[str, dict[str, Any]] = {}
    for arm in sorted(f["arm"].astype(str).unique()):
        domain = head_arm_domain(arm)
        if domain is None:
            continue
        part = f[(f["arm"].astype(str) == arm) & (f["domain"].astype(str) == domain)]
        out[arm] = {"domain": domain, "n_prompts": int(len(part)),
                    **{col: int(part[col].sum()) for col in ("n_new_tokens", "target_calls", "draft_tokens", "draft_calls")}}
    return out


def own_domain_speedup(totals: dict[str, Any], h200: Any, head_step_s: float) -> float:
    """The count speed-up (ratio of totals) of ``own_domain_totals``' counts of one arm under ``h200``'s
    round and verification costs, with a head step of ``head_step_s`` seconds."""
    from decoding.calibrate import speedup_count

    return speedup_count(totals["n_new_tokens"], totals["target_calls"], totals["draft_calls"], head_step_s / h200.step_s,
                         totals["draft_tokens"], h200.relative_verify_cost(), h200.relative_round_cost())


def break_even_head_step(outcomes: pd.DataFrame, h200: Any, speedup: float = 1.2) -> dict[str, float | None]:
    """Per head arm of a log's ``outcomes``, on its own domain's test prompts: the H200 head step (seconds)
    at which its count speed-up there (ratio of totals, linear in the step's cost) is exactly ``speedup``,
    under ``h200``'s other costs (round, verified token); None where even a free head step falls short.
    What a GPU measurement of the head's step has to beat (the log assumes ``H200_HEAD_STEP_S``)."""
    v, r = h200.relative_verify_cost(), h200.relative_round_cost()
    out: dict[str, float | None] = {}
    for arm, tot in own_domain_totals(outcomes).items():
        n, t, d, c = (float(tot[col]) for col in ("n_new_tokens", "target_calls", "draft_tokens", "draft_calls"))
        rel = (n / speedup - t * (1.0 + r) - d * v) / c if c else -1.0
        out[arm] = rel * h200.step_s if rel > 0 else None
    return out


def _head_step_seconds(head: Any, session: Any, repeats: int = 50) -> float:
    """Median seconds of one head drafting step (one token) on this machine."""
    import statistics

    import torch

    from decoding import heads

    drafter = heads.HeadDraft(head, session.target.model, 1)
    drafter._h = torch.zeros(head.hidden)
    times = []
    for i in range(repeats + 5):
        t0 = time.perf_counter()
        drafter.propose([1, 2, 3])
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return float(statistics.median(times))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/heads")
    parser.add_argument("--max-prompts", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--live-per-domain", type=int, default=4, help="test prompts per domain measured live (0: none)")
    parser.add_argument("--router-live-per-domain", type=int, default=4,
                        help="test prompts per domain the selected policy decodes live, under each pricing (0: none)")
    parser.add_argument("--output-rows-only", action="store_true",
                        help="train heads on the greedy outputs' positions only (default: the prompts' positions too)")
    parser.add_argument("--train-prompts", type=int, default=1000,
                        help="top each domain's training prompts up to this many with prompts mined on this machine (not in the log; "
                             "their teacher continuations generated in batches, kept in OUT/extra-states); 0: the log's train prompts only")
    parser.add_argument("--curve", default="0.25,0.5,1",
                        help="learning-curve points: shares of the log's train prompts (the mined ones are added for the last point)")
    parser.add_argument("--live-only", action="store_true",
                        help="only step 6, with the heads an earlier run saved under OUT/heads (its --max-prompts)")
    a = parser.parse_args()
    if a.live_only:
        res = live_only(a.out, a.max_prompts, a.live_per_domain, a.threads)
        print(json.dumps(res["live"]["per_arm_by_domain"], indent=2))
        sys.exit(0)
    res = main(a.out, a.max_prompts, a.epochs, a.seed, a.threads, live_per_domain=a.live_per_domain, prompt_rows=not a.output_rows_only,
               router_live=a.router_live_per_domain, train_prompts=a.train_prompts,
               curve_shares=tuple(float(x) for x in a.curve.split(",")))
    print(json.dumps({k: res[k] for k in ("learning_curve", "seconds")}, indent=2))
    for name in ("cpu", "h200"):
        r = res[name]
        print(f"\n{name}: selected {r['winner']}; test: {r['test_against_best_arm']['count_total']}")
        for row in r["live"]:
            print(f"  live {row['domain']}: {row['n_prompts']} prompts, wall {row['wall']:.3f}, count {row['count']:.3f}, "
                  f"identical {row['identical_to_greedy']:.0%}")
    if "live" in res:
        print("\nlive on this CPU (wall / count on this CPU / count on the H200 profile / acceptance / identical):")
        for arm, by_domain in res["live"]["per_arm_by_domain"].items():
            print(f"  {arm:18s} " + "  ".join(f"{d} {v['wall']:.2f}/{v['count_cpu']:.2f}/{v['count_h200']:.2f}/{v['acceptance']:.2f}/"
                                            f"{v['identical']:.0%}" for d, v in by_domain.items()))
