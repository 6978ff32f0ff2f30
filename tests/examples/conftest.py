"""A tiny real log for the examples: the tiny models of tests/conftest.py, built by decoding.build."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="session")
def load_example():
    """``load_example(name)``: the module ``examples/<name>.py`` (examples are scripts, not a package)."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def smollm2():
    """Skip unless transformers and the packaged SmolLM2-135M are installed."""
    pytest.importorskip("transformers")
    from decoding.packaged import PackagedModelNotFound, packaged_model_path

    try:
        packaged_model_path("smollm2-135m")
    except PackagedModelNotFound as exc:
        pytest.skip(str(exc))

#: prompts over the tiny tokenizer's words, two "domains" that differ in how much they repeat
_PROMPTS = {
    "copy": ["the cat sat on the mat and the dog sat on the log the cat sat on the",
             "def add ( a , b ) : return a + b def add ( a , b ) :",
             "the quick brown fox jumps over the lazy dog the quick brown fox jumps",
             "summarize the following text in one line summarize the following text"],
    "free": ["translate this sentence into french please", "a draft model proposes tokens",
             "the target model checks them", "the lazy dog"],
}


@pytest.fixture(scope="session")
def tiny_models_file(tiny_models, write_tiny_models, tmp_path_factory):
    """Plain, prompt lookup and the tiny draft model."""
    from decoding.models import ArmConfig

    arms = (ArmConfig.of("plain", "none"), ArmConfig.of("lookup", "prompt_lookup", prompt_lookup_num_tokens=3),
            ArmConfig.of("draft", "draft", draft=tiny_models["draft"], num_assistant_tokens=3, num_assistant_tokens_schedule="constant"))
    return write_tiny_models(tmp_path_factory.mktemp("examples_models") / "models.toml", arms, max_new_tokens=10)


@pytest.fixture(scope="session")
def tiny_prompts(tmp_path_factory):
    rows = []
    splits = ("train",) * 5 + ("validation",) * 4 + ("test",) * 3
    for domain, texts in _PROMPTS.items():
        for i, split in enumerate(splits):  # each text, then each text with its words rotated by one
            words = texts[i % len(texts)].split()
            shift = i // len(texts)
            rows.append({"query_id": f"{domain}-{i}", "prompt": " ".join(words[shift:] + words[:shift]), "domain": domain,
                         "split": split})
    path = tmp_path_factory.mktemp("examples_prompts") / "prompts.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def tiny_log(tiny_models_file, tiny_prompts, tmp_path_factory):
    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.models import load_models_config

    out = tmp_path_factory.mktemp("examples_log") / "log"
    build_log(tiny_prompts, load_models_config(tiny_models_file), out,
              BuildConfig(reward=reward_definition("speedup_count"), calibration_context=16, calibration_repeats=2),
              threads=1, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_joint_models_file(write_tiny_models, tmp_path_factory):
    """Plain and four prompt-lookup arms (n-gram size x draft tokens): every count replays exactly."""
    from ..conftest import lookup_grid

    return write_tiny_models(tmp_path_factory.mktemp("examples_joint_models") / "models.toml", lookup_grid(), max_new_tokens=10)


@pytest.fixture(scope="session")
def tiny_joint_log(tiny_joint_models_file, tiny_prompts, tmp_path_factory):
    """The replay log (``--alignment-only --reward speedup_count``) of the tiny prompts over the joint arms."""
    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.pricing import Calibration
    from decoding.models import load_models_config

    out = tmp_path_factory.mktemp("examples_joint_log") / "log"
    cal = Calibration(target_step_s=0.01, arm_step_s={}, verify_token_s=0.0005, round_overhead_s=0.002, plain_step_s=0.01)
    build_log(tiny_prompts, load_models_config(tiny_joint_models_file), out,
              BuildConfig(reward=reward_definition("speedup_count"), measure=False, batch_size=8),
              threads=1, progress=False, calibration=cal)
    return out


@pytest.fixture(scope="session")
def tiny_heldout(tmp_path_factory):
    rows = [{"query_id": f"held-{i}", "prompt": p, "domain": d, "split": "test"}
            for i, (d, p) in enumerate([("copy", "the dog sat on the log the dog sat on the"), ("copy", "def add ( a , b ) : return a"),
                                        ("free", "the lazy dog jumps"), ("free", "please translate this")])]
    path = tmp_path_factory.mktemp("examples_heldout") / "heldout.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def heads_run(smollm2, load_example, tmp_path_factory):
    """(folder, result) of ``examples/heads.py`` at a tiny size on the real SmolLM2-135M (12 of the log's
    prompts, one mined training prompt per domain), run once: its own test and ``examples/datastores.py``'s read it."""
    out = tmp_path_factory.mktemp("heads_run") / "out"
    res = load_example("heads").main(out, max_prompts=12, epochs=1, threads=2, live_check=2, budget="tiny",
                                     learners=("regression", "classifier"), live_per_domain=1, router_live=1, train_prompts=2)
    return out, res
