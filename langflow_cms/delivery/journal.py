"""Per-host merge: the processes of one host hand their sealed windows to one elected sender.

The model is prometheus_client's multiprocess mode (per-process files, merged at collection), with the sealed
window as the unit. It lives in the spool directory, under ``host/<hostname>/``:

* **Every process** writes each batch of windows it seals to ``<period>-<start>/<owner>-<n>.json``
  (atomically: a temporary file, then a rename). Its windows already carry ``instance=<host>``, the same in
  every process, so equal series of different processes have equal keys.
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
* Merged results are kept ``KEEP_S``, then removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

from langflow_cms.pipeline.window import Window

log = logging.getLogger("langflow_cms")

GRACE_S = 10.0
"""A window is merged this long after its end: each process seals at the minute boundary, within seconds."""
KEEP_S = 3600.0
"""How long a merged window is kept, so a late file (an adopted snapshot) re-merges with it, not over it."""
MERGED = "merged.json"


def host_directory(spool_dir: Path, host: str | None = None) -> Path:
    """The journal of this host inside a spool directory (one per host even on a shared volume)."""
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in (host or socket.gethostname())) or "host"
    return Path(spool_dir) / "host" / name


def _write_json(path: Path, data: object) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle, separators=(",", ":"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _read_windows(path: Path) -> list[Window]:
    return [Window.from_dict(w) for w in json.loads(path.read_text("utf-8"))]


def _merged_files(folder: Path) -> set[str]:
    try:
        return set(json.loads((folder / MERGED).read_text("utf-8")).get("files", []))
    except (OSError, ValueError):
        return set()


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
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None

    # --- every process --------------------------------------------------------------------------------
    def write(self, windows: list[Window], owner: str | None = None, adopted: bool = False) -> None:
        """Store sealed windows for the sender, in ``<period>-<start>/<owner>.json``. Raises OSError.

        A process seals each window once, so the name says whose it is. ``adopted``: the 300 s snapshot of
        a dead ``owner``, written only where that owner had not sealed the window itself (it may have died
        after sealing it, before its snapshot changed): never counted twice.
        """
        owner = owner or self.owner
        by_window: dict[tuple[int, int], list[Window]] = {}
        for window in windows:
            by_window.setdefault((window.period, window.start), []).append(window)
        for (period, start), group in by_window.items():
            folder = self.directory / f"{period}-{start}"
            folder.mkdir(exist_ok=True)
            taken = _merged_files(folder) | {p.name for p in folder.glob("*.json")}
            name = f"{owner}.json"
            if name in taken:
                if adopted:
                    continue
                name = next(
                    f"{owner}.{n}.json" for n in range(1, 1_000_000) if f"{owner}.{n}.json" not in taken
                )
            _write_json(folder / name, [w.to_dict() for w in group])

    # --- the sender -----------------------------------------------------------------------------------
    @property
    def elected(self) -> bool:
        return self._lock_fd is not None

    def elect(self, wait: float = 0.0) -> bool:
        """Become (or stay) the host's sender; ``wait`` seconds at most for the current one to go."""
        if self._lock_fd is not None:
            return True
        fd = os.open(self.directory / "sender.lock", os.O_RDWR | os.O_CREAT, 0o600)
        give_up = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    os.close(fd)
                    return False
                time.sleep(0.05)
                continue
            self._lock_fd = fd
            os.ftruncate(fd, 0)
            os.write(fd, f"{self.owner}\n".encode())
            return True

    def resign(self) -> None:
        """Stop being the sender (at close): another process takes over at its next cycle."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    def forget(self) -> None:
        """In a forked child: drop the parent's descriptor without unlocking (the lock stays the parent's)."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def ready(self, now: float, force: bool = False) -> list[tuple[Path, list[Window], list[str]]]:
        """The windows to (re)send: (folder, merged windows, files they include) for each window whose
        period ended ``GRACE_S`` ago (any, with ``force``) and that has files not merged yet."""
        found = []
        for folder in sorted(self.directory.iterdir()):
            period, dash, start = folder.name.partition("-")
            if not (dash and period.isdigit() and start.isdigit() and folder.is_dir()):
                continue
            end = int(start) + int(period)
            if not force and now < end + GRACE_S:
                continue
            merged_path = folder / MERGED
            try:
                state = json.loads(merged_path.read_text("utf-8")) if merged_path.exists() else {}
            except (OSError, ValueError) as exc:
                log.error("langflow-cms: unreadable merged window %s (%s): merged again", merged_path, exc)
                state = {}
            included = set(state.get("files", []))
            new = sorted(p for p in folder.glob("*.json") if p.name != MERGED and p.name not in included)
            for stale in (p for p in folder.glob("*.json") if p.name in included):
                stale.unlink(missing_ok=True)  # merged and recorded by a sender that died before deleting
            if not new:
                if now > end + KEEP_S:
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            groups = [[Window.from_dict(w) for w in state.get("windows", [])]]
            names = sorted(included)
            for path in new:
                try:
                    groups.append(_read_windows(path))
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    log.error("langflow-cms: unreadable window file %s moved aside: %s", path.name, exc)
                    path.replace(path.with_suffix(".bad"))
                    continue
                names.append(path.name)
            found.append((folder, merge_windows(groups), names))
        return found

    def commit(self, folder: Path, windows: list[Window], names: list[str]) -> None:
        """Record that ``windows`` (made of the files ``names``) were handed over; delete those files."""
        _write_json(folder / MERGED, {"files": names, "windows": [w.to_dict() for w in windows]})
        for name in names:
            (folder / name).unlink(missing_ok=True)
