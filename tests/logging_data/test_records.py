"""logging_data.records: the one schema helper every trusted file is checked with (heads, datastores,
cost profiles, policy tables; their files' own cases are in tests/decoding/test_artifact_schemas.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from logging_data.records import (RecordError, check_record, flag, integer, mapping, npy_header, npz_headers, number,
                                  read_json_record, text)

FIELDS = (integer("n", 1, 10), number("s", 0.0, 5.0, lo_open=True, unit="seconds"), text("kind", ("a", "b")), text("name", required=False),
          flag("strict"), mapping("costs", "an object of arm -> seconds", each=number("costs", 0.0), required=False))
GOOD = {"n": 3, "s": 0.5, "kind": "a", "strict": False, "costs": {"x": 1.0}}


@pytest.mark.parametrize("change, pattern", [
    ({"n": 0}, r"^where: n must be an integer in \[1, 10\]; got 0$"),
    ({"n": True}, r"n must be an integer in \[1, 10\]; got True \(bool\)"),
    ({"n": 2.0}, r"n must be an integer in \[1, 10\]; got 2.0 \(float\)"),
    ({"s": 0}, r"s must be a finite number of seconds in \(0, 5\]; got 0$"),
    ({"s": math.nan}, r"s must be a finite number of seconds in \(0, 5\]; got nan"),
    ({"s": "1"}, r"s must be .*; got '1' \(str\)"),
    ({"kind": "c"}, r"kind must be one of 'a', 'b'; got 'c'"),
    ({"name": "  "}, r"name must be a non-empty string; got '  '"),
    ({"strict": 1}, r"strict must be true or false; got 1 \(int\)"),
    ({"costs": {"x": -1.0, "y": "z"}}, r"costs\['x'\] must be a finite number >= 0; got -1.0; costs\['y'\] must be .*got 'z' \(str\)"),
    ({"costs": [1.0]}, r"costs must be an object of arm -> seconds; got \[1.0\] \(list\)"),
    ({"n": None, "kind": None}, r"^where: missing n, kind \(found costs, s, strict; re-measure\)$"),
    ({"n": 0, "s": -1, "kind": 3}, r"n must be .*; s must be .*; kind must be .*"),  # every problem at once, in field order
    ({"n": "x" * 500}, r"got 'xxxxxxxx.*\.\.\. \(str\)$"),  # what was found is quoted, not a whole file
])
def test_a_record_is_checked_field_by_field_with_every_problem_named(change, pattern):
    record = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(RecordError, match=pattern):
        check_record(record, FIELDS, "where", missing_hint="re-measure")


def test_a_good_record_passes_and_extra_keys_are_allowed():
    check_record({**GOOD, "training": {"anything": 1}}, FIELDS, "where")
    with pytest.raises(RecordError, match=r"^where: expected a JSON object; found list$"):
        check_record([GOOD], FIELDS, "where")


def test_a_record_file_names_itself(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({**GOOD, "n": 11}))
    with pytest.raises(RecordError, match=r"r.json: n must be an integer in \[1, 10\]; got 11"):
        read_json_record(p, FIELDS)
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(RecordError, match=r"r.json: not a JSON document"):
        read_json_record(p, FIELDS)
    with pytest.raises(FileNotFoundError, match=r"nope.json: no such file"):
        read_json_record(tmp_path / "nope.json", FIELDS)
    p.write_text(json.dumps(GOOD))
    assert read_json_record(p, FIELDS) == GOOD


def test_array_headers_are_read_without_the_data_and_never_unpickled(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 2), dtype=np.float32))
    assert npy_header(tmp_path / "a.npy") == ((3, 2), np.dtype(np.float32))
    np.savez(tmp_path / "b.npz", x=np.arange(4), y=np.ones((2, 2)))
    assert npz_headers(tmp_path / "b.npz") == {"x": ((4,), np.dtype(np.int64)), "y": ((2, 2), np.dtype(np.float64))}
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(RecordError, match=r"o.npy: holds Python objects \(dtype object\), which only pickle can load"):
        npy_header(tmp_path / "o.npy")
    (tmp_path / "short.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:-8])
    with pytest.raises(RecordError, match=r"short.npy: its header declares shape \[3, 2\] of float32 \(24 bytes\), but the file holds 16"):
        npy_header(tmp_path / "short.npy")
    (tmp_path / "c.npz").write_bytes(b"not a zip")
    with pytest.raises(RecordError, match=r"c.npz: not an .npz archive"):
        npz_headers(tmp_path / "c.npz")
