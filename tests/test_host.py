"""Per-host merge (issue #11 §2): the processes of one host, one elected sender, one aggregate per series.

Real processes through ``multiprocessing`` (spawned, so each reads the environment as a worker does), a real
emulator over HTTP with CMS's last-write-wins storage, a real SIGKILL.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import socket
import time

import pytest
from clock_support import ShiftedClock

from langflow_cms.config import host_instance
from langflow_cms.delivery.journal import GRACE_S, HostJournal, host_directory
from langflow_cms.pipeline.window import Window

pytestmark = pytest.mark.timeout(400)

SERIES = "host_work"


def worker(values: int, go_flush, flushed, leave, ready=None) -> None:
    """A worker: on request record ``values`` observations and flush (the first to flush is elected), then
    wait to be told to exit (the normal way: multiprocessing's exit, which closes the reporter). It
    records only when asked, so a slow start under load cannot put its values in another minute."""
    from langflow_cms import get_reporter

    reporter = get_reporter()
    if ready is not None:
        ready.set()
    go_flush.wait(120)
    for i in range(values):
        reporter.record(SERIES, float(i % 50), {"flow": "poem"})
    reporter.flush(timeout=10)
    flushed.set()
    leave.wait(300)


def start_workers(counts: list[int]):
    """Spawned workers, each with its own events (a SIGKILL mid-wait can break a shared one), returned
    once each has its reporter: set the test clock after this, the recording follows ``go_flush``."""
    ctx = multiprocessing.get_context("spawn")
    workers, readies = [], []
    for values in counts:
        go_flush, flushed, leave, ready = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event()
        process = ctx.Process(target=worker, args=(values, go_flush, flushed, leave, ready))
        process.start()
        workers.append((process, go_flush, flushed, leave))
        readies.append(ready)
    for ready in readies:
        assert ready.wait(180), "a spawned worker did not start"
    return workers


def host_env(monkeypatch, emulator, spool) -> ShiftedClock:
    """The workers' environment, with a test clock (beside the spool: a file in it would be foreign)."""
    clock = ShiftedClock(spool.with_name(f"{spool.name}-clock"))
    monkeypatch.setenv("LANGFLOW_CMS_TEST_CLOCK", str(clock.path))
    monkeypatch.setenv("LANGFLOW_CMS_DEV", "1")
    monkeypatch.setenv("LANGFLOW_CMS_ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("LANGFLOW_CMS_SPOOL_DIR", str(spool))
    monkeypatch.delenv("LANGFLOW_CMS_INSTANCE", raising=False)
    monkeypatch.delenv("LANGFLOW_CMS_HOST_MERGE", raising=False)
    return clock


def host_id(spool) -> str:
    """The host's instance: the host name plus the journal's id (the same in every process)."""
    return f"{host_instance()}-{(host_directory(spool) / 'instance.id').read_text().strip()}"


def stored(emulator, period: int) -> list[dict]:
    return [e for e in emulator.entries(name=SERIES) if e["period"] == period]


def test_workers_of_a_host_send_one_aggregate_per_series_with_the_host_as_instance(
    emulator, monkeypatch, tmp_path
):
    clock = host_env(monkeypatch, emulator, tmp_path)
    counts = [300, 200, 100]
    workers = start_workers(counts)
    clock.into_next(5)  # early in a minute, so the recording and the flushes happen before its end
    for _, go_flush, flushed, _ in workers:
        go_flush.set()
        assert flushed.wait(120)
    for *_, leave in workers:
        leave.set()
    for process, *_ in workers:
        process.join(60)
        assert process.exitcode == 0
    for period in (60, 300):
        entries = stored(emulator, period)
        assert {e["dimensions"]["instance"] for e in entries} == {host_id(tmp_path)}
        assert sum(e["values"]["SampleCount"] for e in entries) == sum(counts), (period, entries)
        assert max(e["values"]["Maximum"] for e in entries) == 49.0
    assert not list(host_directory(tmp_path).glob("*/*[0-9].json"))  # every window file merged


def test_killing_the_elected_sender_mid_window_loses_and_doubles_nothing(emulator, monkeypatch, tmp_path):
    """The sender dies (SIGKILL) after its window was sealed and before it was merged: the next worker
    merges it; a replacement process adopts the dead one's open 300 s window. Each value counts once."""
    clock = host_env(monkeypatch, emulator, tmp_path)
    counts = [250, 150, 80]
    workers = start_workers(counts)
    clock.into_next(5)  # early in a minute, so the recording and the flushes happen before its end
    for _, go_flush, flushed, _ in workers:
        go_flush.set()
        assert flushed.wait(120)
    lock = host_directory(tmp_path) / "sender.lock"  # the sender names itself in its lock file
    sender_pid = int(lock.read_text().split(".")[0])
    (sender,) = [w[0] for w in workers if w[0].pid == sender_pid]
    others = [w for w in workers if w[0].pid != sender_pid]
    # past the minute's end every worker's cycle seals it into the journal; the merge waits GRACE_S more
    minute = int(clock.to_end_of_minute())  # instead of waiting for the minute's end
    folder = host_directory(tmp_path) / f"60-{minute}"
    deadline = minute + 60 + GRACE_S - 2
    while len(list(folder.glob("*.json"))) < 3 and clock.now() < deadline:
        time.sleep(0.2)
    found = sorted(str(p.relative_to(tmp_path)) for p in host_directory(tmp_path).rglob("*"))
    assert len(list(folder.glob("*.json"))) == 3 and not (folder / "merged.json").exists(), found
    os.kill(sender.pid, signal.SIGKILL)
    sender.join(30)
    for *_, leave in others:
        leave.set()
    for process, *_ in others:
        process.join(60)
        assert process.exitcode == 0
    # a replacement worker, as gunicorn starts one: it adopts the dead sender's open 300 s window
    ctx = multiprocessing.get_context("spawn")
    go, done, bye = ctx.Event(), ctx.Event(), ctx.Event()
    replacement = ctx.Process(target=worker, args=(0, go, done, bye))
    replacement.start()
    go.set()
    assert done.wait(120)
    bye.set()
    replacement.join(60)
    for period in (60, 300):
        entries = stored(emulator, period)
        assert {e["dimensions"]["instance"] for e in entries} == {host_id(tmp_path)}
        assert sum(e["values"]["SampleCount"] for e in entries) == sum(counts), (period, entries)


def test_the_journal_merges_late_files_into_what_was_sent(tmp_path):
    """A file that arrives after its window was merged (a slow worker, an adopted snapshot) is merged into
    the recorded result, so the resent aggregate is complete, never a part overwriting the whole."""
    directory = host_directory(tmp_path, "pod-1")
    first, second = HostJournal(directory, "1.a"), HostJournal(directory, "2.b")
    dims = (("flow", "poem"), ("instance", "pod-1"))

    def window(values: list[float]) -> Window:
        w = Window(SERIES, dims, start=600, period=60)
        for v in values:
            w.add(v)
        return w

    first.write([window([1.0, 2.0])], now=700)
    assert first.elect() and not second.elect()
    (folder, merged, names), *_ = first.ready(now=600 + 60 + GRACE_S)
    assert merged[0].count == 2
    first.commit(folder, merged, names)
    assert first.ready(now=700) == []  # nothing new: nothing to resend
    second.write([window([10.0])], now=700)
    (_, merged, names), *_ = first.ready(now=700)
    assert (merged[0].count, merged[0].total, merged[0].high) == (3, 13.0, 10.0)
    assert len(names) == 2
    # the dead owner's snapshot of a window it had sealed itself is not counted again
    first.commit(folder, merged, names)
    second.write([window([10.0])], owner="2.b", adopted=True, now=700)
    assert first.ready(now=700) == []
    # a window whose merged result may be gone is refused, not sent alone over the complete one
    assert second.write([window([5.0])], now=600 + 60 + 600) == [] and second.refused == 1
    assert first.ready(now=700) == []
    # a damaged record sets only its folder aside; the journal goes on
    (folder / "merged.json").write_text("[]")
    second.write([window([7.0])], owner="3.c", now=700)
    assert first.ready(now=700) == [] and (folder.parent / f"bad-{folder.name}").is_dir()
    first.resign()
    assert second.elect()


def test_host_directory_is_per_host(tmp_path):
    assert host_directory(tmp_path, "pod a/1") == tmp_path / "host" / "pod_a_1"
    assert host_directory(tmp_path).name.replace("_", "") == socket.gethostname().replace(" ", "").replace(
        "/", ""
    ).replace("_", "")


def test_a_node_key_s_metrics_keep_a_per_process_instance(emulator, tmp_path):
    """Review finding: a CMS Metric node's own AccessKey is sent by each process itself (the sender has
    not got that key), so its series must not share the host's instance, or two workers overwrite."""
    from langflow_cms.config import Config
    from langflow_cms.credentials import Credential
    from langflow_cms.reporter import Reporter

    emulator.add_key("LTAInodeKeyHost01", "node-secret-host-01")
    env = {"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emulator.endpoint}
    config = Config.from_env({**env, "LANGFLOW_CMS_SPOOL_DIR": str(tmp_path)})
    node_key = Credential("LTAInodeKeyHost01", "node-secret-host-01", source="node")
    reporters = [Reporter(config, start=False) for _ in range(2)]
    for reporter, count in zip(reporters, (5, 7), strict=True):
        scope = reporter.scope_for(node_key)
        for i in range(count):
            scope.record("node_key_metric", float(i), {"flow": "f"})
    for reporter in reporters:
        reporter.close(timeout=10)
    entries = [e for e in emulator.entries(name="node_key_metric") if e["period"] == 60]
    assert sorted(e["values"]["SampleCount"] for e in entries) == [5, 7]
    assert len({e["dimensions"]["instance"] for e in entries}) == 2


def _forked_child(reporter, values: int) -> None:
    for i in range(values):
        reporter.record(SERIES, float(i), {"flow": "forked"})
    # returns: multiprocessing's exit (os._exit after its finalisers) closes the child's reporter


def test_a_forked_child_merges_into_its_parent_s_host_window(emulator, tmp_path):
    """A fork of the elected sender must not keep the sender's lock (journal.forget) and must hand its
    windows to the host journal when it exits through multiprocessing, without an explicit close()."""
    from langflow_cms.config import Config
    from langflow_cms.reporter import Reporter

    config = Config.from_env(
        {
            "LANGFLOW_CMS_DEV": "1",
            "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
            "LANGFLOW_CMS_SPOOL_DIR": str(tmp_path),
        }
    )
    parent = Reporter(config, start=False)
    assert parent.journal is not None and parent.journal.elect()
    for i in range(40):
        parent.record(SERIES, float(i), {"flow": "forked"})
    child = multiprocessing.get_context("fork").Process(target=_forked_child, args=(parent, 60))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    probe = HostJournal(parent.journal.directory, "probe")
    assert not probe.elect()  # the child's exit did not unlock the lock it inherited from the parent
    parent.close(timeout=10)
    for period in (60, 300):
        entries = [e for e in stored(emulator, period) if e["dimensions"]["flow"] == "forked"]
        assert sum(e["values"]["SampleCount"] for e in entries) == 100, (period, entries)
        assert len({e["dimensions"]["instance"] for e in entries}) == 1


def test_two_threads_of_one_process_electing_at_once_both_see_it_elected(tmp_path):
    """CI failure (stop 17): the reporter thread's first ``elect()`` and ``close()`` on the main thread raced.
    Each opened its own descriptor; the one that lost the ``flock`` to its own process waited out its whole
    wait (12 s of a 20 s close) and returned False, so the dead process's adopted 300 s windows were never
    merged or sent."""
    import sys
    import threading

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for trial in range(300):
            journal = HostJournal(tmp_path / str(trial), "me")
            start = threading.Barrier(2)
            results: list[bool] = []

            def elect(journal: HostJournal = journal, start=start, results=results) -> None:
                start.wait()
                results.append(journal.elect(wait=5.0))

            threads = [threading.Thread(target=elect) for _ in range(2)]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert results == [True, True], f"trial {trial}: {results}"
            assert time.monotonic() - began < 4.0, f"trial {trial}: one thread waited for its own process"
            journal.resign()
            assert not journal.elected
    finally:
        sys.setswitchinterval(old)


def test_a_journal_that_resigned_is_never_elected_again(tmp_path):
    """Review: ``close()`` resigned, then the process's reporter thread (stopped, not joined) elected again
    and held the sender lock until the process ended, so no other process could send the host's windows."""
    closing, other = HostJournal(tmp_path, "1.a"), HostJournal(tmp_path, "2.b")
    assert closing.elect()
    closing.resign()
    assert not closing.elect(wait=0.2) and not closing.elected  # a late reporter thread of the closed one
    assert other.elect()
    other.resign()


def test_a_fork_while_another_thread_elects_leaves_no_sender_lock_in_the_child(tmp_path, monkeypatch):
    """Review: a fork between the election's ``open`` and its record of the descriptor left the child holding
    the sender lock's file, untracked: the lock outlived the parent (even a SIGKILL), and no process could
    send until that child ended."""
    import fcntl
    import threading

    from langflow_cms.delivery import journal as journal_module

    journal = HostJournal(tmp_path, "1.a")
    inside, real_flock = threading.Event(), fcntl.flock

    def slow_flock(fd: int, operation: int) -> None:
        inside.set()
        time.sleep(0.3)  # the election is between its open and its record of the descriptor
        real_flock(fd, operation)

    monkeypatch.setattr(journal_module.fcntl, "flock", slow_flock)
    electing = threading.Thread(target=journal.elect)
    electing.start()
    assert inside.wait(5)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what a forked worker does (the reporter's fork handler calls forget())
        try:
            journal.forget()
            held = [
                fd
                for fd in os.listdir("/proc/self/fd")
                if os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(tmp_path / "sender.lock")
            ]
            os.write(write, str(len(held)).encode())
        finally:
            os._exit(0)
    os.close(write)
    held_in_child = os.read(read, 16).decode()
    os.close(read)
    os.waitpid(pid, 0)
    electing.join()
    monkeypatch.undo()
    assert held_in_child == "0", "the child kept a descriptor of the parent's sender lock"
    assert journal.elected
    journal.resign()
    assert HostJournal(tmp_path, "2.b").elect()  # nothing else holds it


def test_a_sender_lock_that_cannot_be_opened_is_logged_once_not_every_cycle(tmp_path, caplog, monkeypatch):
    """A read-only or broken spool volume: the reporter thread tries to elect every cycle (each second);
    an error is logged once while it lasts, a different error of the same step is logged too, and the
    step works again once the cause is gone."""
    from langflow_cms.delivery import journal as journal_module

    journal = HostJournal(tmp_path / "host", owner="w1")
    (tmp_path / "host" / "sender.lock").mkdir()  # opening it for writing fails (IsADirectoryError)
    with caplog.at_level("DEBUG", logger="langflow_cms"):
        assert [journal.elect() for _ in range(5)] == [False] * 5
        assert [journal.ready(time.time()) for _ in range(3)] == [[], [], []]
        (tmp_path / "host" / "sender.lock").rmdir()

        def no_locks(fd: int, operation: int) -> None:
            raise OSError(errno.ENOLCK, "No locks available")

        monkeypatch.setattr(journal_module.fcntl, "flock", no_locks)
        assert [journal.elect() for _ in range(5)] == [False] * 5
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2, errors
    assert "sender lock" in errors[0] and "sender.lock" in errors[0] and "No locks available" in errors[1]
    monkeypatch.undo()
    assert journal.elect() is True
