"""Plumbing for the torch-backed policies: state as safetensors + JSON (no pickles), checkpoints, scaling.

``torch.save`` is a pickle; artifacts and checkpoints here are safetensors files (tensors only)
with a JSON file beside them for everything that is not a tensor (optimizer hyper-parameters,
step counters, fingerprints). Checkpoints are numbered pairs ``ckpt-000000120.safetensors`` +
``ckpt-000000120.json``; the JSON is written last (each file to a temporary name, then renamed),
so a checkpoint counts only once both halves are complete, and an interrupted write is never
read back. torch and safetensors are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from logging_data.validate import first_line
from logging_data.files import atomic_write, write_text_atomic

_CKPT = re.compile(r"^ckpt-(\d{9})\.json$")


def optimizer_to_tensors(state_dict: dict, prefix: str) -> tuple[dict[str, Any], dict]:
    """Split ``optimizer.state_dict()`` into flat tensors ``{prefix}.{param}.{key}`` and JSON-safe rest."""
    import torch

    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state_dict["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{pid}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    groups = json.loads(json.dumps(state_dict["param_groups"]))
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_tensors(tensors: dict[str, Any], meta: dict, prefix: str) -> dict:
    """The inverse of ``optimizer_to_tensors``: a state dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            pid, key = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(pid), {})[key] = value
    for pid, entries in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def module_tensors(module: Any, prefix: str) -> dict[str, Any]:
    """A module's state dict as independent CPU tensors named ``{prefix}.{name}`` (shared storage copied)."""
    return {f"{prefix}.{k}": v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def load_module(module: Any, tensors: dict[str, Any], prefix: str) -> None:
    """Load ``{prefix}.*`` tensors into ``module`` (strict: every key must match)."""
    own = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    module.load_state_dict(own, strict=True)


def write_tensors(path: Path, tensors: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))


def read_tensors(path: Path) -> dict[str, Any]:
    """The tensors of a safetensors file; a missing, crafted or corrupt file is named."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise ValueError(f"{path}: missing; the run folder is incomplete")
    try:
        return load_file(str(path))
    except Exception as e:  # SafetensorError and friends: whatever the parser raises, name the file
        raise ValueError(f"{path}: not a readable safetensors file ({first_line(e)}); the run folder was changed outside "
                         f"draftpick (retrain it)") from None


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2))  # inf settings round-trip (Infinity)


def write_checkpoint(directory: Path, step: int, tensors: dict[str, Any], meta: dict, keep: int) -> None:
    """Write checkpoint ``step`` into ``directory`` and delete all but the newest ``keep``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"ckpt-{step:09d}"
    write_tensors(directory / f"{stem}.safetensors", tensors)
    write_json(directory / f"{stem}.json", {**meta, "step": step})
    for old in checkpoint_steps(directory)[:-keep]:
        (directory / f"ckpt-{old:09d}.json").unlink()
        (directory / f"ckpt-{old:09d}.safetensors").unlink(missing_ok=True)


def checkpoint_steps(directory: Path) -> list[int]:
    """Steps of the complete checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    steps = []
    for p in directory.iterdir():
        m = _CKPT.match(p.name)
        if m and (directory / f"ckpt-{m.group(1)}.safetensors").is_file():
            steps.append(int(m.group(1)))
    return sorted(steps)


def latest_checkpoint(directory: Path | None) -> tuple[dict[str, Any], dict] | None:
    """(tensors, meta) of the newest complete checkpoint in ``directory``, or None."""
    if directory is None:
        return None
    steps = checkpoint_steps(Path(directory))
    if not steps:
        return None
    stem = Path(directory) / f"ckpt-{steps[-1]:09d}"
    meta = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    return read_tensors(stem.with_suffix(".safetensors")), meta


def resume_checkpoint(directory: Path | None, fingerprint: str, run: str) -> tuple[dict[str, Any], dict] | None:
    """``latest_checkpoint`` of a ``run`` (e.g. "a REINFORCE run") trained with ``fingerprint``; a
    checkpoint of another config or other data is refused (ValueError naming both fingerprints)."""
    resumed = latest_checkpoint(directory)
    if resumed is not None and resumed[1].get("fingerprint") != fingerprint:
        raise ValueError(
            f"checkpoint folder {directory} holds {run} with another config or other data "
            f"(fingerprint {str(resumed[1].get('fingerprint'))[:12]}, expected {fingerprint[:12]}); use a new folder"
        )
    return resumed


def scaling_tensors(policy: Any) -> dict[str, Any]:
    """A fitted policy's feature standardisation (``feature_mean_``, ``feature_scale_``) as tensors to save."""
    import torch

    return {"feature_mean": torch.from_numpy(policy.feature_mean_.copy()),
            "feature_scale": torch.from_numpy(policy.feature_scale_.copy())}


def set_scaling(policy: Any, mean: np.ndarray, scale: np.ndarray, n_features: int) -> Any:
    """``policy`` with its fitted feature standardisation (float32 (d,) ``mean`` and ``scale``) and width set."""
    policy.feature_mean_, policy.feature_scale_, policy.n_features_ = mean, scale, int(n_features)
    return policy


def restore_scaling(policy: Any, tensors: dict[str, Any], meta: dict) -> Any:
    """``policy`` with its feature standardisation and width read back (``scaling_tensors``, ``policy.json``)."""
    return set_scaling(policy, tensors["feature_mean"].numpy(), tensors["feature_scale"].numpy(), meta["n_features"])


def data_fingerprint(*arrays: np.ndarray | None) -> str:
    """sha256 over the shapes, dtypes and bytes of the given arrays (None skipped)."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def standardisation(x: np.ndarray, on: bool) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) float32 (d,) of features x (n, d), applied as (x - mean) / scale.

    The identity (zeros, ones) when ``on`` is False; columns with sd < 1e-6 keep scale 1.
    """
    if not on:
        return np.zeros(x.shape[1], dtype=np.float32), np.ones(x.shape[1], dtype=np.float32)
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    scale = x.std(axis=0, dtype=np.float64).astype(np.float32)
    scale[scale < 1e-6] = 1.0
    return mean, scale
