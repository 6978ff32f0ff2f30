"""Models-file entries of per-domain heads and retrieval stores, and the files a drafter run writes.

A head arm is named for its domain and setting (``head-D-k3``, ``head-D-k5-gated``, ``head-D-tuned``,
``lookup-head-D``, ``lookup-head-D-gated``: prompt lookup where it matches, the head elsewhere); a
store arm for its domain (``store-D``, ``store-D-tuned``, ``store-head-D``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..models import ArmConfig
from .tuning import HeadSetting, StoreHeadSetting, StoreSetting

#: the prompt-lookup arm the heads run after (where it matches) and are measured beside
LIVE_LOOKUP = "lookup-n3-k10"
#: draft lengths of the ungated head arms, and the gated arm's setting (chosen on validation prompts
#: with session 5's 100-prompt heads: it lifts a head's acceptance past 0.45 on its own domain)
DRAFT_LENGTHS = (3, 5)
GATED = HeadSetting(5, 0.4)


def head_arms_of(domain: str, tuned: Mapping[str, HeadSetting] | None = None, with_lookup: bool = True) -> list[tuple[str, HeadSetting]]:
    """The replayed arms of one domain's head: (name, setting); ``lookup-*`` arms (``with_lookup``) propose
    a prompt-lookup arm's candidates where it matches, the head's elsewhere; ``tuned`` (domain -> setting,
    picked on validation): also ``head-D-tuned`` with that setting."""
    extra = [(f"head-{domain}-tuned", tuned[domain])] if tuned and domain in tuned else []
    after_lookup = [(f"lookup-head-{domain}", HeadSetting(3)), (f"lookup-head-{domain}-gated", GATED)] if with_lookup else []
    return [(f"head-{domain}-k{k}", HeadSetting(k)) for k in DRAFT_LENGTHS] + [(f"head-{domain}-k{GATED.k}-gated", GATED)] + extra + after_lookup


def _gate(setting: HeadSetting) -> dict[str, float]:
    return {"assistant_confidence_threshold": setting.gate} if setting.gate else {}


def head_arm(name: str, domain: str, setting: HeadSetting, lookup: Any | None, heads_dir: str = "heads") -> ArmConfig:
    """The arm of ``domain``'s head (under ``heads_dir``): ``kind = "lookup_head"`` with ``lookup``'s
    settings when ``name`` starts with ``lookup-``, else ``kind = "head"``."""
    head = f"{heads_dir}/{domain}"
    if name.startswith("lookup-"):
        ngram = {"max_matching_ngram_size": lookup.max_matching_ngram_size} if lookup.max_matching_ngram_size is not None else {}
        return ArmConfig.of(name, "lookup_head", head=head, num_assistant_tokens=setting.k, **_gate(setting),
                            prompt_lookup_num_tokens=lookup.prompt_lookup_num_tokens, **ngram)
    return ArmConfig.of(name, "head", head=head, num_assistant_tokens=setting.k, **_gate(setting))


def absolute(config: Any) -> tuple[Any, list[ArmConfig]]:
    """A models file's target and arms with every local path (the target, a draft, a head's or store's
    folder) made absolute against its own folder: right wherever a new models file naming them is written."""
    import dataclasses
    import os

    def local(value: Any) -> Any:
        return config.resolve(value) if isinstance(value, str) and value and os.path.exists(config.resolve(value)) else value

    def arm(a: ArmConfig) -> ArmConfig:
        return dataclasses.replace(a, draft=local(a.draft), options=tuple((k, local(v)) for k, v in a.options))

    return dataclasses.replace(config.target, path=local(config.target.path)), [arm(a) for a in config.arms]


def _write(path: Path, target: Any, arms: list[ArmConfig]) -> Path:
    """``path`` written whole (``decoding.models.write_models_file``, replacing an earlier run's) and checked to load."""
    from ..models import ModelsConfig, load_models_config, write_models_file

    write_models_file(path, ModelsConfig.of(target, arms, base_dir=path.parent), overwrite=True)
    load_models_config(path)  # parses, or says why here
    return path


def heads_models_file(out: Path, source_models: Path, domains: list[str], k: int = 3,
                      tuned: Mapping[str, HeadSetting] | None = None, lookup: str | None = LIVE_LOOKUP) -> Path:
    """``out/models-heads.toml``: ``source_models``' target, plain decoding, its ``lookup`` arm, one
    ``kind = "head"`` arm per domain's head (saved under ``out/heads/<domain>``) and one
    ``kind = "lookup_head"`` arm per head, ungated and gated (``GATED``; none without ``lookup``);
    ``tuned``: each domain's ``head-D-tuned`` arm too."""
    from ..models import load_models_config

    joint = load_models_config(source_models)
    after = joint.arm(lookup) if lookup else None
    arms = [ArmConfig.of("plain", "none"), *([after] if after else [])]
    for d in domains:
        arms.append(head_arm(f"head-{d}-k{k}", d, HeadSetting(k), after))
        if tuned and d in tuned:
            arms.append(head_arm(f"head-{d}-tuned", d, tuned[d], after))
    for d in domains if after else ():  # prompt lookup where it matches, the domain's head where it does not (ungated, and gated)
        arms += [head_arm(f"lookup-head-{d}", d, HeadSetting(k), after), head_arm(f"lookup-head-{d}-gated", d, GATED, after)]
    return _write(out / "models-heads.toml", joint.target, arms)


def router_models_file(out: Path, source_models: Path, domains: list[str], tuned: Mapping[str, HeadSetting] | None = None,
                       lookup: str | None = LIVE_LOOKUP, name: str = "models-router.toml") -> Path:
    """``out/<name>``: every arm of the logs the selection trains on, ``source_models``' (local paths made
    absolute) and each domain's head arms (``head_arms_of``; the ``lookup-head-*`` ones after its ``lookup`` arm, none without one), so
    that whichever policy is selected decodes live."""
    from ..models import load_models_config

    joint = load_models_config(source_models)
    after = joint.arm(lookup) if lookup else None
    heads = [head_arm(arm, d, setting, after) for d in domains for arm, setting in head_arms_of(d, tuned, with_lookup=after is not None)]
    target, arms = absolute(joint)
    return _write(out / name, target, [*arms, *heads])


def store_arm(name: str, domain: str, setting: StoreSetting | StoreHeadSetting, heads_dir: Path) -> ArmConfig:
    """A store arm (its store under ``stores/`` beside the models file; with a head, the head by absolute path)."""
    if isinstance(setting, StoreHeadSetting):
        s = setting.store
        return ArmConfig.of(name, "datastore_head", datastore=f"stores/{domain}", datastore_tokens=s.tokens, min_count=s.min_count,
                            min_fraction=float(s.min_fraction), head=str((heads_dir / "heads" / domain).resolve()),
                            num_assistant_tokens=setting.head.k, **_gate(setting.head))
    return ArmConfig.of(name, "datastore", datastore=f"stores/{domain}", num_assistant_tokens=setting.tokens,
                        min_count=setting.min_count, min_fraction=float(setting.min_fraction))


def stores_models_files(out: Path, source_models: Path, heads_dir: Path,
                        arms: Mapping[str, tuple[str, StoreSetting | StoreHeadSetting]]) -> tuple[Path, Path]:
    """``out/models-stores.toml`` (plain, ``LIVE_LOOKUP``, every store arm of ``arms``: name -> (domain,
    setting)) and ``out/models-router.toml`` (every arm of the logs: the heads run's router file, its
    heads by absolute path, plus the store arms)."""
    import dataclasses

    from ..models import load_models_config

    joint = load_models_config(source_models)
    stores = [store_arm(name, d, s, heads_dir) for name, (d, s) in arms.items()]
    router_src = heads_dir / "models-router.toml"
    if not router_src.exists():
        raise SystemExit(f"--heads {heads_dir}: no models-router.toml there (an examples/heads.py run writes it)")
    router = load_models_config(router_src)

    def absolute(arm: ArmConfig) -> ArmConfig:  # the heads run's heads, wherever this file is
        head = arm.option("head")
        if head is None or Path(head).is_absolute():
            return arm
        return dataclasses.replace(arm, options=tuple((k, str(Path(router.resolve(v)).resolve()) if k == "head" else v)
                                                      for k, v in arm.options))

    return (_write(out / "models-stores.toml", joint.target, [ArmConfig.of("plain", "none"), joint.arm(LIVE_LOOKUP), *stores]),
            _write(out / "models-router.toml", router.target, [*map(absolute, router.arms), *stores]))


def stores_models_file(out: Path, source_models: Path, arms: Mapping[str, tuple[str, StoreSetting]], name: str = "models.toml") -> Path:
    """``out/<name>``: ``source_models``' target and arms (local paths made absolute), and every store arm of ``arms`` (name -> (domain,
    setting); each store under ``out/stores/<domain>``): the arms of a ``bandit-log drafters store`` log."""
    from ..models import load_models_config

    target, source = absolute(load_models_config(source_models))
    return _write(out / name, target, [*source, *(store_arm(n, d, s, out) for n, (d, s) in arms.items())])
