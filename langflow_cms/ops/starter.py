"""``langflow-cms init``: the examples an installed user needs, written into a folder of theirs.

The wheel carries them as package data (``langflow_cms/examples``; in the repository ``examples/`` holds the
same files): ``monitoring.toml`` (alarm rules as code, for ``langflow-cms alarms plan|apply|check``) and
``poem.json`` (a flow with a CMS Metric node and Timers, for Langflow's *Import* or ``lfx run``).
"""

from __future__ import annotations

from pathlib import Path

from langflow_cms import REPOSITORY_URL

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = {"monitoring.toml": EXAMPLES / "monitoring.toml", "poem.json": EXAMPLES / "flows" / "poem.json"}
"""Written name -> packaged file."""
REPOSITORY_PATHS = {
    "examples/monitoring.toml": "monitoring.toml",
    "examples/flows/poem.json": "poem.json",
    "docs/": f"{REPOSITORY_URL}/docs/",
}
"""Paths the files' own comments use, as the written copies are named."""


class InitError(RuntimeError):
    """A file would be overwritten, or cannot be written."""


def write_examples(folder: Path, *, force: bool = False) -> list[Path]:
    """Write the example files into ``folder`` (created when missing); returns the paths written. Existing
    files are kept (``InitError``, nothing written) unless ``force``."""
    targets = {name: folder / name for name in FILES}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing and not force:
        raise InitError(f"{', '.join(existing)} already exist(s): nothing written (--force overwrites)")
    written = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, source in FILES.items():
            text = source.read_text(encoding="utf-8")
            for old, new in REPOSITORY_PATHS.items():
                text = text.replace(old, new)
            targets[name].write_text(text, encoding="utf-8")
            written.append(targets[name])
    except OSError as exc:
        raise InitError(f"cannot write into {folder}: {exc.strerror or exc}") from None
    return written
