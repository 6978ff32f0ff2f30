"""transformers' progress bars only on a terminal, as everywhere in this project (``quiet_progress``).

Loading a model (``decoding.loading``) and converting a packaged GGUF (``decoding.packaged``)
both run inside it; it imports nothing else of ``decoding``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def quiet_progress() -> Iterator[None]:
    """transformers' progress bars (loading weights, writing shards, converting a GGUF) only when
    stderr is a terminal (``logging_data.console.progress_bars``), as everywhere in this project:
    off otherwise, for the rest of the process (its progress-bar switch) and, for the GGUF reader's
    own bar, within the block."""
    from logging_data.console import progress_bars

    if progress_bars():
        yield
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    with _quiet_gguf_bar(True):
        yield


@contextmanager
def _quiet_gguf_bar(quiet: bool) -> Iterator[None]:
    """transformers' GGUF reader draws its own tqdm bar (not behind its progress-bar switch): off
    while ``quiet`` (stderr is not a terminal), restored after."""
    if not quiet:
        yield
        return
    import functools

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - a transformers without the GGUF reader fails later, by name
        yield
        return
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is None:  # pragma: no cover
        yield
        return
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar
