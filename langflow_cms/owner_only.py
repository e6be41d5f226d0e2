"""Folders and files that only their owner can read: the spool and the host journal hold metric values,
dimension values and (redacted) failure events of someone else's flows.

Folders this package creates get mode 0700 (each missing parent too); files it writes get 0600. A folder
that exists already (``LANGFLOW_CMS_SPOOL_DIR=/tmp``) is never changed: its owner chose its mode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def make_folders(path: Path) -> None:
    """``path.mkdir(parents=True, exist_ok=True)``, every folder it creates owner-only."""
    missing = []
    current = Path(path)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue


def open_for_writing(path: Path, *, exclusive: bool = False) -> IO[str]:
    """A new or truncated text file, owner-only from its first byte (UTF-8)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, FILE_MODE), "w", encoding="utf-8")
