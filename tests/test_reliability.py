"""Issue 7: nothing lost, nothing invalid, nothing leaked, under every fault the emulator can inject."""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import langflow_cms.clock as clock_module
from langflow_cms.config import Config
from langflow_cms.credentials import Credential, credential_provider
from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from langflow_cms.emulator import Emulator
from langflow_cms.langflow import metric, monitor
from langflow_cms.ops.doctor import run_doctor
from langflow_cms.reporter import Reporter


def reporter_for(endpoint: str, **env: str) -> Reporter:
    settings_ = {
        "LANGFLOW_CMS_DEV": "1",
        "LANGFLOW_CMS_ENDPOINT": endpoint,
        "LANGFLOW_CMS_MAX_QPS": "200",
        **env,
    }
    provider = credential_provider(Credential(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, source="test"))
    return Reporter(Config.from_env(settings_), provider, start=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- bad input never raises and never reaches the wire invalid ---------------------------------------
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
)
names = st.one_of(
    st.sampled_from(["latency_ms", "tokens", "a"]), st.text(max_size=70), st.integers(), st.none()
)
dimension_sets = st.one_of(
    st.none(),
    st.dictionaries(
        st.one_of(st.text(max_size=70), st.sampled_from(["flow", "node", "k"])), anything, max_size=30
    ),
)


def test_record_never_raises_and_the_strict_emulator_rejects_nothing():
    with Emulator(port=0) as emulator:
        reporter = reporter_for(emulator.endpoint)

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(names, anything, dimension_sets)
        def record_anything(name, value, dimensions):
            reporter.record(name, value, dimensions)

        record_anything()
        reporter.record("latency_ms", 1.0, {"flow": "f"})  # at least one valid series
        assert reporter.close(timeout=30)
        assert emulator.stats()["rejected"] == 0
        assert emulator.stats()["entries"] >= 2


def test_node_inputs_never_raise_and_never_reach_the_wire_invalid():
    with Emulator(port=0) as emulator:
        reporter = reporter_for(emulator.endpoint)

        @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            st.text(max_size=80),
            st.sampled_from(["Constant", "Input number", "Input field"]),
            anything,
            st.text(max_size=30),
            st.one_of(st.text(max_size=200), st.dictionaries(st.text(max_size=20), anything, max_size=12)),
            st.one_of(anything, st.dictionaries(st.text(max_size=10), anything, max_size=5)),
        )
        def node_with(metric_name, source, constant, field, dimensions, input_value):
            status = metric.record_metric(
                None,
                metric_name=metric_name,
                value_source=source,
                constant=constant,
                value_field=field,
                dimensions=dimensions,
                input_value=input_value,
            )
            assert isinstance(status, str)

        with mock.patch.object(monitor, "get_recorder", lambda: reporter):
            node_with()
        reporter.close(timeout=30)
        assert emulator.stats()["rejected"] == 0


# --- the fault matrix ---------------------------------------------------------------------------------
def test_mixed_throttling_and_5xx_then_success_delivers_2000_observations_exactly_once(emulator):
    emulator.set_faults(
        script=["Throttling.User", "InternalError", "ServiceUnavailable", "Throttling", "InternalError", "ok"]
    )
    reporter = reporter_for(emulator.endpoint)
    for i in range(2000):
        reporter.record("exactly_once", float(i % 97), {"series": f"s{i % 10}"})
    assert reporter.close(timeout=60)
    entries = emulator.entries("exactly_once")
    for period in (60, 300):
        assert sum(e["values"]["SampleCount"] for e in entries if e["period"] == period) == 2000
    assert emulator.overwrites() == 0
    assert reporter.health()["retries"] == 5


def test_read_timeouts_are_retried_and_the_resend_writes_the_same_values(emulator):
    emulator.set_faults(script=["delay:3", "ok"])  # stored, but the answer comes after the client gave up
    reporter = reporter_for(emulator.endpoint, LANGFLOW_CMS_READ_TIMEOUT="1")
    for i in range(10):
        reporter.record("timeouts", float(i))
    assert reporter.close(timeout=30)
    minute = [e for e in emulator.entries("timeouts") if e["period"] == 60]
    assert [e["values"]["SampleCount"] for e in minute] == [10]
    assert reporter.health()["retries"] == 1


def test_an_endpoint_that_is_down_then_back_gets_everything(tmp_path):
    port = free_port()
    reporter = reporter_for(f"http://127.0.0.1:{port}", LANGFLOW_CMS_RETRY_DEADLINE="1")
    for i in range(100):
        reporter.record("outage", float(i), {"k": "v"})
    reporter.storage.clock = lambda: time.time() + 3600  # the windows have ended
    assert not reporter.flush(timeout=1)  # connection refused: kept for the next cycle
    assert not reporter.flush(timeout=1)
    assert reporter.health()["queued"] == 2 and reporter.health()["failed"] == 0
    with Emulator(port=port) as emulator:
        assert reporter.flush(timeout=10)
        assert sorted(e["values"]["SampleCount"] for e in emulator.entries("outage")) == [100, 100]


