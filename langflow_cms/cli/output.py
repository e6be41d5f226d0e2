"""How the command line prints: colour only on a terminal, ASCII when the terminal cannot show ✓ and ✗,
JSON for scripts, errors on stderr with a documented exit code."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, NoReturn

import typer

EXIT_OK = 0
EXIT_FAILED = 1
"""The command ran but the answer is bad: CloudMonitor refused or could not be reached, doctor found a
problem."""
EXIT_USAGE = 2
"""Bad arguments or configuration (also what click uses for usage errors)."""
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 failed (CloudMonitor answered with an error or could not be reached, or "
    "doctor found something to fix); 2 bad usage or configuration; 130 interrupted."
)


def examples(*lines: str) -> str:
    """A command's epilog: examples (one per line) and the exit codes."""
    body = "\n\n".join(f"  {line}" for line in lines)
    return f"Examples:\n\n{body}\n\n{EXIT_CODES_HELP}"


def can_encode(text: str, stream: Any = None) -> bool:
    """True when ``stream`` (default stdout) can print ``text`` in its encoding."""
    encoding = getattr(stream or sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def marks(stream: Any = None) -> tuple[str, str]:
    """(ok, fail) marks: ✓/✗, or OK/FAIL when the output encoding cannot show them."""
    return ("✓", "✗") if can_encode("✓✗", stream) else ("OK", "FAIL")


def ascii_text(text: str, stream: Any = None) -> str:
    """``text`` with ✓/✗ replaced by OK/FAIL (and anything else unprintable escaped) when needed."""
    if can_encode(text, stream):
        return text
    text = text.replace("✓", "OK").replace("✗", "FAIL")
    encoding = getattr(stream or sys.stdout, "encoding", None) or "ascii"
    return text.encode(encoding, errors="replace").decode(encoding, errors="replace")


def console(stderr: bool = False) -> Any:
    """A rich console: colour and styles only on a terminal (and never with NO_COLOR), no highlighting of
    numbers. Piped output is 160 columns wide (``COLUMNS`` overrides), so tables are not cut to 80."""
    import os

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    wide = None if _isatty(stream) or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=wide)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def table_box(stream: Any = None) -> Any:
    """Box style for rich tables: ASCII when the output encoding cannot draw the default lines."""
    from rich import box

    return box.HEAVY_HEAD if can_encode("━┃│─┏", stream) else box.ASCII


def print_json(data: Any) -> None:
    """JSON on stdout, for scripts: stable key order, non-ASCII escaped."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = EXIT_FAILED, command: str | None = None) -> NoReturn:
    """Print ``langflow-cms [command]: message`` as one line on stderr and exit with ``code``."""
    prefix = f"langflow-cms {command}" if command else "langflow-cms"
    line = " ".join(f"{prefix}: {message}".split("\n"))
    sys.stderr.write(ascii_text(line, sys.stderr) + "\n")
    raise typer.Exit(code)


def package_version() -> str:
    """The installed distribution's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("langflow-cms")
    except PackageNotFoundError:
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"langflow-cms {package_version()}")
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version",
        callback=_show_version,
        is_eager=True,
        help="Print the version and exit.",
        show_default=False,
    ),
]
"""``--version`` for any command or group: add ``version: VersionOption = False`` to its parameters."""
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")]


def epilog(exit_help: str, *examples: str) -> str:
    """A command's ``--help`` epilog: its examples, then what its exit codes mean."""
    body = "\n\n".join(f"  {line}" for line in examples)
    return f"Examples:\n\n{body}\n\n{exit_help}"
