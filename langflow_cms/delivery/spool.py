"""The disk spool: entries that could not be delivered outlive the process.

Write-ahead: each batch the reporter takes from its outbox is written here (atomically: a temporary file,
then a rename) *before* it is sent, shrunk as calls succeed and removed once CMS accepted all of it. So a
crash, a ``SIGKILL`` or an endpoint that stays down at any point of a send leaves the entries on disk, and
the next reporter with the same directory sends them. Type=1 entries are keyed by (series, period, window
start) and CMS keeps the last write of a key, so replaying an entry that had in fact arrived writes the
same values again: a replay never double-counts.

Ownership: a file's name carries the owner that wrote it (``<pid>.<start id>``; each owner holds a file
lock while it lives). A reporter sends its own files and adopts those of owners that are gone, by renaming
them to its own name (a rename is atomic, so two processes never adopt the same file). Files of live
processes are left alone.

Bounded: past ``max_bytes`` the oldest files are deleted and their entries counted as dropped.

Never blocked by one bad file: a batch CMS rejects permanently (a parameter or permission error) moves to
``dead/`` with the reason beside it, is counted as failed, and the newer files go on.

The 300 s windows survive a crash too: every minute the reporter replaces ``rollup-<owner>.json`` with its
open 300 s windows, merged from the sealed 60 s ones. A process that finds the snapshot of a dead one sends
those windows (the dead process can add nothing more to them), so a ``SIGKILL`` costs only the open minute.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from langflow_cms.owner_only import make_folders, open_for_writing

log = logging.getLogger("langflow_cms")

Entry = dict[str, str]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_alive(directory: Path, owner: str) -> bool:
    """Is the process that wrote as ``owner`` (``<pid>.<start id>``) still running?

    Each owner holds an exclusive ``flock`` on ``owners/<owner>.lock`` while it lives, and the kernel drops
    it when the process ends (a SIGKILL included). Unlike a pid check this is right when a restarted
    container reuses the pid (PID 1) of the process it replaces.
    """
    lock = directory / "owners" / f"{owner}.lock"
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        pid = owner.split(".", 1)[0]
        return pid.isdigit() and _pid_alive(int(pid)) and "." not in owner
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the probe's lock
    lock.unlink(missing_ok=True)
    return False


def waiting_entries(directory: Path) -> int:
    """How many entries wait in a spool directory (all owners), without taking ownership (``doctor``)."""
    total = 0
    for path in sorted(Path(directory).glob("[0-9]*.json")):
        try:
            total += len(json.loads(path.read_text("utf-8")))
        except (OSError, ValueError):
            continue
    return total


class Spool:
    """A directory of JSON files, one per batch of undelivered entries, oldest first."""

    def __init__(self, directory: Path, max_bytes: int, owner: str) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.dropped = 0
        self.owner = owner
        """Who writes here now: ``<pid>.<start id>`` (files of owners that are gone are adopted)."""
        self._seq = itertools.count()
        self.adopt = True
        """Adopt dead owners' files in ``pending``; off in a host's non-sender processes, so one process
        (the sender) replays them, in order."""
        make_folders(self.directory / "owners")
        self._lock_fd = os.open(self.directory / "owners" / f"{owner}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        """Give up ownership (a forked child does this with the parent's spool before opening its own)."""
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    def dead_letter(self, path: Path, reason: str) -> None:
        """Move a batch CMS refused permanently to ``dead/``, with the reason in a ``.why`` file beside it."""
        dead = self.directory / "dead"
        make_folders(dead)
        target = dead / path.name
        path.replace(target)
        with open_for_writing(target.with_suffix(".why")) as why:
            why.write(reason + "\n")
        log.error(
            "langflow-cms: CMS refused spool batch %s permanently (%s); moved to %s", path.name, reason, dead
        )

    # --- the 300 s roll-up snapshot -----------------------------------------------------------------------
    def save_rollup(self, windows: list[dict[str, Any]]) -> None:
        """Replace this owner's snapshot of open 300 s windows, and of the sealed ones it is handing on
        (atomically); none left removes it."""
        path = self.directory / f"rollup-{self.owner}.json"
        if windows:
            self._write(path, windows)  # type: ignore[arg-type]
        else:
            path.unlink(missing_ok=True)

    def orphaned_rollups(self) -> list[tuple[Path, list[dict[str, Any]]]]:
        """Snapshots of dead owners, claimed by this one: (claimed file, windows). The caller removes the
        file once the windows are safe (spooled as entries)."""
        found = []
        for path in sorted(self.directory.glob("rollup-*.json")):
            owner = path.stem.split("-", 1)[1]
            if owner == self.owner or _owner_alive(self.directory, owner):
                continue
            claimed = path.with_name(f"claimed-{self.owner}-{path.name}")
            try:
                path.rename(claimed)  # atomic: only one process takes it
            except FileNotFoundError:
                continue
            try:
                found.append((claimed, json.loads(claimed.read_text("utf-8"))))
            except (OSError, ValueError) as exc:
                log.error("langflow-cms: unreadable roll-up snapshot %s skipped: %s", path.name, exc)
                claimed.unlink(missing_ok=True)
        return found

    def write(self, entries: list[Entry]) -> Path:
        """Store a new batch; returns its path. Enforces the size bound (oldest files go first)."""
        path = self.directory / f"{time.time_ns():020d}-{self.owner}-{next(self._seq)}.json"
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
        mine = self.owner
        paths = []
        for path in sorted(self.directory.glob("*.json")):
            if not path.name[0].isdigit():
                continue  # roll-up snapshots
            stamp, pid, seq = path.stem.split("-", 2)
            if pid != mine:
                if not self.adopt or _owner_alive(self.directory, pid):
                    continue
                adopted = path.with_name(f"{stamp}-{mine}-a{pid.replace('.', '_')}_{seq}.json")
                try:
                    path.rename(adopted)
                except FileNotFoundError:  # another process adopted it first
                    continue
                path = adopted
            paths.append(path)
        return paths

    def entries(self) -> int:
        """How many entries wait on disk (all owners); for health and `doctor`."""
        return sum(len(self.read(p)) for p in sorted(self.directory.glob("[0-9]*.json")))

    def _write(self, path: Path, entries: list[Entry]) -> None:
        temporary = path.with_suffix(".tmp")
        with open_for_writing(temporary) as handle:
            json.dump(entries, handle, separators=(",", ":"), ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def _enforce_bound(self, keep: Path) -> None:
        files = sorted(self.directory.glob("[0-9]*.json"))
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
