"""What a command prints on stderr besides its own progress lines: quiet, one line per thing.

- ``one_line_warnings()``: while active, every Python warning shown becomes one line
  ``warning: MESSAGE`` (no file, line number or source line; a message of several lines is
  joined into one), and a warning shown several times is printed once with its count:
  ``warning: MESSAGE (12 times)``. Lines are collected and written when the block ends, or
  earlier at ``flush_warnings()`` (a long job flushes at each step, so a warning appears near the
  step that caused it). Every ``bandit-log`` command and the examples' ``__main__`` run inside it.
- ``progress_bars()``: whether to draw progress bars: only when stderr is a terminal (a pipe or a
  file gets no carriage-return animation).
- ``without_stderr(...)``: run one third-party import that prints a banner on stderr (Gym's
  "unmaintained" notice, printed when d3rlpy imports it) with that text dropped.

Which warnings are shown at all is still Python's filters' business (``-W``, ``PYTHONWARNINGS``);
this module only changes how the shown ones are printed.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO, TypeVar

T = TypeVar("T")

#: the collectors of the active ``one_line_warnings`` blocks, innermost last
_ACTIVE: list["WarningLines"] = []


def one_line(message: object) -> str:
    """``message`` as one line: its lines stripped and joined with a space."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def warning_line(message: object, count: int = 1) -> str:
    """``warning: MESSAGE`` (one line), with `` (N times)`` when it was shown N > 1 times."""
    return f"warning: {one_line(message)}" + (f" ({count} times)" if count > 1 else "")


class WarningLines:
    """The warnings shown in one ``one_line_warnings`` block, folded by (category, text), in order
    of first appearance, until they are flushed."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._counts: dict[tuple[str, str], int] = {}
        self.n_shown = 0  # every warning seen, repeats included

    def add(self, message: object, category: type) -> None:
        key = (getattr(category, "__name__", str(category)), one_line(message))
        self._counts[key] = self._counts.get(key, 0) + 1
        self.n_shown += 1

    def pending(self) -> list[str]:
        """The lines a flush would print now."""
        return [warning_line(text, n) for (_, text), n in self._counts.items()]

    def flush(self) -> None:
        """Print the pending lines (one per distinct warning) and forget them."""
        lines = self.pending()
        self._counts.clear()
        if lines:
            stream = self._stream or sys.stderr  # looked up now: a test runner may have swapped it
            stream.write("".join(line + "\n" for line in lines))
            stream.flush()


@contextmanager
def one_line_warnings(stream: TextIO | None = None) -> Iterator[WarningLines]:
    """Within the block, shown warnings are collected by ``WarningLines`` and printed one line
    each (repeats folded with a count) on ``stream`` (default: ``sys.stderr`` at print time) when
    the block ends, however it ends. Nests: an inner block prints its own at its end."""
    lines = WarningLines(stream)
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # warnings.showwarning's signature
        lines.add(message, category)

    warnings.showwarning = show
    _ACTIVE.append(lines)
    try:
        yield lines
    finally:
        _ACTIVE.remove(lines)
        if warnings.showwarning is show:
            warnings.showwarning = previous
        lines.flush()


def flush_warnings() -> None:
    """Print what the innermost active ``one_line_warnings`` block has collected so far (nothing
    outside a block): call it at a step boundary of a long job."""
    if _ACTIVE:
        _ACTIVE[-1].flush()


def progress_bars() -> bool:
    """Whether to draw progress bars: only when stderr is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def without_stderr(load: Callable[[], T]) -> T:
    """``load()`` with the text it prints on stderr dropped: for one third-party import that
    prints a banner there (Gym's "unmaintained" notice when d3rlpy imports it). Python warnings
    raised meanwhile are not dropped: they are shown after, as usual."""
    with warnings.catch_warnings(record=True) as caught:  # the filters stay as they are
        with contextlib.redirect_stderr(io.StringIO()):
            result = load()
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
    return result
