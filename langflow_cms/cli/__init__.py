"""``langflow-cms``: the command line (typer + rich), assembled from one module per command group.

Commands, in the order ``--help`` lists them: ``emulator`` (:mod:`.emulator`), ``demo`` (:mod:`.demo`),
``doctor`` (:mod:`.doctor`), ``init`` and ``components-path`` (:mod:`.init`), ``export`` (:mod:`.export`),
``top`` and ``compare`` (:mod:`.query`), then the groups ``dashboard``, ``alarms`` and ``guard``. Every
command has ``--help`` with examples and the exit codes (:mod:`langflow_cms.cli.output`); commands that
print data take ``--json``. Heavy modules are imported inside the commands, so ``langflow-cms --help`` stays
fast and one broken optional piece cannot take the others down. Nothing here uses paths relative to the
repository: every command works from an installed wheel.

**Adding a command** (or a few related ones): write a module ``langflow_cms/cli/<name>.py`` that defines
``app = typer.Typer()`` and its commands, and add it to :data:`COMMANDS`; the model to copy is
``langflow_cms/cli/doctor.py``. **Adding a command group** (e.g. ``alarms`` with
``plan``/``apply``/``list``/``check``): the same, with ``typer.Typer(help=...)``, added to :data:`SUB_APPS`
under its name (``add_groups`` registers them); the model is ``langflow_cms/cli/dashboard.py``. Shared
options and helpers: :mod:`langflow_cms.cli.output` (``VersionOption``, ``JsonOption``, ``examples``,
``fail``, ``print_json``); reading back: :mod:`langflow_cms.cli.query` (``parse_pairs``, ``parse_end``).
"""

from __future__ import annotations

import importlib
import sys

import typer

from langflow_cms.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    JsonOption,
    VersionOption,
    examples,
    fail,
    package_version,
)
from langflow_cms.cli.query import parse_end, parse_pairs

__all__ = [
    "COMMANDS",
    "SUB_APPS",
    "JsonOption",
    "VersionOption",
    "app",
    "main",
    "package_version",
    "parse_end",
    "parse_pairs",
]

COMMANDS: tuple[str, ...] = (
    "langflow_cms.cli.emulator",
    "langflow_cms.cli.demo",
    "langflow_cms.cli.doctor",
    "langflow_cms.cli.init",
    "langflow_cms.cli.export",
    "langflow_cms.cli.query",
)
"""Modules whose ``app`` commands become top-level commands, in this order."""
SUB_APPS: tuple[tuple[str, str], ...] = (
    ("dashboard", "langflow_cms.cli.dashboard"),
    ("alarms", "langflow_cms.cli.alarms"),
    ("guard", "langflow_cms.cli.guard"),
)
"""(name, module) of command groups; each module defines ``app = typer.Typer(...)``."""

app = typer.Typer(
    name="langflow-cms",
    help="Report Langflow flow metrics to Alibaba Cloud CloudMonitor (CMS), and read them back.",
    epilog=examples(
        "langflow-cms emulator --port 8765",
        "langflow-cms init",
        "langflow-cms doctor",
        "langflow-cms top --minutes 5",
        "langflow-cms compare --flow poem version=v1 version=v2",
        "langflow-cms dashboard grafana -o dashboard.json",
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(version: VersionOption = False) -> None:
    """Report Langflow flow metrics to Alibaba Cloud CloudMonitor (CMS), and read them back."""


def add_groups(target: typer.Typer, groups: tuple[tuple[str, str], ...] = SUB_APPS) -> None:
    """Add each (name, module) command group to ``target``. A group whose module cannot be imported
    becomes one command that says why, so the rest of the command line keeps working."""
    for name, module in groups:
        try:
            target.add_typer(importlib.import_module(module).app, name=name)
        except ImportError as error:
            _unavailable(target, name, error)


def _unavailable(target: typer.Typer, name: str, error: ImportError) -> None:
    @target.command(
        name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        help=f"(unavailable: {error})",
    )
    def broken(ctx: typer.Context) -> None:
        fail(f"not available in this installation: {error}", EXIT_FAILED, name)


for _module in COMMANDS:  # a nameless sub-app hands its commands to the root, in their order
    app.add_typer(importlib.import_module(_module).app)
add_groups(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``langflow-cms`` console script; returns the exit code."""
    try:
        app(args=argv, prog_name="langflow-cms", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
