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
``pack_linears(model)`` swaps the forward of every ``nn.Linear`` in the model for the packed one
and releases each original weight that no other parameter shares (a tied embedding keeps its
own): the packed copy replaces it, so a packed model holds its weights once (the Qwen2.5-Coder
1.5B target and 0.5B draft: 9.6 GB resident instead of 18). ``dense_weight(module)`` gives a
released layer's weight back (from the packed copy, for the rare reader: a drafting head's
reduced output layer); ``unpack_linears`` restores the layers. ``probe_error`` is
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


def _pack(weight: Any) -> Any:
    import torch

    return torch.ops.mkldnn._reorder_linear_weight(weight, 4)


def _packed_forward(packed: Any, bias: Any, out_features: int):
    import torch

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


#: attribute of a packed layer holding its packed weight (and of a released one, its weight's shape)
PACKED_ATTR, SHAPE_ATTR = "_draftpick_packed", "_draftpick_released_shape"


def _shared_storages(model: Any) -> set[int]:
    """Storage pointers held by more than one parameter or buffer of ``model`` (tied weights)."""
    seen: dict[int, int] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        if t.numel():
            ptr = t.untyped_storage().data_ptr()
            seen[ptr] = seen.get(ptr, 0) + 1
    # parameters() yields each Parameter once; a tied weight is one Parameter in two modules
    tied: dict[int, int] = {}
    for _, mod in model.named_modules(remove_duplicate=False):
        for p in mod.parameters(recurse=False):
            if p.numel():
                ptr = p.untyped_storage().data_ptr()
                tied[ptr] = tied.get(ptr, 0) + 1
    return {p for p, n in seen.items() if n > 1} | {p for p, n in tied.items() if n > 1}


def pack_linears(model: Any, release: bool = True) -> int:
    """Swap every ``nn.Linear`` forward in ``model`` for the oneDNN-packed one; returns how many.

    Each packed layer is probed against the default linear first (``probe_error``); a layer over
    ``PROBE_TOLERANCE`` keeps the default forward and the whole call raises ``RuntimeError``
    naming it, after restoring the layers already swapped. ``release``: then free each original
    weight no other parameter shares (``dense_weight`` rebuilds one from its packed copy).
    """
    import torch

    done = []
    with torch.no_grad():
        shared = _shared_storages(model) if release else set()
        for name, mod in model.named_modules():
            if not isinstance(mod, torch.nn.Linear) or "forward" in vars(mod):
                continue
            w = mod.weight.detach()
            b = None if mod.bias is None else mod.bias.detach()
            packed = _pack(w)
            setattr(mod, PACKED_ATTR, packed)
            mod.forward = types.MethodType(_packed_forward(packed, b, mod.out_features), mod)
            done.append(mod)
            err = probe_error(mod)
            if not err <= PROBE_TOLERANCE:
                for m in done:
                    _restore(m)
                raise RuntimeError(f"oneDNN linear of layer {name!r} differs from the default by {err:.2e} "
                                   f"(relative; at most {PROBE_TOLERANCE:g} expected); use [target] linear = \"default\"")
            if release and w.untyped_storage().data_ptr() not in shared:  # at once: the model is never held twice
                del w
                setattr(mod, SHAPE_ATTR, tuple(mod.weight.shape))
                mod.weight = torch.nn.Parameter(mod.weight.new_empty(0), requires_grad=False)
    if release and done:
        _own_memory(model)
        trim_heap()
    return len(done)


def _own_memory(model: Any) -> None:
    """Copy every tensor the model still holds into storage of its own. A loader may hand out tensors
    that share one buffer (safetensors read whole, or a mapping of the file): the released weights'
    part of it stays resident while one embedding or norm still holds the buffer. A tied weight
    stays tied (its one ``Parameter`` gets the copy)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.numel():
            t.data = t.data.clone()


def trim_heap() -> bool:
    """Give freed heap memory back to the system (glibc's ``malloc_trim``; False where there is none).

    The released weights were allocated below glibc's dynamic mmap threshold, so freeing them leaves
    holes in the heap that count as resident until trimmed (measured: the Qwen 0.5B draft held
    4.8 GB after packing, 2.5 GB once trimmed)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:
        return False
    return bool(trim is not None and trim(0) is not None)


def dense_weight(module: Any) -> Any:
    """``module.weight`` as a dense (out, in) tensor: itself, or for a layer ``pack_linears`` released,
    rebuilt from the packed copy (a new tensor; the layer stays packed)."""
    shape = getattr(module, SHAPE_ATTR, None)
    if shape is None or module.weight.numel():
        return module.weight
    return getattr(module, PACKED_ATTR).to_dense().reshape(shape)


def _restore(mod: Any) -> None:
    import torch

    shape = getattr(mod, SHAPE_ATTR, None)
    if shape is not None and not mod.weight.numel():
        mod.weight = torch.nn.Parameter(dense_weight(mod).clone(), requires_grad=mod.weight.requires_grad)
    for attr in (SHAPE_ATTR, PACKED_ATTR):
        if hasattr(mod, attr):
            delattr(mod, attr)
    if "forward" in vars(mod):
        del mod.forward


def unpack_linears(model: Any) -> int:
    """Restore the default forward (and a released weight) of every layer ``pack_linears`` swapped; returns how many."""
    import torch

    n = 0
    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear) and "forward" in vars(mod):
            _restore(mod)
            n += 1
    return n
