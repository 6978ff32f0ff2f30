"""The README's main command as a user runs it, stderr a pipe: examples/quickstart.py prints its
steps, each warning as one line (repeats folded), and no Python source line, no Gym banner and no
progress bar (issue 30, item 4). Tiny: the tiny real log, the tiny budget, CQL among the learners
(its d3rlpy import is where Gym's banner came from), one live prompt per domain (where a draft-model
arm decodes, transformers warned about its own call to the draft's generate())."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_LINE = re.compile(r"\.py:\d+:|warnings\.warn\(|^\s{2}\S")
PROGRESS_BAR = re.compile(r"\r|\d+%\||\d+/\d+ \[\d")


@pytest.mark.slow  # a new process importing torch, transformers and d3rlpy, training two learners, decoding live
def test_quickstart_stderr_is_quiet_on_a_pipe(tiny_log, tiny_models_file, tmp_path):
    out = tmp_path / "qs"
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), "--log", str(tiny_log), "--models",
                        str(tiny_models_file), "--budget", "tiny", "--learners", "regression,cql", "--live-per-domain", "1",
                        "--threads", "1", "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    stderr = r.stderr
    assert not PROGRESS_BAR.search(stderr), stderr
    assert "Gym" not in stderr and "gymnasium" not in stderr, stderr
    lines = stderr.splitlines()
    assert [line for line in lines if SOURCE_LINE.search(line)] == [], stderr
    steps = [line for line in lines if line.startswith("[quickstart] ") and re.match(r"\[quickstart\] \d/4 ", line)]
    assert [s.split()[1] for s in steps] == ["1/4", "2/4", "3/4", "4/4"], stderr
    warned = [line for line in lines if line.startswith("warning:")]
    assert len(warned) == len(set(warned)), warned  # repeats folded into one line with a count
    assert not any("zero width" in w for w in warned), warned  # plain decoding's constant reward: a note in the report
    other = [line for line in lines if not line.startswith(("[quickstart]", "warning:", "   "))]
    assert other == [], other  # nothing else: every line is a step, its detail, or a warning
    assert (out / "report" / "report.html").is_file() and "Test split of" in r.stdout
