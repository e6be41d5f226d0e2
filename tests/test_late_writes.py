"""A request CMS applies late never overwrites a complete window (issue 23 §1).

CMS keeps the last write of a (series, period, time). Two workers of one host merge their windows; the
elected sender leaves first. The emulator applies the next PutCustomMetric only after a delay longer than
the client's read timeout (the ``late:S`` fault), so a write that gave up can land after the complete one.
Real spawned processes, a real spool directory, the real emulator."""

from __future__ import annotations

import os
import random
import time

import pytest

from langflow_cms.delivery.journal import host_directory
from tests.test_host import host_env, start_workers, stored

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]  # spawned processes and late writes: ~30 s


def sender_first(workers, spool):
    lock = host_directory(spool) / "sender.lock"  # the sender names itself in its lock file
    sender_pid = int(lock.read_text().split(".")[0])
    return sorted(workers, key=lambda w: w[0].pid != sender_pid)


def run_host(emulator, monkeypatch, spool, counts: list[int], late: float, pause: float) -> None:
    clock = host_env(monkeypatch, emulator, spool)
    monkeypatch.setenv("LANGFLOW_CMS_READ_TIMEOUT", "2")
    workers = start_workers(counts)
    clock.into_next(5)  # early in a minute (the test clock), so every flush happens before its end
    for _, go_flush, flushed, _ in workers:
        go_flush.set()
        assert flushed.wait(120)
    emulator.set_faults(script=[f"late:{late}"])  # the next write is applied `late` seconds late
    for process, _, _, leave in sender_first(workers, spool):
        leave.set()
        process.join(60)
        assert process.exitcode == 0
        time.sleep(pause)
    time.sleep(late + 2)  # the late request has landed
    for period in (60, 300):
        entries = stored(emulator, period)
        assert sum(e["values"]["SampleCount"] for e in entries) == sum(counts), (period, entries)


def test_the_sender_s_partial_window_applied_late_never_wins(emulator, monkeypatch, tmp_path):
    """Before: the leaving sender sent its partial host window (300 of 500); applied 6 s late, past its
    read timeout, it landed after the complete one and CMS kept 300 at 60 s and 300 s."""
    run_host(emulator, monkeypatch, tmp_path, [300, 200], late=6.0, pause=0.0)


def test_random_late_writes_and_exit_orders_keep_complete_windows(emulator, monkeypatch, tmp_path):
    """Randomized: three workers, a random late delay, random pauses between the exits (more rounds and
    other seeds: LATE_WRITE_ROUNDS, LATE_WRITE_SEED)."""
    rng = random.Random(int(os.environ.get("LATE_WRITE_SEED", "1")))
    for round_ in range(int(os.environ.get("LATE_WRITE_ROUNDS", "1"))):
        emulator.reset()
        counts = [rng.randint(50, 300) for _ in range(3)]
        run_host(
            emulator, monkeypatch, tmp_path / f"r{round_}", counts, rng.uniform(2.5, 5.0), rng.uniform(0, 1.5)
        )
