"""Where a command may write: one guard that every writing command calls before it writes.

``check_output(out, kind, inputs=..., if_exists=..., overwrite=...)`` reads the disk and raises
``OutputError`` (naming the path, what was expected and what was found) unless writing the
output ``kind`` at ``out`` loses nothing:

1. never inside a log or its tables: no folder at or above ``out`` holds a log's ``_log.json``
   (a log holds its own tables only; anything else breaks ``validate`` and
   ``pd.read_parquet("LOG/outcomes")``). An output that *is* a log may be one.
2. never onto, inside or around an input of the same command (the logs, runs, models, prompts
   and files it reads), compared as resolved paths in both directions; never in the project's
   model cache (``$DRAFTPICK_CACHE``, default ``~/.cache/draftpick``: packaged models converted
   there) nor in an installed package's folder (site-packages: where packaged models ship).
3. an existing file, or a folder that is not empty, must be the command's own kind of output,
   recognised by the marker files that kind always writes (``OutputKind.markers``).
4. an existing output of the own kind is refused, continued or replaced as the command says
   (``if_exists``); replacing needs ``overwrite`` (the CLI's ``--overwrite``), and a folder that
   also holds what its writer never makes (``OutputKind.entries``) is not replaced.
5. the output is written whole elsewhere and renamed into place (``staged`` then ``publish``),
   so a failure leaves the old output or nothing: no debris that blocks the corrected re-run.
   A log that grows in place (build, decode) cannot be staged: ``new_log_or_nothing`` removes the
   log a failed command created while it still holds no rows.

The kinds are declared here, one line each, with the markers their writers already make.
Standard library only (pyarrow, lazily, to recognise a Parquet file's own kind).
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal

LOG_MARKER = "_log.json"  # the file that makes a folder a log (logging_data.io.METADATA_FILE)
PARQUET_KIND_KEY = b"draftpick_output"  # schema metadata of a Parquet file a command wrote: its kind's name

IfExists = Literal["refuse", "continue", "overwrite"]
Inputs = Iterable[tuple[str, "str | os.PathLike | None"]]


class OutputError(FileExistsError):
    """A command's output path would lose or damage something; the message says what and where."""


@dataclass(frozen=True)
class OutputKind:
    """One kind of output a command writes, and how an existing one is recognised.

    - ``name``: the words used in messages ("run folder").
    - ``made_by``: the command that writes it.
    - ``markers``: files every output of this kind holds (all of them); a folder with them is one.
    - ``entries``: everything such a folder may hold (names, or a function of the folder giving
      them): ``--overwrite`` replaces a folder that holds nothing else (None: the markers decide).
    - ``is_file``: a single file, not a folder; ``recognise`` then says whether a file is one.
    """

    name: str
    made_by: str
    markers: tuple[str, ...] = ()
    entries: tuple[str, ...] | Callable[[Path], Iterable[str]] | None = field(default=None, compare=False)
    is_file: bool = False
    recognise: Callable[[Path], bool] | None = field(default=None, compare=False)
    #: why the existing output may not be replaced after all (e.g. rows appended since), or None
    unreplaceable: Callable[[Path], str | None] | None = field(default=None, compare=False)

    @property
    def is_log(self) -> bool:
        """A log (of any command): it may be the output itself, never inside one."""
        return LOG_MARKER in self.markers

    def is_one(self, path: Path) -> bool:
        """Whether the existing ``path`` is an output of this kind."""
        if self.is_file:
            return path.is_file() and self.recognise is not None and self.recognise(path)
        if not path.is_dir():
            return False
        if self.recognise is not None:
            return self.recognise(path)
        return bool(self.markers) and all((path / m).exists() for m in self.markers)

    def own_entries(self, path: Path) -> set[str] | None:
        """What the existing output ``path`` of this kind may hold (None: not known)."""
        if self.entries is None:
            return None
        return set(self.entries(path) if callable(self.entries) else self.entries)


def _parquet_kind(path: Path) -> str | None:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # not Parquet at all: not ours
        return None
    raw = meta.get(PARQUET_KIND_KEY)
    return raw.decode("utf-8", "replace") if raw is not None else None


