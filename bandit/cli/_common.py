"""Small helpers shared by the CLI command modules: JSON to stdout, chatter to stderr."""

from __future__ import annotations

import sys
from typing import Any

import click

from logging_data.files import json_text


def emit_json(obj: Any) -> None:
    """Write one JSON document to stdout (the only thing ``--json`` prints there)."""
    click.echo(json_text(obj, sort_keys=False).rstrip("\n"))


def say(message: str) -> None:
    """Progress and chatter: stderr, never stdout."""
    click.echo(message, err=True)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


#: exit status of build/decode when some assisted output differed from plain greedy (2 is click's usage error)
EXIT_LOSSLESS_FAILED = 3


def prompt_file_options(fn):
    """``--prompts-format``, ``--id-col``, ``--prompt-col``, ``--domain-col``, ``--split-col``: a prompts
    file of any supported format and its column names (``logging_data.prompt_table``); the command
    gets ``prompt_columns`` (a ``PromptColumns``) and ``prompts_format``."""
    import functools

    @click.option("--prompts-format", type=click.Choice(["parquet", "csv", "jsonl", "txt"]), default=None,
                  help="Format of the prompts file (default: from its suffix: .parquet, .csv, .jsonl, .txt).")
    @click.option("--id-col", default="query_id", show_default=True, help="Prompts file column of the prompt ids (made from the text when absent).")
    @click.option("--prompt-col", default="prompt", show_default=True, help="Prompts file column of the prompt text.")
    @click.option("--domain-col", default="domain", show_default=True, help="Prompts file column of the domain (optional).")
    @click.option("--split-col", default="split", show_default=True, help="Prompts file column of the split (seeded 60/20/20 when absent).")
    @functools.wraps(fn)
    def wrapper(*args, prompts_format, id_col, prompt_col, domain_col, split_col, **kwargs):
        from logging_data.prompt_table import PromptColumns

        return fn(*args, prompt_columns=PromptColumns(query_id=id_col, prompt=prompt_col, domain=domain_col, split=split_col),
                  prompts_format=prompts_format, **kwargs)

    return wrapper


def report_options(report_help: str):
    """``--report DIR`` (``report_help`` says what is written there) and ``--overwrite``: the command
    gets ``report_dir`` (None without the option) and ``overwrite``."""
    def decorate(fn):
        fn = click.option("--overwrite", is_flag=True,
                          help="Replace the report folder at --report (only a report folder holding nothing else, once the new "
                               "one is complete).")(fn)
        return click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=str), default=None,
                            help=report_help)(fn)

    return decorate
