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

Bounded: the whole directory stays within ``max_bytes``: past it, files already lost or not ours go first
(``bad/``, temporary files of killed writers, ``dead/``), then the oldest batches, whose entries are counted
as dropped; said once per process. The host journal is counted but never removed.

Never blocked by one bad file: a batch CMS rejects permanently (a parameter or permission error) moves to
``dead/`` with the reason beside it, is counted as failed, and the newer files go on. A file that is not a
batch of ours (a foreign name, JSON that is not a list of entries), or a roll-up snapshot that is not a
list of windows, moves to ``bad/``, said once per process. An owner whose lock cannot be probed is judged
by its pid; one file that cannot be adopted moves aside and never stops the listing.

Shared safely: a file another process took (or removed) between the listing and its use is skipped; no
file operation on someone else's file raises out of the spool.

The 300 s windows survive a crash too: every minute the reporter replaces ``rollup-<owner>.json`` with its
open 300 s windows, merged from the sealed 60 s ones. A process that finds the snapshot of a dead one sends
those windows (the dead process can add nothing more to them), so a ``SIGKILL`` costs only the open minute.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import json
import logging
import os
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from langflow_cms.owner_only import make_folders, open_for_writing
from langflow_cms.pipeline.window import Window

log = logging.getLogger("langflow_cms")

Entry = dict[str, str]
BATCH_NAME = re.compile(r"^(\d+)-([0-9a-z.]+)-([0-9a-z_]+)\.json$")
"""``<time ns>-<owner>-<seq>.json``; an adopted file keeps its time and takes the adopter's owner and a new
``a<seq>``, so its name has the same bounded length however many processes adopt it in turn."""
WRITE_CHUNK = 2000
"""List items per ``json.dumps`` call in ``write_atomically``."""
STALE_S = 600.0
"""A temporary file older than this belongs to a writer that was killed: the bound removes it first."""
BAD = "bad"
"""Where files that are not batches of ours go, for a human to look at."""


FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""A volume that takes no more bytes: the spool degrades to memory-only delivery while it lasts."""
_full_said = False


_REASONS = {
    errno.ENOSPC: "volume_full",
    errno.EDQUOT: "volume_full",
    errno.EROFS: "read_only",
    errno.EACCES: "not_writable",
    errno.EPERM: "not_writable",
    errno.ENOTDIR: "not_a_folder",
    errno.EISDIR: "not_a_folder",
    errno.EEXIST: "not_a_folder",
}
"""The ``reason`` of ``langflow_cms_spool_errors`` by errno (any other error: ``other``; a file that is not
ours: ``foreign_file``)."""
_errors: Counter[str] = Counter()
_errors_lock = threading.Lock()


def count_error(exc: BaseException | None, reason: str | None = None) -> None:
    """Count one failed spool operation (folder, batch, journal, snapshot) by reason; the reporter sends
    the count as ``langflow_cms_spool_errors`` (``spool_errors``)."""
    if reason is None:
        reason = _REASONS.get(getattr(exc, "errno", None), "other") if isinstance(exc, OSError) else "other"
    with _errors_lock:
        _errors[reason] += 1


def errors() -> Counter[str]:
    """A copy of this process's spool errors by reason (every reporter of the process shares them)."""
    with _errors_lock:
        return Counter(_errors)


def volume_full(exc: BaseException, directory: Path | str) -> bool:
    """Is ``exc`` a full (or read-only) volume? If so, it is said once per process, at WARNING, and the
    caller says nothing more: delivery goes on from memory, and what exit cannot deliver is counted.
    Every spool error passes here first: each is counted by reason (``count_error``)."""
    global _full_said
    count_error(exc)
    if not isinstance(exc, OSError) or exc.errno not in FULL:
        return False
    log.log(
        logging.DEBUG if _full_said else logging.WARNING,
        "langflow-cms: the spool volume of %s takes no more data (%s): delivering from memory only; what "
        "cannot be delivered at exit is counted as dropped",
        directory,
        exc.strerror or exc,
    )
    _full_said = True
    return True


