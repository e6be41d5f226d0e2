"""The disk spool: nothing sealed is lost when the endpoint is down or the process is killed mid-send,
and a replay never double-counts (issue 7 §1)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

from langflow_cms.delivery.spool import Spool, waiting_entries

RECORD_AND_EXIT = textwrap.dedent(
    """
    import sys
    from langflow_cms import get_reporter
    rep = get_reporter()
    for series in range(30):
        for i in range(100):
            rep.record("spooled", float(i), {"series": f"s{series}"})
    if len(sys.argv) > 1:
        rep.close(timeout=60)
    """
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(code: str, env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spool_env(directory, endpoint: str) -> dict[str, str]:
    """One process's spool, as each process uses it (the per-host merge on top: tests/test_host.py)."""
    return {
        "LANGFLOW_CMS_DEV": "1",
        "LANGFLOW_CMS_ENDPOINT": endpoint,
        "LANGFLOW_CMS_SPOOL_DIR": str(directory),
        "LANGFLOW_CMS_HOST_MERGE": "false",
    }


def assert_delivered_once(emulator) -> None:
    entries = emulator.entries("spooled")
    keys = [(json.dumps(e["dimensions"], sort_keys=True), e["period"], e["time"]) for e in entries]
    assert len(keys) == len(set(keys))  # one stored value per (series, period, window)
    per_period = {60: 0, 300: 0}
    for entry in entries:
        per_period[entry["period"]] += entry["values"]["SampleCount"]
        assert entry["values"]["Sum"] == sum(range(100)) or entry["values"]["SampleCount"] != 100
    assert per_period == {60: 3000, 300: 3000}  # every observation, counted once per period


def test_a_second_process_delivers_what_the_first_could_not(emulator, tmp_path):
    started = time.monotonic()
    first = run(RECORD_AND_EXIT, spool_env(tmp_path, f"http://127.0.0.1:{closed_port()}"))
    assert first.returncode == 0, first.stderr
    assert time.monotonic() - started < 20  # exit does not wait out the retries: the data is on disk
    assert "kept in the spool" in first.stderr
    assert waiting_entries(tmp_path) == 60

    second = run(
        "from langflow_cms import get_reporter; get_reporter()", spool_env(tmp_path, emulator.endpoint)
    )
    assert second.returncode == 0, second.stderr
    assert_delivered_once(emulator)
    assert list(tmp_path.glob("*.json")) == []
    assert emulator.stats()["rejected"] == 0


def test_sigkill_during_a_send_loses_nothing_and_double_counts_nothing(emulator, tmp_path):
    emulator.set_faults(script=["delay:30"])  # the first call hangs after the emulator stored it
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORD_AND_EXIT, "close"],
        env={**os.environ, **spool_env(tmp_path, emulator.endpoint), "LANGFLOW_CMS_READ_TIMEOUT": "60"},
    )
    deadline = time.monotonic() + 30
    while not emulator.entries("spooled"):  # stored, the answer held back by the delay
        assert time.monotonic() < deadline, "the first process never sent"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert waiting_entries(tmp_path) == 60  # still on disk: the send never completed

    emulator.clear_faults()
    second = run(
        "from langflow_cms import get_reporter; get_reporter()", spool_env(tmp_path, emulator.endpoint)
    )
    assert second.returncode == 0, second.stderr
    assert_delivered_once(emulator)
    assert list(tmp_path.glob("*.json")) == []


def test_files_of_live_processes_are_left_alone_and_dead_ones_adopted(tmp_path):
    live = tmp_path / f"{time.time_ns():020d}-{os.getppid()}-0.json"
    dead = tmp_path / f"{time.time_ns():020d}-{2**22 + 12345}-0.json"
    for path in (live, dead):
        path.write_text('[{"MetricName": "x"}]')
    spool = Spool(tmp_path, 10**9, owner=f"{os.getpid()}.test")
    pending = spool.pending()
    assert len(pending) == 1 and f"-{spool.owner}-" in pending[0].name
    assert live.exists() and not dead.exists()


