"""The models file: which target to accelerate and which arms (ways to decode it) to choose from.

A TOML file, read with ``tomllib``, turned into frozen dataclasses. Example::

    [target]
    path = "packaged:smollm2-135m"   # a local HF directory, a .gguf file, or packaged:NAME
    device = "auto"                  # auto (cuda when present, else cpu) | cpu | cuda
    dtype = "auto"                   # auto (float32: exact everywhere) | float32 | bfloat16 | float16 (faster, inexact)
    max_new_tokens = 64
    chat_template = "auto"           # auto (use the tokenizer's template when it has one) | true | false
    linear = "auto"                  # auto (oneDNN-packed on CPU float32, see decoding.cpu_linear) | onednn | default

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

    [[arms]]
    name = "small-draft"
    kind = "draft"
    draft = "drafts/tiny"            # relative paths are relative to this file's folder
    num_assistant_tokens = 5
    num_assistant_tokens_schedule = "constant"
    # universal = true               # required when the draft's tokenizer differs from the target's

    [[arms]]
    name = "code-head"
    kind = "head"                    # a drafting head on the target's hidden states (decoding.heads)
    head = "heads/code"              # its folder: head.json + head.safetensors
    num_assistant_tokens = 3
    # allow_other_target = true      # load a head (or datastore) recorded as made for another target
    #                                # with the same tokenizer (decoding.artifacts)

What each kind means, loads and costs is its class in ``decoding.arms`` (one per kind, one
registry); the settings an arm may take are its kind's.

Writing one: build the dataclasses (``ArmConfig.of(name, kind, **settings)`` checks the settings
as a file's would be checked), then ``ModelsConfig.to_toml()`` gives the text and
``write_models_file(path, config)`` writes it (atomically, never over an existing file unless
asked). ``parse_models_config(config.to_toml())`` gives back the same target and arms; paths are
written as given, so a relative one is read relative to the written file's folder.
Unknown keys, wrong types, settings that do not belong to an arm's kind, repeated arm names and
draft lengths past ``decoding.arms.base.MAX_DRAFT_TOKENS`` are errors that name the offending key
and the valid ones. Nothing here loads a model:
``decoding.session.DecodingSession`` does.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import tomli_w

from logging_data import Arm
from logging_data.files import write_text_atomic
from .arms import KINDS, kind_of
from .arms.base import ASSISTANT_KEYS, ModelsConfigError
from .arms.base import positive_int as _positive_int
from .arms.base import typed as _typed
from .cpu_linear import LINEAR_KERNELS

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: arm kinds a models file may use: the registered ones (``decoding.arms.KINDS``)
MODEL_ARM_KINDS = tuple(KINDS)

_TARGET_KEYS = ("path", "device", "dtype", "max_new_tokens", "chat_template", "linear")
DEFAULT_MAX_NEW_TOKENS = 64  # [target] max_new_tokens when the models file leaves it out
# Tokens per prompt when drafts are distilled and evaluated (decoding.distill, decoding.draft_eval):
# one value, so a draft is evaluated on continuations as long as those it was trained on.
DRAFT_MAX_NEW_TOKENS = 48
_ARM_KEYS_BY_KIND: dict[str, tuple[str, ...]] = {name: kind.valid_keys() for name, kind in KINDS.items()}
_ALL_ARM_KEYS = tuple(dict.fromkeys(k for keys in _ARM_KEYS_BY_KIND.values() for k in keys))
_FIXED_ARM_FIELDS = ("name", "kind", "options")


@dataclass(frozen=True)
class TargetConfig:
    """The target model. ``path``: local HF directory, ``.gguf`` file or ``packaged:NAME``."""

    path: str
    device: str = "auto"
    dtype: str = "auto"
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    chat_template: str | bool = "auto"  # "auto", True or False
    linear: str = "auto"  # "auto", "onednn" or "default" (decoding.cpu_linear)

    def to_table(self) -> dict[str, Any]:
        """The ``[target]`` table: every setting, written out (so a file says what it runs)."""
        return {key: getattr(self, key) for key in _TARGET_KEYS}

    def to_toml(self) -> str:
        """The ``[target]`` table as TOML text."""
        return "[target]\n" + tomli_w.dumps(self.to_table())


@dataclass(frozen=True)
class ArmConfig:
    """One arm: a point in the public ``generate()`` space. Unset settings are None.

    What the settings mean is the kind's (``decoding.arms``); ``options`` holds the settings of a
    kind that has no field here, as sorted (key, value) pairs (``option(key)`` reads one).
    """

    name: str
    kind: str
    family: str | None = None
    draft: str | None = None  # kind "draft": the draft model's path (same forms as the target's)
    universal: bool = False  # kind "draft": allow a different tokenizer (universal assisted decoding)
    prompt_lookup_num_tokens: int | None = None
    max_matching_ngram_size: int | None = None
    assistant_early_exit: int | None = None
    num_assistant_tokens: int | None = None
    num_assistant_tokens_schedule: str | None = None
    assistant_confidence_threshold: float | None = None
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, name: str, kind: str, **settings: Any) -> "ArmConfig":
        """An arm from a kind and its settings, checked as a models file's ``[[arms]]`` table is
        (``ModelsConfigError`` naming the key), defaults filled in as parsing fills them:
        ``ArmConfig.of("k3", "prompt_lookup", prompt_lookup_num_tokens=3)``."""
        return _parse_arm({"name": name, "kind": kind, **settings}, 0, "ArmConfig.of")

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)

    def settings(self) -> dict[str, Any]:
        """Every setting that is set, whether a field or an option (unset: None; a flag left false)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _FIXED_ARM_FIELDS}
        out.update(self.options)
        return {k: v for k, v in out.items() if v is not None and v is not False}

    def to_table(self) -> dict[str, Any]:
        """The arm's ``[[arms]]`` table: name, kind, family when set, then each set setting in the
        order its kind lists them. Unset settings and false flags (every flag defaults to false) are
        left out. A setting its kind does not take is a ``ModelsConfigError`` naming it."""
        if self.kind not in KINDS:
            raise ModelsConfigError(f"arm {self.name!r}: `kind` must be one of {', '.join(MODEL_ARM_KINDS)}; got {self.kind!r}")
        valid = _ARM_KEYS_BY_KIND[self.kind]
        settings = self.settings()
        foreign = sorted(set(settings) - set(valid))
        if foreign:
            raise ModelsConfigError(f"arm {self.name!r}: setting(s) {', '.join(map(repr, foreign))} do not apply to kind "
                                    f"{self.kind!r}; valid keys for it: {', '.join(valid)}")
        table: dict[str, Any] = {"name": self.name, "kind": self.kind}
        table.update((k, settings[k]) for k in valid if k in settings)
        return table

    def to_toml(self) -> str:
        """The arm as one ``[[arms]]`` table of TOML text (the header written here, so that a short
        arm is not folded into an inline table; ``tomli_w`` writes the values)."""
        return "[[arms]]\n" + tomli_w.dumps(self.to_table())

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the target's ``generate()`` that select this arm (no model objects)."""
        return kind_of(self).generate_kwargs(self)

    def assistant_settings(self) -> dict[str, Any]:
        """Settings transformers reads from the *assistant's* ``generation_config`` (set, then restored)."""
        return {k: getattr(self, k) for k in ASSISTANT_KEYS if getattr(self, k) is not None}

    @property
    def n_draft_tokens(self) -> int | None:
        """Tokens proposed per block when fixed by the settings (None: the drafting model's default)."""
        return kind_of(self).n_draft_tokens(self)


