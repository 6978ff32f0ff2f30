"""Writing models files: ``ArmConfig.of``, ``to_toml`` and ``write_models_file``.

The round trip ``parse_models_config(config.to_toml())`` gives the same config for every registered
arm kind: one table case per kind, and a property over the settings each kind takes.
"""

from __future__ import annotations

import dataclasses
import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from decoding.arms import KINDS
from decoding.arms.base import MAX_DRAFT_TOKENS, SCHEDULES
from decoding.models import (DEVICES, DTYPES, ArmConfig, ModelsConfig, ModelsConfigError, TargetConfig,
                             load_models_config, parse_models_config, write_models_file)
from decoding.cpu_linear import LINEAR_KERNELS

# One arm of each kind with every setting the kind takes set (paths of every form a file may hold).
EVERY_KIND = {
    "none": {},
    "draft": {"draft": "drafts/tiny", "universal": True, "num_assistant_tokens": 5,
              "num_assistant_tokens_schedule": "heuristic", "assistant_confidence_threshold": 0.25},
    "prompt_lookup": {"prompt_lookup_num_tokens": 3, "max_matching_ngram_size": 2},
    "early_exit": {"assistant_early_exit": 8, "num_assistant_tokens": 4, "num_assistant_tokens_schedule": "constant",
                   "assistant_confidence_threshold": 0.0},
    "head": {"head": "packaged:code-head", "num_assistant_tokens": 3, "assistant_confidence_threshold": 0.4,
             "allow_other_target": True},
    "lookup_head": {"head": "/abs/heads/code", "num_assistant_tokens": 2, "assistant_confidence_threshold": 0.1,
                    "allow_other_target": True, "prompt_lookup_num_tokens": 4, "max_matching_ngram_size": 3},
    "datastore": {"datastore": "stores/code", "num_assistant_tokens": 6, "min_count": 2, "min_fraction": 0.5,
                  "allow_other_target": True},
    "datastore_head": {"head": "heads/h", "num_assistant_tokens": 2, "assistant_confidence_threshold": 0.3,
                       "allow_other_target": True, "datastore": "stores/s", "datastore_tokens": 4, "min_count": 3,
                       "min_fraction": 1},
    "lookup_draft": {"draft": "packaged:smollm2-135m", "num_assistant_tokens": 2, "prompt_lookup_num_tokens": 5,
                     "max_matching_ngram_size": 1},
}
TARGET = TargetConfig(path="packaged:smollm2-135m", device="cpu", dtype="float32", max_new_tokens=12, chat_template=False)


def test_every_registered_kind_has_a_table_case():
    assert set(EVERY_KIND) == set(KINDS)
    for kind, table in EVERY_KIND.items():  # the cases set every setting the kind takes
        assert set(table) == set(KINDS[kind].keys) - {"loop"}, kind


@pytest.mark.parametrize("kind", sorted(EVERY_KIND))
def test_round_trip_of_each_kind(kind, tmp_path):
    arm = ArmConfig.of(f"my-{kind}", kind, family="fam", **EVERY_KIND[kind])
    config = ModelsConfig.of(TARGET, [ArmConfig.of("plain", "none"), arm])
    text = config.to_toml()
    assert parse_models_config(text) == dataclasses.replace(config, source_path="<models>")
    # every setting is written under its own key, the path as given
    assert parse_models_config(text).source_text == text and f'name = "my-{kind}"' in text
    for key in ("draft", "head", "datastore"):
        if key in EVERY_KIND[kind]:
            assert f'{key} = "{EVERY_KIND[kind][key]}"' in text
    # through a file: relative paths are then read relative to its folder
    path = write_models_file(tmp_path / "sub" / "models.toml", config)
    loaded = load_models_config(path)
    assert (loaded.target, loaded.arms) == (config.target, config.arms)
    for key in ("draft", "head", "datastore"):
        value = EVERY_KIND[kind].get(key)
        if value and not value.startswith(("packaged:", "/")):
            assert loaded.resolve(value) == str(tmp_path.resolve() / "sub" / value)
        elif value:
            assert loaded.resolve(value) == value


