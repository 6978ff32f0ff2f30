"""Small helpers shared by the CLI command modules: JSON to stdout, chatter to stderr."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import click


def _clean(obj: Any) -> Any:
    """Make ``obj`` strict-JSON safe: NaN/inf become null; numpy scalars and arrays become Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def emit_json(obj: Any) -> None:
    """Write one JSON document to stdout (the only thing ``--json`` prints there)."""
    click.echo(json.dumps(_clean(obj), indent=2, ensure_ascii=False, allow_nan=False))


def say(message: str) -> None:
    """Progress and chatter: stderr, never stdout."""
    click.echo(message, err=True)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


#: exit status of build/decode when some assisted output differed from plain greedy (2 is click's usage error)
EXIT_LOSSLESS_FAILED = 3