def write_atomically(path: Path, data: object, fsync: bool = True, deadline: float | None = None) -> None:
    """``data`` as compact JSON in ``path``, through a temporary file renamed over it; a failed write
    (a full disk) removes its temporary file. A list is written in chunks, ``deadline`` (monotonic)
    checked between them: past it TimeoutError, and nothing was written."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open_for_writing(temporary) as handle:
            # json.dumps, not json.dump: dump streams through the pure-Python encoder (ten times slower);
            # chunks keep each call (which holds the interpreter lock) short
            if isinstance(data, list) and len(data) > WRITE_CHUNK:
                handle.write("[")
                for first in range(0, len(data), WRITE_CHUNK):
                    if deadline is not None and time.monotonic() >= deadline:
                        raise TimeoutError(f"{path.name}: not written before the deadline")
                    chunk = data[first : first + WRITE_CHUNK]
                    text = json.dumps(chunk, separators=(",", ":"), ensure_ascii=False)
                    handle.write(("," if first else "") + text[1:-1])
                handle.write("]")
            else:
                handle.write(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def valid_batch(data: object) -> bool:
    """A batch is a list of entries: objects with a metric or event name whose fields are all strings."""
    return isinstance(data, list) and all(
        isinstance(entry, dict)
        and ("MetricName" in entry or "EventName" in entry)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in entry.items())
        for entry in data
    )


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
    pid = owner.split(".", 1)[0]
    try:
        held = lock_held(directory / "owners" / f"{owner}.lock")
    except OSError as exc:  # not a lock we can probe (another user's, a directory): the pid decides
        _say_lock_error(directory, owner, exc)
        return pid.isdigit() and _pid_alive(int(pid))
    if held is None:
        return pid.isdigit() and _pid_alive(int(pid)) and "." not in owner
    return held


_lock_error_said = False


def _say_lock_error(directory: Path, owner: str, exc: OSError) -> None:
    """Said once per process at WARNING (then DEBUG): an owner's lock that cannot be probed."""
    global _lock_error_said
    log.log(
        logging.DEBUG if _lock_error_said else logging.WARNING,
        "langflow-cms: cannot probe the lock of spool owner %s in %s (%s): judged by its pid instead",
        owner[:80],
        directory,
        exc.strerror or exc,
    )
    _lock_error_said = True