def test_arm_and_target_alone():
    arm = ArmConfig.of("k3", "prompt_lookup", prompt_lookup_num_tokens=3)
    assert arm.to_toml() == '[[arms]]\nname = "k3"\nkind = "prompt_lookup"\nprompt_lookup_num_tokens = 3\n'
    assert arm.to_table() == {"name": "k3", "kind": "prompt_lookup", "prompt_lookup_num_tokens": 3}
    assert parse_models_config(TARGET.to_toml() + "\n" + arm.to_toml()).arms == (arm,)
    assert TARGET.to_table() == {"path": "packaged:smollm2-135m", "device": "cpu", "dtype": "float32", "max_new_tokens": 12,
                                 "chat_template": False, "linear": "auto"}
    # defaults are filled as parsing fills them, and false flags are left out of the text
    draft = ArmConfig.of("d", "draft", draft="x", universal=False)
    assert draft.universal is False and draft.to_table() == {"name": "d", "kind": "draft", "draft": "x"}
    assert ArmConfig.of("pl", "prompt_lookup").prompt_lookup_num_tokens == 10
    looped = ArmConfig.of("l", "draft", draft="x", loop=True, num_assistant_tokens=2)
    assert looped.option("loop") is True and looped.to_table()["loop"] is True
    # a config built in code carries the text it writes (the log records it)
    assert ModelsConfig.of("m", [arm]).source_text == ModelsConfig.of("m", [arm]).to_toml()


@pytest.mark.parametrize("build, message", [
    (lambda: ArmConfig.of("h", "head"), r"ArmConfig.of arm 'h': kind 'head' needs `head`"),
    (lambda: ArmConfig.of("x", "magic"), r"`kind` must be one of none, draft, .*; got 'magic'"),
    (lambda: ArmConfig.of("x", "none", num_assistant_tokens=3), r"key\(s\) 'num_assistant_tokens' do not apply to kind 'none'"),
    (lambda: ArmConfig.of("x", "prompt_lookup", prompt_lookup_num_tokens=MAX_DRAFT_TOKENS + 1), r"must be at most 256"),
    (lambda: ArmConfig(name="x", kind="none", num_assistant_tokens=3).to_table(),
     r"arm 'x': setting\(s\) 'num_assistant_tokens' do not apply to kind 'none'; valid keys for it: name, kind, family"),
    (lambda: ArmConfig(name="x", kind="magic").to_table(), r"arm 'x': `kind` must be one of .*; got 'magic'"),
    (lambda: ModelsConfig.of("m", [ArmConfig(name="x", kind="prompt_lookup")]),
     r"arm\(s\) 'x' would read back differently \(build arms with ArmConfig.of"),
    (lambda: ModelsConfig.of(TargetConfig(path="m", device="tpu"), [ArmConfig.of("p", "none")]),
     r"\[target\]: `device` must be one of auto, cpu, cuda; got 'tpu'"),
    (lambda: ModelsConfig.of("m", []), r"needs at least one \[\[arms\]\] table"),
    (lambda: ModelsConfig.of("m", [ArmConfig.of("a", "none"), ArmConfig.of("a", "none")]), r"repeated: a"),
])
def test_configs_a_file_could_not_hold_are_refused(build, message):
    with pytest.raises(ModelsConfigError, match=message):
        build()


