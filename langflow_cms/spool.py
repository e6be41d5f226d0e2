"""The disk spool: entries that could not be delivered outlive the process.

Write-ahead: each batch the reporter takes from its outbox is written here (atomically: a temporary file,
then a rename) *before* it is sent, shrunk as calls succeed and removed once CMS accepted all of it. So a
crash, a ``SIGKILL`` or an endpoint that stays down at any point of a send leaves the entries on disk, and
the next reporter with the same directory sends them. Type=1 entries are keyed by (series, period, window
start) and CMS keeps the last write of a key, so replaying an entry that had in fact arrived writes the
same values again: a replay never double-counts.

Ownership: a file's name carries the pid that wrote it. A reporter sends its own files and adopts those of
processes that are gone, by renaming them to its own pid (a rename is atomic, so two processes never
adopt the same file). Files of live processes are left alone.

Bounded: past ``max_bytes`` the oldest files are deleted and their entries counted as dropped.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("langflow_cms")

Entry = dict[str, str]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    """A directory of JSON files, one per batch of undelivered entries, oldest first."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.dropped = 0
        self._seq = itertools.count()
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, entries: list[Entry]) -> Path:
        """Store a new batch; returns its path. Enforces the size bound (oldest files go first)."""
        path = self.directory / f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq)}.json"
        self._write(path, entries)
        self._enforce_bound(keep=path)
        return path

    def rewrite(self, path: Path, entries: list[Entry]) -> None:
        """Keep only ``entries`` (what is still undelivered) in ``path``; remove it when nothing is left."""
        if entries:
            self._write(path, entries)
        else:
            path.unlink(missing_ok=True)

    def read(self, path: Path) -> list[Entry]:
        try:
            return json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            log.error("langflow-cms: unreadable spool file %s moved aside: %s", path.name, exc)
            path.replace(path.with_suffix(".bad"))
            return []

    def pending(self) -> list[Path]:
        """This process's files plus those it adopts from dead processes, oldest first."""
        mine = str(os.getpid())
        paths = []
        for path in sorted(self.directory.glob("*.json")):
            stamp, pid, seq = path.stem.split("-", 2)
            if pid != mine:
                if not pid.isdigit() or _alive(int(pid)):
                    continue
                adopted = path.with_name(f"{stamp}-{mine}-a{pid}.{seq}.json")
                try:
                    path.rename(adopted)
                except FileNotFoundError:  # another process adopted it first
                    continue
                path = adopted
            paths.append(path)
        return paths

    def entries(self) -> int:
        """How many entries wait on disk (all owners); for health and `doctor`."""
        return sum(len(self.read(p)) for p in sorted(self.directory.glob("*.json")))

    def _write(self, path: Path, entries: list[Entry]) -> None:
        temporary = path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(entries, handle, separators=(",", ":"), ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def _enforce_bound(self, keep: Path) -> None:
        files = sorted(self.directory.glob("*.json"))
        total = sum(p.stat().st_size for p in files)
        for oldest in files:
            if total <= self.max_bytes or oldest == keep:
                break
            size = oldest.stat().st_size
            lost = len(self.read(oldest))
            oldest.unlink(missing_ok=True)
            total -= size
            self.dropped += lost
            log.warning("langflow-cms: spool over %d bytes: dropped %d oldest entries", self.max_bytes, lost)
