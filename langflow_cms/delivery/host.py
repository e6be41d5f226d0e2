"""The host merge: one sender per host sends the windows every process of the host sealed, merged.

Processes of one host (``LANGFLOW_CMS_MERGE``, with a spool) write their sealed windows to the host journal
(``delivery/journal.py``); the elected sender merges them, hands them to delivery (written ahead to the
spool) and records them as handed over. With a spool, the open 300 s windows are snapshotted each cycle,
and what a killed process left (its snapshot, the journals of a host name nobody is left to send for) is
adopted by the next one.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from langflow_cms import clock, contract
from langflow_cms.config import Config, host_instance
from langflow_cms.delivery.exporter import Exporter
from langflow_cms.delivery.journal import HostJournal, host_directory, past, within
from langflow_cms.delivery.serializer import aggregate_entry
from langflow_cms.delivery.spool import volume_full
from langflow_cms.pipeline.storage import Storage
from langflow_cms.pipeline.window import Window

log = logging.getLogger("langflow_cms")


def open_journal(config: Config, owner: str) -> HostJournal | None:
    """The host journal this process joins, or None (this process then sends its own windows)."""
    try:
        journal = HostJournal(host_directory(config.spool_dir), owner)  # type: ignore[arg-type]
        journal.instance(host_instance())  # readable and writable, or not used at all
        journal.join()  # this process may add to the host's open windows until it closes
        return journal
    except (OSError, ValueError) as exc:  # ValueError: a foreign or damaged instance.id (not UTF-8)
        if not isinstance(exc, OSError) or not volume_full(exc, config.spool_dir):  # type: ignore[arg-type]
            log.error("langflow-cms: cannot merge per host (%s): this process sends its own windows", exc)
        return None


class HostMerge:
    """The process's part in its host's delivery: journal writes, the sender's merge, snapshots, adoption.

    ``journal`` is None when the process does not merge per host; snapshots and adoption then work on the
    process's own spool (``exporter.spool``), and do nothing without one."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        exporter: Exporter,
        journal: HostJournal | None,
        process_instance: str,
    ) -> None:
        self.config = config
        self.storage = storage
        self.exporter = exporter
        self.journal = journal
        self.process_instance = process_instance
        self.deadline: float | None = None
        """Of the merge under way (``send``): monotonic, None for none."""

    def export(self, windows: list[Window], deadline: float | None = None) -> list[Window]:
        """Merging per host, the process's own windows go to the host journal (its sender sends them); the
        rest is returned for this process to encode: a node's own AccessKey's windows, and what the journal
        cannot take (a full disk, or not before ``deadline``), under the process's own instance."""
        if self.journal is None:
            return windows
        host = [w for w in windows if w.scope == ""]
        windows = [w for w in windows if w.scope != ""]  # a node's own AccessKey: sent by this process
        failed = self.journal.write(host, deadline=deadline)
        if failed:
            if deadline is None or time.monotonic() < deadline:
                self.storage.warn_once(
                    "journal",
                    f"the host journal cannot take sealed windows: this process sends them itself, as "
                    f"instance {self.process_instance}",
                )
            # past the deadline none of them is encoded any more (``Reporter._encode``): no renaming
            windows += failed if past(deadline) else [self._as_own_instance(w) for w in failed]
        return windows

    def _as_own_instance(self, window: Window) -> Window:
        """A host window of this process alone, under the process's own instance: never mixed with (nor
        overwriting) the host's merged window of the same series, so totals stay exact."""
        dims = tuple(
            (k, self.process_instance if k == contract.INSTANCE else v) for k, v in window.dimensions
        )
        return dataclasses.replace(window, dimensions=dims)

    def send(self, force: bool = False, wait: float = 0.0, deadline: float | None = None) -> None:
        """As the host's elected sender: merge the windows every process wrote, hand them to delivery
        (written ahead to the spool), then record them as handed over (``delivery/journal.py``). The
        journals of other host names in the spool whose processes are all gone are merged too. Past
        ``deadline`` nothing more is handed over: the journal keeps it for the next sender."""
        journal = self.journal
        self.deadline = deadline
        if journal is None or not journal.elect(wait) or past(deadline):
            return
        try:
            # before its grace period a window is sent only when final: no other process of the host may
            # still add to it. Else a partial write, retried or applied late by CMS, could land after the
            # complete one and win (CMS keeps the last write); the next sender sends it, complete.
            force = force and not journal.others_alive()
            self._hand_over(journal, journal.ready(clock.wall(), force=force))
            for orphan in journal.orphaned_hosts():  # nobody of that host is left to add to its windows
                if past(deadline):
                    break
                try:
                    self._hand_over(orphan, orphan.ready(clock.wall(), force=True))
                finally:
                    orphan.resign()
        except Exception as exc:  # the cycle goes on: what was not recorded is merged again next time
            self.storage.warn_once("journal", f"host journal merge failed: {exc}")

    def _hand_over(self, journal: HostJournal, ready: list[tuple[Path, list[Window], list[str]]]) -> None:
        """Merged windows to delivery (written ahead to the spool), then recorded in their journal."""
        if not ready:
            return
        entries = within(
            self.deadline, [w for _, merged, _ in ready for w in merged], self._entry
        )  # None: the deadline came first; nothing recorded, the next sender merges the same files
        if entries is None:
            return
        entries = [e for e in entries if e is not None]
        if not self.exporter.persist(entries):
            # a full disk: sent from memory; if the record cannot be written either, the next merge
            # takes the same files again and sends the same values for the same keys
            self.exporter.enqueue(entries)
        for folder, merged, names in ready:
            journal.commit(folder, merged, names)

    def _entry(self, window: Window) -> dict[str, str] | None:
        try:
            return aggregate_entry(window, self.config.group_id)
        except (ValueError, OverflowError, TypeError) as exc:
            self.storage.reject(window.name, f"window could not be encoded: {exc}")
            return None

    def snapshot(self, handing: Sequence[Window] = (), deadline: float | None = None) -> bool:
        """With a spool: the open 300 s windows on disk, so a SIGKILL loses no sealed minute of them.
        True when they (and ``handing``) are on disk; False without a spool, when the write failed, or
        when ``deadline`` (monotonic) came first: then the previous snapshot stays as it was.

        Taken twice a cycle: before the sealed windows are handed on, with them (``handing``), so a kill
        during the hand-off finds them here; and after it, without them. Windows the host journal could
        not take yet are in both. A dead process's snapshot of a window it also handed on is never
        counted twice: the host journal skips it by its owner's name; without a journal, the resend
        carries the same values for the same key."""
        spool = self.exporter.spool
        if spool is None:
            return False
        windows = [w for w in self.storage.open_rollups() + list(handing) if w.scope == ""]
        encoded = within(deadline, windows, Window.to_dict)
        if encoded is None:
            return False
        try:
            spool.save_rollup(encoded, deadline)
        except TimeoutError:
            return False
        except (OSError, ValueError) as exc:
            if not volume_full(exc, spool.directory):
                self.storage.warn_once("snapshot", f"could not save the 300 s roll-up snapshot: {exc}")
            return False
        return True

    def adopt_orphans(self) -> None:
        """Send the windows of processes that died (their snapshots: open 300 s windows, and the sealed
        ones of a hand-off the kill interrupted): they can add nothing more."""
        spool = self.exporter.spool
        if spool is None:
            return
        try:
            orphans = spool.orphaned_rollups()
        except OSError as exc:
            self.storage.warn_once("orphans", f"could not read roll-up snapshots in {spool.directory}: {exc}")
            return
        for path, windows in orphans:
            if self.journal is not None:
                self._adopt_into_journal(path, windows)
                continue
            entries = []
            for window in windows:
                try:
                    entries.append(aggregate_entry(window, self.config.group_id))
                except Exception as exc:  # a window that cannot be encoded costs only itself
                    self.storage.reject(window.name, f"snapshot window unreadable: {exc}")
            try:
                if entries:
                    spool.write(entries)  # write-ahead before the snapshot goes
            except OSError as exc:  # a full disk: sent from memory; the snapshot stays for a later process
                volume_full(exc, spool.directory)  # (the same values for the same keys: never counted twice)
                self.exporter.enqueue(entries)
                continue
            path.unlink(missing_ok=True)

    def _adopt_into_journal(self, path: Path, windows: list[Window]) -> None:
        """A dead process's open 300 s windows, into the host journal under its name (never twice). Never
        sent on their own: alone, a part would replace the host's whole window in CMS."""
        owner = path.name.removesuffix(".json").rsplit("rollup-", 1)[-1]
        try:
            failed = self.journal.write([w for w in windows if w.scope == ""], owner=owner, adopted=True)  # type: ignore[union-attr]
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            self.storage.warn_once("orphans", f"snapshot {path.name} unreadable ({exc}): dropped")
            self.storage.stats["dropped:journal"] += len(windows)
            failed = []
        if not failed:  # else the journal cannot be written (a full disk): a later process adopts it again
            path.unlink(missing_ok=True)