def test_writer_refuses_to_overwrite_unless_asked(tmp_path):
    one = ModelsConfig.of("m", [ArmConfig.of("plain", "none")])
    two = ModelsConfig.of("m", [ArmConfig.of("k2", "prompt_lookup", prompt_lookup_num_tokens=2)])
    path = write_models_file(tmp_path / "models.toml", one)
    with pytest.raises(FileExistsError, match=r"models\.toml already exists; pass overwrite=True to replace it \(nothing written\)"):
        write_models_file(path, two)
    assert load_models_config(path).arm_names == ("plain",)
    write_models_file(path, two, overwrite=True)
    assert load_models_config(path).arm_names == ("k2",)
    with pytest.raises(IsADirectoryError, match="a folder is there"):
        write_models_file(tmp_path, one, overwrite=True)
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        write_models_file(path / "models.toml", one)
    # a config that cannot be written leaves nothing behind, not even a temporary file
    with pytest.raises(ModelsConfigError):
        write_models_file(tmp_path / "bad.toml", ModelsConfig(target=TargetConfig(path="m"), arms=()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.toml"]


# -- the property: any arm a file may hold survives writing ----------------------------------------
_names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(lambda s: s.strip() != "")
_paths = st.one_of(st.text(string.ascii_letters + string.digits + "/._- ", min_size=1, max_size=20).filter(str.strip),
                   st.builds(lambda s: f"packaged:{s}", st.text(string.ascii_lowercase + "-.0123456789", min_size=1, max_size=10)),
                   st.builds(lambda s: f"/abs/{s}", _names))
_draft_len = st.integers(1, MAX_DRAFT_TOKENS)
#: a strategy for every key any registered kind takes (a new key fails test_every_key_has_a_strategy)
SETTINGS = {
    "family": _names,
    "draft": _paths, "head": _paths, "datastore": _paths,
    "universal": st.booleans(), "loop": st.booleans(), "allow_other_target": st.booleans(),
    "num_assistant_tokens": _draft_len, "prompt_lookup_num_tokens": _draft_len, "datastore_tokens": _draft_len,
    "max_matching_ngram_size": st.integers(1, 10_000), "min_count": st.integers(1, 10_000),
    "assistant_early_exit": st.integers(1, 10_000),
    "num_assistant_tokens_schedule": st.sampled_from(SCHEDULES),
    "assistant_confidence_threshold": st.one_of(st.just(0), st.floats(0, 1, exclude_max=True)),
    "min_fraction": st.one_of(st.sampled_from([0, 1]), st.floats(0, 1)),
}
_REQUIRED = {"draft": ("draft",), "lookup_draft": ("draft",), "early_exit": ("assistant_early_exit",), "head": ("head",),
             "lookup_head": ("head",), "datastore": ("datastore",), "datastore_head": ("head", "datastore")}


def test_every_key_has_a_strategy():
    keys = {k for kind in KINDS.values() for k in kind.valid_keys()} - {"name", "kind"}
    assert keys <= set(SETTINGS), sorted(keys - set(SETTINGS))


@st.composite
def arm_tables(draw, kind: str) -> dict:
    keys = [k for k in KINDS[kind].valid_keys() if k not in ("name", "kind")]
    chosen = draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []
    chosen = set(chosen) | set(_REQUIRED.get(kind, ()))
    return {k: draw(SETTINGS[k]) for k in keys if k in chosen}


targets = st.builds(TargetConfig, path=_paths, device=st.sampled_from(DEVICES), dtype=st.sampled_from(DTYPES),
                    max_new_tokens=st.integers(1, 100_000), chat_template=st.sampled_from(["auto", True, False]),
                    linear=st.sampled_from(LINEAR_KERNELS))


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), target=targets, name=_names)
def test_round_trip_property(kind, data, target, name):
    table = data.draw(arm_tables(kind))
    try:
        arm = ArmConfig.of(name, kind, **table)
    except ModelsConfigError:  # a combination a file may not hold either (loop with universal, ...)
        assume(False)
    config = ModelsConfig(target=target, arms=(arm,))
    text = config.to_toml()
    back = parse_models_config(text)
    assert back == dataclasses.replace(config, source_text=text, source_path="<models>")
    assert back.to_toml() == text
