"""The prompt set builder, on the real sources of this machine (small sizes)."""

from __future__ import annotations

import ast
import gettext
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logging_data.prompts import (
    DOMAINS,
    LANGUAGES,
    MAX_PROMPT_CHARS,
    PROMPT_COLUMNS,
    SPLIT_NAMES,
    DpkgIndex,
    PromptSet,
    PromptSetConfig,
    SourceRoots,
    assign_splits,
    build_prompt_set,
    find_sources,
    read_mo,
    read_prompt_set,
    sidecar_path,
    split_counts,
    write_prompt_set,
)

N = 5


def found_domains(roots: SourceRoots) -> list[str]:
    config = PromptSetConfig()
    return [d for d in DOMAINS if find_sources(d, roots, config, DpkgIndex(roots.dpkg_dir)).files]


@pytest.fixture(scope="module")
def built() -> PromptSet:
    return build_prompt_set(PromptSetConfig(per_domain=N, seed=0))


def test_every_found_domain_is_present_with_its_size(built):
    domains = found_domains(SourceRoots())
    assert "code" in domains  # the CPython stdlib sources are always on this machine
    assert list(built.metadata["counts"]) == domains
    assert built.frame["domain"].value_counts().to_dict() == {d: N for d in domains}
    assert list(built.frame.columns) == list(PROMPT_COLUMNS)
    assert built.frame["query_id"].is_unique
    assert built.frame["prompt"].str.len().max() <= MAX_PROMPT_CHARS
    assert built.frame["x_source"].str.len().min() > 0
    assert not built.metadata["skipped"]


def test_sources_are_recorded_with_package_and_version(built):
    sources = built.metadata["sources"]
    assert {s["domain"] for s in sources} == set(built.metadata["counts"])
    for s in sources:
        assert Path(s["path"]).exists(), s
        assert s["files"] > 0
    stdlib = [s for s in sources if s["source"] == "cpython-stdlib"]
    assert stdlib and stdlib[0]["licence"] == "PSF-2.0"
    # every prompt's source names an existing file
    paths = built.frame["x_source"].str.extract(r":(/[^:]+)")[0]
    assert paths.notna().all()
    assert all(Path(p).is_file() for p in paths)


def test_code_prompts_are_real_functions_whose_reference_completes_them(built):
    code = built.frame[built.frame["domain"] == "code"]
    for prompt, body in zip(code["prompt"], code["x_reference"]):
        header = re.search(r"```python\n(.*)\n```", prompt, re.S).group(1)
        assert header.startswith(("def ", "async def "))
        tree = ast.parse(header + "\n" + body)  # signature + docstring + the real body is valid Python
        fn = tree.body[0]
        assert ast.get_docstring(fn) and len(fn.body) >= 2


def test_translate_prompts_carry_the_catalogs_translation(built):
    tr = built.frame[built.frame["domain"] == "translate"]
    if tr.empty:
        pytest.skip("no gettext catalogs on this machine")
    for prompt, ref, src in zip(tr["prompt"], tr["x_reference"], tr["x_source"]):
        m = re.fullmatch(r"Translate the following English text into (\w+)\.\n\nEnglish: (.+)\n(\w+):", prompt, re.S)
        assert m and m.group(1) == m.group(3) and m.group(1) in LANGUAGES.values()
        english = m.group(2)
        mo = re.search(r":(/[^:]+\.mo)", src).group(1)
        catalog = {k.strip(): v.strip() for k, v in read_mo(Path(mo)).items()}
        assert catalog[english] == ref
        assert ref != english


def test_summarize_and_questions_have_references(built):
    for domain in ("summarize", "questions"):
        part = built.frame[built.frame["domain"] == domain]
        assert part["x_reference"].notna().all() and (part["x_reference"].str.len() > 0).all()
    summ = built.frame[built.frame["domain"] == "summarize"]
    words = summ["prompt"].str.split().str.len()
    assert words.between(50, 260).all()


