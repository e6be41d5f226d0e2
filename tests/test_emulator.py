"""The CMS emulator over real HTTP with the real aliyunsdkcore client: auth, validation, storage, faults,
read-back and the admin API. No mocks: every check goes through a socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.client import AcsClient

from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from langflow_cms.emulator import Emulator
from langflow_cms.emulator import signature as sig

NO_PROXY = {"http": None, "https": None}
MAX_ENTRIES_PER_CALL = 21  # MetricList.N: "Valid values of N: 1 to 21" (API metadata; cms-api.md §1.1)
STS_ID, STS_SECRET, STS_TOKEN = "STS.test-key", "sts-secret", "sts-token-123"
KEYS = {DEV_ACCESS_KEY_ID: DEV_ACCESS_KEY_SECRET, STS_ID: (STS_SECRET, STS_TOKEN)}


@pytest.fixture(scope="module")
def emu():
    with Emulator(keys=KEYS) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _fresh(emu):
    emu.reset()


def make_client(key_id=DEV_ACCESS_KEY_ID, secret=DEV_ACCESS_KEY_SECRET, **kwargs) -> AcsClient:
    return AcsClient(key_id, secret, "cn-hangzhou", auto_retry=False, proxy=NO_PROXY, **kwargs)


@pytest.fixture
def client() -> AcsClient:
    return make_client()


def entry(name="llm_latency_ms", **overrides) -> dict:
    item = {
        "GroupId": "0",
        "MetricName": name,
        "Dimensions": json.dumps({"flow": "summarize", "status": "ok"}),
        "Type": "0",
        "Values": json.dumps({"value": 12.5}),
        "Time": str(int(time.time() * 1000)),
    }
    item.update(overrides)
    return {k: v for k, v in item.items() if v is not None}


def aggregate(name="llm_runs", period="60", time_ms=None, **values) -> dict:
    stats = values or {"Sum": 7, "SampleCount": 7, "Average": 1, "Maximum": 1, "Minimum": 1}
    return entry(
        name, Type="1", Period=period, Values=json.dumps(stats), Time=str(time_ms or 1_795_625_520_000)
    )


def put(client, emu, entries, **query) -> dict:
    request = PutCustomMetricRequest()
    request.set_endpoint(emu.endpoint)
    request.set_MetricLists(entries)
    for key, value in query.items():
        request.add_query_param(key, value)
    return json.loads(client.do_action_with_exception(request))


def server_error(client, emu, entries, **query) -> ServerException:
    with pytest.raises(ServerException) as info:
        put(client, emu, entries, **query)
    return info.value


def signed_params(action="PutCustomMetric", secret=DEV_ACCESS_KEY_SECRET, method="POST", **overrides) -> dict:
    """Hand-signed request parameters, for cases the SDK cannot produce (old timestamps, replays)."""
    params = {
        "Action": action,
        "Version": "2019-01-01",
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "AccessKeyId": DEV_ACCESS_KEY_ID,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureType": "",
        "SignatureNonce": uuid.uuid4().hex,
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **{f"MetricList.1.{k}": v for k, v in entry().items()},
    }
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    params["Signature"] = sig.sign(secret, sig.string_to_sign(method, params))
    return params


def http(url, method="GET", data=None, headers=None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def send(emu, params, method="POST") -> tuple[int, dict, dict]:
    return http(f"{emu.endpoint}/?{urlencode(params)}", method=method, data=b"" if method == "POST" else None)


# --- signature and authentication -------------------------------------------------------------------


def test_sdk_put_is_accepted_and_stored(client, emu):
    body = put(client, emu, [entry(), aggregate()])
    assert body["Code"] == "200" and body["Message"] == "success"
    assert body["RequestId"] == body["RequestId"].upper() and len(body["RequestId"]) == 36
    stored = emu.entries()
    assert [e["name"] for e in stored] == ["llm_latency_ms", "llm_runs"]
    assert stored[0]["dimensions"] == {"flow": "summarize", "status": "ok"}
    assert stored[0]["values"] == {"value": 12.5} and stored[0]["type"] == 0
    assert stored[1]["period"] == 60 and stored[1]["time"] == 1_795_625_520_000
    assert stored[1]["access_key_id"] == DEV_ACCESS_KEY_ID and stored[1]["request_id"] == body["RequestId"]


def test_success_headers_and_get_and_form_body(emu):
    status, headers, body = send(emu, signed_params(method="GET"), method="GET")
    assert status == 200 and body["Code"] == "200"
    assert headers["Content-Type"] == "application/json;charset=utf-8"
    form = urlencode(signed_params()).encode()
    status, _, body = http(
        f"{emu.endpoint}/", "POST", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 200 and body["Code"] == "200"
    assert len(emu.entries()) == 2


def test_tampered_parameter_is_signature_mismatch(emu):
    params = signed_params()
    params["MetricList.1.Values"] = json.dumps({"value": 99})
    status, _, body = send(emu, params)
    assert status == 400 and body["Code"] == "SignatureDoesNotMatch"
    assert body["Message"].startswith(
        "Specified signature is not matched with our calculation. server string to sign is:"
    )
    assert body["Message"].split(":", 1)[1] == sig.string_to_sign("POST", params)
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert emu.entries() == []


def test_wrong_secret_becomes_invalid_access_key_secret_in_sdk(emu):
    error = server_error(make_client(secret="not-the-secret"), emu, [entry()])
    assert (error.get_error_code(), error.get_http_status()) == ("InvalidAccessKeySecret", 400)


def test_replayed_nonce_is_rejected(emu):
    params = signed_params()
    assert send(emu, params)[0] == 200
    status, _, body = send(emu, params)
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    assert len(emu.entries()) == 1


@pytest.mark.parametrize("offset_s", [-16 * 60, 16 * 60])
def test_timestamp_outside_15_minutes_is_expired(emu, offset_s):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset_s))
    status, _, body = send(emu, signed_params(Timestamp=stamp))
    assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")


def test_unknown_access_key(emu):
    error = server_error(make_client("nobody", "x"), emu, [entry()])
    assert (error.get_error_code(), error.get_http_status()) == ("InvalidAccessKeyId.NotFound", 404)


def test_sts_key_needs_its_security_token(emu):
    sts = AcsClient(
        region_id="cn-hangzhou",
        credential=StsTokenCredential(STS_ID, STS_SECRET, STS_TOKEN),
        auto_retry=False,
        proxy=NO_PROXY,
    )
    assert put(sts, emu, [entry()])["Code"] == "200"
    error = server_error(make_client(STS_ID, STS_SECRET), emu, [entry()])
    assert (error.get_error_code(), error.get_http_status()) == ("MissingSecurityToken", 400)
    wrong = AcsClient(
        region_id="cn-hangzhou",
        credential=StsTokenCredential(STS_ID, STS_SECRET, "stale"),
        auto_retry=False,
        proxy=NO_PROXY,
    )
    assert server_error(wrong, emu, [entry()]).get_error_code() == "InvalidSecurityToken.Mismatch"


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"SignatureNonce": None}, 400, "MissingParameter"),
        ({"Timestamp": None}, 400, "MissingParameter"),
        ({"SignatureMethod": "HMAC-SHA256"}, 400, "InvalidSignatureMethod"),
        ({"SignatureVersion": "2.0"}, 400, "InvalidSignatureVersion"),
        ({"Timestamp": "yesterday"}, 400, "InvalidTimeStamp.Format"),
        ({"Version": "2017-03-01"}, 400, "InvalidVersion"),
        ({"Action": "DeleteEverything"}, 404, "InvalidAction.NotFound"),
    ],
)
def test_common_parameter_errors(emu, overrides, status, code):
    got_status, _, body = send(emu, signed_params(**overrides))
    assert (got_status, body["Code"]) == (status, code)


# --- PutCustomMetric validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "code"),
    [
        (entry(GroupId=None), "MissingParameter"),
        (entry(MetricName=None), "MissingParameter"),
        (entry(Dimensions=None), "MissingParameter"),
        (entry(Type=None), "MissingParameter"),
        (entry(Values=None), "MissingParameter"),
        (entry(GroupId="abc"), "InvalidParameter"),
        (entry(Values="{'value': 1}"), "InvalidParameter"),
        (entry(Dimensions="{'flow': 'x'}"), "InvalidParameter"),
        (entry(Dimensions='["flow"]'), "InvalidParameter"),
        (entry(Values='{"value": NaN}'), "InvalidParameter"),
        (entry(Values='{"value": Infinity}'), "InvalidParameter"),
        (entry(Values='{"value": "1"}'), "InvalidParameter"),
        (entry(Values='{"value": true}'), "InvalidParameter"),
        (entry(Values='{"Sum": 1}'), "InvalidParameter"),
        (entry(Type="2"), "InvalidParameter"),
        (aggregate(period=None), "MissingParameter"),
        (aggregate(period="15"), "InvalidParameter"),
        (aggregate(Average=1, Mean=2), "InvalidParameter"),
        (aggregate(Sum=float("nan")), "InvalidParameter"),
        (entry(Time="2026-11-25 16:52:05"), "InvalidParameter"),
        (entry(Time="1795625525"), "InvalidParameter"),
        (entry(Dimensions=json.dumps({"flow": ""})), "InvalidParameter"),
    ],
)
def test_invalid_entries_are_rejected(client, emu, item, code):
    error = server_error(client, emu, [entry(), item])
    assert (error.get_error_code(), error.get_http_status()) == (code, 400)
    assert emu.entries() == []


def test_documented_time_formats_and_aggregate_keys(client, emu):
    keys = ("LastValue", "SumPerSecond", "CountPerSecond", "P10", "P75", "P98", "P99")
    put(
        client,
        emu,
        [entry(Time="20171012T132456.888+0800"), aggregate(period="300", **dict.fromkeys(keys, 1))],
    )
    first, second = emu.entries()
    assert first["time"] == 1_507_785_896_888  # 2017-10-12T05:24:56.888Z
    assert second["period"] == 300 and set(second["values"]) == set(keys)


def test_21_entries_accepted_22_rejected(client, emu):
    batch = [entry(f"m{i}") for i in range(MAX_ENTRIES_PER_CALL + 1)]
    assert put(client, emu, batch[:MAX_ENTRIES_PER_CALL])["Code"] == "200"
    assert len(emu.entries()) == MAX_ENTRIES_PER_CALL
    error = server_error(client, emu, batch)
    assert (error.get_error_code(), error.get_http_status()) == ("InvalidParameter", 400)
    assert "at most 21" in error.get_error_msg()
    assert emu.requests("PutCustomMetric")[-1]["entries"] == MAX_ENTRIES_PER_CALL + 1


def test_entry_numbers_must_be_contiguous(client, emu):
    gap = {f"MetricList.3.{k}": v for k, v in entry().items()}
    error = server_error(client, emu, [entry()], **gap)
    assert error.get_error_code() == "InvalidParameter" and "contiguous" in error.get_error_msg()


@pytest.mark.parametrize(
    "item",
    [
        entry("9lives"),
        entry("has-dash"),
        entry("x" * 65),
        entry(Dimensions=json.dumps({"flow": "a=b"})),
        entry(Dimensions=json.dumps({"a&b": "x"})),
        entry(Dimensions=json.dumps({"flow": "a,b"})),
        entry(Dimensions=json.dumps({"flow": "v" * 65})),
        entry(Dimensions=json.dumps({"flow": 3})),
        # Only ASCII letters, digits and . - _ / \ are allowed in dimensions (cms-api.md §6.1).
        entry(Dimensions=json.dumps({"flow": "café"})),
        entry(Dimensions=json.dumps({"flow": "北京"})),
        entry(Dimensions=json.dumps({"flow": "a b"})),
        entry(Dimensions=json.dumps({"flow": "a:b"})),
        entry(Dimensions=json.dumps({"flow": "a+b"})),
        entry(Dimensions=json.dumps({"flöw": "x"})),
    ],
)
def test_strict_mode_rejects_what_cms_would_rewrite(client, emu, item):
    assert server_error(client, emu, [item]).get_error_code() == "InvalidParameter"
    assert emu.entries() == []


def test_dimension_values_may_use_every_documented_character(client, emu):
    # cms-api.md §6.1 (Tea docstring of MetricList.N.Dimensions): letters, digits and . - _ / \
    value = "Az09.-_/\\"
    put(client, emu, [entry(Dimensions=json.dumps({"flow": value, "k.e-y_/\\": "v"}))])
    assert emu.entries()[0]["dimensions"] == {"flow": value, "k.e-y_/\\": "v"}


def test_more_than_10_dimensions_are_accepted(client, emu):
    # The 10-dimension cap was removed from the PutCustomMetric doc in 2021 (cms-api.md §6.1); the
    # emulator must not invent a rejection the service no longer documents (10 is the client's policy).
    dims = {f"k{i}": "v" for i in range(15)}
    assert put(client, emu, [entry(Dimensions=json.dumps(dims))])["Code"] == "200"
    assert emu.entries()[0]["dimensions"] == dims


def test_strict_mode_rejects_unknown_fields(client, emu):
    typo = {"MetricList.1.Dimension": "{}"}  # the singular is DescribeCustomMetricList's parameter
    assert server_error(client, emu, [entry()], **typo).get_error_code() == "InvalidParameter"


def test_non_strict_mode_sanitises_like_cms(client):
    with Emulator(strict=False, max_entries=3) as lax:
        dims = {f"k{i}": "v" for i in range(12)} | {"a=b": "c,d&e", "k0": "é" * 70, "k1": "北京 x"}
        put(client, lax, [entry("9lives-x.y", Dimensions=json.dumps(dims)), entry("n" * 70)])
        first, second = lax.entries()
        assert first["name"] == "Alives_x_y"
        assert len(first["dimensions"]) == 13  # no count cap (cms-api.md §6.1)
        # Characters other than ASCII letters, digits and . - _ / \ become _ (cms-api.md §6.1), then
        # the value is cut to 64 bytes.
        assert first["dimensions"]["k0"] == "_" * 64
        assert first["dimensions"]["k1"] == "___x"  # one _ per character, not per byte
        assert second["name"] == "n" * 64
        put(client, lax, [entry(Dimensions=json.dumps({"a=b": "c,d&e"}))])
        assert lax.entries()[-1]["dimensions"] == {"a_b": "c_d_e"}
        assert server_error(client, lax, [entry()] * 4).get_error_code() == "InvalidParameter"


def test_aggregate_for_same_key_overwrites_and_is_counted(client, emu):
    put(client, emu, [aggregate(Sum=1, SampleCount=1)])
    put(client, emu, [aggregate(Sum=5, SampleCount=2), aggregate(period="300", Sum=5, SampleCount=2)])
    stored = emu.entries("llm_runs")
    assert len(stored) == 2 and emu.overwrites() == 1
    assert stored[0]["values"] == {"Sum": 5, "SampleCount": 2} and stored[0]["overwrites"] == 1
    put(client, emu, [entry(Time="1795625520000"), entry(Time="1795625520000")])
    assert len(emu.entries("llm_latency_ms")) == 2  # raw points are samples, not overwritten


def test_file_database_survives_restart(client, tmp_path):
    path = str(tmp_path / "cms.sqlite")
    with Emulator(db_path=path) as first:
        put(client, first, [entry()])
    with Emulator(db_path=path) as second:
        assert [e["name"] for e in second.entries()] == ["llm_latency_ms"]


# --- fault injection --------------------------------------------------------------------------------


def test_throttle_ratio(client, emu):
    emu.set_faults(throttle_ratio=1.0)
    error = server_error(client, emu, [entry()])
    assert (error.get_error_code(), error.get_http_status()) == ("Throttling.User", 400)
    assert error.get_error_msg() == "Request was denied due to user flow control."
    assert emu.entries() == [] and emu.requests()[-1]["fault"] == "throttle_ratio"


def test_error_ratio_gives_500_or_503(client, emu):
    emu.set_faults(error_ratio=1.0, seed=7)
    seen = {
        (e.get_error_code(), e.get_http_status())
        for e in (server_error(client, emu, [entry()]) for _ in range(8))
    }
    assert seen == {("InternalError", 500), ("ServiceUnavailable", 503)}


def test_dropped_connection_is_sdk_http_error(client, emu):
    emu.set_faults(drop_ratio=1.0)
    with pytest.raises(ClientException) as info:
        put(client, emu, [entry()])
    assert info.value.get_error_code() == "SDK.HttpError"
    assert emu.entries() == []
    assert emu.requests()[-1]["code"] == "dropped" and emu.requests()[-1]["delivered"] is False


def test_latency_beyond_read_timeout_is_sdk_http_error_but_data_landed(emu):
    emu.set_faults(latency=1.5)
    slow_client = make_client(timeout=1)
    with pytest.raises(ClientException) as info:
        put(slow_client, emu, [entry()])
    assert info.value.get_error_code() == "SDK.HttpError" and "timed out" in info.value.get_error_msg()
    assert len(emu.entries()) == 1  # ambiguous delivery: a blind retry would duplicate the point


def test_http_200_body_with_error_code(client, emu):
    emu.set_faults(body_error="500")
    body = put(client, emu, [entry()])  # the SDK does not raise: the client must check Code itself
    assert body["Code"] == "500" and emu.entries() == []


def test_qps_limiter(client, emu):
    emu.set_faults(qps=5)
    codes = []
    for _ in range(10):
        try:
            codes.append(put(client, emu, [entry()])["Code"])
        except ServerException as error:
            codes.append(error.get_error_code())
    assert codes.count("200") == 5 and codes.count("Throttling.User") == 5
    time.sleep(1.05)
    assert put(client, emu, [entry()])["Code"] == "200"


def test_scripted_sequence_is_consumed_one_per_call(client, emu):
    emu.set_faults(
        script=[
            "Throttling.User",
            "InternalError",
            "ServiceUnavailable",
            "body:Throttling",
            "drop",
            "Busy:429",
            "ok",
        ]
    )
    outcomes = []
    for _ in range(8):
        try:
            outcomes.append(put(client, emu, [entry()])["Code"])
        except ServerException as error:
            outcomes.append((error.get_error_code(), error.get_http_status()))
        except ClientException as error:
            outcomes.append(error.get_error_code())
    assert outcomes == [
        ("Throttling.User", 400),
        ("InternalError", 500),
        ("ServiceUnavailable", 503),
        "Throttling",
        "SDK.HttpError",
        ("Busy", 429),
        "200",
        "200",
    ]
    assert len(emu.entries()) == 2 and emu.faults()["script"] == []


def test_drop_after_stores_then_drops(client, emu):
    emu.set_faults(script=["drop-after"])
    with pytest.raises(ClientException):
        put(client, emu, [entry()])
    assert len(emu.entries()) == 1


def test_faults_spare_reads_unless_asked(client, emu):
    from langflow_cms.ops.query import CmsQueryError, describe_custom_metric_list

    emu.set_faults(throttle_ratio=1.0)
    assert describe_custom_metric_list(client, endpoint=emu.endpoint) == []
    emu.set_faults(body_error="InternalError", actions=["DescribeCustomMetricList"])
    with pytest.raises(CmsQueryError) as info:
        describe_custom_metric_list(client, endpoint=emu.endpoint)
    assert info.value.code == "InternalError"


def test_bad_fault_settings_are_refused(emu):
    for bad in ({"throttle_ratio": 2}, {"qps": 0}, {"script": ["delay:x"]}, {"nonsense": 1}):
        with pytest.raises((ValueError, TypeError)):
            emu.set_faults(**bad)


# --- admin API ----------------------------------------------------------------------------------------


def test_admin_api(client, emu):
    base = f"{emu.endpoint}/_emulator"
    status, _, body = http(f"{base}/faults", "PUT", json.dumps({"script": ["Throttling.User"]}).encode())
    assert status == 200 and body["script"] == ["Throttling.User"]
    assert http(f"{base}/faults")[2]["script"] == ["Throttling.User"]
    server_error(client, emu, [entry()])
    put(client, emu, [entry(), entry("other")])

    requests = http(f"{base}/requests?action=PutCustomMetric")[2]["requests"]
    assert [(r["code"], r["http_status"], r["entries"]) for r in requests] == [
        ("Throttling.User", 400, 1),
        ("200", 200, 2),
    ]
    assert [e["name"] for e in http(f"{base}/entries?name=other")[2]["entries"]] == ["other"]
    stats = http(f"{base}/stats")[2]
    assert (stats["requests"], stats["accepted"], stats["rejected"], stats["entries"]) == (2, 1, 1, 2)
    assert http(f"{base}/faults", "PUT", b'{"throttle_ratio": 5}')[0] == 400
    assert http(f"{base}/nope")[0] == 404
    assert http(f"{base}/reset", "POST", b"")[2] == {"ok": True}
    assert http(f"{base}/stats")[2]["entries"] == 0 and emu.faults()["script"] == []


def test_refuses_non_loopback_without_allow_remote():
    with pytest.raises(ValueError):
        Emulator(host="0.0.0.0")


def test_cli_serves_until_sigterm(client):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "langflow_cms.emulator", "--port", "0", "--script", "Throttling.User"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line and DEV_ACCESS_KEY_SECRET not in line
        endpoint = line.split("listening on ")[1].split()[0]

        remote = SimpleNamespace(endpoint=endpoint)
        assert server_error(client, remote, [entry()]).get_error_code() == "Throttling.User"
        assert put(client, remote, [entry()])["Code"] == "200"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    refused = subprocess.run(
        [sys.executable, "-m", "langflow_cms.emulator", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert refused.returncode == 2 and "allow_remote" in refused.stderr
