"""Config.from_env: each variable's default, good and bad values, and development mode's safety rule."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langflow_cms import dev
from langflow_cms.config import VARIABLES, Config, ConfigError, default_instance

# (raw text, expected field value) per variable; every variable in the table must appear here and in BAD.
GOOD: dict[str, list[tuple[str, object]]] = {
    "LANGFLOW_CMS_ENABLED": [("false", False), ("ON", True), ("0", False)],
    "LANGFLOW_CMS_DEV": [("yes", True), ("Off", False)],
    "LANGFLOW_CMS_REGION": [("cn-shanghai", "cn-shanghai"), ("ap-southeast-1", "ap-southeast-1")],
    "LANGFLOW_CMS_ENDPOINT": [
        ("metrics.cn-shanghai.aliyuncs.com", "https://metrics.cn-shanghai.aliyuncs.com"),
        ("HTTPS://Metrics.cn-shanghai.aliyuncs.com:443/", "https://metrics.cn-shanghai.aliyuncs.com"),
        ("https://cms.internal:8443", "https://cms.internal:8443"),
        ("127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("[::1]:8765", "http://[::1]:8765"),
    ],
    "LANGFLOW_CMS_GROUP_ID": [("123456", "123456")],
    "LANGFLOW_CMS_MODE": [("raw", "raw"), ("Aggregated", "aggregated")],
    "LANGFLOW_CMS_SAMPLE_RATE": [("0.25", 0.25), ("1", 1.0)],
    "LANGFLOW_CMS_ENV": [("prod", "prod"), ("eu/staging-2", "eu/staging-2")],
    "LANGFLOW_CMS_INSTANCE": [("web-7.pod_3", "web-7.pod_3")],
    "LANGFLOW_CMS_MAX_SERIES": [("50", 50)],
    "LANGFLOW_CMS_MAX_METRICS": [("1", 1), ("5000", 5000)],
    "LANGFLOW_CMS_FLEET": [("false", False), ("on", True)],
    "LANGFLOW_CMS_EVENTS": [("off", False)],
    "LANGFLOW_CMS_EVENTS_PER_MINUTE": [("1", 1), ("500", 500)],
    "LANGFLOW_CMS_SLOW_RUN_MS": [("5000", 5000.0), ("0.5", 0.5)],
    "LANGFLOW_CMS_SLOW_EVENTS": [("true", True)],
    "LANGFLOW_CMS_SLS_PROJECT": [("langflow-logs", "langflow-logs")],
    "LANGFLOW_CMS_SLS_LOGSTORE": [("flow_runs", "flow_runs")],
    "LANGFLOW_CMS_FLEET_NODES": [("yes", True)],
    "LANGFLOW_CMS_FLEET_BUDGET": [("2", 2), ("10000", 10000)],
    "LANGFLOW_CMS_FLEET_RATE": [("0.1", 0.1), ("1", 1.0)],
    "LANGFLOW_CMS_EXIT_TIMEOUT": [("0", 0.0), ("2.5", 2.5)],
    "LANGFLOW_CMS_QUEUE_SIZE": [("1", 1), ("200000", 200000)],
    "LANGFLOW_CMS_MAX_QPS": [("0.5", 0.5), ("200", 200.0)],
    "LANGFLOW_CMS_CONNECT_TIMEOUT": [("1.5", 1.5)],
    "LANGFLOW_CMS_READ_TIMEOUT": [("30", 30.0)],
    "LANGFLOW_CMS_RETRY_DEADLINE": [("59.5", 59.5)],
    "LANGFLOW_CMS_SPOOL_DIR": [("/var/spool/cms", Path("/var/spool/cms"))],
    "LANGFLOW_CMS_SPOOL_MAX_MB": [("1", 1.0), ("0.5", 0.5), ("1024", 1024.0)],
    "LANGFLOW_CMS_HOST_MERGE": [("false", False), ("1", True), ("on", True)],
    "LANGFLOW_CMS_MONITOR": [("ALL", "all"), ("off", "off")],
    "LANGFLOW_CMS_TEST_CLOCK": [],  # only with LANGFLOW_CMS_DEV: test_the_test_clock_needs_dev_mode
}
BAD: dict[str, list[str]] = {
    "LANGFLOW_CMS_ENABLED": ["maybe", "2"],
    "LANGFLOW_CMS_DEV": ["enabled"],
    "LANGFLOW_CMS_REGION": ["hangzhou", "CN-HANGZHOU", "cn_hangzhou"],
    "LANGFLOW_CMS_ENDPOINT": [
        "http://metrics.cn-hangzhou.aliyuncs.com",  # cleartext signed URL off the machine
        "ftp://127.0.0.1",
        "https://host/path",
        "https://user:pw@host",
        "localhost:99999",
        "https://",
    ],
    "LANGFLOW_CMS_GROUP_ID": ["abc", "-1", "1.5"],
    "LANGFLOW_CMS_MODE": ["fast"],
    "LANGFLOW_CMS_SAMPLE_RATE": ["0", "1.5", "-0.1", "nan", "half"],
    "LANGFLOW_CMS_ENV": ["prod env", "a=b", "x" * 65, "中文"],
    "LANGFLOW_CMS_INSTANCE": ["a,b", "host&1"],
    "LANGFLOW_CMS_MAX_SERIES": ["0", "10.5", "many"],
    "LANGFLOW_CMS_QUEUE_SIZE": ["0", "-5"],
    "LANGFLOW_CMS_MAX_QPS": ["0", "201", "inf"],
    "LANGFLOW_CMS_CONNECT_TIMEOUT": ["0", "-1", "61"],
    "LANGFLOW_CMS_READ_TIMEOUT": ["abc"],
    "LANGFLOW_CMS_RETRY_DEADLINE": ["60", "0"],
    "LANGFLOW_CMS_SPOOL_DIR": [],  # any non-empty path is accepted
    "LANGFLOW_CMS_SPOOL_MAX_MB": ["0", "-1", "lots", "nan"],
    "LANGFLOW_CMS_HOST_MERGE": ["maybe", "2"],
    "LANGFLOW_CMS_MONITOR": ["some"],
    "LANGFLOW_CMS_TEST_CLOCK": ["/tmp/clock"],  # refused without LANGFLOW_CMS_DEV
    "LANGFLOW_CMS_MAX_METRICS": ["0", "many"],
    "LANGFLOW_CMS_FLEET": ["sometimes"],
    "LANGFLOW_CMS_EVENTS": ["many"],
    "LANGFLOW_CMS_EVENTS_PER_MINUTE": ["0", "ten"],
    "LANGFLOW_CMS_SLOW_RUN_MS": ["0", "-1", "fast"],
    "LANGFLOW_CMS_SLOW_EVENTS": ["2"],
    "LANGFLOW_CMS_SLS_PROJECT": ["Upper", "a", "bad_underscore"],
    "LANGFLOW_CMS_SLS_LOGSTORE": ["Has Space"],
    "LANGFLOW_CMS_FLEET_NODES": ["2"],
    "LANGFLOW_CMS_FLEET_BUDGET": ["1", "-5", "lots"],
    "LANGFLOW_CMS_FLEET_RATE": ["0", "1.5", "half"],
    "LANGFLOW_CMS_EXIT_TIMEOUT": ["-1", "60", "soon"],
}
_FIELD = {v.name: v.field for v in VARIABLES}


def test_table_is_fully_covered_by_these_tests() -> None:
    assert set(GOOD) == set(BAD) == set(_FIELD)
    assert all(name.startswith("LANGFLOW_CMS_") for name in _FIELD)


def test_defaults() -> None:
    config = Config.from_env({})
    assert config.enabled is True
    assert config.endpoint == "https://metrics.cn-hangzhou.aliyuncs.com"
    assert (config.region, config.group_id, config.mode, config.sample_rate) == (
        "cn-hangzhou",
        "0",
        "aggregated",
        1.0,
    )
    assert (config.dev, config.env, config.spool_dir, config.monitor) == (False, None, None, "annotated")
    assert (config.max_series_per_metric, config.queue_size, config.max_qps) == (1000, 10000, 10.0)
    assert (config.connect_timeout, config.read_timeout, config.retry_deadline) == (5.0, 10.0, 50.0)
    assert f"-{os.getpid()}-" in config.instance and config.exit_timeout == 0.8
    assert not config.is_loopback


@pytest.mark.parametrize(
    ("name", "raw", "expected"), [(n, r, e) for n, cases in GOOD.items() for r, e in cases]
)
def test_good_values(name: str, raw: str, expected: object) -> None:
    config = Config.from_env({name: f"  {raw} "})
    assert getattr(config, _FIELD[name]) == expected


@pytest.mark.parametrize(("name", "raw"), [(n, r) for n, values in BAD.items() for r in values])
def test_bad_values_name_the_variable_value_and_accepted(name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env({name: raw})
    message = str(info.value)
    accepted = next(v.accepted for v in VARIABLES if v.name == name)
    assert name in message
    assert repr(raw) in message
    assert accepted in message
    assert "invalid literal" not in message  # no Python internals, only what to set


def test_empty_value_counts_as_unset() -> None:
    empty = Config.from_env({"LANGFLOW_CMS_MODE": "", "LANGFLOW_CMS_MAX_QPS": "  "})
    unset = Config.from_env({})
    assert dataclasses.replace(empty, instance="") == dataclasses.replace(unset, instance="")


def test_endpoint_default_follows_region() -> None:
    config = Config.from_env({"LANGFLOW_CMS_REGION": "ap-southeast-1"})
    assert config.endpoint == "https://metrics.ap-southeast-1.aliyuncs.com"


def test_http_to_remote_host_says_why() -> None:
    with pytest.raises(ConfigError, match="plain http is only allowed for loopback"):
        Config.from_env({"LANGFLOW_CMS_ENDPOINT": "http://10.0.0.5:8080"})


def test_dev_mode_defaults_to_the_emulator() -> None:
    config = Config.from_env({"LANGFLOW_CMS_DEV": "1"})
    assert config.endpoint == dev.DEFAULT_EMULATOR_ENDPOINT
    assert config.is_loopback
    assert config.env == "dev"


def test_dev_mode_keeps_explicit_env_and_loopback_endpoint() -> None:
    config = Config.from_env(
        {"LANGFLOW_CMS_DEV": "true", "LANGFLOW_CMS_ENV": "ci", "LANGFLOW_CMS_ENDPOINT": "localhost:9999"}
    )
    assert (config.endpoint, config.env) == ("http://localhost:9999", "ci")


@pytest.mark.parametrize(
    "endpoint",
    ["metrics.cn-hangzhou.aliyuncs.com", "https://metrics.cn-shanghai.aliyuncs.com", "https://10.0.0.1:443"],
)
def test_dev_mode_refuses_a_production_endpoint(endpoint: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env({"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": endpoint})
    message = str(info.value)
    assert "LANGFLOW_CMS_ENDPOINT" in message and "LANGFLOW_CMS_DEV" in message and "production" in message


def test_instance_is_computed_per_call_so_forked_children_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    first = Config.from_env({}).instance
    monkeypatch.setattr(os, "getpid", lambda: 424242)
    second = Config.from_env({}).instance
    assert first != second and "-424242-" in second


def test_default_instance_is_a_valid_dimension_value_for_any_hostname(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "héllo wörld," + "x" * 100)
    instance = default_instance()
    assert Config.from_env({"LANGFLOW_CMS_INSTANCE": instance}).instance == instance
    assert len(instance.encode()) <= 64 and f"-{os.getpid()}-" in instance


def test_instance_is_unique_per_process_start_even_with_pid_1_and_the_same_hostname(monkeypatch) -> None:
    """Issue #10 §9: a restarted container (PID 1, same hostname) must not write the old process's series."""
    monkeypatch.setattr(os, "getpid", lambda: 1)
    monkeypatch.setattr("socket.gethostname", lambda: "web-0")
    assert len({default_instance() for _ in range(50)}) == 50


