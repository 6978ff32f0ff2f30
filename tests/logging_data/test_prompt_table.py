"""Prompt tables from Parquet, CSV, JSON Lines and text files: same table from each, every bad file named."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logging_data.prompt_table import PromptColumns, PromptTableError, prompt_id, read_prompt_table, split_for

ROWS = [
    {"query_id": "a1", "prompt": "def f(x):\n    return x", "domain": "code", "split": "train", "x_note": "n1"},
    {"query_id": "b2", "prompt": 'say "hi", then stop', "domain": "questions", "split": "test", "x_note": "n2"},
    {"query_id": "c3", "prompt": "translate: bonjour", "domain": "translate", "split": "validation", "x_note": "n3"},
]


def _write(path, fmt, rows):
    frame = pd.DataFrame(rows)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt, suffix", [("parquet", ".parquet"), ("csv", ".csv"), ("jsonl", ".jsonl")])
def test_every_format_gives_the_same_table(tmp_path, fmt, suffix):
    got = read_prompt_table(_write(tmp_path / f"p{suffix}", fmt, ROWS))
    want = pd.DataFrame(ROWS)
    assert list(got.columns) == ["query_id", "prompt", "domain", "split", "x_note"]
    pd.testing.assert_frame_equal(got.astype(str), want.astype(str))


def test_text_file_one_prompt_per_line_gets_ids_and_seeded_splits(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("first prompt\n\n  \nsecond prompt\nthird\n", encoding="utf-8")
    got = read_prompt_table(p, make_splits=True, seed=3)
    assert got["prompt"].tolist() == ["first prompt", "second prompt", "third"]
    assert got["query_id"].tolist() == [prompt_id(t) for t in got["prompt"]]
    assert got["split"].tolist() == [split_for(q, 3) for q in got["query_id"]]
    assert "split" not in read_prompt_table(p).columns


@pytest.mark.parametrize("raw, want", [
    (b"\xef\xbb\xbffirst\nsecond\n", ["first", "second"]),  # a BOM is not part of the first prompt
    ("a\u2028still a\nb\n".encode(), ["a\u2028still a", "b"]),  # U+2028 inside a prompt does not end it
    (b"page\x0cbreak\r\nnext\rlast", ["page\x0cbreak", "next", "last"]),  # nor a form feed; \r\n and \r do
])
def test_text_file_lines_end_only_at_newlines(tmp_path, raw, want):
    p = tmp_path / "p.txt"
    p.write_bytes(raw)
    assert read_prompt_table(p)["prompt"].tolist() == want


def test_column_mapping(tmp_path):
    p = _write(tmp_path / "p.csv", "csv", [{"id": "x", "text": "hello", "task": "code", "part": "train"}])
    got = read_prompt_table(p, columns=PromptColumns(query_id="id", prompt="text", domain="task", split="part"))
    assert got.to_dict("records") == [{"query_id": "x", "prompt": "hello", "domain": "code", "split": "train"}]


def test_split_shares_are_near_60_20_20_and_stable():
    ids = [f"q{i}" for i in range(6000)]
    splits = pd.Series([split_for(q) for q in ids]).value_counts(normalize=True)
    assert abs(splits["train"] - 0.6) < 0.03 and abs(splits["validation"] - 0.2) < 0.03 and abs(splits["test"] - 0.2) < 0.03
    assert [split_for(q) for q in ids[:50]] == [split_for(q) for q in ids[:50]]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=1).filter(lambda t: t.strip() and "\r" not in t), min_size=1, max_size=8, unique=True))
def test_csv_round_trip_keeps_any_text(tmp_path_factory, texts):
    p = tmp_path_factory.mktemp("csv") / "p.csv"
    pd.DataFrame({"prompt": texts}).to_csv(p, index=False)
    got = read_prompt_table(p)
    assert got["prompt"].tolist() == texts
    assert got["query_id"].tolist() == [prompt_id(t) for t in texts]


BAD = [
    # (id, file name, content (bytes or rows for a format), columns, message pattern)
    ("missing", "nope.csv", None, PromptColumns(), r"prompts file .*nope\.csv: no such file"),
    ("suffix", "p.xlsx", b"x", PromptColumns(), r"cannot tell its format from the suffix '\.xlsx'"),
    ("csv-as-parquet", "p.parquet", b"prompt\nhello\n", PromptColumns(), r"p\.parquet: cannot be read as parquet"),
    ("no-prompt-col", "p.csv", b"text\nhello\n", PromptColumns(), r"p\.csv: no prompt column 'prompt'; its columns are text \(name the right one with --prompt-col\)"),
    ("txt-wrong-col", "p.txt", b"hello\n", PromptColumns(prompt="text"), r"p\.txt: no prompt column 'text' \(a \.txt file holds prompts only"),
    ("no-id-col", "p.csv", b"prompt\nhello\n", PromptColumns(query_id="id"), r"p\.csv: no query_id column 'id'; its columns are prompt"),
    ("no-domain-col", "p.csv", b"prompt\nhello\n", PromptColumns(domain="task"), r"no domain column 'task'"),
    ("empty-prompt", "p.csv", b"query_id,prompt\na,hello\nb,\n", PromptColumns(), r"p\.csv: 1 prompt\(s\) empty or not text; first at line 3 \(query_id 'b'\)"),
    ("blank-prompt", "p.jsonl", b'{"prompt": "ok"}\n{"prompt": "   "}\n', PromptColumns(), r"first at line 2"),
    ("number-prompt", "p.jsonl", b'{"prompt": 5}\n', PromptColumns(), r"empty or not text; first at line 1: 5"),
    ("dup-id", "p.csv", b"query_id,prompt\na,x\nb,y\na,z\n", PromptColumns(), r"query_id must be unique; query_id 'a' at line 2, line 4"),
    ("dup-text", "p.txt", b"same\nother\nsame\n", PromptColumns(), r"query_id must be unique; the same prompt text at line 1, line 3"),
    ("empty-id", "p.csv", b"query_id,prompt\n,x\n", PromptColumns(), r"1 empty query_id\(s\); first at line 2"),
    ("bad-split", "p.csv", b"prompt,split\nx,training\n", PromptColumns(), r"split must be one of train, validation, test or empty; 1 row\(s\) are not, first at line 2: 'training'"),
    ("bad-json", "p.jsonl", b'{"prompt": "ok"}\n{"prompt": \n', PromptColumns(), r"p\.jsonl, line 2: not JSON"),
    ("json-array", "p.jsonl", b'["a"]\n', PromptColumns(), r"p\.jsonl, line 1: expected a JSON object, found list"),
    ("not-utf8", "p.txt", b"caf\xe9\n", PromptColumns(), r"p\.txt: not UTF-8 text \(byte 3\)"),
    ("truncated-parquet", "p.parquet", b"PAR1\x00\x00", PromptColumns(), r"p\.parquet: cannot be read as parquet"),
]


@pytest.mark.parametrize("name, content, columns, pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_prompt_files_are_named(tmp_path, name, content, columns, pattern):
    p = tmp_path / name
    if content is not None:
        p.write_bytes(content)
    with pytest.raises((PromptTableError, FileNotFoundError), match=pattern):
        read_prompt_table(p, columns=columns)


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(PromptTableError, match="is a directory"):
        read_prompt_table(tmp_path)
