"""``bandit-log build --ray``: build one log with a pool of Ray workers.

Log building is parallel over prompts. Here the driver reads the prompts once and splits them
into shards by key (``logging_data.shards``: a stable hash, so a rerun makes the same shards). It
starts one actor per worker. Each actor loads the models once (a ``DecodingSession``) and takes
shards one at a time; for each it runs ``build_log`` on that shard's prompts and writes its own
atomic Parquet parts into the same log. The log must therefore be on a path every worker can
write: one machine, or a shared filesystem.

- **Once, before the shards**: the first worker calibrates on its own hardware and creates the log
  (``prepare_log``). Its metadata records the calibration, the command, and under
  ``extra["build"]["ray"]`` the cluster address, the number of workers and shards, and every
  worker's hardware.
- **Failures**: a worker that dies (its process killed, its node lost) is replaced by a new actor,
  and its shard is run again, up to ``max_retries`` times per shard. The shard resumes by key: rows
  the dead worker had already appended are kept and not written twice. An exception inside a
  shard (a bad prompt, a lossless-check error in the code) stops the build and is raised with the
  shard named.
- **Rerun**: the same command completes an interrupted build; shards with nothing left to do are
  not sent to a worker.
- Progress (prompts done, aggregated on the driver) goes to stderr.

Ray is imported only here (the optional extra ``draftpick[ray]``).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from logging_data import open_log
from logging_data.io import check_new_log_path
from logging_data.shards import Shard

from .build import BuildConfig, BuildSummary, check_existing, read_prompts
from .pricing import Calibration
from .models import ModelsConfig


class RayBuildError(RuntimeError):
    """A shard failed inside a worker, or kept failing after its retries; the message names it."""


@dataclass(frozen=True)
class RaySettings:
    """How the pool runs: ``address`` of an existing cluster (None: start a local one with
    ``workers`` CPUs), ``workers`` actors, ``shards`` (default 4 per worker: finer progress and
    smaller retries), ``cpus_per_worker`` reserved per actor, ``max_retries`` per shard."""

    address: str | None = None
    workers: int = 2
    shards: int | None = None
    cpus_per_worker: float = 1.0
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1; got {self.workers}")
        if self.shards is not None and self.shards < 1:
            raise ValueError(f"--shards must be >= 1; got {self.shards}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0; got {self.max_retries}")

    @property
    def n_shards(self) -> int:
        return self.shards if self.shards is not None else 4 * self.workers


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'draftpick[ray]' (or pip install ray)") from None
    return ray


class _BuildWorker:
    """One Ray actor: the models loaded once; builds the shards it is given."""

    def __init__(self, models: ModelsConfig, device: str | None, threads: int | None) -> None:
        from .session import DecodingSession

        self.models = models
        self.session = DecodingSession(models, device=device, threads=threads)

    def describe(self) -> dict[str, Any]:
        from .machine import environment

        import socket

        return {"pid": os.getpid(), "host": socket.gethostname(), "device": self.session.device, **environment()["hardware"]}

    def prepare(self, out: str, config: BuildConfig, command: str | None, calibration: dict | None,
                extra_build: dict[str, Any]) -> dict[str, Any]:
        from .build import prepare_log

        log = prepare_log(out, self.models, self.session, config, command,
                          Calibration.from_json(calibration) if calibration else None, extra_build)
        return dict(log.metadata.extra.get("calibration", {}))

    def build(self, frame: pd.DataFrame, out: str, config: BuildConfig, command: str | None) -> dict[str, Any]:
        from .build import build_log

        summary = build_log(frame, self.models, out, config, session=self.session, command=command, progress=False)
        return dict(summary.__dict__)


def build_log_ray(
    prompts: str | os.PathLike,
    models: ModelsConfig,
    out: str | os.PathLike,
    config: BuildConfig = BuildConfig(),
    settings: RaySettings = RaySettings(),
    *,
    command: str | None = None,
    progress: bool = True,
    device: str | None = None,
    threads: int | None = 1,
    calibration: Calibration | None = None,
) -> BuildSummary:
    """Build (or resume) the log at ``out`` on a Ray pool; see the module docstring.

    ``threads``: torch threads per worker (default 1: one per reserved CPU).
    """
    t0 = time.perf_counter()
    if config.shard is not None:
        raise ValueError("--ray makes its own shards; drop --shard (or run shards as separate processes without --ray)")
    frame = read_prompts(prompts, config.split, config.limit, config.prompt_columns, config.prompts_format)
    out = Path(out)
    done: set = set()
    if (out / "_log.json").exists():
        existing = open_log(out)
        check_existing(existing, models, config.reward, config.measure)
        done = existing.keys("outcomes")
    else:
        check_new_log_path(out)  # before any worker starts
    arm_names = models.arm_names
    qids = frame["query_id"].astype(str)
    todo = qids.map(lambda q: any((q, a) not in done for a in arm_names)).to_numpy(dtype=bool)
    n_skipped = int(sum((q, a) in done for q in qids for a in arm_names))
    n_shards = settings.n_shards
    shards = []
    for i in range(n_shards):
        shard = Shard(i, n_shards)
        mask = shard.mask(qids)
        if (mask & todo).any():
            shards.append((shard, frame[mask].reset_index(drop=True), int((mask & todo).sum())))
    if not shards:
        cal = open_log(out).metadata.extra.get("calibration", {}) if (out / "_log.json").exists() else {}
        return BuildSummary(str(out), len(frame), 0, 0, n_skipped, 0, time.perf_counter() - t0, dict(cal))

    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": settings.address, "include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
        if settings.address is None:
            kwargs["num_cpus"] = max(int(settings.workers * settings.cpus_per_worker + 0.999), 1)
        ray.init(**kwargs)
        started = True
    try:
        return _run_pool(ray, shards, models, out, config, settings, command, progress, device, threads, calibration,
                         len(frame), n_skipped, t0)
    finally:
        if started:
            ray.shutdown()


def _run_pool(ray, shards, models, out, config, settings, command, progress, device, threads, calibration, n_prompts,
              n_skipped, t0) -> BuildSummary:
    from tqdm import tqdm

    Worker = ray.remote(num_cpus=settings.cpus_per_worker, max_restarts=0)(_BuildWorker)
    workers = [Worker.remote(models, device, threads) for _ in range(min(settings.workers, len(shards)))]
    out_s = str(Path(out).resolve())
    n_shards = settings.n_shards
    config = replace(config, split=None, limit=None)  # the driver applied them; workers get the rows

    if not (Path(out) / "_log.json").exists():
        described = ray.get([w.describe.remote() for w in workers])
        extra = {"ray": {"address": settings.address or "local", "workers": len(workers), "shards": n_shards,
                         "worker_hardware": described}, "shards": n_shards}
        ray.get(workers[0].prepare.remote(out_s, config, command, calibration.to_json() if calibration else None, extra))
    queue = list(shards)
    attempts: dict[int, int] = {}
    running: dict[Any, tuple[int, tuple]] = {}  # future -> (worker index, shard entry)
    totals = {"n_rows_written": 0, "n_lossless_failures": 0, "n_prompts_decoded": 0}
    bar = tqdm(total=sum(s[2] for s in shards), desc="build (ray)", unit="prompt", file=sys.stderr, disable=not progress)

    def submit(w: int) -> None:
        shard, part, _ = queue.pop(0)
        fut = workers[w].build.remote(part, out_s, replace(config, shard=shard), command)
        running[fut] = (w, (shard, part, _))

    try:
        for w in range(len(workers)):
            if queue:
                submit(w)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            fut = ready[0]
            w, entry = running.pop(fut)
            shard = entry[0]
            try:
                result = ray.get(fut)
            except ray.exceptions.RayActorError as exc:  # the worker died: replace it, run the shard again
                attempts[shard.index] = attempts.get(shard.index, 0) + 1
                if attempts[shard.index] > settings.max_retries:
                    raise RayBuildError(f"shard {shard} of {out}: its worker died {attempts[shard.index]} times "
                                        f"(last: {str(exc).splitlines()[0]}); rerun the same command to resume") from None
                print(f"[build --ray] a worker died on shard {shard}; retrying it on a new worker "
                      f"(attempt {attempts[shard.index] + 1})", file=sys.stderr, flush=True)
                workers[w] = Worker.remote(models, device, threads)
                queue.insert(0, entry)
                submit(w)
                continue
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                raise RayBuildError(f"shard {shard} of {out} failed in a worker: {type(cause).__name__}: "
                                    f"{str(cause).splitlines()[0] if str(cause) else ''}") from None
            for key in totals:
                totals[key] += int(result[key])
            bar.update(entry[2])
            if queue:
                submit(w)
    finally:
        bar.close()
        for w in workers:
            ray.kill(w)
    cal = open_log(out).metadata.extra.get("calibration", {})
    if totals["n_lossless_failures"]:
        print(f"LOSSLESS CHECK FAILED: {totals['n_lossless_failures']} (prompt, arm) outcome(s) differ from the target's "
              f"plain greedy output; see rows with lossless = false in {out}/outcomes", file=sys.stderr)
    return BuildSummary(str(out), n_prompts, totals["n_prompts_decoded"], totals["n_rows_written"], n_skipped,
                        totals["n_lossless_failures"], time.perf_counter() - t0, dict(cal))
