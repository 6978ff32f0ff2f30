"""A retrieval datastore of what the target writes in one domain: a draft with no model (REST-style).

Retrieval-based speculative decoding (He et al. 2023, "REST") drafts by matching the end of the
context in a corpus and proposing what followed there. Here the corpus is task-aligned: the
target's own greedy continuations of a domain's training prompts, so a store proposes the phrases
the target itself tends to write in that domain ("In this context, the Spanish translation of",
"This Python class allows ...") and little elsewhere. It runs no model: a lookup is a few
dictionary reads on the host, and its counts replay exactly from the target's greedy output.

- ``Datastore.build(sequences, max_ngram, max_chain)``: for every n-gram (n <= ``max_ngram``) of
  the sequences, the chain most often following it: step by step, the most frequent next token
  among the occurrences that agree so far (ties: the smaller id), with how many did (``count``)
  out of how many were left (``total``);
- ``propose(context, k, min_count, min_fraction)``: the chain of the *longest* n-gram that ends the
  context and occurs in the store, at most ``k`` tokens, cut before its first token seen fewer
  than ``min_count`` times or in less than ``min_fraction`` of the occurrences left (shorter
  n-grams are not tried once a longer one matched);
- ``save`` / ``load``: ``datastore.json`` (settings, sizes, the target it was built for) and
  ``datastore.npz`` (the sequences); nothing pickled; every field and array header checked before
  anything is read (``read_datastore_record``); the table is rebuilt on load, the same every time;
- ``DatastoreDraft``: its ``decoding.specloop`` drafter (one draft call per lookup);
  ``replay_datastore``: its exact counts on a greedy output (``specloop.replay_drafter``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

#: the store's settings when none are given: n-grams up to 8 tokens, chains up to 8 tokens
MAX_NGRAM = 8
MAX_CHAIN = 8
FORMAT = "draftpick.datastore/1"


class Datastore:
    """The n-gram -> continuation-chain table of a corpus of token sequences (module docstring)."""

    def __init__(self, sequences: Iterable[Sequence[int]], max_ngram: int = MAX_NGRAM, max_chain: int = MAX_CHAIN) -> None:
        if max_ngram < 1 or max_chain < 1:
            raise ValueError(f"a datastore needs max_ngram >= 1 and max_chain >= 1; got {max_ngram} and {max_chain}")
        self.max_ngram, self.max_chain = int(max_ngram), int(max_chain)
        self.sequences = [[int(t) for t in s] for s in sequences]
        for i, s in enumerate(self.sequences):
            if any(t < 0 for t in s):
                raise ValueError(f"datastore sequence {i}: token ids must be >= 0; got {min(s)}")
        corpus: list[int] = []
        where: dict[tuple[int, ...], list[int]] = {}
        for s in self.sequences:
            base = len(corpus)
            corpus += s
            corpus.append(-1)  # a sequence's end: no chain runs across it
            for e in range(len(s)):
                for n in range(1, min(self.max_ngram, e + 1) + 1):
                    where.setdefault(tuple(s[e - n + 1:e + 1]), []).append(base + e + 1)
        self._corpus = corpus
        # one occurrence: its position (the chain is the corpus after it); more: the chain itself
        self._table: dict[tuple[int, ...], int | tuple[tuple[int, int, int], ...]] = {
            key: (pos[0] if len(pos) == 1 else self._chain(pos)) for key, pos in where.items()}

    @property
    def n_tokens(self) -> int:
        return len(self._corpus) - len(self.sequences)

    @property
    def max_token(self) -> int | None:
        """The largest token id the store holds (None when it holds none)."""
        return max((max(s) for s in self.sequences if s), default=None)

    @property
    def n_keys(self) -> int:
        return len(self._table)

    def _chain(self, positions: list[int]) -> tuple[tuple[int, int, int], ...]:
        corpus, chain, left = self._corpus, [], positions
        for _ in range(self.max_chain):
            counts = Counter(corpus[p] for p in left if corpus[p] >= 0)
            if not counts:
                break
            token, count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            chain.append((token, count, len(left)))
            left = [p + 1 for p in left if corpus[p] == token]
        return tuple(chain)

    def chain(self, key: Sequence[int]) -> tuple[tuple[int, int, int], ...] | None:
        """The (token, count, total) chain after the n-gram ``key``; None if it does not occur."""
        entry = self._table.get(tuple(int(t) for t in key))
        if entry is None or not isinstance(entry, int):
            return entry
        out, p = [], entry
        while len(out) < self.max_chain and self._corpus[p] >= 0:
            out.append((self._corpus[p], 1, 1))
            p += 1
        return tuple(out)

    def propose(self, context: Sequence[int], k: int, min_count: int = 1, min_fraction: float = 0.0) -> list[int]:
        """At most ``k`` tokens: the longest matching n-gram's chain, cut at the gates (module docstring)."""
        n_max = min(self.max_ngram, len(context))
        for n in range(n_max, 0, -1):
            key = tuple(context[len(context) - n:])
            entry = self._table.get(key)
            if entry is None:
                continue
            out: list[int] = []
            if isinstance(entry, int):  # one occurrence: count 1 of 1 at every step
                if min_count > 1:
                    return out
                p, limit = entry, min(k, self.max_chain)
                while len(out) < limit and self._corpus[p] >= 0:
                    out.append(self._corpus[p])
                    p += 1
                return out
            for token, count, total in entry[:k]:
                if count < min_count or count < min_fraction * total:
                    break
                out.append(token)
            return out
        return []

    # -- files -------------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, record: dict[str, Any] | None = None, *,
             made_for: Mapping[str, Any] | None = None) -> Path:
        """``folder/datastore.npz`` (the sequences) and ``folder/datastore.json`` (settings, sizes, ``record``,
        and ``made_for``: the identity of the target whose outputs it holds, ``decoding.artifacts.target_identity``)."""
        from .artifacts import check_identity_record

        folder = Path(folder)
        if made_for is not None:
            check_identity_record(made_for, "Datastore.save")
        folder.mkdir(parents=True, exist_ok=True)
        lengths = np.asarray([len(s) for s in self.sequences], dtype=np.int64)
        tokens = np.asarray([t for s in self.sequences for t in s], dtype=np.int64)
        np.savez(folder / "datastore.npz", tokens=tokens, lengths=lengths)
        meta = {"format": FORMAT, "max_ngram": self.max_ngram, "max_chain": self.max_chain, "n_sequences": len(self.sequences),
                "n_tokens": self.n_tokens, **({"record": record} if record else {}), **({"made_for": dict(made_for)} if made_for else {})}
        (folder / "datastore.json").write_text(json.dumps(meta, indent=2) + "\n")
        return folder


