"""The ``bandit-log`` command line: a thin layer over the library.

Each command group lives in its own module and is imported only when that command runs, so
``bandit-log --help`` stays instant (no torch, transformers, VW or d3rlpy at start-up).
Library errors become one-line messages with exit status 1 here, at the edge; set
``BANDIT_LOG_DEBUG=1`` to see the traceback instead. Python warnings become one line each
(``warning: ...``, repeats folded with a count; ``logging_data.console.one_line_warnings``),
printed when the command ends, before any error line.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

# command name -> (module, attribute, one-line help shown by `bandit-log --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": ("bandit.cli.logs", "validate", "Check a log against the contract; report every problem."),
    "describe": ("bandit.cli.logs", "describe", "Rows, arms, reward statistics per arm and domain, propensities."),
    "simulate": ("bandit.cli.simulate", "simulate", "Simulate a logging policy on a full-information log."),
    "import": ("bandit.cli.importer", "import_", "Import logged bandit feedback (CSV, Parquet, JSON Lines) as a decisions log."),
    "evaluate": ("bandit.cli.evaluate", "evaluate", "Off-policy evaluation of policies on a decisions log."),
    "train": ("bandit.cli.train", "train", "Train a policy on a log into a run folder."),
    "compare": ("bandit.cli.train", "compare", "Off-policy report across trained runs."),
    "build": ("bandit.cli.decode", "build", "Build a full-information log from prompts and real models."),
    "calibrate": ("bandit.cli.decode", "calibrate", "Time the target's and drafters' steps here; write a cost profile."),
    "reprice": ("bandit.cli.decode", "reprice", "Re-price a log's outcomes under another reward or machine's step costs."),
    "decode": ("bandit.cli.decode", "decode", "Decode prompts with the policy's chosen arm; log decisions."),
    "prompts": ("bandit.cli.prompts", "prompts", "Build the multi-domain prompt set from text on this machine."),
    "drafts": ("bandit.cli.drafts", "drafts", "Distil, cluster and evaluate task-aligned drafts."),
    "drafters": ("bandit.cli.drafters", "drafters", "Train, tune and add drafting heads or a retrieval store as arms."),
}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("draftpick")
    except Exception:  # pragma: no cover - running from a source tree without install
        return "unknown"


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n, (mod, _, _) in COMMANDS.items() if importlib.util.find_spec(mod) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        if importlib.util.find_spec(module) is None:
            return None
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][2]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        from logging_data.console import one_line_warnings

        try:
            with one_line_warnings():
                return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # the CLI edge: one line, exit 1
            if os.environ.get("BANDIT_LOG_DEBUG"):
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            click.echo(f"error: {message}", err=True)
            sys.exit(1)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version(), "--version", prog_name="bandit-log")
def cli() -> None:
    """Choose a draft per prompt for assisted decoding, as an offline contextual bandit.

    \b
    Typical flow:
      bandit-log prompts --out prompts.parquet
      bandit-log build prompts.parquet --models models.toml --out LOG
      bandit-log simulate LOG --policy uniform
      bandit-log train LOG --policy reinforce --out runs/reinforce
      bandit-log evaluate LOG --run runs/reinforce
      bandit-log decode --policy runs/reinforce --models models.toml prompts.parquet --out LOG2
    """


def main() -> None:  # pragma: no cover
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
