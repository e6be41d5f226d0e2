"""#24: the reporter never hurts the process it watches: signals, pools, hostile input.

Real processes and real signals: a driver process forks children that record new series on every thread
(the main thread included, so a signal can land while it holds a reporter lock) and flush concurrently; the
driver SIGTERMs each at a random moment and measures how long it takes to end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXIT_TIMEOUT = 1.0
LOAD_ALLOWANCE_S = 8.0
"""The promise is EXIT_TIMEOUT + 1 s; a loaded 2-core CI machine gets this much more before it is a hang.

The driver runs 8 children at once, each with 4 threads recording flat out, so the bounded close competes
for the GIL and the cores: exits of 4.3 s were seen here with the machine busy, and one child of 200 in CI
ended 5 s after its SIGTERM with no faulthandler dump (it was ending, not stuck: a stuck child dumps its
threads on SIGUSR1). A hang is forever; the time bound itself is a bench row, not this test."""

SIGTERM_DRIVER = textwrap.dedent(
    """
    import faulthandler, json, os, random, signal, sys, threading, time
    from langflow_cms import get_reporter

    trials, seed, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    rng = random.Random(seed)
    get_reporter()  # the parent has a reporter (and the SIGTERM hook) before it forks, as a server does

    def child(child_seed):
        local = random.Random(child_seed)
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # a hang shows where every thread is
        reporter = get_reporter()

        def record(tag):
            i = 0
            while True:  # a new series each time: the registry lock is taken on every call
                reporter.record(f"sig_{i % 7}", 1.0, {"k": f"{tag}{i}"})
                i += 1

        def flush():
            while True:
                reporter.flush(timeout=0.5)
                time.sleep(local.random() * 0.01)

        for target, args in ((record, ("t",)), (flush, ()), (flush, ())):
            threading.Thread(target=target, args=args, daemon=True).start()
        os.write(ready_w, b"r")
        record("m")  # the main thread too: the signal handler runs here, maybe inside a lock

    results = []
    batch = 8
    # CPython drops a signal that lands between fork() and the end of its own after-fork work (issue9535):
    # children say when they run, and each is signalled at a random moment after that
    ready_r, ready_w = os.pipe()
    for start in range(0, trials, batch):
        children = []
        for n in range(start, min(start + batch, trials)):
            pid = os.fork()
            if pid == 0:
                try:
                    child(seed * 1000 + n)
                finally:
                    os._exit(3)
            children.append(pid)
        for _ in children:
            os.read(ready_r, 1)
        children = [(pid, time.monotonic() + rng.random() * 0.4) for pid in children]
        killed = {}
        pending = sorted(children, key=lambda c: c[1])
        for pid, at in pending:
            time.sleep(max(at - time.monotonic(), 0))
            os.kill(pid, signal.SIGTERM)
            killed[pid] = time.monotonic()
        waiting = dict(killed)
        while waiting:  # reaped round-robin, so one slow child does not delay measuring the others
            for pid in list(waiting):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    results.append([time.monotonic() - waiting.pop(pid), status])
                elif time.monotonic() - waiting[pid] > limit:
                    os.kill(pid, signal.SIGUSR1)
                    time.sleep(0.5)
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    del waiting[pid]
                    results.append([None, None])
            time.sleep(0.005)
    print(json.dumps(results))
    """
)


def _stalled() -> tuple[socket.socket, str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(512)
    return server, f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.slow
@pytest.mark.serial  # exit times under load
def test_200_randomized_sigterms_to_recording_and_flushing_processes_end_each_within_the_exit_budget(
    emulator, env
):
    """#24 §1: the SIGTERM handler closed every reporter inside the signal handler, on the main thread; a
    signal landing while that thread held a reporter lock hung the process forever (4-5 of 20)."""
    stalled, stalled_endpoint = _stalled()
    limit = EXIT_TIMEOUT + 1.0 + LOAD_ALLOWANCE_S
    try:
        drivers = []
        for seed, endpoint in ((1, emulator.endpoint), (2, stalled_endpoint)):
            run_env = {**env, "LANGFLOW_CMS_ENDPOINT": endpoint}
            run_env["LANGFLOW_CMS_EXIT_TIMEOUT"] = str(EXIT_TIMEOUT)
            drivers.append(
                subprocess.Popen(
                    [sys.executable, "-c", SIGTERM_DRIVER, "100", str(seed), str(limit)],
                    env=run_env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    start_new_session=True,  # whatever happens, its forked children are killed with it
                )
            )
        results, errors = [], []
        for driver in drivers:
            out, err = driver.communicate(timeout=600)
            errors.append(
                "\n".join(line for line in err.splitlines() if not line.startswith("langflow-cms:"))
            )
            assert driver.returncode == 0, err[-3000:]
            results += json.loads(out.strip().splitlines()[-1])
    finally:
        stalled.close()
        for driver in drivers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(driver.pid, signal.SIGKILL)
    assert len(results) == 200
    hangs = [r for r in results if r[0] is None]
    assert not hangs, (
        f"{len(hangs)} of 200 processes alive {limit} s after SIGTERM:\n{''.join(errors)[-6000:]}"
    )
    # every one still ends by SIGTERM, as a supervisor expects (waitpid status: the signal number)
    assert {status & 0x7F for _, status in results} == {15}, sorted({s for _, s in results})
    print("slowest exit after SIGTERM:", round(max(r[0] for r in results), 2), "s")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def _pool_task(i: int) -> int:
    from langflow_cms import get_reporter

    get_reporter().record("pool_with", float(i), {"flow": "pool"})
    return i


POOL_WITH_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, sys
    sys.path.insert(0, sys.argv[1])
    from test_lifecycle import _pool_task
    if __name__ == "__main__":
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(3) as pool:  # the idiom in Python's docs: __exit__ is terminate(), SIGTERM to workers
            assert sorted(pool.map(_pool_task, range(91), chunksize=1)) == list(range(91))
        print("done")
    """
)