#: the longest n-gram and chain a store's file may declare: a larger value is a corrupt file
MAX_SETTING = 1024


def datastore_fields() -> tuple[Any, ...]:
    """``datastore.json``'s schema (``logging_data.records``); ``made_for`` is absent in stores written before it was recorded."""
    from logging_data.records import integer, mapping, text

    return (text("format", (FORMAT,)), integer("max_ngram", 1, MAX_SETTING), integer("max_chain", 1, MAX_SETTING),
            integer("n_sequences", 0), integer("n_tokens", 0), mapping("record", required=False), mapping("made_for", required=False))


def _missing_files(folder: Path, found: list[str] | None) -> str:
    return (f"{folder}: a datastore folder holds datastore.json and datastore.npz "
            f"(found: {', '.join(found) if found is not None else 'no such folder'})")


def read_datastore_record(folder: str | os.PathLike) -> dict[str, Any]:
    """``datastore.json`` of the store in ``folder``, checked (``datastore_fields``), and ``datastore.npz``'s
    array headers checked against it (two 1-D integer arrays ``tokens`` and ``lengths`` of the sizes it
    declares; an array of Python objects is refused, never unpickled); nothing allocated.
    ``FileNotFoundError`` or ``logging_data.records.RecordError``, naming the file."""
    from logging_data.records import RecordError, npz_headers

    from .artifacts import read_artifact_record

    meta, meta_path, data_path = read_artifact_record(folder, "datastore.json", "datastore.npz", datastore_fields(), _missing_files)
    arrays = npz_headers(data_path)
    want = {"tokens": meta["n_tokens"], "lengths": meta["n_sequences"]}
    problems = [f"array {name!r} is missing" for name in want if name not in arrays]
    problems += [f"array {name!r} is not one of a datastore's (tokens, lengths)" for name in arrays if name not in want]
    for name, n in want.items():
        if name in arrays:
            shape, dtype = arrays[name]
            if dtype.kind not in "iu":
                problems.append(f"{name} must hold integers; its dtype is {dtype}")
            if shape != (n,):
                problems.append(f"{name} has shape {list(shape)}; {meta_path.name} declares {n} "
                                f"{'tokens' if name == 'tokens' else 'sequences'} ([{n}])")
    if problems:
        raise RecordError(f"{data_path}: " + "; ".join(problems))
    return meta