def test_instance_is_the_host_when_processes_merge_per_host(tmp_path) -> None:
    """Issue #11: merged per host, `instance` names the host and is the same in every process; without a
    spool directory (nothing to merge through) or with the merge off, it is unique per process start."""
    import socket

    merged = Config.from_env({"LANGFLOW_CMS_SPOOL_DIR": str(tmp_path)})
    assert merged.merges_per_host and merged.instance == socket.gethostname().replace(" ", "_")
    alone = Config.from_env({})
    off = Config.from_env({"LANGFLOW_CMS_SPOOL_DIR": str(tmp_path), "LANGFLOW_CMS_HOST_MERGE": "false"})
    for config in (alone, off):
        assert not config.merges_per_host and f"-{os.getpid()}-" in config.instance


def test_docs_name_every_variable() -> None:
    from langflow_cms.credentials import ENV_VARIABLES

    docs = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    missing = [name for name in [*_FIELD, *ENV_VARIABLES] if f"`{name}`" not in docs]
    assert not missing


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFLOW_CMS_MODE", "raw")
    assert Config.from_env().mode == "raw"


def test_config_is_frozen() -> None:
    config = Config.from_env({})
    with pytest.raises(AttributeError):
        config.mode = "raw"  # type: ignore[misc]


_WORDS = {True: ["1", "true", "yes", "on"], False: ["0", "false", "no", "off"]}


