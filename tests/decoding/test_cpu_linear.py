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


def test_packing_twice_is_a_no_op_and_the_weights_come_back_exactly():
    lin = torch.nn.Linear(8, 8)
    w = lin.weight.detach().clone()
    assert cpu_linear.pack_linears(lin) == 1
    assert cpu_linear.pack_linears(lin) == 0
    assert lin.weight.numel() == 0  # released: the packed copy replaces it
    assert torch.equal(cpu_linear.dense_weight(lin), w)
    assert cpu_linear.unpack_linears(lin) == 1
    assert torch.equal(lin.weight, w) and cpu_linear.dense_weight(lin) is lin.weight


def test_a_tied_weight_is_packed_but_kept_and_release_false_keeps_all():
    emb, out, other = torch.nn.Embedding(10, 8), torch.nn.Linear(8, 10, bias=False), torch.nn.Linear(8, 8)
    out.weight = emb.weight  # tied, as small LMs tie their output layer to the input embedding
    model = torch.nn.ModuleDict({"emb": emb, "out": out, "other": other})
    assert cpu_linear.pack_linears(model) == 2
    assert out.weight is emb.weight and emb.weight.numel() == 80 and other.weight.numel() == 0
    x = torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(out(x), x @ emb.weight.T, rtol=1e-5, atol=1e-5)
    kept = torch.nn.Linear(8, 8)
    assert cpu_linear.pack_linears(kept, release=False) == 1 and kept.weight.numel() == 64


def test_packing_releases_the_originals_so_a_model_is_held_once():
    """What made the Qwen pair 18 GB resident: every packed layer held its weight twice."""
    model = torch.nn.Sequential(*[torch.nn.Linear(512, 512) for _ in range(4)])
    before = sum(p.numel() for p in model.parameters())
    cpu_linear.pack_linears(model)
    after = sum(p.numel() for p in model.parameters())
    assert after == 4 * 512  # the biases: every weight now lives only in its packed copy
    assert before - after == 4 * 512 * 512


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


def test_a_half_precision_target_warns_that_it_is_inexact(tiny_config):
    from decoding.loading import InexactDtypeWarning
    from decoding.models import ArmConfig
    from decoding.session import DecodingSession

    with pytest.warns(InexactDtypeWarning, match="inexact mode.*8 of 16 runs differed"):
        session = DecodingSession(tiny_config([ArmConfig.of("plain", "none")], dtype="bfloat16"), threads=1)
    assert session.exact is False and session.target.model.dtype == torch.bfloat16


def test_an_inexact_build_reports_its_token_match_rate_and_does_not_fail(write_tiny_models, tmp_path):
    """Under a dtype the user chose as faster and inexact, the lossless check says how much of plain
    greedy output each assisted run kept (``token_match_rate``) and the build exits 0, saying so."""
    import pandas as pd
    from click.testing import CliRunner

    from bandit.cli.main import cli
    from decoding.models import ArmConfig
    from logging_data import open_log

    arms = [ArmConfig.of("plain", "none"), ArmConfig.of("lookup", "prompt_lookup", prompt_lookup_num_tokens=3),
            ArmConfig.of("exit1", "early_exit", assistant_early_exit=1)]
    write_tiny_models(tmp_path / "m.toml", arms, dtype="bfloat16")
    pd.DataFrame({"query_id": ["a", "b"], "prompt": ["one two three one two three one", "a b c d a b c"]}).to_parquet(tmp_path / "p.parquet")
    r = CliRunner().invoke(cli, ["build", str(tmp_path / "p.parquet"), "--models", str(tmp_path / "m.toml"), "--out", str(tmp_path / "log"),
                                 "--reward", "speedup_count", "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert "inexact mode ([target] dtype = 'bfloat16'): " in r.stderr and "of 4 assisted runs" in r.stderr
    rows = open_log(tmp_path / "log").read("outcomes")
    assert rows["token_match_rate"].between(0, 1).all()
    assert (rows.loc[rows["lossless"], "token_match_rate"] == 1.0).all()
    assert (rows.loc[~rows["lossless"].astype(bool), "token_match_rate"] < 1.0).all()