@dataclass(frozen=True)
class ModelsConfig:
    """A parsed models file: the target, the ordered arms, and the file's text (for log metadata)."""

    target: TargetConfig
    arms: tuple[ArmConfig, ...]
    source_text: str = ""
    source_path: str | None = None
    base_dir: str = "."

    @classmethod
    def of(cls, target: TargetConfig | str, arms: Sequence[ArmConfig], base_dir: str | os.PathLike = ".") -> "ModelsConfig":
        """A models config built in code: ``target`` a ``TargetConfig`` or a model path, ``arms`` in
        order; checked as a file is (``ModelsConfigError``), with the text ``to_toml()`` writes."""
        target = TargetConfig(path=target) if isinstance(target, str) else target
        config = cls(target=target, arms=tuple(arms), base_dir=str(base_dir))
        text = config.to_toml()
        return dataclasses.replace(config, source_text=text)

    def to_table(self) -> dict[str, Any]:
        """The whole file as TOML-ready values: ``{"target": {...}, "arms": [{...}, ...]}``."""
        return {"target": self.target.to_table(), "arms": [a.to_table() for a in self.arms]}

    def to_toml(self) -> str:
        """The models file's TOML text (written with ``tomli_w``), checked to parse back to the same
        target and arms: a config a file could not hold is a ``ModelsConfigError`` naming the key."""
        text = "\n".join([self.target.to_toml(), *(a.to_toml() for a in self.arms)])
        back = parse_models_config(text, base_dir=self.base_dir, source="the models config to write")
        if (back.target, back.arms) != (self.target, self.arms):
            changed = [a.name for a, b in zip(self.arms, back.arms) if a != b]
            what = f"arm(s) {', '.join(map(repr, changed))}" if changed else "the [target] table"
            raise ModelsConfigError(f"the models config does not survive writing: {what} would read back differently "
                                    f"(build arms with ArmConfig.of so their defaults are filled as a file's are)")
        return text

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arms)

    def arm(self, name: str) -> ArmConfig:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(f"unknown arm {name!r}; the models file's arms are {', '.join(self.arm_names)}")

    def resolve(self, path: str) -> str:
        """A model path as given, made absolute against the models file's folder (packaged: kept)."""
        if path.startswith("packaged:") or os.path.isabs(path):
            return path
        return str(Path(self.base_dir) / path)

    def input_paths(self) -> list[tuple[str, str]]:
        """(label, path) of every local file or folder this models file makes a command read: the
        file itself, the target, each draft and each path-valued arm option (a head, a datastore).
        For ``logging_data.outputs.check_output``: an output is never written onto or around them."""
        found = [("--models", self.source_path)] if self.source_path else []
        found.append(("the [target] model", self.resolve(self.target.path)))
        for a in self.arms:
            if a.draft:
                found.append((f"arm {a.name!r}'s draft", self.resolve(a.draft)))
            for key, value in a.options:
                if isinstance(value, str) and value and os.path.exists(self.resolve(value)):
                    found.append((f"arm {a.name!r}'s {key}", self.resolve(value)))
        return found

    def to_log_arms(
        self,
        costs: Mapping[str, float] | None = None,
        n_params_m: Mapping[str, float] | None = None,
    ) -> tuple[Arm, ...]:
        """The arms as ``logging_data.Arm`` in file order.

        ``costs``: arm name -> one draft step's cost relative to one target step (from
        ``decoding.calibrate``); arms missing there get 0 for kinds that run no model (none,
        prompt lookup) and 0 otherwise too, so pass costs once calibration is known.
        ``n_params_m``: arm name -> draft parameters in millions, when loaded.
        """
        costs = dict(costs or {})
        n_params_m = dict(n_params_m or {})
        out = []
        for a in self.arms:
            attrs: dict[str, Any] = {"kind": a.kind, "family": a.family or a.kind}
            if a.n_draft_tokens is not None:
                attrs["draft_tokens"] = int(a.n_draft_tokens)
            if a.name in n_params_m:
                attrs["n_params_m"] = float(n_params_m[a.name])
            attrs.update(kind_of(a).log_attrs(a))
            out.append(Arm(name=a.name, kind=a.kind, cost=float(costs.get(a.name, 0.0)), attrs=attrs))
        return tuple(out)


