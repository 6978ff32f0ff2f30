"""examples/make_heldout.py: the committed held-out prompt set, and the script on tiny fixture sources."""

from __future__ import annotations

import gzip
import importlib.util
import json
import struct
from pathlib import Path

import pandas as pd
import pytest

from logging_data.prompts import DOMAINS, PROMPT_COLUMNS, PromptSet, read_mo, read_prompt_set, write_prompt_set

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "data"
HELDOUT = DATA / "heldout-prompts.parquet"
MAIN_SETS = [DATA / "prompts-large.parquet", DATA / "prompts.parquet"]


def _load():
    spec = importlib.util.spec_from_file_location("make_heldout", ROOT / "examples" / "make_heldout.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _path_of(x_source: str) -> Path:
    """The file named in an ``x_source`` ("<origin>:/path[:name]")."""
    return Path("/" + x_source.split(":/", 1)[1].split(":", 1)[0])


def _builder_roots(main: Path) -> list[Path]:
    meta = json.loads(main.with_name(main.stem + ".sources.json").read_text(encoding="utf-8"))
    roots = [Path(s["path"]) for s in meta["sources"]]
    return roots + [Path(meta["roots"]["stdlib_dir"])] + [Path(p) for p in meta["roots"]["site_dirs"]]


# --------------------------------------------------------------------------------------------
# the committed file


@pytest.fixture(scope="module")
def heldout() -> PromptSet:
    return read_prompt_set(HELDOUT)


def test_committed_set_has_four_domains_all_in_test(heldout):
    frame = heldout.frame
    assert list(frame.columns) == list(PROMPT_COLUMNS)
    assert set(frame["domain"]) == set(DOMAINS)
    assert frame["domain"].value_counts().to_dict() == heldout.metadata["counts"]
    assert (frame["split"] == "test").all()
    assert frame["query_id"].is_unique and frame["prompt"].is_unique
    assert frame["x_reference"].notna().all() and frame["x_source"].str.len().min() > 0
    side = json.loads(HELDOUT.with_name("heldout-prompts.sources.json").read_text(encoding="utf-8"))
    assert side == heldout.metadata and side["heldout"] is True


@pytest.mark.parametrize("main", MAIN_SETS, ids=lambda p: p.name)
def test_committed_set_shares_no_prompt_or_id_with_a_main_set(heldout, main):
    if not main.is_file():
        pytest.skip(f"{main.name} is not in this checkout")
    other = pd.read_parquet(main, columns=["query_id", "prompt"])
    assert not set(heldout.frame["prompt"]) & set(other["prompt"])
    assert not set(heldout.frame["query_id"]) & set(other["query_id"])


@pytest.mark.parametrize("main", MAIN_SETS, ids=lambda p: p.name)
def test_committed_sources_lie_outside_the_builders_sources(heldout, main):
    side = main.with_name(main.stem + ".sources.json")
    if not side.is_file():
        pytest.skip(f"{side.name} is not in this checkout")
    roots = _builder_roots(main)
    for x_source in heldout.frame["x_source"]:
        path = _path_of(x_source)
        assert path.is_absolute() and path.suffix in (".py", ".mo", ".gz"), x_source
        inside = [r for r in roots if r == path or r in path.parents]
        assert not inside, f"{x_source} lies under the builder's source {inside[0]}"
    for source in heldout.metadata["sources"]:
        assert not [r for r in roots if r == Path(source["path"]) or r in Path(source["path"]).parents], source


# --------------------------------------------------------------------------------------------
# the script, on tiny sources built here


def write_mo(path: Path, pairs: dict[str, str]) -> None:
    """A little-endian gettext .mo catalog with a UTF-8 header."""
    entries = sorted({"": "Content-Type: text/plain; charset=UTF-8\n", **pairs}.items())
    ids, strs = [k.encode() for k, _ in entries], [v.encode() for _, v in entries]
    n = len(entries)
    offset = 28 + 16 * n
    orig, trans, blob = [], [], b""
    for table, items in ((orig, ids), (trans, strs)):
        for s in items:
            table.append((len(s), offset + len(blob)))
            blob += s + b"\0"
    head = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    body = b"".join(struct.pack("<2I", *e) for e in orig) + b"".join(struct.pack("<2I", *e) for e in trans)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + body + blob)


MODULE = '''"""Tools to frobnicate widgets.

The frobnicator turns a list of widgets into a tidy stack, so that later stages of the pipeline can
read them in order. It keeps the widgets it has seen in memory and never reads a widget twice. The
stack it builds is plain Python data, which makes it easy to store on disk and to send over the
network to the workers that need it later on.
"""


def frobnicate(widgets, reverse=False):
    """Turn a list of widgets into a stack, dropping the widgets already seen and keeping the
    order in which they first appear in the list."""
    seen = set()
    stack = []
    for widget in widgets:
        if widget not in seen:
            seen.add(widget)
            stack.append(widget)
    return stack[::-1] if reverse else stack
'''

PT = {"The widget could not be opened for reading here": "O widget não pôde ser aberto para leitura aqui",
      "Please choose another widget from the list below": "Escolha outro widget da lista abaixo",
      "The archive you asked for does not exist anymore": "O arquivo pedido já não existe"}
