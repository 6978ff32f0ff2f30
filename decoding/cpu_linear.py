"""Linear layers on CPU through oneDNN with each weight packed once (``[target] linear = "onednn"``).

Why: on a CPU a decoding step of a small model is bound by reading its weights, so a target pass
over the few tokens that assisted decoding verifies should cost about what one plain step costs.
PyTorch's default CPU ``linear`` (MKL) does not get there for small batches: on the 2-core EPYC
this project measures on, a SmolLM2-135M pass over 2, 3 and 4 tokens cost 1.7x, 2.1x and 1.8x a
one-token pass, because MKL handles 2-3 rows as one matrix-vector product per row and re-packs
the weight for every larger product. oneDNN's ``linear`` with the weight reordered into its
blocked layout ahead of time (what ``torch.compile``'s CPU freezing pass does) reads each weight
once per pass: the same model's passes over 1, 2, 3, 4, 6 and 11 tokens cost 58, 67, 58, 64, 56
and 79 ms, against 60, 103, 124, 111, 113 and 157 ms with the default (``examples/bench_linear.py``;
BENCHMARKS.md, "oneDNN linear").

Two-row inputs take a slower oneDNN path than three rows, so a two-row input gets one zero row
appended (rows are computed independently; the extra row is dropped).

``resolve(setting, device, dtype)`` says which kernel applies and why: the default one on a
device other than CPU, a dtype other than float32, or a PyTorch without oneDNN.
``pack_linears(model)`` swaps the forward of every ``nn.Linear`` in the model for the packed one;
the original weights stay (tied embeddings and early-exit arms read them). ``probe_error`` is
checked on every packed layer against the default ``linear`` before it is used; the results
differ only in float rounding (the lossless check of every decode compares against plain greedy
decoding run with the same kernels).

torch is imported inside the functions (this module is imported by torch-free code paths).
"""

from __future__ import annotations

import types
from typing import Any

#: ``[target] linear`` values
LINEAR_KERNELS = ("auto", "onednn", "default")

#: relative error above which a packed layer is refused (float32 rounding is ~1e-6)
PROBE_TOLERANCE = 1e-3


def available() -> tuple[bool, str]:
    """Whether this PyTorch can pack linear layers for oneDNN, and why not."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return False, "this PyTorch build has no oneDNN (torch.backends.mkldnn.is_available() is False)"
    for op in ("_reorder_linear_weight", "_linear_pointwise"):
        if not hasattr(torch.ops.mkldnn, op):
            return False, f"this PyTorch has no torch.ops.mkldnn.{op}"
    return True, ""


def resolve(kernel: str, device: str, dtype: Any) -> tuple[str, str]:
    """The kernel a ``[target] linear`` setting gives on ``device`` / ``dtype``, and why.

    ``auto``: oneDNN on a CPU in float32 when this PyTorch has it, else the default. ``onednn``
    where it cannot apply raises ``ValueError`` naming what is missing.
    """
    import torch

    if kernel not in LINEAR_KERNELS:
        raise ValueError(f"linear kernel must be one of {', '.join(LINEAR_KERNELS)}; got {kernel!r}")
    if kernel == "default":
        return "default", "asked for"
    reasons = []
    if not str(device).startswith("cpu"):
        reasons.append(f"the device is {device}, not cpu")
    if dtype != torch.float32:
        reasons.append(f"the dtype is {str(dtype).replace('torch.', '')}, not float32")
    ok, why = available()
    if not ok:
        reasons.append(why)
    if reasons:
        if kernel == "onednn":
            raise ValueError(f"[target] linear = \"onednn\" cannot apply: {'; '.join(reasons)} (use \"auto\" or \"default\")")
        return "default", "; ".join(reasons)
    return "onednn", "cpu float32 with oneDNN"


def _packed_forward(weight: Any, bias: Any, out_features: int):
    import torch

    packed = torch.ops.mkldnn._reorder_linear_weight(weight, 4)
    op = torch.ops.mkldnn._linear_pointwise

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        rows = flat.shape[0]
        if rows == 2:  # oneDNN's two-row path is slower than its three-row one
            flat = torch.cat([flat, flat.new_zeros(1, flat.shape[1])])
        y = op(flat, packed, bias, "none", [], "")
        if rows == 2:
            y = y[:2]
        return y.reshape(*x.shape[:-1], out_features)

    return forward


def probe_error(module: Any, rows: int = 3, seed: int = 0) -> float:
    """Largest relative difference between ``module``'s forward and the default linear on a random input."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, module.in_features, generator=g, dtype=module.weight.dtype)
    with torch.no_grad():
        want = torch.nn.functional.linear(x, module.weight, module.bias)
        got = module(x)
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-30))


def pack_linears(model: Any) -> int:
    """Swap every ``nn.Linear`` forward in ``model`` for the oneDNN-packed one; returns how many.

    Each packed layer is probed against the default linear first (``probe_error``); a layer over
    ``PROBE_TOLERANCE`` keeps the default forward and the whole call raises ``RuntimeError``
    naming it, after restoring the layers already swapped.
    """
    import torch

    done = []
    with torch.no_grad():
        for name, mod in model.named_modules():
            if not isinstance(mod, torch.nn.Linear) or "forward" in vars(mod):
                continue
            w = mod.weight.detach()
            b = None if mod.bias is None else mod.bias.detach()
            mod.forward = types.MethodType(_packed_forward(w, b, mod.out_features), mod)
            done.append(mod)
            err = probe_error(mod)
            if not err <= PROBE_TOLERANCE:
                for m in done:
                    del m.forward
                raise RuntimeError(f"oneDNN linear of layer {name!r} differs from the default by {err:.2e} "
                                   f"(relative; at most {PROBE_TOLERANCE:g} expected); use [target] linear = \"default\"")
    return len(done)


def unpack_linears(model: Any) -> int:
    """Restore the default forward of every layer ``pack_linears`` swapped; returns how many."""
    import torch

    n = 0
    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear) and "forward" in vars(mod):
            del mod.forward
            n += 1
    return n
