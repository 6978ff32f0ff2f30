"""Models-file entries of per-domain heads and retrieval stores, and the files a drafter run writes.

A head arm is named for its domain and setting (``head-D-k3``, ``head-D-k5-gated``, ``head-D-tuned``,
``lookup-head-D``, ``lookup-head-D-gated``: prompt lookup where it matches, the head elsewhere); a
store arm for its domain (``store-D``, ``store-D-tuned``, ``store-head-D``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .tuning import HeadSetting, StoreHeadSetting, StoreSetting

#: the prompt-lookup arm the heads run after (where it matches) and are measured beside
LIVE_LOOKUP = "lookup-n3-k10"
#: draft lengths of the ungated head arms, and the gated arm's setting (chosen on validation prompts
#: with session 5's 100-prompt heads: it lifts a head's acceptance past 0.45 on its own domain)
DRAFT_LENGTHS = (3, 5)
GATED = HeadSetting(5, 0.4)


def head_arms_of(domain: str, tuned: Mapping[str, HeadSetting] | None = None) -> list[tuple[str, HeadSetting]]:
    """The replayed arms of one domain's head: (name, setting); ``lookup-*`` arms propose
    ``LIVE_LOOKUP``'s candidates where it matches, the head's elsewhere; ``tuned`` (domain -> setting,
    picked on validation): also ``head-D-tuned`` with that setting."""
    extra = [(f"head-{domain}-tuned", tuned[domain])] if tuned and domain in tuned else []
    return ([(f"head-{domain}-k{k}", HeadSetting(k)) for k in DRAFT_LENGTHS] + [(f"head-{domain}-k{GATED.k}-gated", GATED)] + extra
            + [(f"lookup-head-{domain}", HeadSetting(3)), (f"lookup-head-{domain}-gated", GATED)])


def _target_and_lookup(target: Any, lookup: Any) -> str:
    return (f'[target]\npath = "{target.path}"\ndevice = "{target.device}"\nmax_new_tokens = {target.max_new_tokens}\n\n'
            '[[arms]]\nname = "plain"\nkind = "none"\n\n'
            f'[[arms]]\nname = "{lookup.name}"\nkind = "prompt_lookup"\nprompt_lookup_num_tokens = {lookup.prompt_lookup_num_tokens}\n'
            f'max_matching_ngram_size = {lookup.max_matching_ngram_size}\n')


def head_arm_toml(name: str, domain: str, setting: HeadSetting, lookup: Any, heads_dir: str = "heads") -> str:
    """One ``[[arms]]`` table of a models file for ``domain``'s head (under ``heads_dir``): ``kind =
    "lookup_head"`` with ``lookup``'s settings when ``name`` starts with ``lookup-``, else ``kind = "head"``."""
    text = (f'\n[[arms]]\nname = "{name}"\nkind = "{"lookup_head" if name.startswith("lookup-") else "head"}"\n'
            f'head = "{heads_dir}/{domain}"\nnum_assistant_tokens = {setting.k}\n')
    if name.startswith("lookup-"):
        text += f"prompt_lookup_num_tokens = {lookup.prompt_lookup_num_tokens}\nmax_matching_ngram_size = {lookup.max_matching_ngram_size}\n"
    return text + (f"assistant_confidence_threshold = {setting.gate}\n" if setting.gate else "")


