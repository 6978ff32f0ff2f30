"""Fixtures of the decoding tests over the tiny models of ``tests/conftest.py``.

``all_arms()`` is one arm of each of the kinds ``generate()`` runs; ``tiny_config(arms)`` (tests/conftest.py)
makes a models config of arms over the tiny target. ``toml_for(arms_text)`` puts TOML text under the tiny
target's ``[target]`` table, for the tests that are about malformed ``[[arms]]`` tables.
"""

from __future__ import annotations

import pytest

from decoding.models import ArmConfig

from ..conftest import tiny_target


def models_toml(tiny_models: dict[str, str], arms: str, target: str = "target", max_new_tokens: int = 8) -> str:
    """The tiny target's ``[target]`` table followed by the ``[[arms]]`` text ``arms`` (written as is)."""
    return tiny_target(tiny_models, target, max_new_tokens).to_toml() + "\n" + arms


def all_arms(draft: str = "draft") -> tuple[ArmConfig, ...]:
    """Plain, prompt lookup, early exit and two draft-model arms; ``draft``: the tiny draft's path (by
    default relative to the tiny models' folder, which ``tiny_config`` resolves against)."""
    return (ArmConfig.of("plain", "none"),
            ArmConfig.of("lookup", "prompt_lookup", prompt_lookup_num_tokens=3),
            ArmConfig.of("exit1", "early_exit", assistant_early_exit=1, num_assistant_tokens=3),
            ArmConfig.of("draft", "draft", draft=draft, num_assistant_tokens=4, num_assistant_tokens_schedule="constant"),
            ArmConfig.of("draft-heur", "draft", draft=draft, num_assistant_tokens_schedule="heuristic"))


@pytest.fixture(scope="session")
def all_arms_config(tiny_config):
    return tiny_config(all_arms())


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


@pytest.fixture
def crash_on_second_call(monkeypatch):
    """``crash_on_second_call(module, name)``: ``module.name`` raises ``RuntimeError("simulated crash in the
    second batch")`` on its second call and passes the others through; returns the real function."""
    def patch(module, name: str):
        real = getattr(module, name)
        calls = {"n": 0}

        def failing(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("simulated crash in the second batch")
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, failing)
        return real

    return patch
