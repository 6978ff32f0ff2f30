"""What a drafter artifact was made for, recorded when it is written and checked when a target loads it.

A head (``decoding.heads``) drafts from one target's hidden states through its output layer; a
datastore (``decoding.datastore``) holds one target's greedy outputs as token ids. Both are
written for one target and mean nothing under another tokenizer. So each records, under
``made_for`` in its JSON file, the target's identity (``target_identity``)::

    "made_for": {"target": "packaged:smollm2-135m", "model_type": "llama", "hidden_size": 576,
                 "vocab_size": 49152, "tokenizer": {"name_or_path": "...", "size": 49152, "sha256": "9f2c..."}}

and an arm that loads it for a target (``check_made_for``) refuses:

- another tokenizer (its vocabulary's hash or size differ), or for a head another hidden size:
  the ids or states would mean something else; never overridable;
- another target with the same tokenizer (its path or name differs): refused unless the arm sets
  ``allow_other_target = true`` (the same model moved, or a sibling the user means it to draft for:
  output stays exact, only acceptance may suffer).

An artifact written before identities were recorded loads with one ``LegacyArtifactWarning``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

from logging_data.records import check_record, integer, mapping, text

#: the ``made_for`` record's schema (``logging_data.records``)
MADE_FOR_FIELDS = (text("target"), text("model_type", required=False), integer("hidden_size", 1), integer("vocab_size", 1),
                   mapping("tokenizer"))
TOKENIZER_FIELDS = (text("name_or_path", required=False), integer("size", 1), text("sha256"))


class TargetMismatchError(ValueError):
    """An artifact made for another target (or tokenizer); the message names both sides."""


class LegacyArtifactWarning(UserWarning):
    """An artifact written before identities were recorded: loaded without checking what it was made for."""


def tokenizer_digest(tokenizer: Any) -> str:
    """sha256 of the tokenizer's vocabulary (every token string and its id, added tokens included)."""
    items = sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode("utf-8")).hexdigest()


def target_identity(target: Any) -> dict[str, Any]:
    """The ``made_for`` record of a loaded target (``decoding.loading.LoadedModel``)."""
    config = target.model.config.get_text_config()
    tok = target.tokenizer
    return {"target": str(target.spec), "model_type": str(getattr(config, "model_type", "") or "unknown"),
            "hidden_size": int(config.hidden_size), "vocab_size": int(config.vocab_size),
            "tokenizer": {"name_or_path": str(getattr(tok, "name_or_path", "") or ""), "size": int(len(tok)),
                          "sha256": tokenizer_digest(tok)}}


def check_identity_record(made_for: Any, where: str) -> None:
    """``RecordError`` naming ``where`` when ``made_for`` is not a target identity."""
    check_record(made_for, MADE_FOR_FIELDS, f"{where}: made_for")
    check_record(made_for["tokenizer"], TOKENIZER_FIELDS, f"{where}: made_for.tokenizer")


def read_artifact_record(folder: str | os.PathLike, record: str, data: str, fields: tuple,
                         missing: Callable[[Path, list[str] | None], str]) -> tuple[dict[str, Any], Path, Path]:
    """(the checked JSON record, its path, the data file's path) of an artifact folder holding the
    files ``record`` and ``data`` (a head, a datastore): the record read against ``fields``
    (``logging_data.records``) and its ``made_for`` checked where present. ``FileNotFoundError``
    with ``missing(folder, names found in it or None: no such folder)`` when a file is absent."""
    from logging_data.records import read_json_record

    folder = Path(folder)
    record_path, data_path = folder / record, folder / data
    if not record_path.exists() or not data_path.exists():
        raise FileNotFoundError(missing(folder, sorted(p.name for p in folder.iterdir()) if folder.is_dir() else None))
    meta = read_json_record(record_path, fields)
    if "made_for" in meta:
        check_identity_record(meta["made_for"], str(record_path))
    return meta, record_path, data_path


def describe(identity: Mapping[str, Any]) -> str:
    """``packaged:smollm2-135m (llama, hidden size 576, tokenizer of 49152 tokens, sha256 9f2c41aa)``."""
    tok = identity["tokenizer"]
    return (f"{identity['target']} ({identity.get('model_type', 'unknown')}, hidden size {identity['hidden_size']}, "
            f"tokenizer of {tok['size']} tokens, sha256 {str(tok['sha256'])[:8]})")


def _same_target(a: str, b: str) -> bool:
    if a == b:
        return True
    local = not a.startswith("packaged:") and not b.startswith("packaged:")
    return local and os.path.realpath(a) == os.path.realpath(b)


#: (artifact, target) pairs already warned about in this process: one line per file, not one per arm or load
_WARNED: set[tuple[str, str]] = set()


def check_made_for(made_for: Mapping[str, Any] | None, target: Mapping[str, Any], what: str, *,
                   uses_hidden_states: bool = False, allow_other_target: bool = False) -> None:
    """Refuse ``what`` (e.g. "the head at P") made for another target than ``target`` (its
    ``target_identity``), naming both; warn once when it records none (module docstring)."""
    if made_for is None:
        if (what, target["target"]) in _WARNED:
            return
        _WARNED.add((what, target["target"]))
        warnings.warn(f"{what} records no target it was made for (written before identities were recorded); loaded for "
                      f"{target['target']} unchecked: write it again to record one", LegacyArtifactWarning, stacklevel=4)
        return
    mine, theirs = made_for["tokenizer"], target["tokenizer"]
    sides = f"it was made for {describe(made_for)}; the target is {describe(target)}"
    if mine["sha256"] != theirs["sha256"] or mine["size"] != theirs["size"]:
        raise TargetMismatchError(f"{what} was made for another tokenizer: {sides}; its token ids mean other words here "
                                  f"(build it again for this target)")
    if uses_hidden_states and made_for["hidden_size"] != target["hidden_size"]:
        raise TargetMismatchError(f"{what} reads hidden states of another size: {sides} (train it again on this target)")
    if not allow_other_target and not _same_target(str(made_for["target"]), str(target["target"])):
        raise TargetMismatchError(f"{what} was made for another target: {sides}; set allow_other_target = true on the arm "
                                  f"if it is the same model moved, or one it should draft for (output stays exact; "
                                  f"acceptance may fall)")