def test_same_seed_gives_identical_bytes_other_seed_differs(tmp_path, built):
    again = build_prompt_set(PromptSetConfig(per_domain=N, seed=0))
    pd.testing.assert_frame_equal(built.frame, again.frame)
    a, sa = write_prompt_set(built, tmp_path / "a.parquet")
    b, sb = write_prompt_set(again, tmp_path / "b.parquet")
    assert a.read_bytes() == b.read_bytes() and sa.read_bytes() == sb.read_bytes()
    other = build_prompt_set(PromptSetConfig(per_domain=N, seed=1))
    assert set(other.frame["query_id"]) != set(built.frame["query_id"])


def test_larger_set_keeps_the_smaller_sets_prompts_and_ids(built):
    bigger = build_prompt_set(PromptSetConfig(per_domain=N + 3, seed=0))
    for domain, part in built.frame.groupby("domain", sort=False):
        big = bigger.frame[bigger.frame["domain"] == domain]
        assert list(big["query_id"][:N]) == list(part["query_id"])


def test_splits_are_stratified_by_domain_and_disjoint(built):
    for domain, part in built.frame.groupby("domain"):
        counts = part["split"].value_counts().reindex(SPLIT_NAMES, fill_value=0)
        assert tuple(counts) == split_counts(len(part), (0.6, 0.2, 0.2)) == (3, 1, 1)
    by_split = [set(built.frame.loc[built.frame["split"] == s, "query_id"]) for s in SPLIT_NAMES]
    assert sum(map(len, by_split)) == len(built.frame)
    assert not (by_split[0] & by_split[1]) and not (by_split[0] & by_split[2]) and not (by_split[1] & by_split[2])
    assert built.metadata["split_counts"] == {d: {"train": 3, "validation": 1, "test": 1} for d in built.metadata["counts"]}


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 500), raw=st.lists(st.integers(0, 100), min_size=3, max_size=3).filter(lambda v: v[0] > 0))
def test_split_counts_sum_to_n_and_stay_within_one_of_exact(n, raw):
    fractions = [v / sum(raw) for v in raw]
    counts = split_counts(n, fractions)
    assert sum(counts) == n
    assert all(abs(c - n * f) < 1 for c, f in zip(counts, fractions))
    labels = assign_splits(n, fractions, np.random.default_rng(0))
    assert [int((labels == s).sum()) for s in SPLIT_NAMES] == list(counts)


def test_missing_source_is_skipped_cleanly(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    logged: list[str] = []
    roots = replace(SourceRoots(), locale_dir=empty)
    built = build_prompt_set(PromptSetConfig(per_domain=2, seed=0, domains=("code", "translate")), roots, log=logged.append)
    assert set(built.frame["domain"]) == {"code"}
    assert built.metadata["skipped"] == {"translate": "no source found"}
    assert any("translate: no source found, skipped" in m for m in logged)
    assert any(m.startswith("prompts: code: found cpython-stdlib") for m in logged)


def test_no_source_at_all_is_an_error_naming_the_folders(tmp_path):
    roots = SourceRoots(stdlib_dir=tmp_path, site_dirs=(tmp_path,), locale_dir=tmp_path, man_dir=tmp_path, dpkg_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=rf"no prompt source found .*{re.escape(str(tmp_path))}"):
        build_prompt_set(PromptSetConfig(per_domain=2), roots)


@pytest.mark.parametrize(
    "settings_, pattern",
    [
        ({"per_domain": 0}, r"`per_domain` must be an integer >= 1; got 0"),
        ({"per_domain": 2.5}, r"`per_domain` must be an integer"),
        ({"seed": -1}, r"`seed` must be an integer >= 0; got -1"),
        ({"per_source": 0}, r"`per_source` must be an integer >= 1"),
        ({"domains": ()}, r"`domains` must name at least one"),
        ({"domains": ("code", "poetry")}, r"unknown domain 'poetry' in `domains`; known: code, translate"),
        ({"domains": ("code", "code")}, r"must not repeat"),
        ({"languages": ("de", "xx")}, r"`languages` must be among de, fr, es, it; got de, xx"),
        ({"split": (0.5, 0.5)}, r"`split` must be 3 fractions"),
        ({"split": (0.6, 0.3, 0.3)}, r"must sum to 1; got \(0.6, 0.3, 0.3\)"),
        ({"split": (1.2, -0.1, -0.1)}, r"finite and >= 0"),
        ({"split": (0.0, 0.5, 0.5)}, r"train split a positive share"),
        ({"split": (float("nan"), 0.5, 0.5)}, r"finite and >= 0"),
    ],
)
def test_bad_config_is_refused_with_a_clear_message(settings_, pattern):
    with pytest.raises(ValueError, match=pattern):
        build_prompt_set(PromptSetConfig(**settings_))


def test_read_mo_agrees_with_the_stdlib_gettext_parser():
    catalogs = sorted(Path("/usr/share/locale/de/LC_MESSAGES").glob("*.mo"))[:5]
    if not catalogs:
        pytest.skip("no German gettext catalogs on this machine")
    for path in catalogs:
        ours = read_mo(path)
        with open(path, "rb") as fh:
            theirs = gettext.GNUTranslations(fh)._catalog
        plain = {k: v for k, v in theirs.items() if isinstance(k, str) and k and "\x04" not in k}
        assert ours == {k: v for k, v in plain.items() if k in ours}
        assert len(ours) > 0.5 * len(plain)


@pytest.mark.parametrize("content, pattern", [(b"", r"not a gettext \.mo file \(0 bytes"), (b"x" * 40, r"magic")])
def test_read_mo_refuses_other_files(tmp_path, content, pattern):
    p = tmp_path / "bad.mo"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=pattern):
        read_mo(p)


