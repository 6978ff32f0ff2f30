"""Every example in every ``bandit-log ... --help`` runs as written, in a shell, in a folder where its inputs exist.

Each help page's examples run in order in a fresh copy of one sandbox: ``prompts.parquet`` (a
few prompts in two domains), ``my-prompts.csv``, ``models.toml`` (a tiny random target with
plain decoding and two prompt-lookup arms), ``LOG`` (a measured log of them with uniform decisions,
``sim-uniform-seed0``), trained runs ``runs/ridge``, ``runs/clf``,
``runs/oracle``, ``runs/reinforce``, ``runs/vw``, ``logged.csv`` and ``target.csv`` (bandit feedback with
OBP's column names and a target policy's probabilities), and ``examples`` (a link to the repository's).
An example's own ``--out`` is removed before it runs, as on a machine where it never ran; the drafts pages
share one folder (the group's flow distils the drafts `drafts eval` reads). The
examples that load the real SmolLM2-135M or mine this machine's text are the slow ones.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import COMMANDS, cli

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _help(args: list[str]) -> str:
    r = CliRunner().invoke(cli, args + ["--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    return r.output


def _examples(text: str) -> list[str]:
    """The ``bandit-log ...`` lines of a help page's Example(s) block, continuation lines joined."""
    out, in_block, pending = [], False, ""
    for line in text.splitlines():
        s = line.strip()
        if re.match(r"^Examples?\b", s):
            in_block = True
            continue
        if s.startswith("Options:") or s.startswith("Commands:"):
            in_block = False
        if not in_block:
            continue
        if pending:
            pending += " " + s
        elif s.startswith("bandit-log "):
            pending = s
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        out.append(pending)
        pending = ""
    return out


def _pages() -> list[tuple[str, list[str]]]:
    pages = [("bandit-log", _examples(_help([])))]
    for name in COMMANDS:
        pages.append((name, _examples(_help([name]))))
    for sub in ("distill", "cluster", "eval"):
        pages.append((f"drafts {sub}", _examples(_help(["drafts", sub]))))
    return [(n, ex) for n, ex in pages if ex]


PAGES = _pages()
SLOW_MARKERS = ("packaged:", "examples/models/smollm2", "bandit-log prompts ", "bandit-log drafts distill", "bandit-log drafts eval")


def test_every_command_has_examples():
    assert {n for n, _ in PAGES} >= set(COMMANDS) - {"drafts"}, [n for n, _ in PAGES]


def _run(cmd: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    import torch

    sys.path.insert(0, str(REPO / "tests"))
    import conftest as shared  # the tiny-model builders

    root = tmp_path_factory.mktemp("help_sandbox")
    tok = shared.make_tokenizer(shared.SENTENCES)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        target = shared._save(shared._llama(len(tok), 2), tok, root / "target")
    from decoding.models import ArmConfig, ModelsConfig, TargetConfig, write_models_file

    write_models_file(root / "models.toml", ModelsConfig.of(
        TargetConfig(path=target, device="cpu", max_new_tokens=6, chat_template=False),
        [ArmConfig.of("plain", "none"), ArmConfig.of("lookup", "prompt_lookup", prompt_lookup_num_tokens=2),
         ArmConfig.of("lookup5", "prompt_lookup", prompt_lookup_num_tokens=5)]))
    words = " ".join(shared.SENTENCES).split()
    texts = [" ".join(words[i:i + 4 + i % 5]) + f" {w}" for i in range(40) for w in [words[(7 * i) % len(words)]]]
    texts = list(dict.fromkeys(texts))
    n = len(texts)
    pd.DataFrame({"query_id": [f"q{i:02d}" for i in range(n)], "prompt": texts,
                  "domain": ["code" if i % 2 else "translate" for i in range(n)],
                  "split": [("train", "train", "validation", "test")[i % 4] for i in range(n)]}).to_parquet(root / "prompts.parquet")
    pd.DataFrame({"id": [f"c{i}" for i in range(4)], "text": texts[:4]}).to_csv(root / "my-prompts.csv", index=False)
    (root / "examples").symlink_to(REPO / "examples")
    # logged bandit feedback with OBP's column names, and a target policy's probability table (one row per decision)
    import numpy as np

    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 2))
    action = rng.integers(0, 3, size=n)
    pd.DataFrame({"action": action, "reward": rng.binomial(1, 0.3 + 0.2 * (action == (x[:, 0] > 0))).astype(float),
                  "pscore": 1 / 3, "x0": x[:, 0], "x1": x[:, 1]}).to_csv(root / "logged.csv", index=False)
    pi = np.where(x[:, :1] > 0, [[0.1, 0.8, 0.1]], [[0.8, 0.1, 0.1]])
    pd.DataFrame({"0": pi[:, 0], "1": pi[:, 1], "2": pi[:, 2]}).to_csv(root / "target.csv", index=False)
    setup = [
        "bandit-log build prompts.parquet --models models.toml --out LOG --reward speedup_count --threads 1",
        "bandit-log simulate LOG --policy uniform --seed 0",
        "bandit-log train LOG --policy regression --out runs/ridge",
        "bandit-log train LOG --policy classifier --out runs/clf",
        "bandit-log train LOG --policy oracle --out runs/oracle",
        "bandit-log train LOG --policy reinforce --set n_epochs=2 --out runs/reinforce",
        "bandit-log train LOG --policy vw --out runs/vw",
    ]
    for cmd in setup:
        r = _run(cmd, root)
        assert r.returncode == 0, (cmd, r.stderr[-2000:])
    return root