def load_datastore(folder: str | os.PathLike, target: Mapping[str, Any] | None = None, allow_other_target: bool = False) -> Datastore:
    """The datastore saved in ``folder`` (``Datastore.save``; arrays only: nothing pickled is loaded), its files
    checked (``read_datastore_record``) and, given ``target`` (a ``decoding.artifacts.target_identity``), checked
    against it: made for another tokenizer or target, or token ids the target does not have, is refused
    (``decoding.artifacts.TargetMismatchError``, naming both sides)."""
    from logging_data.records import RecordError, load_npz

    folder = Path(folder)
    meta = read_datastore_record(folder)
    if target is not None:
        check_datastore_target(folder, meta, target, allow_other_target)
    data_path = folder / "datastore.npz"
    arrays = load_npz(data_path, ("tokens", "lengths"))
    tokens, lengths = arrays["tokens"].astype(np.int64), arrays["lengths"].astype(np.int64)
    if (lengths < 0).any() or int(lengths.sum()) != len(tokens):
        raise RecordError(f"{data_path}: {len(lengths)} sequences of {int(lengths.sum())} tokens in all, but it holds {len(tokens)} "
                          f"tokens (lengths must be >= 0 and sum to the tokens held)")
    if len(tokens) and int(tokens.min()) < 0:
        raise RecordError(f"{data_path}: tokens holds token id {int(tokens.min())}; token ids are >= 0")
    if target is not None and len(tokens):
        check_datastore_target(folder, meta, target, allow_other_target, max_token=int(tokens.max()))
    cut = np.cumsum(lengths)[:-1]
    return Datastore([s.tolist() for s in np.split(tokens, cut)] if len(lengths) else [], meta["max_ngram"], meta["max_chain"])


def check_datastore_target(folder: str | os.PathLike, meta: Mapping[str, Any], target: Mapping[str, Any],
                           allow_other_target: bool = False, max_token: int | None = None) -> None:
    """Refuse the store in ``folder`` (``read_datastore_record``'s ``meta``) for the target of identity ``target``:
    made for another tokenizer or target (``decoding.artifacts.check_made_for``), or, given ``max_token`` (its
    largest token id), holding ids the target does not have (``TargetMismatchError``, naming both sides)."""
    from .artifacts import TargetMismatchError, check_made_for, describe

    what = f"the datastore at {Path(folder)}"
    if max_token is None:
        check_made_for(meta.get("made_for"), target, what, allow_other_target=allow_other_target)
    elif max_token >= int(target["vocab_size"]):
        raise TargetMismatchError(f"{what} holds token ids up to {max_token}; the target {describe(target)} has "
                                  f"{target['vocab_size']} tokens (ids 0 to {int(target['vocab_size']) - 1}): it was built "
                                  f"for another target")


class DatastoreDraft:
    """The ``decoding.specloop`` drafter of a datastore: ``store.propose(context, k, ...)`` each round
    (one draft call per lookup); it needs no target state."""

    needs_hidden = False

    def __init__(self, store: Datastore, k: int, min_count: int = 1, min_fraction: float = 0.0) -> None:
        if k < 1 or min_count < 1 or not 0.0 <= min_fraction <= 1.0:
            raise ValueError(f"a datastore drafts k >= 1 tokens with min_count >= 1 and min_fraction in [0, 1]; "
                             f"got {k}, {min_count}, {min_fraction}")
        self.store, self.k, self.min_count, self.min_fraction = store, int(k), int(min_count), float(min_fraction)
        self.draft_calls = 0

    def reset(self, prompt: Sequence[int]) -> None:
        self.draft_calls = 0

    def propose(self, context: Sequence[int]) -> list[int]:
        self.draft_calls += 1
        return self.store.propose(context, self.k, self.min_count, self.min_fraction)

    def accepted(self, context: Sequence[int], hidden: Any = None) -> None:
        pass


def replay_datastore(drafter: DatastoreDraft, prompt: Sequence[int], greedy: Sequence[int], max_new_tokens: int) -> dict[str, int]:
    """The counts ``speculative_greedy`` gives with ``drafter``, replayed on the target's greedy output (exact)."""
    from .specloop import replay_drafter

    v = replay_drafter(drafter, prompt, greedy, max_new_tokens)
    return {"n_new_tokens": len(greedy), "target_calls": v.target_calls, "draft_tokens": v.proposed,
            "draft_calls": int(drafter.draft_calls), "accepted_tokens": v.accepted}