def heads_models_file(out: Path, source_models: Path, domains: list[str], k: int = 3,
                      tuned: Mapping[str, HeadSetting] | None = None) -> Path:
    """``out/models-heads.toml``: ``source_models``' target, plain decoding, ``LIVE_LOOKUP``, one
    ``kind = "head"`` arm per domain's head (saved under ``out/heads/<domain>``) and one
    ``kind = "lookup_head"`` arm per head, ungated and gated (``GATED``); ``tuned``: each domain's ``head-D-tuned`` arm too."""
    from ..models import load_models_config

    joint = load_models_config(source_models)
    lookup = joint.arm(LIVE_LOOKUP)
    text = _target_and_lookup(joint.target, lookup)
    for d in domains:
        text += head_arm_toml(f"head-{d}-k{k}", d, HeadSetting(k), lookup)
        if tuned and d in tuned:
            text += head_arm_toml(f"head-{d}-tuned", d, tuned[d], lookup)
    for d in domains:  # prompt lookup where it matches, the domain's head where it does not (ungated, and gated)
        text += head_arm_toml(f"lookup-head-{d}", d, HeadSetting(k), lookup) + head_arm_toml(f"lookup-head-{d}-gated", d, GATED, lookup)
    path = out / "models-heads.toml"
    path.write_text(text)
    return path


def router_models_file(out: Path, source_models: Path, domains: list[str], tuned: Mapping[str, HeadSetting] | None = None) -> Path:
    """``out/models-router.toml``: every arm of the logs the selection trains on, ``source_models``'
    and each domain's head arms (``head_arms_of``), so that whichever policy is selected decodes live."""
    from ..models import load_models_config

    lookup = load_models_config(source_models).arm(LIVE_LOOKUP)
    text = source_models.read_text(encoding="utf-8").rstrip() + "\n\n# each domain's head (examples/heads.py), alone and after prompt lookup\n"
    for d in domains:
        for name, setting in head_arms_of(d, tuned):
            text += head_arm_toml(name, d, setting, lookup)
    path = out / "models-router.toml"
    path.write_text(text)
    load_models_config(path)  # parses, or says why here
    return path


def store_arm_toml(name: str, domain: str, setting: StoreSetting | StoreHeadSetting, heads_dir: Path) -> str:
    """One ``[[arms]]`` table of a store arm (stores under ``stores/`` beside the models file, heads by absolute path)."""
    store = setting.store if isinstance(setting, StoreHeadSetting) else setting
    kind = "datastore_head" if isinstance(setting, StoreHeadSetting) else "datastore"
    text = f'\n[[arms]]\nname = "{name}"\nkind = "{kind}"\ndatastore = "stores/{domain}"\n'
    tokens_key = "datastore_tokens" if kind == "datastore_head" else "num_assistant_tokens"
    text += f"{tokens_key} = {store.tokens}\nmin_count = {store.min_count}\nmin_fraction = {store.min_fraction}\n"
    if isinstance(setting, StoreHeadSetting):
        text += f"head = {json.dumps(str((heads_dir / 'heads' / domain).resolve()))}\nnum_assistant_tokens = {setting.head.k}\n"
        text += f"assistant_confidence_threshold = {setting.head.gate}\n" if setting.head.gate else ""
    return text


def stores_models_files(out: Path, source_models: Path, heads_dir: Path,
                        arms: Mapping[str, tuple[str, StoreSetting | StoreHeadSetting]]) -> tuple[Path, Path]:
    """``out/models-stores.toml`` (plain, ``LIVE_LOOKUP``, every store arm of ``arms``: name -> (domain,
    setting)) and ``out/models-router.toml`` (every arm of the logs: the heads run's router file, its
    heads by absolute path, plus the store arms)."""
    from ..models import load_models_config

    joint = load_models_config(source_models)
    text = "".join(store_arm_toml(name, d, s, heads_dir) for name, (d, s) in arms.items())
    router_src = heads_dir / "models-router.toml"
    if not router_src.exists():
        raise SystemExit(f"--heads {heads_dir}: no models-router.toml there (an examples/heads.py run writes it)")
    router = router_src.read_text().replace('head = "heads/', f'head = "{(heads_dir / "heads").resolve()}/')
    router += "\n# each domain's retrieval datastore (examples/datastores.py), alone and before its head\n" + text
    paths = out / "models-stores.toml", out / "models-router.toml"
    paths[0].write_text(_target_and_lookup(joint.target, joint.arm(LIVE_LOOKUP)) + text)
    paths[1].write_text(router)
    for p in paths:
        load_models_config(p)  # parses, or says why here
    return paths
