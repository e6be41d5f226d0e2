"""The spool under attack (issue 23 §3, §11): foreign and malformed files, files that vanish under a shared
spool. Real processes on a real spool directory, a real emulator."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from langflow_cms.config import Config
from langflow_cms.credentials import Credential, credential_provider
from langflow_cms.delivery.exporter import Exporter
from langflow_cms.delivery.spool import Spool, waiting_entries
from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from langflow_cms.reporter import Reporter
from tests.test_spool import RECORD_AND_EXIT, closed_port, run, spool_env

pytestmark = pytest.mark.timeout(300)

STRAYS = {
    "1.json": "[]",
    "123-abc.json": '[{"MetricName": "x"}]',
    f"{time.time_ns():020d}-99999999.dead-0.json": '{"MetricName": "an object, not a list"}',
    f"{time.time_ns() + 1:020d}-99999998.dead-0.json": "[1, 2, 3]",
    f"{time.time_ns() + 2:020d}-99999997.dead-0.json": '[{"MetricName": 5, "Values": null}]',
    f"{time.time_ns() + 3:020d}-99999996.dead-0.json": "not json at all",
}


def raw(name: str, i: int) -> dict[str, str]:
    """A valid Type=0 entry, distinct per ``i``."""
    return {
        "MetricName": name,
        "Dimensions": json.dumps({"i": str(i)}),
        "Type": "0",
        "Time": str(int(time.time() * 1000)),
        "GroupId": "0",
        "Values": json.dumps({"value": i}),
    }


def sample_counts(emulator, name: str = "spooled") -> dict[int, int]:
    counts = {60: 0, 300: 0}
    for entry in emulator.entries(name):
        counts[entry["period"]] += entry["values"]["SampleCount"]
    return counts


@pytest.mark.parametrize("host_merge", ["false", "true"])
def test_stray_and_malformed_spool_files_are_moved_aside_and_the_rest_is_delivered(
    emulator, tmp_path, host_merge
):
    """§3: a digit-named file with too few dashes, a batch that is an object or a list of numbers: before,
    flush()/close() raised ValueError/TypeError/AttributeError and 0 of the orphan batch and 0 of the new
    data were sent, in every later process too."""
    # a dead process's valid batch: the endpoint was down when it exited
    first = run(RECORD_AND_EXIT, spool_env(tmp_path, f"http://127.0.0.1:{closed_port()}"))
    assert first.returncode == 0, first.stderr
    assert waiting_entries(tmp_path) == 60
    for name, text in STRAYS.items():
        (tmp_path / name).write_text(text)

    env = {**spool_env(tmp_path, emulator.endpoint), "LANGFLOW_CMS_HOST_MERGE": host_merge}
    code = RECORD_AND_EXIT.replace('"spooled"', '"fresh"')
    second = run(code + "\nrep.flush(timeout=30)\nassert rep.close(timeout=30)\n", env)
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    assert sample_counts(emulator) == {60: 3000, 300: 3000}  # the orphan batch, once
    assert sample_counts(emulator, "fresh") == {60: 3000, 300: 3000}  # the new data
    aside = [p.name for p in (tmp_path / "bad").iterdir()]
    assert len(aside) == len(STRAYS)  # kept for a human to look at
    for name in STRAYS:
        assert not (tmp_path / name).exists()
        assert any(a.startswith(name.split("-")[0].removesuffix(".json")) for a in aside), name
    assert second.stderr.count("moved aside") == 1

    third = run(code, env)  # a later process using the folder is not affected
    assert third.returncode == 0 and "Traceback" not in third.stderr, third.stderr
    assert "moved aside" not in third.stderr


def test_random_garbage_in_the_spool_never_stops_delivery(emulator, tmp_path):
    """§3, randomized: whatever junk sits in the spool, a send delivers the valid batches and never raises."""
    rng = random.Random(23)
    owner = f"{os.getpid()}.test"
    config = Config.from_env({"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emulator.endpoint})
    provider = credential_provider(Credential(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, source="test"))
    exporter = Exporter(config, provider, label="test", spool_dir=tmp_path, owner=owner)
    spool = exporter.spool
    assert spool is not None
    junk = [
        "",
        "{}",
        "[null]",
        '[["a"]]',
        '[{"MetricName": "x", "Values": 1}]',
        '"text"',
        "[",
        "1e999",
        '[{"EventName": []}]',
    ]
    expected = 0
    for round_ in range(30):
        for _ in range(rng.randint(0, 4)):
            stamp = f"{time.time_ns():020d}"
            name = rng.choice(
                [f"{stamp}.json", f"{stamp}-x.json", f"{stamp}-1.dead-{round_}.json", f"9-{round_}.json"]
            )
            (tmp_path / name).write_text(rng.choice(junk))
        if rng.random() < 0.7:
            spool.write([raw("garbage_round", round_)])
            expected += 1
        exporter.send(time.monotonic() + 20)  # never raises
    exporter.send(time.monotonic() + 20)
    assert len(emulator.entries("garbage_round")) == expected
    assert [p.name for p in tmp_path.glob("[0-9]*.json")] == []
    spool.release()


def test_files_vanishing_under_a_shared_spool_never_raise_out_of_send(emulator, tmp_path, monkeypatch):
    """§11: another process takes a file between the listing and the read, or between the send and the
    shrink: before, FileNotFoundError from ``path.replace`` raised out of ``send()``."""
    owner = f"{os.getpid()}.vanish"
    config = Config.from_env({"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emulator.endpoint})
    provider = credential_provider(Credential(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, source="test"))
    exporter = Exporter(config, provider, label="test", spool_dir=tmp_path, owner=owner)
    spool = exporter.spool
    assert spool is not None
    taken = spool.write([raw("vanish", 0)])
    kept = spool.write([raw("vanish", 1), raw("vanish", 2)])
    original_read = Spool.read

    def read_after_another_process_took_it(self, path: Path):
        if path == taken:
            path.unlink()  # the interleaving: gone between pending() and read()
        return original_read(self, path)

    monkeypatch.setattr(Spool, "read", read_after_another_process_took_it)
    assert exporter.send(time.monotonic() + 20) in (True, False)  # no FileNotFoundError
    assert len(emulator.entries("vanish")) == 2  # the rest went
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").iterdir())  # nothing "bad"
    assert not kept.exists()

    # gone between the call and the shrink (rewrite), and during the bound check
    monkeypatch.setattr(Spool, "read", original_read)
    original_rewrite = Spool.rewrite

    def rewrite_after_it_vanished(self, path: Path, entries):
        path.unlink(missing_ok=True)
        return original_rewrite(self, path, entries)

    monkeypatch.setattr(Spool, "rewrite", rewrite_after_it_vanished)
    spool.write([raw("vanish", i) for i in range(10, 40)])  # two calls: the shrink after the first fails
    exporter.send(time.monotonic() + 20)
    assert len(emulator.entries("vanish")) == 2 + 21  # the rest was another process's to send


def test_a_spool_emptied_at_random_by_other_processes_never_raises(emulator, tmp_path):
    """§11, randomized: a thread removes random files (batches, temporary files) while sends run."""
    owner = f"{os.getpid()}.random"
    config = Config.from_env({"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emulator.endpoint})
    provider = credential_provider(Credential(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, source="test"))
    exporter = Exporter(config, provider, label="test", spool_dir=tmp_path, owner=owner)
    stop = threading.Event()
    errors: list[BaseException] = []
    rng = random.Random(11)

    def thief() -> None:
        while not stop.is_set():
            for path in list(tmp_path.iterdir()):
                if path.is_file() and rng.random() < 0.3:
                    path.unlink(missing_ok=True)
            time.sleep(rng.random() * 0.003)

    thread = threading.Thread(target=thief, daemon=True)
    thread.start()
    try:
        for _ in range(40):
            exporter.enqueue([raw("churn", i) for i in range(rng.randint(1, 45))])
            try:
                exporter.send(time.monotonic() + 20)
                exporter.health()
            except BaseException as exc:  # the assertion below names it
                errors.append(exc)
    finally:
        stop.set()
        thread.join(5)
    assert errors == []


# --- §2 and §10: a full disk ----------------------------------------------------------------------------
RECORD_SERIES = textwrap.dedent(
    """
    import json, sys
    from langflow_cms import get_reporter
    rep = get_reporter()
    name, count = sys.argv[1], int(sys.argv[2])
    for series in range(count):
        for i in range(10):
            rep.record(name, float(i), {"series": f"s{series}"})
    closed = rep.close(timeout=float(sys.argv[3]))
    print(json.dumps({"closed": closed, **rep.health()}))
    """
)


@pytest.fixture
def small_volume(tmp_path):
    """A real 256 KiB tmpfs, mounted for the test (we are root in CI)."""
    mount = tmp_path / "vol"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def record_series(env: dict[str, str], name: str, count: int, timeout: float = 20.0) -> tuple[dict, str]:
    done = run(RECORD_SERIES, env, name, str(count), str(timeout), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def stored_series(emulator, name: str, period: int = 60) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in emulator.entries(name):
        if entry["period"] == period:
            series = entry["dimensions"]["series"]
            counts[series] = counts.get(series, 0) + entry["values"]["SampleCount"]
    return counts


def temporary_files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.name.endswith(".tmp"))


@pytest.mark.parametrize("host_merge", ["true", "false"])
def test_a_full_disk_degrades_to_memory_only_and_delivery_goes_on(emulator, small_volume, host_merge):
    """§2: before, failed writes left *.tmp files nothing removed and later processes with the endpoint up
    delivered 0 of 50 new series while close() returned True and health said sent 0 / dropped 0."""
    spool = small_volume / "spool"
    down = {**spool_env(spool, f"http://127.0.0.1:{closed_port()}"), "LANGFLOW_CMS_HOST_MERGE": host_merge}
    lost = 0
    for process in range(3):  # the endpoint is down: the spool fills the volume
        health, stderr = record_series(down, f"down{process}", 200, timeout=2)
        lost += health["dropped"] + health["failed"]
        assert stderr.count("No space left") <= 1, stderr  # said once
    assert lost > 0  # what could not be kept is counted
    assert temporary_files(spool) == []

    up = {**down, "LANGFLOW_CMS_ENDPOINT": emulator.endpoint}
    health, stderr = record_series(up, "fresh", 50)
    assert stored_series(emulator, "fresh") == {f"s{i}": 10 for i in range(50)}, stderr
    assert health["closed"] is True and health["sent"] >= 100
    assert temporary_files(spool) == []
    health, stderr = record_series(up, "later", 10)
    assert stored_series(emulator, "later") == {f"s{i}": 10 for i in range(10)}, stderr
    assert temporary_files(spool) == []
    # what the first processes kept on disk went out too, each window once
    for process in range(3):
        assert all(count == 10 for count in stored_series(emulator, f"down{process}").values())
    assert waiting_entries(spool) == 0


def test_a_volume_full_of_someone_else_s_data_costs_nothing_with_the_endpoint_up(emulator, small_volume):
    """§2: a volume another program filled: the spool cannot write a byte; delivery goes on from memory."""
    spool = small_volume / "spool"
    spool.mkdir()
    with open(small_volume / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"x" * 4096)
    env = spool_env(spool, emulator.endpoint)
    del env["LANGFLOW_CMS_HOST_MERGE"]  # the default: per host merge
    health, stderr = record_series(env, "fresh", 50)
    assert stored_series(emulator, "fresh") == {f"s{i}": 10 for i in range(50)}, stderr
    assert stored_series(emulator, "fresh", 300) == {f"s{i}": 10 for i in range(50)}, stderr
    assert health["closed"] is True
    assert stderr.count("No space left") == 1, stderr
    assert temporary_files(spool) == []


def tree_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def test_spool_max_mb_bounds_the_whole_directory(emulator, tmp_path):
    """§10: only top-level batch files counted: with a 52 KB bound, dead letters, files set aside and stale
    temporary files grew to megabytes. Now the whole tree stays within it; what goes is counted, said once."""
    spool = tmp_path / "spool"
    (spool / "bad").mkdir(parents=True)
    (spool / "bad" / "old-junk.json").write_bytes(b"x" * 30_000)  # set aside long ago
    stale = spool / ".01-1.gone-0.json.tmp"  # a killed writer's temporary file
    stale.write_bytes(b"y" * 30_000)
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    emulator.set_faults(script=["InvalidAccessKeyId.NotFound:404"] * 200)  # every batch dead-lettered
    env = {**spool_env(spool, emulator.endpoint), "LANGFLOW_CMS_SPOOL_MAX_MB": "0.052"}
    said = 0
    for process in range(3):
        health, stderr = record_series(env, f"rejected{process}", 700)
        assert health["failed"] > 0
        said += stderr.count("over its bound")
        assert tree_bytes(spool) <= 52_000, sorted(
            (str(p.relative_to(spool)), p.stat().st_size) for p in spool.rglob("*") if p.is_file()
        )
    assert said == 3  # once per process
    assert not stale.exists() and not (spool / "bad" / "old-junk.json").exists()
    emulator.clear_faults()
    health, stderr = record_series(env, "after", 20)  # the bound never blocks new data
    assert stored_series(emulator, "after") == {f"s{i}": 10 for i in range(20)}, stderr


def test_a_volume_filled_to_random_levels_never_costs_delivery(emulator, small_volume):
    """§2, randomized: whatever room is left (none to 64 KiB), a process with the endpoint up delivers
    every series at 60 s and 300 s and leaves no temporary file behind."""
    rng = random.Random(2)
    spool = small_volume / "spool"
    env = spool_env(spool, emulator.endpoint)
    del env["LANGFLOW_CMS_HOST_MERGE"]  # the default: per host merge
    for round_ in range(3):
        filler = small_volume / "filler"
        filler.unlink(missing_ok=True)
        free = os.statvfs(small_volume).f_bavail * os.statvfs(small_volume).f_frsize
        with open(filler, "wb", buffering=0) as handle, contextlib.suppress(OSError):
            handle.write(b"x" * max(free - rng.randint(0, 64 * 1024), 0))
        name, count = f"level{round_}", rng.randint(10, 60)
        health, stderr = record_series(env, name, count)
        expected = {f"s{i}": 10 for i in range(count)}
        assert stored_series(emulator, name) == expected, stderr
        assert stored_series(emulator, name, 300) == expected, stderr
        assert health["closed"] is True, stderr
        assert temporary_files(spool) == []


def sending_exporter(emulator, directory: Path, owner: str) -> Exporter:
    config = Config.from_env({"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emulator.endpoint})
    provider = credential_provider(Credential(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, source="test"))
    return Exporter(config, provider, label="test", spool_dir=directory, owner=owner)


def test_a_batch_adopted_by_twenty_successive_processes_keeps_a_short_name_and_is_delivered(
    emulator, tmp_path
):
    """Review #1: each adoption grew the name by ``a<old owner>_``; after ~15 adopters (cron runs while CMS
    is down) the rename failed with ENAMETOOLONG out of pending(), and no process delivered anything again."""
    pid = os.getpid()
    first = Spool(tmp_path, 10**9, owner=f"{pid}.first")
    first.write([raw("adopted_chain", 0)])
    first.release()  # the process is gone: its lock is free
    names = []
    for n in range(20):
        adopter = Spool(tmp_path, 10**9, owner=f"{pid}.adopter{n:02d}")
        pending = adopter.pending()  # adopts it, then (CMS down) exits with it still on disk
        assert len(pending) == 1 and f"-{adopter.owner}-" in pending[0].name
        names.append(pending[0].name)
        adopter.release()
    assert max(len(name) for name in names) <= len(names[0]) + 4  # bounded, however many adoptions
    exporter = sending_exporter(emulator, tmp_path, f"{pid}.sender")
    assert exporter.send(time.monotonic() + 20)
    assert len(emulator.entries("adopted_chain")) == 1
    assert list(tmp_path.glob("[0-9]*.json")) == []
    exporter.spool.release()  # type: ignore[union-attr]


def test_an_owner_lock_that_cannot_be_opened_never_stops_the_listing(emulator, tmp_path):
    """Review #1: an error other than FileNotFoundError while checking an owner's lock (here a directory in
    its place: IsADirectoryError; another user's 0600 lock: PermissionError) escaped pending() and every
    send of every process returned False, its own new batches included."""
    pid = os.getpid()
    foreign = tmp_path / f"{time.time_ns():020d}-99999999.gone-0.json"
    foreign.write_text(json.dumps([raw("odd_lock", 0)]))
    (tmp_path / "owners" / "99999999.gone.lock").mkdir(parents=True)
    exporter = sending_exporter(emulator, tmp_path, f"{pid}.odd")
    exporter.spool.write([raw("odd_lock", 1)])  # type: ignore[union-attr]
    assert exporter.send(time.monotonic() + 20)
    assert sorted(json.loads(e["dimensions"]["i"]) for e in emulator.entries("odd_lock")) == [0, 1]
    assert list(tmp_path.glob("[0-9]*.json")) == []
    exporter.spool.release()  # type: ignore[union-attr]


def test_a_spool_folder_replaced_by_a_file_is_said_once_per_cause_and_close_never_raises(
    emulator, tmp_path, caplog
):
    """Issue #24 §8: an unusable spool was logged every cycle ("cannot write to the host journal" once per
    minute), and close() raised NotADirectoryError out of the host journal."""
    spool = tmp_path / "spool"
    config = Config.from_env(
        {
            "LANGFLOW_CMS_DEV": "1",
            "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
            "LANGFLOW_CMS_SPOOL_DIR": str(spool),
        }
    )
    reporter = Reporter(config, start=False)  # the test plays the reader thread
    shutil.rmtree(spool)
    spool.write_text("not a folder")  # the volume was remounted, the folder replaced
    with caplog.at_level(logging.WARNING, logger="langflow_cms"):
        for minute in range(1, 5):
            reporter.record("spool_gone", 1.0, {"k": str(minute)})
            reporter.storage.drain()
            reporter.storage.clock = lambda minute=minute: time.time() + 120 * minute
            reporter.cycle()
            assert reporter.flush(timeout=10)
        assert reporter.close(timeout=5)  # before: NotADirectoryError from the host journal
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    journal = [line for line in lines if "cannot write to the host journal" in line]
    assert len(journal) == 1, journal  # before: one per minute
    assert len(lines) <= 6, lines  # one line per cause
    arrived = {e["dimensions"]["k"] for e in emulator.entries("spool_gone") if e["period"] == 60}
    assert arrived == {"1", "2", "3", "4"}  # delivered from memory meanwhile


def spool_errors(emulator) -> dict[str, float]:
    """``langflow_cms_spool_errors`` as it arrived, summed per ``reason`` (60 s entries)."""
    sums: dict[str, float] = {}
    for entry in emulator.entries("langflow_cms_spool_errors"):
        if entry["period"] == 60:
            reason = entry["dimensions"].get("reason", "")
            sums[reason] = sums.get(reason, 0.0) + entry["values"]["Sum"]
    return sums


def test_a_full_spool_volume_is_counted_in_the_health_sent_at_close(emulator, small_volume):
    """Issue 24 §8: a spool that cannot be written was said once in the log but counted nowhere, so no
    alarm could see it; a short run (an ``lfx run`` from cron) must leave the count in CMS at close."""
    spool = small_volume / "spool"
    spool.mkdir()
    with open(small_volume / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"x" * 4096)
    health, stderr = record_series(spool_env(spool, emulator.endpoint), "on_a_full_volume", 5)
    assert stored_series(emulator, "on_a_full_volume") == {f"s{i}": 10 for i in range(5)}, stderr
    assert health["spool_errors"] >= 1, health
    counted = spool_errors(emulator)
    assert set(counted) == {"volume_full"} and counted["volume_full"] >= 1, counted


def test_a_read_only_spool_is_counted_by_the_health_cycle(emulator, small_volume):
    """Issue 24 §8: the periodic health cycle sends the count, per reason, while the spool stays unusable
    (its folder remounted read-only under a running process); a clean minute adds no spool_errors series."""
    spool = small_volume / "spool"
    config = Config.from_env(
        {
            "LANGFLOW_CMS_DEV": "1",
            "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
            "LANGFLOW_CMS_SPOOL_DIR": str(spool),
        }
    )
    reporter = Reporter(config, start=False)  # the test plays the reader thread
    try:
        reporter.record("before_remount", 1.0, {"k": "0"})
        reporter.storage.drain()
        reporter.cycle()
        assert reporter.flush(timeout=10)
        assert spool_errors(emulator) == {}  # a usable spool: nothing counted
        for step in (["--bind", spool, spool], ["-o", "remount,bind,ro", spool]):  # read-only from now on
            done = subprocess.run(["mount", *map(str, step)], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        for minute in range(1, 4):
            reporter.record("read_only_spool", 1.0, {"k": str(minute)})
            reporter.storage.drain()
            reporter.storage.clock = lambda minute=minute: time.time() + 120 * minute
            reporter.cycle()
            assert reporter.flush(timeout=10)
        arrived = {e["dimensions"]["k"] for e in emulator.entries("read_only_spool") if e["period"] == 60}
        assert arrived == {"1", "2", "3"}  # delivered from memory meanwhile
        counted = spool_errors(emulator)
        assert set(counted) == {"read_only"} and counted["read_only"] >= 1, counted
    finally:
        reporter.close(timeout=5)
        subprocess.run(["umount", str(spool)], check=False)
