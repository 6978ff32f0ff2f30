"""Every file a command trusts, against every way it can be wrong: one table.

Artifacts: a head (``head.json`` + ``head.safetensors``) and a datastore (``datastore.json`` +
``datastore.npz``) loaded by their arms for the tiny target of ``tests/conftest.py``, a cost
profile (``load_calibration``) and a policy table (``load_policy_table``). Each corruption is
refused with one error naming the arm (for an arm's files) and the file, what was expected and
what was found; the bad files are hashed before and after (the load touched nothing), and a
pickled payload that would create a marker file when unpickled proves nothing was unpickled.
Controls: a valid head and store, made for the target, load and decode to plain greedy's output;
old ones that record no target load with one warning; ``allow_other_target`` lets a store or
head made for a sibling target load; absurd draft lengths name the arm and the key.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest



class _Touch:
    """Unpickling it creates ``marker`` (``open(marker, "w")``): a file that appears only if something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(scope="module")
def session(tiny_config):
    from decoding.models import ArmConfig
    from decoding.session import DecodingSession

    return DecodingSession(tiny_config([ArmConfig.of("plain", "none")]), threads=1)


# -- the good artifacts, and how each goes wrong ------------------------------------------------
def _head(session, vocab=None):
    import torch

    from decoding.heads import feature_head

    n = session.target_identity["vocab_size"]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return feature_head(session.target_identity["hidden_size"], list(range(n)) if vocab is None else vocab, n_blocks=1, expansion=1)


def _good(kind, session, folder, *, made_for=True, vocab=None, sequences=None):
    from decoding.datastore import Datastore
    from decoding.heads import save_head

    identity = session.target_identity if made_for else None
    if kind == "head":
        return save_head(_head(session, vocab), folder, {"seed": 0}, made_for=identity)
    store = Datastore(sequences or [[5, 6, 7, 8, 9, 2], [5, 6, 7, 10, 2]], max_ngram=3, max_chain=4)
    return store.save(folder, made_for=identity)


def _edit_json(name, change):
    def edit(folder, session):
        record = json.loads((folder / name).read_text())
        change(record)
        (folder / name).write_text(json.dumps(record))
    return edit


def _set(name, **fields):
    return _edit_json(name, lambda r: r.update(fields))


def _drop(name, key):
    return _edit_json(name, lambda r: r.pop(key))


def _made_for(name, path, value):
    def change(record):
        node = record["made_for"]
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return _edit_json(name, change)


def _write(name, data):
    def edit(folder, session):
        (folder / name).write_bytes(data(folder) if callable(data) else data)
    return edit


def _truncate(name):
    return _write(name, lambda folder: (folder / name).read_bytes()[:-40])


def _tensors(change):
    def edit(folder, session):
        from safetensors.torch import load_file, save_file

        state = load_file(str(folder / "head.safetensors"))
        change(state)
        save_file(state, str(folder / "head.safetensors"))
    return edit


def _arrays(**arrays):
    def edit(folder, session):
        np.savez(folder / "datastore.npz", **{k: (v(folder) if callable(v) else v) for k, v in arrays.items()})
    return edit


def _rebuild(kind, **kw):
    def edit(folder, session):
        for p in folder.iterdir():
            p.unlink()
        _good(kind, session, folder, **kw)
    return edit


def _pickled_npz(folder):
    np.savez(folder / "datastore.npz", tokens=np.array([_Touch(folder.parent / "unpickled")], dtype=object), lengths=np.array([1]))


