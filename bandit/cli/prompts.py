"""``bandit-log prompts``: build the multi-domain prompt set from text that ships on this machine."""

from __future__ import annotations

from pathlib import Path

import click

from bandit.cli._common import emit_json, say
from logging_data.prompts import DOMAINS


def _csv(value: str, option: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise click.BadParameter(f"expected a comma-separated list; got {value!r}", param_hint=option)
    return items


def _split(value: str) -> tuple[float, float, float]:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 3:
        raise click.BadParameter(f"expected 3 comma-separated fractions (train,validation,test); got {value!r}",
                                 param_hint="--split")
    try:
        return tuple(float(p) for p in parts)  # type: ignore[return-value]
    except ValueError:
        raise click.BadParameter(f"expected numbers like 0.6,0.2,0.2; got {value!r}", param_hint="--split") from None


@click.command("prompts")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Parquet file to write; its sources go to <name>.sources.json beside it.")
@click.option("--per-domain", type=int, default=200, show_default=True, help="At most this many prompts per domain.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
@click.option("--domains", default=",".join(DOMAINS), show_default=True,
              help="Comma-separated domains to build (one module each in logging_data/prompt_sources).")
@click.option("--split", "split", default="0.6,0.2,0.2", show_default=True,
              help="Fractions of train,validation,test (per domain).")
@click.option("--languages", default="de,fr,es,it", show_default=True, help="Target languages of `translate`.")
@click.option("--per-source", type=int, default=2, show_default=True,
              help="At most this many prompts from one file (module, catalog, man page).")
@click.option("--stdlib-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="CPython standard library sources [default: this Python's].")
@click.option("--site-dir", "site_dirs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="site-packages folder(s) of installed packages; repeat [default: this Python's].")
@click.option("--locale-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="gettext catalogs root [default: /usr/share/locale].")
@click.option("--man-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="man pages root [default: /usr/share/man].")
@click.option("--overwrite", is_flag=True, help="Replace an existing prompt set (never another kind of file).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (counts, splits, sources) on stdout.")
def prompts(out: Path, per_domain: int, seed: int, domains: str, split: str, languages: str, per_source: int,
            stdlib_dir: Path | None, site_dirs: tuple[Path, ...], locale_dir: Path | None, man_dir: Path | None,
            overwrite: bool, as_json: bool) -> None:
    """Build a reproducible prompt set (code, translate, summarize, questions) from real text on
    this machine: the CPython standard library, installed PyPI packages' docstrings, Debian
    gettext catalogs and man pages. Missing sources are reported on stderr and skipped.

    \b
    Example:
      bandit-log prompts --out prompts.parquet --per-domain 100 --seed 0
      bandit-log prompts --out small.parquet --per-domain 5 --domains code,translate --json
    """
    from logging_data.prompts import PromptSetConfig, SourceRoots, build_prompt_set, check_prompt_set_path, write_prompt_set

    config = PromptSetConfig(per_domain=per_domain, seed=seed, domains=_csv(domains, "--domains"), split=_split(split),
                             languages=_csv(languages, "--languages"), per_source=per_source)
    config.validate()
    defaults = SourceRoots()
    roots = SourceRoots(
        stdlib_dir=stdlib_dir if stdlib_dir is not None else defaults.stdlib_dir,
        site_dirs=tuple(site_dirs) if site_dirs else defaults.site_dirs,
        locale_dir=locale_dir if locale_dir is not None else defaults.locale_dir,
        man_dir=man_dir if man_dir is not None else defaults.man_dir,
        dpkg_dir=defaults.dpkg_dir,
    )
    # before the (slow) build: the suffix, the sidecar, the folder; never onto a source or inside a log
    check_prompt_set_path(out, overwrite, inputs=[("--stdlib-dir", roots.stdlib_dir), ("--locale-dir", roots.locale_dir),
                                                  ("--man-dir", roots.man_dir), *(("--site-dir", d) for d in roots.site_dirs)])
    built = build_prompt_set(config, roots, log=say)
    parquet, sidecar = write_prompt_set(built, out, overwrite=overwrite)
    say(f"prompts: wrote {len(built.frame)} prompts to {parquet} (sources: {sidecar})")
    if as_json:
        emit_json({"out": str(parquet), "sources_json": str(sidecar), "n_prompts": len(built.frame),
                   "counts": built.metadata["counts"], "split_counts": built.metadata["split_counts"],
                   "skipped": built.metadata["skipped"], "sources": built.metadata["sources"]})