def test_record_keeps_working_while_a_send_is_stuck(emulator):
    emulator.set_faults(latency=5)
    reporter = reporter_for(emulator.endpoint)
    reporter.record("stuck", 1.0)
    reporter.storage.clock = lambda: time.time() + 3600
    sender = threading.Thread(target=reporter.flush, kwargs={"timeout": 30})
    sender.start()
    send_lock = reporter._exporters[""]._send_lock
    while not send_lock.locked():
        time.sleep(0.01)
    for i in range(10_000):  # all while the sender waits for CMS
        reporter.record("stuck", float(i), {"during": "send"})
    assert sender.is_alive() and send_lock.locked()
    reporter.storage.drain()  # the reporter thread's once-a-second pass
    key = ("", "stuck", tuple(sorted({"during": "send", **reporter.common}.items())))
    assert reporter.storage.open_window(*key).count == 10_000
    sender.join()


def test_a_value_at_a_window_edge_lands_in_the_window_of_its_moment(emulator):
    edge = math.floor(time.time() / 300) * 300 + 300.0  # a 60 s and 300 s boundary
    clock = iter([edge - 0.001, edge, edge + 59.999])
    reporter = reporter_for(emulator.endpoint)
    with mock.patch.object(clock_module, "wall", lambda: next(clock)):  # the wall clock records read
        for value in (1.0, 2.0, 3.0):
            reporter.record("edge", value)
    assert reporter.close(timeout=10)
    windows = sorted(
        (e["period"], e["time"] // 1000, e["values"]["SampleCount"]) for e in emulator.entries("edge")
    )
    edge_s = int(edge)
    assert windows == [(60, edge_s - 60, 1), (60, edge_s, 2), (300, edge_s - 300, 1), (300, edge_s, 2)]


# --- self-health ----------------------------------------------------------------------------------------
def test_self_health_is_reported_as_cms_metrics(emulator):
    emulator.set_faults(script=["InvalidParameter", "ok"])
    reporter = reporter_for(emulator.endpoint)
    reporter.record("m", 1.0)
    reporter.record("m", float("nan"))
    reporter.storage.clock = lambda: time.time() + 3600
    assert not reporter.flush(timeout=5)  # permanent failure: 2 entries failed
    reporter._record_health()
    assert reporter.close(timeout=10)
    health = {e["name"]: e["values"]["Sum"] for e in emulator.entries() if e["period"] == 60}
    assert health["langflow_cms_failed"] == 2
    assert health["langflow_cms_invalid"] == 1
    assert health["langflow_cms_queued"] == 0
    assert "langflow_cms_last_success_age_s" not in health  # nothing had succeeded yet


# --- processes, secrets, doctor -----------------------------------------------------------------------
def test_worker_processes_never_share_a_series(emulator):
    code = "from langflow_cms import get_reporter\nfor i in range(50): get_reporter().record('shared', 1.0)"
    env = {**os.environ, "LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emulator.endpoint}
    workers = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(3)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0, 0]
    minute = [e for e in emulator.entries("shared") if e["period"] == 60]
    assert len({e["dimensions"]["instance"] for e in minute}) == 3
    assert sum(e["values"]["SampleCount"] for e in minute) == 150
    assert emulator.overwrites() == 0


def test_a_wrong_secret_gives_up_fast_and_never_shows_secret_or_signed_url(emulator):
    secret = "wrong-Secret-9f8e7d6c5b4a"
    code = "from langflow_cms import get_reporter\nget_reporter().record('m', 1.0)\nget_reporter().close()"
    env = {
        **os.environ,
        "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": DEV_ACCESS_KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": secret,
        "DEBUG": "sdk",  # the SDK's own debug output, the worst case
    }
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 15
    output = result.stdout + result.stderr
    assert "InvalidAccessKeySecret" in output and "not retried" in output
    assert secret not in output
    assert re.search(r"Signature=(?!\*\*\*)", output) is None  # only ever shown redacted
    assert len(emulator.requests("PutCustomMetric")) == 1

    lines: list[str] = []
    doctor_env = {k: v for k, v in env.items() if k != "DEBUG"}
    assert run_doctor(doctor_env, lines.append) == 1
    assert any("check ALIBABA_CLOUD_ACCESS_KEY_SECRET" in line for line in lines)
    assert secret not in "\n".join(lines)


def test_doctor_passes_on_a_working_setup_and_explains_a_bad_one(emulator, tmp_path):
    lines: list[str] = []
    env = {
        "LANGFLOW_CMS_DEV": "1",
        "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
        "LANGFLOW_CMS_SPOOL_DIR": str(tmp_path),
    }
    assert run_doctor(env, lines.append) == 0
    assert lines[-1].startswith("✓ spool") and "0 entries waiting" in lines[-1]
    assert emulator.entries("langflow_cms_doctor")

    lines.clear()
    assert (
        run_doctor(
            {"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": f"http://127.0.0.1:{free_port()}"},
            lines.append,
        )
        == 1
    )
    assert any("cannot be reached" in line for line in lines)

    lines.clear()
    assert run_doctor({"LANGFLOW_CMS_GROUP_ID": "abc"}, lines.append) == 2
    assert "LANGFLOW_CMS_GROUP_ID" in lines[0]