def _npz_declaring_more_than_it_holds(folder):
    """tokens.npy whose header declares 10^12 int64 (8 TB) over 16 bytes of data: refused before numpy allocates it."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (10**12,)})
    with zipfile.ZipFile(folder / "datastore.npz", "w") as z:
        z.writestr("tokens.npy", header.getvalue() + b"\0" * 16)


LOAD, MISMATCH = "ModelLoadError", "ArmNotSupportedError"
H, S = r"head.json: ", r"datastore.json: "
HW, SW = r"head.safetensors: ", r"datastore.npz: "
CASES = [
    # head.json
    ("head", "json-not-json", _write("head.json", b"{hidden: 32"), LOAD, H + r"not a JSON document"),
    ("head", "json-not-an-object", _write("head.json", b"[32, 1, 1]"), LOAD, H + r"expected a JSON object; found list"),
    ("head", "hidden-absurd", _set("head.json", hidden=10**9), LOAD, H + r"hidden must be an integer in \[1, 65536\]; got 1000000000"),
    ("head", "field-missing", _drop("head.json", "n_blocks"), LOAD, H + r"missing n_blocks \(found "),
    ("head", "field-a-bool", _set("head.json", expansion=True), LOAD, H + r"expansion must be an integer in \[1, 64\]; got True \(bool\)"),
    ("head", "field-a-string", _set("head.json", vocab_size="47"), LOAD, H + r"vocab_size must be an integer in \[1, 16777216\]; got '47' \(str\)"),
    ("head", "every-problem-at-once", _set("head.json", hidden=0, n_blocks=-1), LOAD, H + r"hidden must be .*got 0; n_blocks must be .*got -1"),
    ("head", "format-foreign", _set("head.json", format="eagle/3"), LOAD, H + r"format must be 'draftpick.head/1'; got 'eagle/3'"),
    ("head", "made-for-broken", _set("head.json", made_for={"target": 3}), LOAD,
     H + r"made_for: missing hidden_size, vocab_size, tokenizer .*; target must be a non-empty string; got 3 \(int\)"),
    # head.safetensors against head.json, before anything is allocated
    ("head", "shape-not-the-json", _set("head.json", hidden=16), LOAD, HW + r"fc.weight has shape \[32, 64\]; head.json declares \[16, 32\]"),
    ("head", "tensor-missing", _set("head.json", n_blocks=2), LOAD, HW + r"blocks.1.0.weight is missing \(expected shape \[32\]\)"),
    ("head", "tensor-foreign", _tensors(lambda s: s.update(extra=s["fc.bias"].clone())), LOAD, HW + r"extra is not a tensor of a head"),
    ("head", "vocab-not-integers", _tensors(lambda s: s.update(vocab=s["vocab"].float())), LOAD, HW + r"vocab must hold integer token ids; its dtype is F32"),
    ("head", "vocab-negative", _tensors(lambda s: s["vocab"].__setitem__(0, -1)), LOAD, HW + r"vocab holds token id -1; token ids are >= 0"),
    ("head", "safetensors-garbage", _write("head.safetensors", b"\xff" * 100), LOAD, HW + r"not a safetensors file \(.*header too large"),
    ("head", "safetensors-truncated", _truncate("head.safetensors"), LOAD, HW + r"not a safetensors file"),
    ("head", "safetensors-pickled", _write("head.safetensors", lambda f: pickle.dumps({"fc.weight": _Touch(f.parent / "unpickled")})),
     LOAD, HW + r"not a safetensors file"),
    ("head", "safetensors-missing", lambda f, s: (f / "head.safetensors").unlink(), LOAD, r"expected head.json and head.safetensors; found \['head.json'\]"),
    # the target it was made for
    ("head", "ids-out-of-vocabulary", _rebuild("head", vocab=[0, 2, 5000]), MISMATCH,
     r"the head at .* proposes token ids up to 5000; the target .* has \d+ tokens"),
    ("head", "other-tokenizer", _made_for("head.json", ("tokenizer", "sha256"), "0" * 64), MISMATCH,
     r"the head at .* was made for another tokenizer: it was made for .*sha256 00000000\); the target is .*target \(llama, hidden size 32"),
    ("head", "other-hidden-size", _made_for("head.json", ("hidden_size",), 64), MISMATCH, r"reads hidden states of another size: .*hidden size 64"),
    ("head", "other-target", _made_for("head.json", ("target",), "packaged:smollm2-135m"), MISMATCH,
     r"was made for another target: it was made for packaged:smollm2-135m .*set allow_other_target = true on the arm"),
    # datastore.json
    ("datastore", "json-not-json", _write("datastore.json", b"\x00\x01"), LOAD, S + r"not a JSON document"),
    ("datastore", "format-foreign", _set("datastore.json", format="rest/2"), LOAD, S + r"format must be 'draftpick.datastore/1'; got 'rest/2'"),
    ("datastore", "ngram-absurd", _set("datastore.json", max_ngram=10**9), LOAD, S + r"max_ngram must be an integer in \[1, 1024\]; got 1000000000"),
    ("datastore", "field-missing", _drop("datastore.json", "n_tokens"), LOAD, S + r"missing n_tokens"),
    ("datastore", "field-a-float", _set("datastore.json", n_sequences=2.0), LOAD, S + r"n_sequences must be an integer >= 0; got 2.0 \(float\)"),
    ("datastore", "made-for-broken", _made_for("datastore.json", ("tokenizer",), []), LOAD,
     S + r"made_for: tokenizer must be an object; got \[\] \(list\)"),
    # datastore.npz against datastore.json, from the headers
    ("datastore", "npz-garbage", _write("datastore.npz", b"PK\x03\x04 not a zip"), LOAD, SW + r"not an .npz archive"),
    ("datastore", "npz-pickled", lambda f, s: _pickled_npz(f), LOAD,
     SW + r"array 'tokens': holds Python objects \(dtype object\), which only pickle can load, and nothing pickled is loaded"),
    ("datastore", "npz-header-larger-than-data", lambda f, s: _npz_declaring_more_than_it_holds(f), LOAD,
     SW + r"array 'tokens': its header declares shape \[1000000000000\] of int64 \(8000000000000 bytes\), but the file holds 16 bytes"),
    ("datastore", "npz-floats", _arrays(tokens=np.arange(11.0), lengths=np.array([6, 5])), LOAD, SW + r"tokens must hold integers; its dtype is float64"),
    ("datastore", "npz-shape-not-the-json", _arrays(tokens=np.arange(5), lengths=np.array([3, 2])), LOAD,
     SW + r"tokens has shape \[5\]; datastore.json declares 11 tokens"),
    ("datastore", "npz-lengths-disagree", _arrays(tokens=np.arange(11), lengths=np.array([6, 4])), LOAD,
     SW + r"2 sequences of 10 tokens in all, but it holds 11 tokens"),
    ("datastore", "npz-array-foreign", _arrays(tokens=np.arange(11), lengths=np.array([6, 5]), extra=np.arange(2)), LOAD,
     SW + r"array 'extra' is not one of a datastore's"),
    ("datastore", "npz-negative-id", _arrays(tokens=np.array([5, 6, 7, 8, 9, 2, 5, 6, 7, -1, 2]), lengths=np.array([6, 5])), LOAD,
     SW + r"tokens holds token id -1; token ids are >= 0"),
    ("datastore", "npz-missing", lambda f, s: (f / "datastore.npz").unlink(), LOAD, r"holds datastore.json and datastore.npz \(found: datastore.json\)"),
    # the target it was made for
    ("datastore", "ids-out-of-vocabulary", _rebuild("datastore", sequences=[[5, 6, 10**6]]), MISMATCH,
     r"the datastore at .* holds token ids up to 1000000; the target .* has \d+ tokens"),
    ("datastore", "other-tokenizer", _made_for("datastore.json", ("tokenizer", "size"), 49152), MISMATCH,
     r"the datastore at .* was made for another tokenizer: it was made for .*tokenizer of 49152 tokens"),
    ("datastore", "other-target", _made_for("datastore.json", ("target",), "/models/another"), MISMATCH,
     r"was made for another target: it was made for /models/another .*allow_other_target = true"),
]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _load_arm(session, kind, folder, **settings):
    """Load arm "a" of ``kind`` (head or datastore) from ``folder`` into ``session``; its state."""
    from decoding.arms import kind_of
    from decoding.models import ArmConfig

    arm = ArmConfig.of("a", kind, **{kind: str(folder)}, **settings)
    kind_of(arm).load(session, arm, {})
    return session.arm_state["a"]


@pytest.mark.parametrize("kind, case, corrupt, error, pattern", CASES, ids=[f"{k}-{c}" for k, c, *_ in CASES])
def test_a_bad_artifact_is_refused_naming_the_arm_and_the_file(session, tmp_path, kind, case, corrupt, error, pattern):
    from decoding import loading

    folder = _good(kind, session, tmp_path / kind)
    corrupt(folder, session)
    before = _digest(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a refusal is one error, not a warning and then an error
        with pytest.raises(getattr(loading, error)) as caught:
            _load_arm(session, kind, folder)
    message = str(caught.value)
    assert message.startswith("arm 'a': ") and str(folder) in message, message
    import re

    assert re.search(pattern, message), message
    assert "\n" not in message and "pickle=True" not in message  # one line, and never numpy's advice to unpickle
    assert _digest(folder) == before  # the load touched nothing
    assert not (tmp_path / "unpickled").exists()  # nothing was unpickled


def _profile(tmp_path, good):
    path = tmp_path / "profile.json"
    record = {"target_step_s": 0.01, "arm_step_s": {"a": 0.001}, "verify_token_s": 0.0, "round_overhead_s": 0.0, "plain_step_s": 0.01}
    path.write_text(json.dumps({"calibration": good(record)}) if callable(good) else good)
    return path


def _policy_npy(tmp_path, write):
    path = tmp_path / "table.npy"
    write(path)
    return path


FILE_CASES = [
    ("cost-profile", "not-json", lambda t: _profile(t, "{calibration"), r"profile.json: not a JSON document"),
    ("cost-profile", "cost-a-string", lambda t: _profile(t, lambda r: {**r, "plain_step_s": "0.01"}),
     r"profile.json: plain_step_s must be a finite number of seconds in \[0, 3600\]; got '0.01' \(str\)"),
    ("cost-profile", "cost-missing", lambda t: _profile(t, lambda r: {k: v for k, v in r.items() if k != "verify_token_s"}),
     r"profile.json: missing verify_token_s"),
    ("policy-table", "npy-pickled", lambda t: _policy_npy(t, lambda p: np.save(p, np.array([_Touch(t / "unpickled")] * 2, dtype=object))),
     r"table.npy: not a plain numeric .npy array \(holds Python objects"),
    ("policy-table", "npy-garbage", lambda t: _policy_npy(t, lambda p: p.write_bytes(b"\x93NUMPY garbage")), r"table.npy: not a plain numeric .npy array"),
    ("policy-table", "npy-strings", lambda t: _policy_npy(t, lambda p: np.save(p, np.array([["a", "b"], ["c", "d"]]))),
     r"table.npy: not a plain numeric .npy array \(dtype <U1\)"),
    ("policy-table", "parquet-garbage", lambda t: (t / "table.parquet").write_bytes(b"PAR1 garbage") and t / "table.parquet",
     r"table.parquet: not a readable Parquet file"),
]


@pytest.mark.parametrize("artifact, case, make, pattern", FILE_CASES, ids=[f"{a}-{c}" for a, c, *_ in FILE_CASES])
def test_a_bad_profile_or_policy_table_is_refused_naming_the_file(tmp_path, artifact, case, make, pattern):
    import pandas as pd

    from bandit.policy_table import load_policy_table
    from decoding.pricing import load_calibration

    path = make(tmp_path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=pattern) as caught:
        if artifact == "cost-profile":
            load_calibration(path)
        else:
            load_policy_table(path, pd.DataFrame({"query_id": ["a", "b"]}), ["p", "q"])
    assert str(path) in str(caught.value) and "pickle=True" not in str(caught.value)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert not (tmp_path / "unpickled").exists()


# -- controls ---------------------------------------------------------------------------------------
def test_a_head_and_a_store_made_for_the_target_load_and_decode(tiny_config, tmp_path, session):
    from decoding.models import ArmConfig
    from decoding.session import DecodingSession

    head, store = _good("head", session, tmp_path / "head"), _good("datastore", session, tmp_path / "store")
    assert json.loads((head / "head.json").read_text())["made_for"] == session.target_identity
    assert json.loads((store / "datastore.json").read_text())["made_for"]["tokenizer"] == session.target_identity["tokenizer"]
    arms = [ArmConfig.of("h", "head", head=str(head), num_assistant_tokens=2), ArmConfig.of("s", "datastore", datastore=str(store)),
            ArmConfig.of("hs", "datastore_head", head=str(head), datastore=str(store))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: both record the target they were made for
        decoding = DecodingSession(tiny_config(arms), threads=1)
    ids = decoding.encode("the quick brown fox jumps over the lazy dog")
    ref = decoding.plain(ids)
    for arm in ("h", "s", "hs"):
        assert decoding.looped(ids, arm, reference=ref.tokens).lossless is True, arm


def test_one_made_before_targets_were_recorded_loads_with_one_warning(session, tmp_path):
    from decoding.artifacts import LegacyArtifactWarning

    for kind in ("head", "datastore"):
        folder = _good(kind, session, tmp_path / kind, made_for=False)
        assert "made_for" not in json.loads(next(folder.glob("*.json")).read_text())
        with pytest.warns(LegacyArtifactWarning, match=rf"the {kind} at .*{kind} records no target it was made for") as caught:
            _load_arm(session, kind, folder)
            _load_arm(session, kind, folder)  # a second arm or load of the same file: no second line
        assert len([w for w in caught if w.category is LegacyArtifactWarning]) == 1


@pytest.mark.parametrize("kind", ["head", "datastore"])
def test_allow_other_target_loads_one_made_for_a_sibling_target_and_nothing_else(session, tmp_path, kind):
    from decoding.loading import ArmNotSupportedError

    folder = _good(kind, session, tmp_path / kind)
    name = next(folder.glob("*.json")).name
    _made_for(name, ("target",), "packaged:a-sibling")(folder, session)
    with pytest.raises(ArmNotSupportedError, match="allow_other_target"):
        _load_arm(session, kind, folder)
    assert _load_arm(session, kind, folder, allow_other_target=True) is not None
    _made_for(name, ("tokenizer", "sha256"), "f" * 64)(folder, session)  # another tokenizer: no key lets it in
    with pytest.raises(ArmNotSupportedError, match="made for another tokenizer"):
        _load_arm(session, kind, folder, allow_other_target=True)


@pytest.mark.parametrize("arms, error, pattern", [
    ('kind = "head"\nhead = "h"\nnum_assistant_tokens = 100000\n', "ModelsConfigError",
     r"arm 'a': `num_assistant_tokens` \(tokens drafted per round\) must be at most 256; got 100000"),
    ('kind = "prompt_lookup"\nprompt_lookup_num_tokens = 1000\n', "ModelsConfigError", r"arm 'a': `prompt_lookup_num_tokens` .*at most 256"),
    ('kind = "datastore"\ndatastore = "s"\nnum_assistant_tokens = 200\n', "ArmNotSupportedError",
     r"arm 'a': `num_assistant_tokens` = 200 drafts more tokens per round than the target's context of 64 positions leaves "
     r"beside a prompt and max_new_tokens = 8 \(at most 55\)"),
    ('kind = "datastore_head"\nhead = "h"\ndatastore = "s"\ndatastore_tokens = 60\n', "ArmNotSupportedError",
     r"arm 'a': `datastore_tokens` = 60 drafts more tokens"),
    ('kind = "head"\nhead = "h"\nallow_other_target = "yes"\n', "ModelsConfigError", r"arm 'a': `allow_other_target` must be bool; got 'yes'"),
])
def test_an_absurd_draft_length_names_the_arm_and_the_key(toml_for, tiny_models, arms, error, pattern):
    from decoding import loading, models
    from decoding.session import DecodingSession

    errors = {"ModelsConfigError": models.ModelsConfigError, "ArmNotSupportedError": loading.ArmNotSupportedError}
    with pytest.raises(errors[error], match=pattern):
        DecodingSession(models.parse_models_config(toml_for(f'[[arms]]\nname = "a"\n{arms}'), base_dir=tiny_models["root"]))
