"""Per-host merge: the processes of one host hand their sealed windows to one elected sender.

The model is prometheus_client's multiprocess mode (per-process files, merged at collection), with the sealed
window as the unit. It lives in the spool directory, under ``host/<hostname>/``:

* **Every process** writes the windows it seals to ``<period>-<start>/<owner>.json`` (atomically: a
  temporary file, then a rename). Its windows already carry the host's ``instance`` (``<host>-<id>``, the
  id made once per journal, see :meth:`HostJournal.instance`), the same in every process, so equal series
  of different processes have equal keys.
* **One process per host sends.** It holds an exclusive ``flock`` on ``sender.lock`` for as long as it
  lives; the kernel drops the lock when it dies (a SIGKILL too), and the next process that tries takes over
  at its next cycle. The others only write.
* **The sender merges window by window**, ``GRACE_S`` after a window's end (every live process has written
  it by then): count, sum, min, max and the sketch merge exactly. It hands the merged windows to the
  delivery path (written ahead to the spool), then records them in ``merged.json`` with the names of the
  files they include, and deletes those files.
* **Exactly once, in CMS's terms.** A Type=1 entry is keyed by (series, period, start), and CMS keeps the
  last write of a key. A file that arrives after its window was merged (a slow process, the snapshot of a
  process that died) is merged *into the recorded result* and the whole aggregate is sent again, so the
  last write is always the complete one. A sender killed between the hand-off and the record leaves the
  files in place: its successor merges the same files again and sends the same values (its own spooled
  copy is adopted and sent too; the same key, the same values). Nothing is counted twice, nothing is lost
  but the open minute of a process that is killed.
* Merged results are kept ``keep_s(period)`` (10 minutes for 60 s windows, an hour for 300 s ones, which
  a dead process's snapshot can still reach); a window older than that is refused at write time, counted,
  never sent on its own. A folder that cannot be read is moved aside (``bad-*``) and sends nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from langflow_cms.delivery.spool import lock_held, volume_full, write_atomically
from langflow_cms.owner_only import make_folders, open_for_writing
from langflow_cms.pipeline.window import Window

log = logging.getLogger("langflow_cms")

GRACE_S = 10.0
"""A window is merged this long after its end: each process seals at the minute boundary, within seconds."""
MERGED = "merged.json"


def keep_s(period: int) -> float:
    """How long a merged window is kept, so a late file re-merges with it instead of replacing it: a slow
    worker's 60 s file comes within minutes; a dead process's 300 s snapshot when a replacement starts."""
    return 600.0 if period <= 60 else 3600.0


T = TypeVar("T")
R = TypeVar("R")
CHUNK = 1000
"""Windows encoded between two looks at a deadline."""


def past(deadline: float | None) -> bool:
    """True when the monotonic ``deadline`` has passed (None: no deadline)."""
    return deadline is not None and time.monotonic() >= deadline


def within(deadline: float | None, items: Sequence[T], encode: Callable[[T], R]) -> list[R] | None:
    """``encode`` applied to every item, or None when ``deadline`` (monotonic) passed first (checked
    every ``CHUNK`` items: at close, encoding 100,000 windows takes seconds)."""
    out: list[R] = []
    for first in range(0, len(items), CHUNK):
        if past(deadline):
            return None
        out += [encode(item) for item in items[first : first + CHUNK]]
    return out


def host_directory(spool_dir: Path, host: str | None = None) -> Path:
    """The journal of this host inside a spool directory (one per host even on a shared volume)."""
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in (host or socket.gethostname())) or "host"
    return Path(spool_dir) / "host" / name


def _write_json(path: Path, data: object) -> None:
    """Atomic against a process's death (a rename); no fsync: the journal lives and dies with the pod's
    volume, and the merged windows reach the spool (which does fsync) before they are recorded."""
    write_atomically(path, data, fsync=False)


def _read_windows(path: Path) -> list[Window]:
    return [Window.from_dict(w) for w in json.loads(path.read_text("utf-8"))]


def _merged_state(folder: Path) -> dict:
    """What the sender recorded for a folder (raises on a damaged record: the caller sets it aside)."""
    path = folder / MERGED
    if not path.exists():
        return {"files": [], "windows": []}
    state = json.loads(path.read_text("utf-8"))
    if not isinstance(state, dict) or not isinstance(state.get("files"), list):
        raise ValueError(f"{path} is not a merged-window record")
    return state


def merge_windows(groups: list[list[Window]]) -> list[Window]:
    """Windows of the same series, period and start merged into one each (order kept)."""
    merged: dict[tuple, Window] = {}
    for windows in groups:
        for window in windows:
            target = merged.get(window.key)
            if target is None:
                merged[window.key] = Window.from_dict(window.to_dict())
            else:
                target.merge(window)
    return list(merged.values())


class HostJournal:
    """This process's view of the host journal: write sealed windows; when elected, merge and hand over."""

    def __init__(self, directory: Path, owner: str) -> None:
        self.directory = Path(directory)
        self.owner = owner
        make_folders(self.directory)
        self._fd: int | None = None
        """``sender.lock``, opened by the first election and kept (recorded before it is locked), shared by
        the process's threads: a child forked during an election gets a descriptor ``forget()`` closes."""
        self._elected = False
        self._electing = threading.Lock()
        """The process's threads elect one at a time (the reporter thread at start and ``close()``)."""
        self._resigned = False
        """Set by ``resign()`` for good: a stopped reporter thread cannot take the lock back."""
        self.refused = 0
        """Windows refused because their merged result is gone (older than ``keep_s``): never sent alone."""
        self._failing: set[tuple[str, str, int | None]] = set()
        """(operation, error type, errno) logged and not cleared yet: logged once while they last."""
        self._live_fd: int | None = None

    # --- who may still write ----------------------------------------------------------------------------
    def join(self) -> None:
        """A process that writes windows here holds ``live/<owner>.lock`` while it may still write (the
        kernel drops it when the process dies): a window is final, and may be sent before its grace
        period, only when no other process of the host may add to it."""
        with contextlib.suppress(OSError):
            live = self.directory / "live"
            make_folders(live)
            self._live_fd = os.open(live / f"{self.owner}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._live_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def leave(self) -> None:
        """This process writes no more windows (at close, once its last ones are in the journal)."""
        if self._live_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._live_fd)
            self._live_fd = None
            with contextlib.suppress(OSError):  # a spool folder gone or replaced: close() never raises
                (self.directory / "live" / f"{self.owner}.lock").unlink(missing_ok=True)

    def others_alive(self) -> bool:
        """Does another process of the host hold its live lock (so it may still add to open windows)?"""
        try:
            locks = list((self.directory / "live").glob("*.lock"))
        except OSError:
            return True
        return any(lock.stem != self.owner and lock_held(lock) for lock in locks)

    def orphaned_hosts(self) -> list[HostJournal]:
        """The journals of other host names in the same spool that no live process writes to any more
        (a pod's only worker was killed), each with its sender lock taken by this process: the caller
        merges them (their windows keep their own host's instance) and resigns."""
        found = []
        try:
            others = [d for d in self.directory.parent.iterdir() if d.is_dir() and d != self.directory]
        except OSError:
            return []
        for directory in sorted(others):
            orphan = HostJournal(directory, self.owner)
            if orphan.others_alive() or not orphan.elect():
                continue
            if orphan.others_alive():  # a process of that host started meanwhile: it sends its own
                orphan.resign()
                continue
            found.append(orphan)
        return found

    def instance(self, host: str) -> str:
        """``<host>-<id>``: the id is made once per journal (``instance.id``), so every process of the host
        shares it, and a new pod that reuses a name (a StatefulSet) with a fresh volume gets a new one."""
        path = self.directory / "instance.id"
        with contextlib.suppress(FileExistsError), open_for_writing(path, exclusive=True) as handle:
            try:
                handle.write(secrets.token_hex(3))
                handle.flush()
            except OSError:  # a full disk: no empty id left behind for the next process to wait on
                path.unlink(missing_ok=True)
                raise
        for _ in range(50):  # another process may be between its create and its write
            token = path.read_text("utf-8").strip()
            if token:
                break
            time.sleep(0.01)
        suffix = f"-{token or 'x'}"
        return host[: 64 - len(suffix)] + suffix

    # --- every process --------------------------------------------------------------------------------
    def write(
        self,
        windows: list[Window],
        owner: str | None = None,
        adopted: bool = False,
        now: float | None = None,
        deadline: float | None = None,
    ) -> list[Window]:
        """Store sealed windows for the sender, in ``<period>-<start>/<owner>.json``; returns the windows
        that could not be written (OSError), or not before ``deadline`` (monotonic), for the caller to keep.

        A process seals each window once, so the name says whose it is. ``adopted``: the 300 s snapshot of
        a dead ``owner``, written only where that owner had not sealed the window itself (it may have died
        after sealing it, before its snapshot changed): never counted twice.
        """
        owner = owner or self.owner
        now = time.time() if now is None else now
        by_window: dict[tuple[int, int], list[Window]] = {}
        for window in windows:
            by_window.setdefault((window.period, window.start), []).append(window)
        failed: list[Window] = []
        for (period, start), group in by_window.items():
            if start + period + keep_s(period) - 60 < now:
                self.refused += len(group)  # its merged result may be gone: alone, it would replace it
                continue
            folder = self.directory / f"{period}-{start}"
            try:
                make_folders(folder)
                try:
                    merged = set(_merged_state(folder)["files"])
                except ValueError:  # damaged: the sender sets the folder aside when it sees this file
                    merged = set()
                taken = merged | {p.name for p in folder.glob("*.json")}
                name = f"{owner}.json"
                if name in taken:
                    if adopted:
                        continue
                    name = next(
                        f"{owner}.{n}.json" for n in range(1, 10_000) if f"{owner}.{n}.json" not in taken
                    )
                encoded = within(deadline, group, Window.to_dict)
                if encoded is None:
                    failed += group
                    continue
                _write_json(folder / name, encoded)
            except (OSError, ValueError, StopIteration) as exc:
                self._error_once("write", "cannot write to the host journal %s: %s", folder, exc)
                failed += group
        if by_window and not failed:  # a write that worked (not an empty one) ends the error
            self._cleared("write")
        return failed

    # --- the sender -----------------------------------------------------------------------------------
    @property
    def elected(self) -> bool:
        return self._elected

    def elect(self, wait: float = 0.0) -> bool:
        """Become (or stay) the host's sender; ``wait`` seconds at most for the current one to go."""
        give_up = time.monotonic() + wait
        while True:
            with self._electing:
                if self._elected or self._resigned:
                    return self._elected
                try:
                    if self._fd is None:
                        self._fd = os.open(self.directory / "sender.lock", os.O_RDWR | os.O_CREAT, 0o600)
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self._cleared("lock")  # another process sends; try again after a pause
                except OSError as exc:
                    self._error_once("lock", "cannot take the host sender lock: %s", exc)
                    return False
                else:
                    self._cleared("lock")
                    self._elected = True
                    with contextlib.suppress(OSError):
                        os.ftruncate(self._fd, 0)
                        os.write(self._fd, f"{self.owner}\n".encode())
                    return True
            if time.monotonic() >= give_up:
                return False
            time.sleep(0.05)

    def _error_once(self, what: str, message: str, *args: object) -> None:
        """Log an error at ERROR the first time, then at DEBUG while the same error of the same operation
        goes on (the reporter thread retries every cycle); a different error is logged again, and so is the
        same one after the operation succeeded (``_cleared``)."""
        exc = args[-1] if args and isinstance(args[-1], BaseException) else None
        if exc is not None and volume_full(exc, self.directory):
            self._failing.add((what, type(exc).__name__, getattr(exc, "errno", None)))
            return
        key = (what, type(exc).__name__, getattr(exc, "errno", None))
        level = logging.DEBUG if key in self._failing else logging.ERROR
        self._failing.add(key)
        log.log(level, "langflow-cms: " + message, *args)

    def _cleared(self, what: str) -> None:
        if self._failing:
            self._failing = {key for key in self._failing if key[0] != what}

    def resign(self) -> None:
        """Stop being the sender for good (at close): another process takes over at its next cycle."""
        with self._electing:
            self._resigned, self._elected = True, False
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None

    def forget(self) -> None:
        """In a forked child: drop the parent's descriptor without unlocking (the lock stays the parent's)."""
        self._electing = threading.Lock()  # a thread of the parent may have held it at the fork
        self._elected = False
        self._failing = set()  # the child logs its own errors
        if self._live_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._live_fd)  # the parent's lock stays the parent's (closing a copy keeps it)
            self._live_fd = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def ready(self, now: float, force: bool = False) -> list[tuple[Path, list[Window], list[str]]]:
        """The windows to (re)send: (folder, merged windows, files they include) for each window whose
        period ended ``GRACE_S`` ago (any, with ``force``) and that has files not merged yet. Never raises
        for one folder: a damaged one is moved aside (``bad-<name>``) and sends nothing."""
        found = []
        try:
            folders = sorted(self.directory.iterdir())
        except OSError as exc:
            self._error_once("read", "cannot read the host journal %s: %s", self.directory, exc)
            return []
        self._cleared("read")
        for folder in folders:
            period, dash, start = folder.name.partition("-")
            if not (dash and period.isdigit() and start.isdigit()):
                continue
            end = int(start) + int(period)
            if not force and now < end + GRACE_S:
                continue
            try:
                item = self._ready_folder(folder, now, end, int(period))
            except Exception as exc:
                log.error("langflow-cms: host journal folder %s set aside: %s", folder.name, exc)
                with contextlib.suppress(OSError):
                    folder.rename(folder.with_name(f"bad-{folder.name}"))
                continue
            if item is not None:
                found.append(item)
        return found

    def _ready_folder(
        self, folder: Path, now: float, end: int, period: int
    ) -> tuple[Path, list[Window], list[str]] | None:
        files = [p for p in folder.glob("*.json") if p.name != MERGED]
        if not files:
            if now > end + keep_s(period):
                shutil.rmtree(folder, ignore_errors=True)
            return None
        state = _merged_state(folder)
        included = set(state["files"])
        for stale in (p for p in files if p.name in included):
            stale.unlink(missing_ok=True)  # merged and recorded by a sender that died before deleting
        new = sorted(p for p in files if p.name not in included)
        if not new:
            return None
        groups = [[Window.from_dict(w) for w in state.get("windows", [])]]
        names = set(included)
        for path in new:
            try:
                groups.append(_read_windows(path))
            except (ValueError, KeyError, TypeError) as exc:  # one damaged file costs only itself
                log.error("langflow-cms: unreadable host journal file %s moved aside: %s", path, exc)
                path.replace(path.with_suffix(".bad"))
                continue
            names.add(path.name)
        if names == included:
            return None
        return folder, merge_windows(groups), sorted(names)

    def commit(self, folder: Path, windows: list[Window], names: list[str]) -> None:
        """Record that ``windows`` (made of the files ``names``) were handed over; delete those files."""
        _write_json(folder / MERGED, {"files": names, "windows": [w.to_dict() for w in windows]})
        for name in names:
            (folder / name).unlink(missing_ok=True)