def test_write_read_round_trip_and_refusals(tmp_path, built):
    out, side = write_prompt_set(built, tmp_path / "p.parquet")
    assert side == sidecar_path(out) == tmp_path / "p.sources.json"
    back = read_prompt_set(out)
    pd.testing.assert_frame_equal(back.frame, built.frame)
    assert back.metadata == built.metadata
    plain = pd.read_parquet(out)  # plain pandas reads it too
    assert list(plain.columns) == list(PROMPT_COLUMNS)

    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="p.parquet exists"):
        write_prompt_set(built, out)
    with pytest.raises(ValueError, match=r"must be written to a \.parquet file"):
        write_prompt_set(built, tmp_path / "p.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_prompt_set(built, tmp_path / "missing" / "p.parquet")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.parquet", "p.sources.json"]


@pytest.mark.parametrize(
    "frame, pattern",
    [
        (pd.DataFrame({"prompt": ["a"]}), r"lacks column\(s\) query_id"),
        (pd.DataFrame({"query_id": ["q1", "q1"], "prompt": ["a", "b"]}), r"`query_id` must be unique; 1 repeated \(first: q1\)"),
        (pd.DataFrame({"query_id": ["q1", "q2"], "prompt": ["a", "b"], "split": ["train", "dev"]}),
         r"`split` must be one of train, validation, test or null; 1 rows are not \(first: query_id=q2\)"),
    ],
)
def test_read_prompt_set_refuses_bad_files(tmp_path, frame, pattern):
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    with pytest.raises(ValueError, match=pattern):
        read_prompt_set(path)


def test_sampling_never_takes_the_same_prompt_twice(tmp_path):
    from logging_data.prompts import Candidate, SourceFile, Found, sample_domain

    files = [SourceFile(tmp_path / f"{g}{i}.py", f"{g}:{i}", g) for g in ("stdlib", "pypi") for i in range(3)]

    def read(sf):  # each file repeats a prompt, and every file shares one prompt
        return [Candidate("code", p, None, f"{sf.key}:{j}", sf.origin) for j, p in enumerate([f"own {sf.key}", f"own {sf.key}", "shared"])]

    chosen = sample_domain(Found(files, read, []), n=100, per_source=10, rng=np.random.default_rng(0))
    prompts = [c.prompt for c in chosen]
    assert len(prompts) == len(set(prompts)) == 7  # 6 own prompts + the shared one once
    first_turn = {c.key.split(":")[0] for c in chosen[:3]}  # one file of each group: 2 + 1 new prompts
    assert first_turn == {"pypi", "stdlib"}  # the groups take turns


def test_origins_name_every_package_used(built):
    origins = built.metadata["origins"]
    assert sum(o["prompts"] for o in origins) == len(built.frame)
    for o in origins:
        assert built.frame["x_source"].str.startswith(o["origin"] + ":/").sum() == o["prompts"]
        if o["origin"].startswith("Debian "):
            assert o["licence_file"] is None or Path(o["licence_file"]).is_file()