MAN8 = '.TH FROBD 8\n.SH NAME\nfrobd \\- frobnicate the widgets of the system daily\n.SH DESCRIPTION\nIt frobs.\n'


@pytest.fixture
def fixture_sources(tmp_path) -> dict:
    dist = tmp_path / "dist"
    (dist / "widgets").mkdir(parents=True)
    (dist / "widgets" / "__init__.py").write_text(MODULE, encoding="utf-8")
    write_mo(tmp_path / "locale" / "pt" / "LC_MESSAGES" / "widgets.mo", PT)
    (tmp_path / "man" / "man8").mkdir(parents=True)
    with gzip.open(tmp_path / "man" / "man8" / "frobd.8.gz", "wb") as fh:
        fh.write(MAN8.encode())
    (tmp_path / "dpkg").mkdir()
    # a main set that already holds one Portuguese prompt, and one English sentence (into German)
    main = tmp_path / "main" / "prompts.parquet"
    main.parent.mkdir()
    first, second = sorted(PT)[:2]
    frame = pd.DataFrame({
        "query_id": ["tran-0000000000000001", "tran-0000000000000002"],
        "prompt": [f"Translate the following English text into Portuguese.\n\nEnglish: {first}\nPortuguese:",
                   f"Translate the following English text into German.\n\nEnglish: {second}\nGerman:"],
        "domain": "translate", "split": "train", "x_source": "x:/nowhere.mo", "x_reference": ["a", "b"]})
    write_prompt_set(PromptSet(frame, {"sources": [{"path": str(tmp_path / "main-src"), "source": "gettext-catalogs"}],
                                       "roots": {}, "config": {"languages": ["de"]}}), main)
    assert read_mo(tmp_path / "locale" / "pt" / "LC_MESSAGES" / "widgets.mo") == PT
    return {"dist_dir": tmp_path / "dist", "locale_dir": tmp_path / "locale", "man_dir": tmp_path / "man",
            "dpkg_dir": tmp_path / "dpkg", "languages": ("pt", "nl"), "main_sets": [main]}


def test_main_on_tiny_sources_writes_a_valid_file(tmp_path, fixture_sources):
    mod = _load()
    logged: list[str] = []
    out = tmp_path / "out" / "heldout.parquet"
    out.parent.mkdir()
    res = mod.main(out, per_domain=3, seed=0, log=logged.append, **fixture_sources)
    back = read_prompt_set(out)
    frame = back.frame
    assert res["n_prompts"] == len(frame) and (frame["split"] == "test").all()
    assert res["counts"] == {"code": 1, "translate": 1, "summarize": 1, "questions": 1}
    assert res["dropped_overlaps"] == {"same_prompt": 1, "same_query_id": 0, "same_content": 1}
    by_domain = frame.set_index("domain")
    assert by_domain.loc["code", "prompt"].startswith(
        "Complete the following Python function from the third-party module `widgets`.")
    assert by_domain.loc["code", "x_reference"].strip().startswith("seen = set()")
    assert by_domain.loc["translate", "prompt"] == ("Translate the following English text into Portuguese.\n\n"
                                                    "English: The widget could not be opened for reading here\nPortuguese:")
    assert by_domain.loc["summarize", "x_reference"] == "Tools to frobnicate widgets."
    assert by_domain.loc["questions", "prompt"].startswith("What does the `frobd` command do")
    assert by_domain.loc["questions", "x_reference"] == "frobnicate the widgets of the system daily"
    assert json.loads(out.with_name("heldout.sources.json").read_text()) == back.metadata
    assert back.metadata["split_counts"]["code"] == {"train": 0, "validation": 0, "test": 1}
    assert any("translate: no catalogs in" in m and "/nl/" in m for m in logged)  # missing language: said, skipped
    assert any(m.startswith("heldout: dropped 2 candidates") for m in logged)
    with pytest.raises(FileExistsError):
        mod.main(out, per_domain=3, log=logged.append, **fixture_sources)


def test_missing_sources_are_skipped_and_a_main_sets_source_is_refused(tmp_path, fixture_sources):
    mod = _load()
    logged: list[str] = []
    main = fixture_sources["main_sets"][0]
    meta = json.loads(main.with_name("prompts.sources.json").read_text())
    meta["sources"].append({"path": str(fixture_sources["man_dir"] / "man8"), "source": "debian-man-pages"})
    main.with_name("prompts.sources.json").write_text(json.dumps(meta))
    sources = {**fixture_sources, "dist_dir": tmp_path / "no-such-dir"}
    res = mod.main(tmp_path / "h.parquet", per_domain=2, log=logged.append, **sources)
    assert res["counts"] == {"translate": 1}
    assert res["skipped"] == {d: "no source found" for d in ("code", "summarize", "questions")}
    assert any("man8 is a main set's source" in m for m in logged)
    assert set(pd.read_parquet(tmp_path / "h.parquet")["domain"]) == {"translate"}


def test_missing_main_set_is_an_error(tmp_path, fixture_sources):
    with pytest.raises(FileNotFoundError, match="cannot check the held-out set"):
        _load().main(tmp_path / "h.parquet", **{**fixture_sources, "main_sets": [tmp_path / "absent.parquet"]})
    assert not (tmp_path / "h.parquet").exists()
