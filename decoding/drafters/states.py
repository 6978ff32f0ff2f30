"""The target's greedy outputs and hidden states of prompts, computed once and kept on disk.

A kept folder (one per chunk of prompts: ``chunk-NNN``) holds ``states.npy`` (float32, every
position of every prompt + output, stacked), ``tokens.npz`` (the sequences, the target's argmax
after each position, their lengths) and ``index.json`` (the query ids and the target's identity, written last: a folder with it is whole;
it is removed first when a folder is written again). A rerun for the same query ids and target
reads it back; anything else is computed again.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: (prompt ids, greedy output ids, hidden states (T, H), the target's argmax after each position, how many were regenerated)
States = tuple[list[list[int]], list[list[int]], list[Any], list[Any], int]


def _say(message: str) -> None:
    print(f"[drafters] {message}", file=sys.stderr, flush=True)


def target_session(models: Any, threads: int | None) -> Any:
    """A ``DecodingSession`` over ``models``' target and only the arms that load no drafting model of
    their own (``ArmKind.separate_model``): what a drafter command needs (the target's outputs and
    states, prompt lookup before a head, model-free drafters checked live): a target/draft pair's
    draft is not loaded, and its memory stays free for the sessions a command loads later."""
    import dataclasses

    from ..arms import kind_of
    from ..session import DecodingSession

    kept = tuple(a for a in models.arms if not kind_of(a).separate_model)
    return DecodingSession(dataclasses.replace(models, arms=kept), threads=threads)


def plain_rows(outcomes: pd.DataFrame, max_prompts: int | None, cells: int | None = 12) -> pd.DataFrame:
    """A log's plain rows by query id; ``max_prompts``: the first ``max_prompts // cells`` of each domain x
    split (``cells`` None: the log's own number of domain x split cells)."""
    plain = outcomes[outcomes["arm"] == "plain"].sort_values("query_id").reset_index(drop=True)
    if max_prompts:
        groups = plain.groupby(["domain", "split"], observed=True, group_keys=False)
        plain = groups.head(max(1, max_prompts // (cells or max(groups.ngroups, 1))))
    return plain.reset_index(drop=True)


def greedy_outputs(session: Any, frame: pd.DataFrame) -> States:
    """(prompt ids, greedy output ids, hidden states, the target's argmax after each position, how
    many outputs were regenerated) for a log's plain rows: its ``target_output`` re-tokenized, kept
    where every token is the target's argmax (one batched forward checks it and gives the states),
    else generated again."""
    from .. import heads

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


def _made_for(session: Any) -> dict[str, Any] | None:
    """The identity kept with a session's states (None without a session: read back unchecked)."""
    return None if session is None else session.target_identity


def load_states(folder: Path, ids: list[str], made_for: dict[str, Any] | None = None) -> States | None:
    """What ``save_states`` kept in ``folder`` for exactly these query ids (and, given ``made_for``, the
    same target: ``decoding.artifacts.target_identity``); None if it holds anything else."""
    index_path, states_path, tokens_path = folder / "index.json", folder / "states.npy", folder / "tokens.npz"
    if not (index_path.exists() and states_path.exists() and tokens_path.exists()):
        return None
    index = json.loads(index_path.read_text())
    if index.get("query_ids") != ids or (made_for is not None and index.get("made_for") != made_for):
        return None
    flat = np.load(states_path, mmap_mode="r", allow_pickle=False)
    tok = np.load(tokens_path, allow_pickle=False)
    cut = np.cumsum(tok["seq_len"])[:-1]
    seqs, args = np.split(tok["seqs"], cut), np.split(tok["argmax"], cut)
    starts = np.concatenate([[0], np.cumsum(tok["seq_len"])])
    prompts = [s[:int(p)].tolist() for s, p in zip(seqs, tok["prompt_len"])]
    outputs = [s[int(p):].tolist() for s, p in zip(seqs, tok["prompt_len"])]
    states = [np.asarray(flat[a:b]) for a, b in zip(starts[:-1], starts[1:])]
    return prompts, outputs, states, args, int(index["regenerated"])


def save_states(folder: Path, ids: list[str], prompts: list[list[int]], outputs: list[list[int]], states: list[Any], args: list[Any],
                n_redo: int, made_for: dict[str, Any] | None = None) -> None:
    """Keep one result in ``folder`` (``states.npy`` float32, ``tokens.npz``; ``index.json`` last: the folder is
    whole; an older index goes first, so a write cut short never pairs it with half-written arrays)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.json").unlink(missing_ok=True)
    np.save(folder / "states.npy", np.concatenate(states).astype(np.float32))
    np.savez(folder / "tokens.npz", seqs=np.concatenate([np.asarray(p + o, dtype=np.int64) for p, o in zip(prompts, outputs)]),
             argmax=np.concatenate([np.asarray(a, dtype=np.int64) for a in args]),
             seq_len=np.asarray([len(p) + len(o) for p, o in zip(prompts, outputs)]), prompt_len=np.asarray([len(p) for p in prompts]))
    index = {"query_ids": ids, "regenerated": n_redo, **({"made_for": made_for} if made_for is not None else {})}
    (folder / "index.json").write_text(json.dumps(index) + "\n")


def _chunked(session: Any, frame: pd.DataFrame, folder: Path, chunk: int, compute: Any, what: str) -> States:
    """``compute(part)`` (a ``States`` of the rows ``part``) per ``chunk`` rows of ``frame``, each kept under
    ``folder/chunk-NNN`` and read back when it holds the same prompts for the same target: a run cut short
    resumes at its first missing chunk; all of them kept in ``folder`` itself (before chunks) read back too.
    ``session`` None: read back only (no target to check against)."""
    prompts: list[list[int]] = []
    outputs: list[list[int]] = []
    states: list[Any] = []
    args: list[Any] = []
    n_redo, t, made_for = 0, time.perf_counter(), _made_for(session)
    whole = load_states(folder, frame["query_id"].astype(str).tolist(), made_for)
    if whole is not None:
        _say(f"   {what}: read back from {folder}")
        return whole
    n_chunks, n_read = -(-len(frame) // chunk), 0
    for c in range(n_chunks):
        part = frame.iloc[c * chunk:(c + 1) * chunk]
        ids = part["query_id"].astype(str).tolist()
        sub = folder / f"chunk-{c:03d}"
        kept = load_states(sub, ids, made_for)
        if kept is None:
            kept = compute(part)
            save_states(sub, ids, *kept, made_for=made_for)
            _say(f"   {what}: chunk {c + 1}/{n_chunks} ({len(ids)} prompts), {time.perf_counter() - t:.0f} s so far")
        else:
            n_read += 1
        prompts += kept[0]
        outputs += kept[1]
        states += kept[2]
        args += kept[3]
        n_redo += int(kept[4])
    if n_read:
        _say(f"   {what}: {n_read} of {n_chunks} chunks read back from {folder}")
    return prompts, outputs, states, args, n_redo


def cached_greedy_outputs(session: Any, frame: pd.DataFrame, folder: Path, chunk: int = 256) -> States:
    """``greedy_outputs``, per ``chunk`` prompts kept under ``folder/chunk-NNN`` and read back when it holds
    the same prompts: a rerun (or a run cut short during this step) skips the forward passes it has kept;
    ``session`` may be None when everything is kept (no check of the target: a research run reading its own
    folder back); with a session, only what was kept for the same target is read back."""
    return _chunked(session, frame, folder, chunk, lambda part: greedy_outputs(session, part), "greedy outputs")


def cached_teacher_outputs(session: Any, frame: pd.DataFrame, folder: Path, chunk: int = 128,
                           batch_size: int = 16) -> tuple[list[list[int]], list[list[int]], list[Any], list[Any]]:
    """The target's greedy continuation of each prompt of ``frame`` (generated in batches of
    ``batch_size``, left-padded) and one batched forward over prompt + continuation: prompt ids,
    continuation ids, hidden states, the target's argmax after each position. Kept per ``chunk``
    prompts under ``folder/chunk-NNN`` and read back: a run cut short resumes at its first missing chunk."""
    from .. import heads

    def compute(part: pd.DataFrame) -> States:
        p_ids = [session.encode(p) for p in part["prompt"]]
        o_ids: list[list[int]] = []
        for start in range(0, len(p_ids), batch_size):
            o_ids += [list(map(int, o)) for o in session.greedy(p_ids[start:start + batch_size])]
        st = heads.hidden_states(session.target.model, [p + o for p, o in zip(p_ids, o_ids)], batch_size=batch_size)
        return p_ids, o_ids, [h.numpy() for h, _ in st], [a.numpy() for _, a in st], 0

    return _chunked(session, frame, folder, chunk, compute, "teacher outputs")[:4]


def run_states(run_dir: Path, source_log: Path) -> tuple[pd.DataFrame, States]:
    """The plain rows of ``source_log`` a heads run under ``run_dir`` used (the query ids its
    ``states/chunk-*/index.json`` hold, in order) and the states it kept for them; a clear error where
    the run has none."""
    from logging_data import open_log

    folder = run_dir / "states"
    indexes = sorted(folder.glob("chunk-*/index.json")) or sorted(folder.glob("index.json"))  # chunks, or one folder (before chunks)
    if not indexes:
        raise SystemExit(f"{folder}: no saved states; run examples/heads.py --out {run_dir} first")
    ids = [q for index in indexes for q in json.loads(index.read_text())["query_ids"]]
    plain = plain_rows(open_log(source_log).read("outcomes"), None)
    plain = plain.set_index("query_id").loc[ids].reset_index()
    chunk = len(json.loads(indexes[0].read_text())["query_ids"])

    def incomplete(part: pd.DataFrame) -> States:
        raise SystemExit(f"{folder}: its states are incomplete (run examples/heads.py --out {run_dir} again)")

    return plain, _chunked(None, plain, folder, chunk, incomplete, "states")