def test_the_spool_is_bounded_oldest_first(tmp_path):
    spool = Spool(tmp_path, max_bytes=3000, owner=f"{os.getpid()}.test")
    entry = {"MetricName": "m", "Values": "x" * 200}
    paths = [spool.write([entry] * 4) for _ in range(6)]
    remaining = sorted(tmp_path.glob("*.json"))
    assert remaining == sorted(paths[-len(remaining) :])  # the newest survive
    assert sum(p.stat().st_size for p in remaining) <= 3000
    assert spool.dropped == 4 * (6 - len(remaining))


def test_a_permanently_refused_batch_moves_to_dead_letters_and_never_blocks_newer_ones(emulator, tmp_path):
    """Issue #10 §9: one rejected spool file blocked every newer one and was never counted as failed."""
    emulator.set_faults(script=["InvalidAccessKeyId.NotFound:404"])
    first = run(RECORD_AND_EXIT, spool_env(tmp_path, emulator.endpoint))
    assert first.returncode == 0
    assert first.stderr.count("not retried") == 1 and "dead" in first.stderr
    assert waiting_entries(tmp_path) == 0
    dead = sorted((tmp_path / "dead").glob("*.json"))
    assert len(dead) == 1 and "InvalidAccessKeyId.NotFound" in dead[0].with_suffix(".why").read_text()
    emulator.clear_faults()
    second = run(RECORD_AND_EXIT, spool_env(tmp_path, emulator.endpoint))  # newer data goes through
    assert second.returncode == 0, second.stderr
    assert sum(e["values"]["SampleCount"] for e in emulator.entries("spooled") if e["period"] == 60) == 3000


def test_processes_that_close_cleanly_leave_no_owner_lock_behind(emulator, tmp_path):
    """Before: each clean process left its ``owners/<pid>.<id>.lock`` behind (a cron job: one more file a
    run, forever); here 2 of them."""
    closed = run(RECORD_AND_EXIT, spool_env(tmp_path, emulator.endpoint), "close")  # close() itself
    assert closed.returncode == 0, closed.stderr
    at_exit = run(RECORD_AND_EXIT, spool_env(tmp_path, emulator.endpoint))  # the exit hook closes it
    assert at_exit.returncode == 0, at_exit.stderr
    assert sorted(p.name for p in (tmp_path / "owners").iterdir()) == []


def test_a_spool_closed_by_its_owner_is_adopted_by_the_next(tmp_path):
    """Closing removes the owner's lock; what it left on disk goes to the next process, once."""
    first = Spool(tmp_path, 10**9, owner=f"{os.getpid()}.closing")
    first.write([{"MetricName": "x"}])
    first.close()
    assert list((tmp_path / "owners").iterdir()) == []
    second = Spool(tmp_path, 10**9, owner=f"{os.getpid()}.next")
    assert len(second.pending()) == 1
    second.close()


def test_releasing_a_closed_spool_again_closes_no_other_file(tmp_path):
    """A closed reporter stays listed for forks, whose children release its spool again: before, that
    closed whatever file had reused the lock's fd number (a forked child died with exit code 1)."""
    spool = Spool(tmp_path, 10**9, owner=f"{os.getpid()}.twice")
    spool.close()
    with open(tmp_path / "other", "w") as other:  # likely takes the freed fd number
        spool.release()
        other.write("still open")
    assert (tmp_path / "other").read_text() == "still open"


def test_the_bound_removes_spent_journal_records_before_unsent_batches(tmp_path):
    """Issue #23 §10: the host journal counted toward LANGFLOW_CMS_SPOOL_MAX_MB but was never removed, so a
    sender's records of windows already handed over pushed unsent batches out."""
    spool = Spool(tmp_path, max_bytes=3000, owner=f"{os.getpid()}.test")
    folder = tmp_path / "host" / "somehost" / "60-1800000000"
    folder.mkdir(parents=True)
    spent = folder / "merged.json"  # windows already handed over (their entries went to the spool)
    spent.write_text(json.dumps({"files": ["1.a.json"], "windows": [{"pad": "w" * 2000}]}))
    unmerged = folder / "2.b.json"  # a worker's sealed windows, not sent yet
    unmerged.write_text(json.dumps([{"pad": "u" * 100}]))
    entry = {"MetricName": "m", "Values": "x" * 200}
    batches = [spool.write([entry] * 2) for _ in range(2)]
    assert all(path.exists() for path in batches)  # before: the oldest batch went, 2 entries dropped
    assert spool.dropped == 0
    assert not spent.exists() and unmerged.exists()