def _prompt_set(path: Path) -> bool:
    return path.suffix == ".parquet" and path.with_name(path.stem + ".sources.json").is_file()


def _cost_profile(path: Path) -> bool:
    import json

    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "calibration" in record


def _log(path: Path) -> bool:
    """A log, or a log being created right now (only its lock files and signpost so far: shard
    writers starting together)."""
    from .io import is_ours

    if (path / LOG_MARKER).is_file():
        return True
    names = [p.name for p in path.iterdir()]
    return bool(names) and all(is_ours(n) for n in names)


def _log_record(path: Path) -> dict:
    import json

    try:
        record = json.loads((path / LOG_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _log_made_by(step: str) -> Callable[[Path], bool]:
    """A log whose metadata records ``extra[step]`` (``import``, ``reprice``): one that command made."""
    return lambda path: (path / LOG_MARKER).is_file() and step in (_log_record(path).get("extra") or {})


def _log_entries(table: str) -> Callable[[Path], list[str]]:
    """What a log written whole by one command holds: its metadata, signpost, locks and one table."""
    def entries(path: Path) -> list[str]:
        from .io import LOCK_FILES, SIGNPOST_FILE, VALIDATED_FILE

        return [LOG_MARKER, SIGNPOST_FILE, VALIDATED_FILE, *LOCK_FILES, table]
    return entries


def _written_whole(table: str, made_by: str) -> Callable[[Path], str | None]:
    """Why a log ``made_by`` wrote whole (one part of ``table``) is no longer only its own: rows appended since."""
    def reason(path: Path) -> str | None:
        parts = sorted((path / table).glob("part-*.parquet"))
        if len(parts) > 1:
            return (f"{len(parts) - 1} part(s) of {table} were appended after {made_by} wrote it (its own is one part); "
                    f"--overwrite never removes another command's rows")
        return None
    return reason


def _draft(path: Path) -> bool:
    return (path / ".settings.json").is_file() or (path / "distill.json").is_file()


#: what a Hugging Face model folder saved by ``save_pretrained`` may hold (a draft made before its
#: distill.json listed its files)
_HF_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
             "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
             "chat_template.jinja", "chat_template.json")


def _draft_entries(path: Path) -> list[str]:
    """A distilled draft's own files: its work folders and settings, and the model files its
    ``distill.json`` lists."""
    import json

    own = [".settings.json", "distill.json", "teacher", "checkpoint"]
    try:
        files = json.loads((path / "distill.json").read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        files = None
    return own + (list(files) if isinstance(files, list) else list(_HF_FILES))


LOG = OutputKind("log", "bandit-log build, decode, import or reprice", markers=(LOG_MARKER,), recognise=_log)
RUN = OutputKind("run folder", "bandit-log train", markers=("config.json", "metrics.json", "fingerprint.json"),
                 entries=("config.json", "featurizer", "model", "metrics.json", "fingerprint.json"))
DRAFT = OutputKind("distilled draft", "bandit-log drafts distill", markers=(".settings.json",), recognise=_draft,
                   entries=_draft_entries)
IMPORTED_LOG = OutputKind("log made by bandit-log import", "bandit-log import", markers=(LOG_MARKER,),
                          recognise=_log_made_by("import"), entries=_log_entries("decisions"),
                          unreplaceable=_written_whole("decisions", "bandit-log import"))
REPRICED_LOG = OutputKind("log made by bandit-log reprice", "bandit-log reprice", markers=(LOG_MARKER,),
                          recognise=_log_made_by("reprice"), entries=_log_entries("outcomes"),
                          unreplaceable=_written_whole("outcomes", "bandit-log reprice"))
REPORT = OutputKind("report folder", "bandit-log evaluate or compare --report", markers=("report.json", "report.html"),
                    entries=("report.json", "report.html"))
PROMPT_SET = OutputKind("prompt set", "bandit-log prompts", is_file=True, recognise=_prompt_set)
PROMPT_TABLE = OutputKind("prompt table", "bandit-log drafts cluster or eval --rows", is_file=True,
                          recognise=lambda p: _parquet_kind(p) == "prompt table")
COST_PROFILE = OutputKind("cost profile", "bandit-log calibrate", is_file=True, recognise=_cost_profile)
DRAFTER_OUTPUT = OutputKind("drafter output folder", "bandit-log drafters heads or store", markers=("models.toml", "summary.json"),
                            entries=("heads", "stores", "models.toml", "models-heads.toml", "models-stores.toml", "log", "log-live",
                                     "live-prompts.parquet", "select", "summary.json", "extra-prompts.parquet", "extra-prompts.json"))


def _listing(names: Iterable[str], n: int = 4) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + ("..." if len(names) > n else "")


def _resolved(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def _local_inputs(inputs: Inputs) -> list[tuple[str, Path, Path]]:
    """(label, path as given, resolved path) of each input that is a local path on disk."""
    found = []
    for label, path in inputs:
        if path is None or str(path).startswith("packaged:"):
            continue
        given = Path(str(path)[4:] if str(path).startswith("fit:") else path)
        if given.exists():
            found.append((label, given, _resolved(given)))
    return found


def enclosing_log(path: str | os.PathLike, *, include_self: bool = False) -> Path | None:
    """The nearest folder at or above ``path`` (resolved) that holds a log's ``_log.json``; ``path``
    itself counts only with ``include_self``."""
    here = _resolved(path)
    for folder in ([here] if include_self else []) + list(here.parents):
        if (folder / LOG_MARKER).is_file():
            return folder
    return None


def _check_existing_kind(out: Path, kind: OutputKind, option: str) -> bool:
    """Rule 3: what exists at ``out`` must be ``kind`` (or an empty folder). True when it is one."""
    if not out.exists():
        return False
    if kind.is_file:
        if out.is_dir():
            raise OutputError(f"{option} {out}: a folder; expected a {kind.name} file path")
        if kind.is_one(out):
            return True
        raise OutputError(f"{option} {out}: exists and is not a {kind.name} written by {kind.made_by}; only a "
                          f"{kind.name} is ever replaced (nothing written): remove the file or choose another path")
    if not out.is_dir():
        raise OutputError(f"{option} {out}: exists and is a file; expected a {kind.name} (a folder)")
    if kind.is_one(out):
        return True
    held = [p.name for p in out.iterdir()]
    if not held:
        return False
    if kind.is_log and kind is not LOG and (out / LOG_MARKER).exists():
        raise OutputError(f"{out}: a log already exists here, not one {kind.made_by} made; it is never replaced or "
                          f"written into by {kind.made_by} (nothing written): choose another {option}")
    if kind is not LOG and (out / LOG_MARKER).exists():
        raise OutputError(f"{option} {out}: is a log (it has {LOG_MARKER}), not a {kind.name}; a log is never replaced "
                          f"or written into by {kind.made_by}: choose another path")
    missing = f"no {', '.join(m for m in kind.markers if not (out / m).exists())}; " if kind.markers else ""
    raise OutputError(f"{out}: a directory that is not empty and is not a {kind.name} ({missing}it holds {_listing(held)}); "
                      f"{option} takes a new or empty folder or a {kind.name} written by {kind.made_by} (nothing written)")


def _check_inputs(out: Path, inputs: Inputs, option: str) -> None:
    """Rule 2: ``out`` is not an input, not inside one, and holds none."""
    target = _resolved(out)
    for label, given, path in _local_inputs(inputs):
        if target == path:
            raise OutputError(f"{option} {out} is {label} {given}, an input of this command; the inputs are never "
                              f"written to: choose another path")
        if path in target.parents:
            raise OutputError(f"{option} {out} is inside {label} {given}, an input of this command; the inputs are "
                              f"never written to: choose a path outside it")
        if target in path.parents:
            raise OutputError(f"{option} {out} holds {label} {given}, an input of this command; the inputs are never "
                              f"written to or replaced: choose a path that does not hold it")


def model_cache_dir() -> Path:
    """The project's model cache: ``$DRAFTPICK_CACHE``, default ``~/.cache/draftpick`` (``decoding.packaged``
    converts packaged models into it)."""
    return Path(os.environ.get("DRAFTPICK_CACHE", Path.home() / ".cache" / "draftpick"))


def _package_folders() -> list[Path]:
    """The folders Python installs packages into (site-packages): where packaged models ship."""
    import site
    import sysconfig

    found = {sysconfig.get_paths().get(k) for k in ("purelib", "platlib")}
    try:
        found.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - some virtualenv builds lack it
        pass
    return [_resolved(p) for p in sorted(f for f in found if f)]


def _check_not_in_models(out: Path, option: str) -> None:
    """Rule 2, for the models no command names as a path: the model cache and installed packages."""
    target = _resolved(out)
    cache = _resolved(model_cache_dir())
    if target == cache or cache in target.parents:
        raise OutputError(f"{option} {out} is inside the project's model cache {cache} ($DRAFTPICK_CACHE; packaged models "
                          f"are converted and kept there, an input of every command that loads one); nothing is ever "
                          f"written there: choose a path outside it")
    if target.exists() and target in cache.parents and any(target.iterdir()):
        raise OutputError(f"{option} {out} holds the project's model cache {cache} ($DRAFTPICK_CACHE); it is never "
                          f"written to or replaced: choose a path that does not hold it")
    for folder in _package_folders():
        if target == folder or folder in target.parents:
            raise OutputError(f"{option} {out} is inside the installed packages' folder {folder} (packaged models ship "
                              f"there, e.g. packaged:all-minilm-l6-v2); nothing is ever written there: choose a path "
                              f"outside it")


def _check_not_in_log(out: Path, kind: OutputKind, option: str) -> None:
    """Rule 1: no log at or above ``out`` (``out`` itself may be one when the output is a log)."""
    log = enclosing_log(out, include_self=not kind.is_log)
    if log is None:
        return
    raise OutputError(f"{option} {out} is inside the log {log} (at {_resolved(out).relative_to(log)}); a log holds "
                      f"only its own tables, and anything else there breaks `bandit-log validate` and "
                      f"pd.read_parquet(LOG/outcomes) (nothing written): choose a path outside the log")


def _check_replaceable(out: Path, kind: OutputKind, option: str) -> None:
    """Rule 4: a folder replaced by ``--overwrite`` holds only what its writer makes."""
    own = None if kind.is_file else kind.own_entries(out)
    extra = [p.name for p in out.iterdir() if p.name not in own] if own is not None else []
    if extra:
        raise OutputError(f"{option} {out}: a {kind.name} that also holds {_listing(extra)}, which {kind.made_by} never "
                          f"writes; --overwrite replaces only a {kind.name}'s own files (nothing removed): move them out "
                          f"first or choose another path")
    reason = kind.unreplaceable(out) if kind.unreplaceable is not None else None
    if reason:
        raise OutputError(f"{option} {out}: not replaced: {reason} (nothing removed): choose another path")


def check_output(out: str | os.PathLike, kind: OutputKind, *, inputs: Inputs = (), option: str = "--out",
                 if_exists: IfExists = "refuse", overwrite: bool = False) -> Path:
    """Raise ``OutputError`` unless ``kind`` may be written at ``out``; returns ``out`` as a Path.

    - ``inputs``: (label, path) of everything the command reads ("LOG", "--config", "--target"...);
      None and ``packaged:`` entries are skipped, ``fit:PATH`` counts as PATH.
    - ``if_exists``: what an existing output of the own kind means: ``"refuse"`` (the command
      writes a new one), ``"continue"`` (it resumes, appends to or rewrites its own files) or
      ``"overwrite"`` (replaced, only when ``overwrite``).

    Reads the disk only: nothing is written or removed.
    """
    out = Path(out)
    _check_not_in_models(out, option)
    exists = _check_existing_kind(out, kind, option)
    if exists and if_exists == "refuse":
        raise OutputError(f"{out}: a {kind.name} already exists here; this command writes a new one (nothing written): "
                          f"choose another {option}")
    _check_inputs(out, inputs, option)
    _check_not_in_log(out, kind, option)
    if exists and if_exists == "overwrite":
        if not overwrite:
            raise OutputError(f"{out} exists; pass --overwrite to replace it, or choose another {option} (a {kind.name} "
                              f"already exists there; nothing written)")
        _check_replaceable(out, kind, option)
    return out


# -- staged writes ----------------------------------------------------------------------------
@contextmanager
def staged(out: str | os.PathLike) -> Iterator[Path]:
    """A new hidden folder beside ``out`` to write the whole output into; removed when the block
    fails. The block's last step is ``publish(stage, out)``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        yield stage
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def publish(stage: str | os.PathLike, out: str | os.PathLike, *, replace: bool = False) -> Path:
    """Rename the finished ``stage`` to ``out`` in one step. An empty folder at ``out`` is taken
    over; an existing output only with ``replace`` (renamed aside, then removed once the new one
    is in place); anything else that appeared meanwhile is an ``OutputError``."""
    stage, out = Path(stage), Path(out)
    aside = None
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        if not replace:
            raise OutputError(f"{out}: appeared while this command was writing (another process?); nothing replaced: "
                              f"choose another path")
        aside = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, aside)
    try:
        os.replace(stage, out)
    except OSError:
        if aside is not None:
            os.replace(aside, out)
        raise
    if aside is not None and aside.is_dir():
        shutil.rmtree(aside, ignore_errors=True)
    elif aside is not None:
        aside.unlink(missing_ok=True)
    return out


# -- a log that grows in place ----------------------------------------------------------------
_TABLES = ("outcomes", "decisions")


@contextmanager
def new_log_or_nothing(out: str | os.PathLike) -> Iterator[Path]:
    """Around a command that creates the log ``out`` when it is not one yet and then appends rows
    to it (``bandit-log build``, ``decode``): a log cannot be staged, since it grows in place and is
    resumed by key. So when the block fails (an exception, Ctrl-C) and ``out`` was not a log
    before it, the log it left without a single row (its metadata, signpost, locks, empty table
    folders) is removed, and the corrected re-run (other arms, another reward) starts afresh; a
    folder that existed before (empty) stays, emptied. A log with rows is kept and resumed by key,
    and a log that existed before is never touched: resuming works as it always did, ``kill -9``
    included (nothing runs then; the re-run resumes the rowless log). Nothing is removed while
    another process holds the log (a shard writer, a build that created it meanwhile)."""
    out = Path(out)
    existed = out.exists()
    fresh = not (out / LOG_MARKER).exists() and (not existed or (out.is_dir() and _only_log_files(out)))
    try:
        yield out
    except BaseException:
        if fresh:
            discard_rowless_log(out, keep_folder=existed)
        raise


def _only_log_files(path: Path) -> bool:
    """``path`` holds nothing but what a log holds before its first row (no row, nothing foreign)."""
    from .io import VALIDATED_FILE, is_ours

    for entry in path.iterdir():
        if entry.name in (LOG_MARKER, VALIDATED_FILE) or is_ours(entry.name):
            continue
        if entry.name in _TABLES and entry.is_dir() and not any(entry.glob("part-*.parquet")):
            continue
        return False
    return True


def discard_rowless_log(out: str | os.PathLike, *, keep_folder: bool = False) -> bool:
    """Remove the log at ``out`` if it holds no row and no process holds it (its writer and
    creation locks taken without waiting); ``keep_folder``: remove what is inside, keep the
    folder. Returns whether anything was removed."""
    from .io import CREATE_LOCK, WRITER_LOCK, file_lock

    out = Path(out)
    if not out.is_dir() or not _only_log_files(out):
        return False
    with file_lock(out / WRITER_LOCK, blocking=False) as writer, file_lock(out / CREATE_LOCK, blocking=False) as creator:
        if writer is None or creator is None or not _only_log_files(out):
            return False
        if not keep_folder:
            shutil.rmtree(out, ignore_errors=True)
            return True
        for entry in out.iterdir():
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    return True
