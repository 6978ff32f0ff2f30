"""The models TOML: a good file round-trips into dataclasses; every bad file is a clear error."""

from __future__ import annotations

import pytest

from decoding.models import MODEL_ARM_KINDS, ArmConfig, ModelsConfigError, load_models_config, parse_models_config

GOOD = """
[target]
path = "packaged:smollm2-135m"
device = "cpu"
max_new_tokens = 32
chat_template = true

[[arms]]
name = "plain"
kind = "none"

[[arms]]
name = "lookup3"
kind = "prompt_lookup"
prompt_lookup_num_tokens = 3

[[arms]]
name = "exit8"
kind = "early_exit"
assistant_early_exit = 8
num_assistant_tokens = 4
assistant_confidence_threshold = 0.0

[[arms]]
name = "small"
kind = "draft"
draft = "drafts/small"
universal = true
num_assistant_tokens_schedule = "heuristic"
family = "smollm"
"""


def test_good_file_parses(tmp_path):
    p = tmp_path / "models.toml"
    p.write_text(GOOD)
    cfg = load_models_config(p)
    assert cfg.target.path == "packaged:smollm2-135m" and cfg.target.max_new_tokens == 32 and cfg.target.chat_template is True
    assert cfg.target.dtype == "auto"
    assert cfg.arm_names == ("plain", "lookup3", "exit8", "small")
    assert cfg.arm("lookup3").generate_kwargs() == {"prompt_lookup_num_tokens": 3}
    assert cfg.arm("exit8").generate_kwargs() == {"assistant_early_exit": 8}
    assert cfg.arm("exit8").assistant_settings() == {"num_assistant_tokens": 4, "assistant_confidence_threshold": 0.0}
    assert cfg.resolve(cfg.arm("small").draft) == str(tmp_path.resolve() / "drafts/small")
    assert cfg.resolve("packaged:x") == "packaged:x" and cfg.source_text == GOOD
    arms = cfg.to_log_arms(costs={"small": 0.3, "exit8": 0.27}, n_params_m={"small": 135.0})
    assert [a.kind for a in arms] == ["none", "prompt_lookup", "early_exit", "draft"]
    assert arms[3].cost == 0.3 and arms[3].attrs == {"kind": "draft", "family": "smollm", "n_params_m": 135.0, "universal": True}
    assert arms[1].attrs["draft_tokens"] == 3 and arms[2].attrs["exit_layer"] == 8 and arms[0].cost == 0.0
    with pytest.raises(KeyError, match="unknown arm 'nope'; the models file's arms are plain, lookup3, exit8, small"):
        cfg.arm("nope")
    with pytest.raises(Exception):
        cfg.target.path = "x"  # frozen


def test_prompt_lookup_default_tokens():
    cfg = parse_models_config('[target]\npath = "m"\n[[arms]]\nname = "pl"\nkind = "prompt_lookup"\n')
    assert cfg.arm("pl") == ArmConfig(name="pl", kind="prompt_lookup", prompt_lookup_num_tokens=10)


T = '[target]\npath = "m"\n'
ARM = '[[arms]]\nname = "a"\nkind = "none"\n'
BAD = [
    ("not toml [", "not valid TOML"),
    (ARM, r"missing the \[target\] table"),
    (T, r"needs at least one \[\[arms\]\] table"),
    (T + ARM + "[extra]\nx = 1\n", r"unknown top-level key\(s\) 'extra'; valid: 'target', '\[\[arms\]\]'"),
    ('[target]\npath = "m"\ndevise = "cpu"\n' + ARM, r"\[target\]: unknown key\(s\) 'devise'; valid keys: path, device, dtype, max_new_tokens, chat_template"),
    ('[target]\ndevice = "cpu"\n' + ARM, r"`path` is required"),
    ('[target]\npath = "m"\ndevice = "tpu"\n' + ARM, r"`device` must be one of auto, cpu, cuda; got 'tpu'"),
    ('[target]\npath = "m"\ndtype = "int8"\n' + ARM, r"`dtype` must be one of auto, float32, bfloat16, float16; got 'int8'"),
    ('[target]\npath = "m"\nmax_new_tokens = 0\n' + ARM, r"`max_new_tokens` must be an integer >= 1; got 0"),
    ('[target]\npath = "m"\nmax_new_tokens = "9"\n' + ARM, r"`max_new_tokens` must be int; got '9'"),
    ('[target]\npath = "m"\nchat_template = "yes"\n' + ARM, r"`chat_template` must be \"auto\", true or false; got 'yes'"),
    (T + '[[arms]]\nkind = "none"\n', r"#1: `name` is required"),
    (T + '[[arms]]\nname = "a"\nkind = "magic"\n', rf"arm 'a': `kind` must be one of {', '.join(MODEL_ARM_KINDS)}; got 'magic'"),
    (T + '[[arms]]\nname = "a"\nkind = "none"\nnum_tokens = 3\n', r"arm 'a': unknown key\(s\) 'num_tokens'; valid keys for kind 'none': name, kind, family"),
    (T + '[[arms]]\nname = "a"\nkind = "none"\nprompt_lookup_num_tokens = 3\n', r"'prompt_lookup_num_tokens' do not apply to kind 'none'"),
    (T + '[[arms]]\nname = "a"\nkind = "draft"\n', r"kind 'draft' needs `draft`"),
    (T + '[[arms]]\nname = "a"\nkind = "draft"\ndraft = "d"\nuniversal = "yes"\n', r"`universal` must be bool; got 'yes'"),
    (T + '[[arms]]\nname = "a"\nkind = "early_exit"\n', r"kind 'early_exit' needs `assistant_early_exit`"),
    (T + '[[arms]]\nname = "a"\nkind = "early_exit"\nassistant_early_exit = true\n', r"`assistant_early_exit` must be int; got True"),
    (T + '[[arms]]\nname = "a"\nkind = "prompt_lookup"\nprompt_lookup_num_tokens = -1\n', r"`prompt_lookup_num_tokens` must be an integer >= 1; got -1"),
    (T + '[[arms]]\nname = "a"\nkind = "draft"\ndraft = "d"\nnum_assistant_tokens_schedule = "fast"\n', r"must be one of constant, heuristic, heuristic_transient; got 'fast'"),
    (T + '[[arms]]\nname = "a"\nkind = "draft"\ndraft = "d"\nassistant_confidence_threshold = 1.5\n', r"must be in \[0, 1\); got 1.5"),
    (T + ARM + ARM, r"arm names must be unique; repeated: a"),
    ("arms = [1]\n" + T, r"\[\[arms\]\] #1: expected a table, got int"),
]


@pytest.mark.parametrize("text,pattern", BAD)
def test_bad_files_are_clear_errors(text, pattern):
    with pytest.raises(ModelsConfigError, match=pattern):
        parse_models_config(text, source="models.toml")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelsConfigError, match=r"nope.toml: no such file"):
        load_models_config(tmp_path / "nope.toml")
    with pytest.raises(ModelsConfigError, match="expected a TOML file, found a directory"):
        load_models_config(tmp_path)
