"""oneDNN-packed linear layers: same numbers as the default up to rounding, same greedy tokens, clear refusals."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from decoding import cpu_linear  # noqa: E402
from decoding.models import ModelsConfigError, parse_models_config  # noqa: E402

pytestmark = pytest.mark.skipif(not cpu_linear.available()[0], reason="this PyTorch has no oneDNN")


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 7, 33])
@pytest.mark.parametrize("bias", [False, True])
def test_packed_linear_equals_default_up_to_rounding(rows, bias):
    torch.manual_seed(rows)
    lin = torch.nn.Linear(24, 40, bias=bias)
    x = torch.randn(2, rows, 24)
    with torch.no_grad():
        want = lin(x)
        assert cpu_linear.pack_linears(torch.nn.Sequential(lin)) == 1
        got = lin(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert cpu_linear.unpack_linears(lin) == 1
    with torch.no_grad():
        assert torch.equal(lin(x), want)


def test_packing_twice_is_a_no_op_and_the_weights_stay():
    lin = torch.nn.Linear(8, 8)
    w = lin.weight.detach().clone()
    assert cpu_linear.pack_linears(lin) == 1
    assert cpu_linear.pack_linears(lin) == 0
    assert torch.equal(lin.weight, w)


def test_session_packs_by_default_and_decodes_the_same_tokens(all_arms_config, session):
    from decoding.session import DecodingSession

    assert session.linear == "onednn"
    default = DecodingSession(dataclasses.replace(all_arms_config, target=dataclasses.replace(all_arms_config.target, linear="default")), threads=1)
    assert default.linear == "default" and default.linear_reason == "asked for"
    assert not any("forward" in vars(m) for m in default.target.model.modules())
    packed = [m for m in session.target.model.modules() if isinstance(m, torch.nn.Linear)]
    assert packed and all("forward" in vars(m) for m in packed)
    for prompt in ["the quick brown fox jumps over the lazy dog the quick brown", "def add ( a , b ) : return"]:
        ids = session.encode(prompt)
        ref = default.plain(ids)
        assert session.plain(ids).tokens == ref.tokens
        for arm in ("lookup", "exit1", "draft"):
            out = session.assisted(ids, arm, reference=ref.tokens)
            assert out.lossless is True, arm


@pytest.mark.parametrize("kernel, device, dtype, want", [
    ("auto", "cpu", "float32", "onednn"),
    ("auto", "cpu", "bfloat16", "default"),
    ("auto", "cuda", "float32", "default"),
    ("default", "cpu", "float32", "default"),
    ("onednn", "cpu", "float32", "onednn"),
])
def test_resolve(kernel, device, dtype, want):
    got, why = cpu_linear.resolve(kernel, device, getattr(torch, dtype))
    assert got == want and why


@pytest.mark.parametrize("device, dtype, message", [
    ("cuda", "float32", "the device is cuda, not cpu"),
    ("cpu", "float16", "the dtype is float16, not float32"),
])
def test_onednn_where_it_cannot_apply_says_why(device, dtype, message):
    with pytest.raises(ValueError, match=message):
        cpu_linear.resolve("onednn", device, getattr(torch, dtype))


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="linear kernel must be one of auto, onednn, default; got 'mkl'"):
        cpu_linear.resolve("mkl", "cpu", torch.float32)


def test_models_file_linear_key():
    base = '[target]\npath = "m"\n{extra}\n[[arms]]\nname = "plain"\nkind = "none"\n'
    assert parse_models_config(base.format(extra="")).target.linear == "auto"
    assert parse_models_config(base.format(extra='linear = "default"')).target.linear == "default"
    with pytest.raises(ModelsConfigError, match=r"\[target\]: `linear` must be one of auto, onednn, default; got 'fast'"):
        parse_models_config(base.format(extra='linear = "fast"'))


@pytest.mark.parametrize("dtype, device, want", [
    ("auto", "cpu", "float32"), ("auto", "cuda", "float32"),  # exact by default everywhere
    ("float32", "cuda", "float32"), ("bfloat16", "cuda", "bfloat16"), ("float16", "cuda", "float16"),
])
def test_dtype_rules(dtype, device, want):
    from decoding.loading import resolve_dtype

    assert resolve_dtype(dtype, device) == getattr(torch, want)  # no CUDA needed to resolve


def test_a_half_precision_target_warns_that_it_is_inexact(tiny_models):
    from decoding.loading import InexactDtypeWarning
    from decoding.models import parse_models_config
    from decoding.session import DecodingSession

    from .conftest import models_toml

    text = models_toml(tiny_models, '[[arms]]\nname = "plain"\nkind = "none"\n').replace('chat_template = false', 'chat_template = false\ndtype = "bfloat16"')
    with pytest.warns(InexactDtypeWarning, match="inexact mode.*8 of 16 runs differed"):
        session = DecodingSession(parse_models_config(text, base_dir=tiny_models["root"]), threads=1)
    assert session.exact is False and session.target.model.dtype == torch.bfloat16