# -- writing ------------------------------------------------------------------------------------
def write_models_file(path: str | os.PathLike, config: ModelsConfig, *, overwrite: bool = False) -> Path:
    """Write ``config`` as a models file at ``path`` (its folder made when missing) and return the path.

    All or nothing (``logging_data.files.write_text_atomic``). An existing file is refused
    (``FileExistsError``) unless ``overwrite``; a folder at ``path`` always is. Paths in the config
    are written as given: a relative one is read relative to ``path``'s folder when the file loads.
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"models file {p}: a folder is there; expected a path for a TOML file (nothing written)")
    if p.exists() and not overwrite:
        raise FileExistsError(f"models file {p} already exists; pass overwrite=True to replace it (nothing written)")
    if p.parent.exists() and not p.parent.is_dir():
        raise NotADirectoryError(f"models file {p}: {p.parent} is a file, not a folder (nothing written)")
    text = config.to_toml()
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(p, text)


# -- parsing ------------------------------------------------------------------------------------
def load_models_config(path: str | os.PathLike) -> ModelsConfig:
    """Read and check a models TOML file; relative model paths resolve against its folder."""
    p = Path(path)
    if not p.exists():
        raise ModelsConfigError(f"models file {p}: no such file")
    if not p.is_file():
        raise ModelsConfigError(f"models file {p}: expected a TOML file, found a directory")
    text = p.read_text(encoding="utf-8")
    return parse_models_config(text, base_dir=p.resolve().parent, source=str(p))


def parse_models_config(text: str, base_dir: str | os.PathLike = ".", source: str = "<models>") -> ModelsConfig:
    """Parse the TOML ``text`` of a models file (see the module docstring for the format)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelsConfigError(f"{source}: not valid TOML ({exc})") from None
    unknown = sorted(set(doc) - {"target", "arms"})
    if unknown:
        raise ModelsConfigError(f"{source}: unknown top-level key(s) {', '.join(map(repr, unknown))}; valid: 'target', '[[arms]]'")
    if "target" not in doc or not isinstance(doc["target"], dict):
        raise ModelsConfigError(f"{source}: missing the [target] table (with at least `path = ...`)")
    target = _parse_target(doc["target"], source)
    raw_arms = doc.get("arms")
    if not isinstance(raw_arms, list) or not raw_arms:
        raise ModelsConfigError(f"{source}: needs at least one [[arms]] table; found {'none' if raw_arms is None else type(raw_arms).__name__}")
    arms = tuple(_parse_arm(a, i, source) for i, a in enumerate(raw_arms))
    names = [a.name for a in arms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ModelsConfigError(f"{source}: arm names must be unique; repeated: {', '.join(dupes)}")
    return ModelsConfig(target=target, arms=arms, source_text=text, source_path=source, base_dir=str(base_dir))


def _check_keys(table: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise ModelsConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}")


def _parse_target(t: Mapping[str, Any], source: str) -> TargetConfig:
    where = f"{source} [target]"
    _check_keys(t, _TARGET_KEYS, where)
    path = _typed(t, "path", str, where)
    if not path or not path.strip():
        raise ModelsConfigError(f"{where}: `path` is required (a local HF directory, a .gguf file or packaged:NAME)")
    device = _typed(t, "device", str, where, "auto")
    if device not in DEVICES:
        raise ModelsConfigError(f"{where}: `device` must be one of {', '.join(DEVICES)}; got {device!r}")
    dtype = _typed(t, "dtype", str, where, "auto")
    if dtype not in DTYPES:
        raise ModelsConfigError(f"{where}: `dtype` must be one of {', '.join(DTYPES)}; got {dtype!r}")
    max_new = _positive_int(t, "max_new_tokens", where, DEFAULT_MAX_NEW_TOKENS)
    chat = t.get("chat_template", "auto")
    if chat not in ("auto", True, False):
        raise ModelsConfigError(f"{where}: `chat_template` must be \"auto\", true or false; got {chat!r}")
    linear = _typed(t, "linear", str, where, "auto")
    if linear not in LINEAR_KERNELS:
        raise ModelsConfigError(f"{where}: `linear` must be one of {', '.join(LINEAR_KERNELS)}; got {linear!r}")
    return TargetConfig(path=path, device=device, dtype=dtype, max_new_tokens=max_new, chat_template=chat, linear=linear)


def _parse_arm(a: Any, i: int, source: str) -> ArmConfig:
    where = f"{source} [[arms]] #{i + 1}"  # before the arm's name is known
    if not isinstance(a, dict):
        raise ModelsConfigError(f"{where}: expected a table, got {type(a).__name__}")
    name = _typed(a, "name", str, where)
    if not name or not name.strip():
        raise ModelsConfigError(f"{where}: `name` is required (a non-empty string)")
    where = f"{source} arm {name!r}"
    kind = _typed(a, "kind", str, where)
    if kind not in MODEL_ARM_KINDS:
        raise ModelsConfigError(f"{where}: `kind` must be one of {', '.join(MODEL_ARM_KINDS)}; got {kind!r}")
    unknown = sorted(set(a) - set(_ALL_ARM_KEYS))
    if unknown:
        raise ModelsConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys for kind {kind!r}: {', '.join(_ARM_KEYS_BY_KIND[kind])}")
    misplaced = sorted(set(a) - set(_ARM_KEYS_BY_KIND[kind]))
    if misplaced:
        raise ModelsConfigError(f"{where}: key(s) {', '.join(map(repr, misplaced))} do not apply to kind {kind!r}; valid keys for it: {', '.join(_ARM_KEYS_BY_KIND[kind])}")
    kw: dict[str, Any] = {"name": name, "kind": kind, "family": _typed(a, "family", str, where)}
    settings = KINDS[kind].parse(a, where)
    fields = {f.name for f in dataclasses.fields(ArmConfig)} - {"options"}
    kw.update({k: v for k, v in settings.items() if k in fields})
    kw["options"] = tuple(sorted((k, v) for k, v in settings.items() if k not in fields))
    return ArmConfig(**kw)