@given(st.sampled_from([(v, w) for v, words in _WORDS.items() for w in words]), st.data())
def test_booleans_accept_any_case(pair: tuple[bool, str], data: st.DataObject) -> None:
    value, word = pair
    cased = "".join(c.upper() if data.draw(st.booleans()) else c for c in word)
    assert Config.from_env({"LANGFLOW_CMS_ENABLED": cased}).enabled is value


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_sample_rate_accepts_exactly_the_half_open_unit_interval(rate: float) -> None:
    environ = {"LANGFLOW_CMS_SAMPLE_RATE": repr(rate)}
    if 0 < rate <= 1:
        assert Config.from_env(environ).sample_rate == rate
    else:
        with pytest.raises(ConfigError, match="LANGFLOW_CMS_SAMPLE_RATE"):
            Config.from_env(environ)


@given(
    st.integers(min_value=1, max_value=65535),
    st.sampled_from(["127.0.0.1", "127.1.2.3", "localhost", "[::1]"]),
)
def test_loopback_endpoints_normalise_to_http_with_port(port: int, host: str) -> None:
    config = Config.from_env({"LANGFLOW_CMS_ENDPOINT": f"{host}:{port}"})
    expected = f"http://{host}" if port == 80 else f"http://{host}:{port}"
    assert config.endpoint == expected and config.is_loopback


def test_the_test_clock_needs_dev_mode_and_shifts_only_now(tmp_path: Path) -> None:
    """LANGFLOW_CMS_TEST_CLOCK can never shift production data: without dev mode it is refused (above),
    and the runtime's clock ignores it; in dev mode the file's seconds move "now", read as it changes."""
    from langflow_cms import clock

    path = tmp_path / "clock"
    config = Config.from_env({"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_TEST_CLOCK": str(path)})
    assert config.test_clock == path
    assert clock.from_environment({"LANGFLOW_CMS_TEST_CLOCK": str(path)}) is time.time  # not in dev mode
    shifted = clock.from_environment({"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_TEST_CLOCK": str(path)})
    assert abs(shifted() - time.time()) < 5  # no file yet: no shift
    clock.step(path, -3600)
    deadline = time.monotonic() + 10
    while abs(shifted() - (time.time() - 3600)) > 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert abs(shifted() - (time.time() - 3600)) < 5