@pytest.mark.parametrize("parent_reports", [False, True])
def test_with_pool_terminate_delivers_what_the_workers_recorded(emulator, env, parent_reports):
    """#24 §3: `with Pool() as pool:` ends with terminate(); 1 to 81 of 91 observations arrived."""
    script = POOL_WITH_SCRIPT
    if parent_reports:  # the parent has a reporter (and the SIGTERM hook) before it forks, as a server does
        script = script.replace(
            "if __name__", "from langflow_cms import get_reporter; get_reporter()\nif __name__"
        )
    for _run in range(2):
        result = subprocess.run(
            [sys.executable, "-c", script, str(Path(__file__).parent)],
            env={**env, "LANGFLOW_CMS_EXIT_TIMEOUT": "5"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0 and "done" in result.stdout, result.stderr[-3000:]
    counted = sum(e["values"]["SampleCount"] for e in emulator.entries("pool_with") if e["period"] == 60)
    assert counted == 2 * 91


# --- §4: hostile input never raises ----------------------------------------------------------------
class _BadFloat(float):
    def __float__(self) -> float:
        raise RuntimeError("no float for you")

    def __sub__(self, other: object) -> float:
        raise RuntimeError("no arithmetic either")


class _BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class _BadMapping(dict):
    def items(self):  # type: ignore[override]
        raise RuntimeError("no items for you")

    def __iter__(self):
        raise RuntimeError("no iteration either")


class _BadHash(str):
    def __hash__(self) -> int:
        raise RuntimeError("no hash for you")


def test_record_never_raises_on_hostile_input_and_counts_each_drop(make_reporter, emulator):
    """#24 §4: record() raised on a float subclass whose __float__ raises, a dimension value whose __str__
    raises, and a Mapping whose items() raises."""
    reporter = make_reporter()
    hostile = [
        ("m", _BadFloat(1.0), None),
        ("m", 1.0, {"k": _BadStr()}),
        ("m", 1.0, _BadMapping(k="v")),
        (_BadStr(), 1.0, None),
        ("m", 1.0, {_BadStr(): "v"}),
        ("m", 1.0, {"k": _BadHash("v")}),
        ("m", _BadStr(), {"k": "v"}),
    ]
    for name, value, dims in hostile:
        reporter.record(name, value, dims)  # type: ignore[arg-type]
        handle = reporter.series(name, dims)  # type: ignore[arg-type]
        if handle is not None:
            reporter.observe(handle, value)  # type: ignore[arg-type]
    reporter.record("m", 2.0, {"k": "fine"})
    assert reporter.health()["invalid"] >= len(hostile)
    assert reporter.close(timeout=10)
    counted = sum(e["values"]["SampleCount"] for e in emulator.entries("m") if e["period"] == 60)
    assert counted == 1  # the one good observation, nothing else, nothing lost


@pytest.mark.parametrize("problem", ["unknown_user", "instance_id_not_utf8"])
def test_get_reporter_never_raises(env, tmp_path, problem):
    """#24 §4: get_reporter() raised RuntimeError for LANGFLOW_CMS_SPOOL_DIR='~nosuchuser/x' (the same
    error as '~/spool' without a home directory), and UnicodeDecodeError when host/<h>/instance.id is not
    UTF-8."""
    run_env = {k: v for k, v in env.items() if k != "HOME"}
    code = "import os; from langflow_cms import get_reporter; r = get_reporter(); r.record('m', 1.0); "
    code += "print(type(r).__name__, r.health().get('reason', '')); r.close(timeout=2)"
    if problem == "unknown_user":
        run_env["LANGFLOW_CMS_SPOOL_DIR"] = "~nosuchuser_i24/x"
    else:
        run_env["LANGFLOW_CMS_SPOOL_DIR"] = str(tmp_path)
        run_env["LANGFLOW_CMS_HOST_MERGE"] = "true"
        from langflow_cms.delivery.journal import host_directory

        folder = host_directory(tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "instance.id").write_bytes(b"\xff\xfe\x00bad")
    result = subprocess.run(
        [sys.executable, "-c", code], env=run_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    if problem != "instance_id_not_utf8":  # a bad setting: said once, clearly, naming the variable
        assert "LANGFLOW_CMS_SPOOL_DIR" in result.stdout, result.stdout
    else:  # an unreadable journal costs only the merge: the process still reports on its own
        assert result.stdout.startswith("Reporter"), result.stdout


# --- §9: only loopback addresses are loopback ---------------------------------------------------------
def _resolves_to_loopback_only(host: str) -> bool:
    import ipaddress

    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found)


@pytest.mark.parametrize("host", ["evil.localhost", "localhost.evil.example", "127.0.0.1.nip.io"])
def test_plain_http_only_to_names_that_resolve_to_loopback(host):
    """#24 §9: http://evil.localhost:7949 counted as a loopback endpoint (by its name), so plain HTTP was
    allowed to it."""
    from langflow_cms.config import Config, ConfigError

    if _resolves_to_loopback_only(host):
        pytest.skip(f"{host} resolves to loopback on this machine")
    with pytest.raises(ConfigError, match="LANGFLOW_CMS_ENDPOINT"):
        Config.from_env({"LANGFLOW_CMS_ENDPOINT": f"http://{host}:7949"})
    assert Config.from_env({"LANGFLOW_CMS_ENDPOINT": f"{host}:7949"}).endpoint.startswith("https://")


def test_loopback_names_and_addresses_still_get_plain_http():
    from langflow_cms.config import Config

    for host in ("localhost", "127.0.0.1", "127.3.4.5", "[::1]"):
        assert Config.from_env({"LANGFLOW_CMS_ENDPOINT": f"{host}:7949"}).endpoint == f"http://{host}:7949"


# --- §8: mistakes are counted in CMS and logged once, boundedly -----------------------------------------
def test_a_short_run_s_invalid_and_dropped_observations_reach_cms_at_close(make_reporter, emulator):
    """#24 §8: langflow_cms_invalid and the drop counters were only sent by the periodic cycle, so an
    `lfx run` with an invalid metric name (a cron-style use) left no trace in CMS."""
    reporter = make_reporter(LANGFLOW_CMS_MAX_METRICS="2")
    reporter.record("bad name!", 1.0)
    reporter.record("a", float("nan"))
    for name in ("a", "b", "c", "d"):  # two past the cap on metric names
        reporter.record(name, 1.0)
    assert reporter.close(timeout=10)
    invalid = [e for e in emulator.entries("langflow_cms_invalid") if e["period"] == 60]
    assert sum(e["values"]["Sum"] for e in invalid) == 2
    dropped = [e for e in emulator.entries("langflow_cms_dropped") if e["period"] == 60]
    assert {e["dimensions"].get("reason") for e in dropped} == {"metric_cap"}
    assert sum(e["values"]["Sum"] for e in dropped) == 2


def test_a_clean_short_run_adds_no_health_series(make_reporter, emulator):
    reporter = make_reporter()
    reporter.record("ok", 1.0)
    assert reporter.close(timeout=10)
    assert not [e for e in emulator.entries() if e["name"].startswith("langflow_cms_")]


def test_mistakes_are_logged_one_bounded_line_per_cause(make_reporter, caplog):
    """#24 §8: one 10 MB metric name made a 10,000,212-character log line; 100 names past the cap made 105
    warning lines."""
    reporter = make_reporter(LANGFLOW_CMS_MAX_METRICS="200")
    with caplog.at_level(logging.WARNING, logger="langflow_cms"):
        reporter.record("x" * 10_000_000, 1.0)
        reporter.record("y" * 10_000_000, 1.0, {"k": "v" * 10_000_000})
        for i in range(300):
            reporter.record(f"m{i}", 1.0)
        for i in range(100):
            reporter.record(f"bad name {i}", 1.0)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("langflow_cms")]
    assert lines and max(len(line) for line in lines) <= 1000, max(len(line) for line in lines)
    assert len([line for line in lines if "LANGFLOW_CMS_MAX_METRICS" in line]) == 1
    assert len([line for line in lines if "invalid metric name" in line]) == 1
    assert reporter.health()["invalid"] == 102


# --- §5: record() never waits behind an eviction scan ----------------------------------------------------
class _HoldCounter:
    """Wraps the registry lock: how many series left the registry during the longest single hold."""

    def __init__(self, storage) -> None:
        self.storage = storage
        self.inner = storage._lock
        self.worst = 0
        self._before = 0

    def __enter__(self):
        self.inner.acquire()
        self._before = len(self.storage._series)
        return self

    def __exit__(self, *exc):
        self.worst = max(self.worst, self._before - len(self.storage._series))
        self.inner.release()
        return False


def test_evicting_many_idle_series_never_holds_the_registry_lock_for_all_of_them():
    """#24 §5: a new series waited on the registry lock while _evict_idle scanned and removed every idle
    series under it: worst record() 313 ms at 200,000 series. Now the lock is held for a small batch at a
    time, so a new series waits for at most one batch (the bench's figure is the wall time)."""
    import time as clock

    from langflow_cms.pipeline.storage import Scope, Storage

    storage = Storage(max_series_per_metric=100_000, max_metrics=10)
    scope = Scope(storage, "", {"instance": "i"})
    for i in range(20_000):
        scope.record("m", 1.0, {"k": str(i)})
    start = clock.time()
    storage.collect(start)
    holds = _HoldCounter(storage)
    storage._lock = holds
    for minute in range(1, 5):  # the windows are sealed, then the series go idle and are evicted
        storage.collect(start + 60 * minute + 1)
    assert storage.series_count() == 0  # every idle series was evicted
    assert 0 < holds.worst <= 1000, holds.worst


# --- review 3: a fork while another thread builds the reporter ------------------------------------------
FORK_WHILE_BUILDING = textwrap.dedent(
    """
    import os, sys, threading, time
    from langflow_cms import lifecycle

    held, release = threading.Event(), threading.Event()

    def builder():  # another thread inside the first get_reporter() when the main thread forks
        with lifecycle._reporter_lock:
            held.set()
            release.wait()

    threading.Thread(target=builder, daemon=True).start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        try:
            reporter = lifecycle.get_reporter()
            reporter.record("forked", 1.0)
            reporter.close(timeout=5)
        finally:
            os._exit(0)
    release.set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print("child", os.waitstatus_to_exitcode(status))
            sys.exit(0)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print("child hung")
    """
)


def test_a_fork_while_another_thread_holds_the_reporter_lock_does_not_hang_the_child(emulator, env):
    """Review 3: _after_fork recreated the closer's lock but not the reporter's: the child's first
    get_reporter() waited forever on a lock held by a thread that does not exist in the child."""
    result = subprocess.run(
        [sys.executable, "-c", FORK_WHILE_BUILDING], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "child 0", (result.stdout, result.stderr[-2000:])
    counted = sum(e["values"]["SampleCount"] for e in emulator.entries("forked") if e["period"] == 60)
    assert counted == 1


# --- review 10: SIGTERM during an explicit close() ------------------------------------------------------
CLOSE_THEN_SIGTERM = textwrap.dedent(
    """
    import sys
    from langflow_cms import get_reporter

    reporter = get_reporter()
    reporter.record("closing_sigterm", 1.0, {"flow": "f"})
    try:
        pass  # an exported script's run
    finally:
        print("closing", flush=True)
        reporter.close()  # as exported scripts do: the default 30 s
    """
)


@pytest.mark.serial  # exit times under load
def test_sigterm_during_an_explicit_close_lets_the_close_deliver_within_the_exit_budget(emulator, env):
    """Review 10: the SIGTERM closer's close() returned at once (the reporter was closed already), so the
    process was killed with the explicit close's request in flight: 0 of 1 observations had arrived when
    it ended, and nothing said so."""
    import time

    emulator.set_faults(script=["late:3"])  # the close's one call is applied, and answered, after 3 s
    run_env = {**env, "LANGFLOW_CMS_EXIT_TIMEOUT": "8"}
    run_env.pop("LANGFLOW_CMS_SPOOL_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-c", CLOSE_THEN_SIGTERM],
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "closing"
        time.sleep(1.0)  # the close's call is under way
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        process.wait(timeout=8 + 1 + LOAD_ALLOWANCE_S + 5)
        ended = time.monotonic() - signalled
        counted = sum(
            e["values"]["SampleCount"] for e in emulator.entries("closing_sigterm") if e["period"] == 60
        )
    finally:
        process.kill()
        stderr = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    assert counted == 1, (round(ended, 2), stderr[-2000:])
    # It ends by SIGTERM, or with 0 when the script's own close finished and the interpreter exited before
    # the closer thread re-raised the signal (seen once under load): ended promptly either way.
    assert process.returncode in (-signal.SIGTERM, 0), stderr[-2000:]
    assert ended <= 8 + 1 + LOAD_ALLOWANCE_S


@pytest.mark.serial  # exit times under load
def test_sigterm_during_an_explicit_close_to_a_stalled_endpoint_names_what_was_lost(env):
    """Review 10: killed at once, with nothing said about the observation the close was sending."""
    import time

    stalled, stalled_endpoint = _stalled()
    run_env = {**env, "LANGFLOW_CMS_ENDPOINT": stalled_endpoint, "LANGFLOW_CMS_EXIT_TIMEOUT": "1"}
    run_env.pop("LANGFLOW_CMS_SPOOL_DIR", None)
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", CLOSE_THEN_SIGTERM],
            env=run_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout.readline().strip() == "closing"
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        _, stderr = process.communicate(timeout=1 + 1 + LOAD_ALLOWANCE_S + 5)
        ended = time.monotonic() - signalled
    finally:
        process.kill()
        stalled.close()
    assert process.returncode == -signal.SIGTERM, stderr[-2000:]
    assert ended <= 1 + 1 + LOAD_ALLOWANCE_S
    assert "not delivered" in stderr and "dropped" in stderr, stderr[-2000:]
