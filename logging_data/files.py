"""Writing one file so that a crash never leaves half of it, and strict JSON: used by every package.

``atomic_write(path, write)`` has ``write`` fill a hidden temporary file beside ``path`` (a name
starting with ``.``, invisible to pandas, pyarrow and DuckDB), flushes it to disk, renames it over
``path`` in one step and flushes the directory. A crash or ``kill -9`` at any point leaves the old
file or the new one, never a part; the temporary file is removed on error. Whole directories
(a saved model folder) are swapped in by their writers, which rename a finished folder.

``json_safe(obj)`` makes a value strict JSON: NaN and infinities become null, numpy scalars and
arrays become Python values, keys become strings.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Create or replace ``path`` with what ``write(temporary_path)`` writes; all or nothing."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """``atomic_write`` of UTF-8 ``text``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def json_safe(obj: Any) -> Any:
    """``obj`` as strict JSON values: NaN/inf -> None, numpy scalars and arrays -> Python, keys -> str."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy scalars and arrays
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def json_text(obj: Any, *, indent: int = 2, sort_keys: bool = True) -> str:
    """Strict JSON text of ``obj`` (through ``json_safe``), ending in a newline."""
    return json.dumps(json_safe(obj), indent=indent, sort_keys=sort_keys, ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomic(path: str | os.PathLike, obj: Any, *, sort_keys: bool = True) -> Path:
    """``atomic_write`` of ``obj`` as strict, indented JSON."""
    return write_text_atomic(path, json_text(obj, sort_keys=sort_keys))