def lock_held(lock: Path) -> bool | None:
    """Does a live process hold the ``flock`` on ``lock``? None when there is no such file. A lock file
    nobody holds (its process died) is removed."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return None
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
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if BATCH_NAME.match(path.name) and valid_batch(data):
            total += len(data)
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
        self._over = 0
        """Times the bound removed files (said at WARNING the first time, then at DEBUG)."""
        self.set_aside = 0
        """Files moved to ``bad/`` by this process (the first one is said at WARNING, the others at DEBUG)."""
        self.adopt = True
        """Adopt dead owners' files in ``pending``; off in a host's non-sender processes, so one process
        (the sender) replays them, in order."""
        make_folders(self.directory / "owners")
        self._lock_fd = os.open(self.directory / "owners" / f"{owner}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        """Give up ownership (a forked child does this with the parent's spool before opening its own: the
        lock file stays, the parent still holds it). Only once: a second close could hit a reused fd."""
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        """The owner is done (its reporter closed): its lock file goes too, so a clean process leaves none
        behind; what it left in the spool is the next process's to adopt."""
        with contextlib.suppress(OSError):
            (self.directory / "owners" / f"{self.owner}.lock").unlink(missing_ok=True)
        self.release()

    def probe(self) -> None:
        """One small write to the folder, removed at once. OSError: the spool cannot take data now."""
        path = self.directory / f".probe-{self.owner}.tmp"  # a temporary file: no listing takes it
        try:
            with open_for_writing(path) as probe:
                probe.write("x" * 64)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def dead_letter(self, path: Path, reason: str) -> None:
        """Move a batch CMS refused permanently to ``dead/``, with the reason in a ``.why`` file beside it."""
        dead = self.directory / "dead"
        make_folders(dead)
        target = dead / path.name
        try:
            path.replace(target)
        except FileNotFoundError:
            return  # another process took it
        with contextlib.suppress(OSError), open_for_writing(target.with_suffix(".why")) as why:
            why.write(reason + "\n")
        self._enforce_bound()
        log.error(
            "langflow-cms: CMS refused spool batch %s permanently (%s); moved to %s", path.name, reason, dead
        )

    # --- the 300 s roll-up snapshot -----------------------------------------------------------------------
    def save_rollup(self, windows: list[dict[str, Any]], deadline: float | None = None) -> None:
        """Replace this owner's snapshot of open 300 s windows, and of the sealed ones it is handing on
        (atomically); none left removes it. TimeoutError: not written by ``deadline`` (the old one stays)."""
        path = self.directory / f"rollup-{self.owner}.json"
        if windows:
            write_atomically(path, windows, deadline=deadline)
        else:
            path.unlink(missing_ok=True)

    def orphaned_rollups(self) -> list[tuple[Path, list[Window]]]:
        """Snapshots of dead owners, claimed by this one: (claimed file, windows). The caller removes the
        file once the windows are safe (spooled as entries, or in the host journal). A snapshot that is
        not a list of windows (unreadable, or JSON of another shape) moves to ``bad/``.

        Idempotent: a snapshot claimed (``claimed-<claimer>-rollup-<owner>.json``) by a process that died
        before removing it is claimed again, so a second kill during adoption loses nothing; the windows
        then reach delivery twice with the same values for the same keys (never counted twice)."""
        found = []
        for path in sorted(self.directory.glob("*rollup-*.json")):
            claimer, _, snapshot = path.name.partition("-rollup-")
            if claimer == "rollup" or not snapshot:  # an unclaimed ``rollup-<owner>.json``
                holder, snapshot = path.stem.split("-", 1)[1], path.name
            elif claimer.startswith("claimed-"):
                holder, snapshot = claimer.removeprefix("claimed-"), f"rollup-{snapshot}"
            else:
                continue
            try:
                if holder == self.owner or _owner_alive(self.directory, holder):
                    continue
                claimed = path.with_name(f"claimed-{self.owner}-{snapshot}")
                path.rename(claimed)  # atomic: only one process takes it
            except FileNotFoundError:
                continue
            except OSError as exc:  # one file never stops the others
                self.move_aside(path, f"a roll-up snapshot that could not be claimed: {exc}")
                continue
            try:
                data = json.loads(claimed.read_text("utf-8"))
                if not isinstance(data, list):
                    raise TypeError(f"a JSON {type(data).__name__}, not a list of windows")
                found.append((claimed, [Window.from_dict(window) for window in data]))
            except FileNotFoundError:
                continue
            except Exception as exc:  # any shape at all: TypeError, KeyError, AttributeError, ValueError
                self.move_aside(claimed, f"not a roll-up snapshot ({type(exc).__name__}: {str(exc)[:100]})")
        return found

    def write(self, entries: list[Entry]) -> Path:
        """Store a new batch; returns its path. Enforces the size bound (oldest files go first)."""
        path = self.directory / f"{time.time_ns():020d}-{self.owner}-{next(self._seq)}.json"
        self._write(path, entries)
        self._enforce_bound(keep=path)
        return path

    def rewrite(self, path: Path, entries: list[Entry]) -> bool:
        """Keep only ``entries`` (what is still undelivered) in ``path``; remove it when nothing is left.
        False when the file is gone (another process took it: the rest is theirs to send)."""
        if not path.exists():
            return False
        if entries:
            self._write(path, entries)
        else:
            path.unlink(missing_ok=True)
        return True

    def read(self, path: Path) -> list[Entry]:
        """The entries of a batch file; [] when it is gone, or is not a batch (then it moves to ``bad/``)."""
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return []  # another process took it
        except (OSError, ValueError) as exc:
            self.move_aside(path, f"unreadable: {exc}")
            return []
        if not valid_batch(data):
            self.move_aside(path, "not a list of metric or event entries")
            return []
        return data

    def move_aside(self, path: Path, why: str) -> None:
        """A file that is not a batch of ours goes to ``bad/`` (said once per process): it never blocks the
        others, and nothing deletes what a human may want to look at (``bad/`` counts toward the bound)."""
        target = self.directory / BAD / path.name
        try:
            make_folders(target.parent)
            path.replace(target)
        except FileNotFoundError:
            return  # another process moved or took it
        except OSError as exc:
            why = f"{why}; could not move it ({exc})"
        self.set_aside += 1
        count_error(None, "foreign_file")
        log.log(
            logging.WARNING if self.set_aside == 1 else logging.DEBUG,
            "langflow-cms: file %s in the spool %s is not a batch of ours (%s): moved aside to %s; "
            "delivering the rest",
            path.name,
            self.directory,
            why,
            target.parent,
        )
        self._enforce_bound()

    def pending(self) -> list[Path]:
        """This process's files plus those it adopts from dead processes, oldest first. A file whose name is
        not a batch's moves to ``bad/``."""
        mine = self.owner
        paths = []
        for path in sorted(self.directory.glob("*.json")):
            if not path.name[0].isdigit():
                continue  # roll-up snapshots
            match = BATCH_NAME.match(path.name)
            if match is None:
                self.move_aside(path, "not a batch file name")
                continue
            stamp, owner, _ = match.groups()
            if owner != mine:
                if not self.adopt:
                    continue
                try:
                    path = self._adopt(path, stamp, owner)
                except OSError as exc:  # one file never stops the listing
                    self.move_aside(path, f"could not be adopted: {exc}")
                    continue
                if path is None:
                    continue
            paths.append(path)
        return paths

    def _adopt(self, path: Path, stamp: str, owner: str) -> Path | None:
        """``path`` renamed to this owner (it keeps its time, so the order holds); None when its owner
        lives, or another process adopted it first."""
        if _owner_alive(self.directory, owner):
            return None
        adopted = path.with_name(f"{stamp}-{self.owner}-a{next(self._seq)}.json")
        try:
            path.rename(adopted)
        except FileNotFoundError:
            return None
        return adopted

    def own_entries(self) -> int:
        """How many entries wait in this owner's files."""
        return sum(
            len(self.read(path)) for path in sorted(self.directory.glob(f"[0-9]*-{self.owner}-*.json"))
        )

    def entries(self) -> int:
        """How many entries wait on disk (all owners); for health and `doctor`."""
        return waiting_entries(self.directory)

    def _write(self, path: Path, entries: list[Entry]) -> None:
        write_atomically(path, entries)

    def _enforce_bound(self, keep: Path | None = None) -> None:
        """Keep the whole directory tree within ``max_bytes``: first what is already lost or not ours
        (``bad/``, temporary files of killed writers, then ``dead/`` letters, oldest first, already counted
        as failed, and the host journal's records of windows already handed over), then the oldest batches
        (counted as dropped). The journal's unmerged window files are never removed; ``keep`` neither."""
        files: dict[Path, int] = {}
        for root, _, names in os.walk(self.directory):
            for name in names:
                files[Path(root) / name] = _size(Path(root) / name)
        total = sum(files.values())
        if total <= self.max_bytes:
            return
        now = time.time()
        host = self.directory / "host"

        def category(path: Path) -> int | None:
            if path == keep:
                return None
            if path.is_relative_to(host):  # unmerged window files are unsent data: never removed here
                if path.suffix == ".bad":
                    return 0
                # spent: a sender's record of windows already handed over (kept only so that a late file
                # re-merges with them); it goes before any batch not yet sent
                return 1 if path.name == "merged.json" else None
            if path.parent.name == BAD or (path.name.endswith(".tmp") and now - _mtime(path) > STALE_S):
                return 0
            if path.parent.name == "dead":
                return 1
            if BATCH_NAME.match(path.name):
                return 2
            return None

        ranked = sorted(
            ((category(path), _mtime(path) if category(path) != 2 else 0, path.name, path) for path in files),
            key=lambda item: (item[0] if item[0] is not None else 9, item[1], item[2]),
        )
        removed = lost = 0
        for rank, _, _, path in ranked:
            if total <= self.max_bytes or rank is None:
                break
            if rank == 2:
                lost += len(self.read(path))
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
            total -= files[path]
        self.dropped += lost
        self._over += 1
        log.log(
            logging.WARNING if self._over == 1 else logging.DEBUG,
            "langflow-cms: the spool %s is over its bound of %d bytes (LANGFLOW_CMS_SPOOL_MAX_MB): "
            "removed %d files, %d undelivered entries among them (counted as dropped)%s",
            self.directory,
            self.max_bytes,
            removed,
            lost,
            "" if total <= self.max_bytes else f"; still {total} bytes (the host journal, the newest batch)",
        )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _size(path: Path) -> int:
    """A file's size; 0 when another process removed it meanwhile."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
