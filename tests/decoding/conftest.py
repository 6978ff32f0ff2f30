"""Fixtures of the decoding tests over the tiny models of ``tests/conftest.py``.

``models_toml(tiny_models, arms)`` writes a models file over them.
"""

from __future__ import annotations


import pytest

def models_toml(tiny_models: dict[str, str], arms: str, target: str = "target", max_new_tokens: int = 8) -> str:
    return f'[target]\npath = "{tiny_models[target]}"\ndevice = "cpu"\nmax_new_tokens = {max_new_tokens}\nchat_template = false\n\n' + arms


ALL_ARMS = """
[[arms]]
name = "plain"
kind = "none"

[[arms]]
name = "lookup"
kind = "prompt_lookup"
prompt_lookup_num_tokens = 3

[[arms]]
name = "exit1"
kind = "early_exit"
assistant_early_exit = 1
num_assistant_tokens = 3

[[arms]]
name = "draft"
kind = "draft"
draft = "draft"
num_assistant_tokens = 4
num_assistant_tokens_schedule = "constant"

[[arms]]
name = "draft-heur"
kind = "draft"
draft = "draft"
num_assistant_tokens_schedule = "heuristic"
"""


@pytest.fixture(scope="session")
def all_arms_config(tiny_models):
    from decoding.models import parse_models_config

    return parse_models_config(models_toml(tiny_models, ALL_ARMS), base_dir=tiny_models["root"])


@pytest.fixture(scope="session")
def session(all_arms_config):
    from decoding.session import DecodingSession

    return DecodingSession(all_arms_config, threads=1)


@pytest.fixture(scope="session")
def toml_for(tiny_models):
    """``toml_for(arms, target="target", max_new_tokens=8)`` -> models TOML text over the tiny models."""

    def make(arms: str, target: str = "target", max_new_tokens: int = 8) -> str:
        return models_toml(tiny_models, arms, target, max_new_tokens)

    return make


@pytest.fixture(scope="session")
def all_arms_toml(tiny_models) -> str:
    return models_toml(tiny_models, ALL_ARMS)