def _out_of(cmd: str) -> str | None:
    m = re.search(r"--out\s+(\S+)", cmd)
    return m.group(1) if m else None


_PASSED: set[str] = set()
#: what `bandit-log calibrate` says when the step timings spread too much on a loaded machine, and how often to try again
BUSY, BUSY_RETRIES = "The machine is busy", 2


@pytest.fixture(scope="module")
def drafts_work(sandbox, tmp_path_factory):
    """One folder for the drafts pages: the group's flow distils the drafts that `drafts eval` reads
    (distilling the real target takes minutes; a rerun of a finished distillation returns at once)."""
    work = tmp_path_factory.mktemp("drafts") / "work"
    shutil.copytree(sandbox, work, symlinks=True)
    return work


def _marks(examples: list[str]) -> list:
    """The pages whose examples load the real SmolLM2-135M or mine this machine's text run as a benchmark
    command (``pytest -m benchmark``, BENCHMARKS.md), not in the README's test command: minutes each."""
    return [pytest.mark.benchmark] if any(m in ex for ex in examples for m in SLOW_MARKERS) else []


@pytest.mark.parametrize("page, examples", [pytest.param(n, ex, id=n, marks=_marks(ex)) for n, ex in PAGES])
def test_help_examples_run_as_written(sandbox, drafts_work, tmp_path, page, examples):
    if any(m in ex for ex in examples for m in SLOW_MARKERS) and os.environ.get("DRAFTPICK_SKIP_MODEL_EXAMPLES"):
        pytest.skip("DRAFTPICK_SKIP_MODEL_EXAMPLES is set")
    shared_work = page.startswith("drafts")
    work = drafts_work if shared_work else tmp_path / "work"
    if not shared_work:
        shutil.copytree(sandbox, work, symlinks=True)
    for ex in examples:
        if shared_work and ex in _PASSED:
            continue  # the same line already ran in this folder (the drafts group's flow)
        out = _out_of(ex)
        if not shared_work and out and (work / out).exists() and not out.startswith("examples"):
            shutil.rmtree(work / out) if (work / out).is_dir() else (work / out).unlink()
        r = _run(ex, work)
        for _ in range(BUSY_RETRIES):  # a calibration refuses a busy machine by design (the suite's other worker makes it busy)
            if r.returncode == 0 or BUSY not in r.stderr:
                break
            r = _run(ex, work)
        assert r.returncode == 0, f"{page}: `{ex}` exited {r.returncode}:\n{r.stderr[-3000:]}"
        _PASSED.add(ex)
