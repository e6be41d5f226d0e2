"""redact(): no AccessKey secret, STS token or signature survives in text, exceptions or SDK log output."""

from __future__ import annotations

import json
import logging
import socket
from urllib.parse import quote

import pytest
from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest
from aliyunsdkcore.acs_exception.exceptions import ClientException
from hypothesis import given
from hypothesis import strategies as st

from langflow_cms.credentials import Credential, credential_provider, make_acs_client
from langflow_cms.redact import MASK, install_log_redaction, mask_key_id, redact, register_secret

KEY_ID = "LTAI5tRedactTestKey9Zq"
SECRET = "redact-test-secret+/=Abc123"
TOKEN = "CAIS-redact-test-token+/with=odd&chars"


def test_query_string_pairs() -> None:
    url = (
        "/?MetricList.1.MetricName=x&AccessKeyId=LTAI5tABCDEFGHIJabcd&SecurityToken=tok%2Ben%2Fx%3D1"
        "&SignatureMethod=HMAC-SHA1&SignatureType=&SignatureVersion=1.0&SignatureNonce=abc123"
        "&Signature=gcaKxfD34F4GYI5dZCcpGd8KBP8%3D"
    )
    out = redact(url)
    assert "AccessKeyId=LTAI****abcd" in out
    assert "SecurityToken=***&" in out and out.endswith("Signature=***")
    # the other Signature* parameters are not secret and keep their values
    assert "SignatureMethod=HMAC-SHA1&SignatureType=&SignatureVersion=1.0&SignatureNonce=abc123" in out
    assert "tok%2Ben" not in out and "gcaKx" not in out and "EFGHIJ" not in out


def test_url_encoded_string_to_sign_from_signature_does_not_match() -> None:
    message = (
        "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&"
        "AccessKeyId%3DLTAI5tABCDEFGHIJabcd%26Action%3DPutCustomMetric%26SecurityToken%3Dtok%252Ben%26"
        "SignatureMethod%3DHMAC-SHA1"
    )
    out = redact(message)
    assert "AccessKeyId%3DLTAI****abcd%26Action%3DPutCustomMetric%26SecurityToken%3D***%26" in out
    assert "tok%252Ben" not in out and out.endswith("SignatureMethod%3DHMAC-SHA1")


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(
            {"AccessKeyId": "STS.NTest1234abcd", "AccessKeySecret": "s3cr3t-value", "SecurityToken": "tk"}
        ),
        str({"AccessKeyId": "STS.NTest1234abcd", "AccessKeySecret": "s3cr3t-value", "SecurityToken": "tk"}),
        "access_key_id=STS.NTest1234abcd access_key_secret = s3cr3t-value security_token=tk",
        "x-acs-security-token: tk\nAccessKeySecret: s3cr3t-value AccessKeyId: STS.NTest1234abcd",
    ],
)
def test_json_repr_and_key_value_forms(text: str) -> None:
    out = redact(text)
    assert "s3cr3t-value" not in out
    assert "tk" not in out.replace("Token", "").replace("token", "")
    assert "STS.****abcd" in out


def test_registered_secrets_are_redacted_in_any_form() -> None:
    register_secret(SECRET)
    register_secret(TOKEN)
    text = f"free text {SECRET} and {quote(TOKEN, safe='')} and {quote(quote(TOKEN, safe=''), safe='')}"
    out = redact(text)
    assert SECRET not in out and "redact-test-token" not in out
    assert out == f"free text {MASK} and {MASK} and {MASK}"


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    register_secret("")
    register_secret(None)  # type: ignore[arg-type]
    assert redact("abc is fine") == "abc is fine"


def test_mask_key_id() -> None:
    assert mask_key_id("LTAI5tABCDEFabcd") == "LTAI****abcd"
    assert mask_key_id("short") == "s****"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _send_to_closed_port() -> ClientException:
    provider = credential_provider(Credential(KEY_ID, SECRET, TOKEN), environ={})
    client = make_acs_client(
        provider, region="cn-hangzhou", connect_timeout=1, read_timeout=1, proxy={"http": None, "https": None}
    )
    request = PutCustomMetricRequest()
    request.set_endpoint(f"127.0.0.1:{_closed_port()}")
    request.set_MetricLists(
        [{"GroupId": "0", "MetricName": "m", "Dimensions": "{}", "Type": "0", "Values": '{"value": 1}'}]
    )
    with pytest.raises(ClientException) as info:
        client.do_action_with_exception(request)
    return info.value


def _assert_clean(text: str) -> None:
    for leaked in (SECRET, TOKEN, quote(TOKEN, safe=""), KEY_ID):
        assert leaked not in text
    assert "Signature=" not in text or "Signature=***" in text


def test_real_sdk_http_error_message_is_redacted() -> None:
    error = _send_to_closed_port()
    raw = str(error)
    assert error.get_error_code() == "SDK.HttpError"
    # the leak this module exists for: the SDK puts the signed URL into the message
    assert f"AccessKeyId={KEY_ID}" in raw and f"SecurityToken={quote(TOKEN, safe='')}" in raw
    out = redact(raw)
    _assert_clean(out)
    assert (
        f"AccessKeyId={mask_key_id(KEY_ID)}" in out and "Signature=***" in out and "Connection refused" in out
    )


def test_sdk_logger_output_is_redacted_and_kept_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """Issue #10 §11: in an outage the SDK logged 40 ERROR blocks with the whole payload in 2.5 minutes.
    Its records now go to DEBUG (on ``langflow_cms.sdk``), redacted; nothing of it reaches WARNING+."""
    from langflow_cms.delivery.transport import quiet_sdk_logs

    install_log_redaction()
    quiet_sdk_logs()
    caplog.set_level(logging.DEBUG, logger="aliyunsdkcore")
    caplog.set_level(logging.DEBUG, logger="langflow_cms.sdk")
    error = _send_to_closed_port()
    logged = caplog.text
    assert "HttpError occurred" in logged and "Params:" in logged  # the demoted ERROR line and the params
    assert not [r for r in caplog.records if r.name.startswith("aliyunsdkcore") and r.levelno > logging.DEBUG]
    _assert_clean(logged)
    # and an exception logged with its traceback by our own code
    caplog.clear()
    logging.getLogger("langflow_cms").error("send failed", exc_info=error)
    assert "Traceback" in caplog.text and "SDK.HttpError" in caplog.text
    _assert_clean(caplog.text)


def test_filter_handles_args_and_bad_format_strings(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    logger = logging.getLogger("langflow_cms")
    with caplog.at_level(logging.INFO, logger="langflow_cms"):
        logger.info("url %s", "/?Signature=abcdefgh%3D")
        logger.info("broken %s %s", "only-one")
    assert "Signature=***" in caplog.text and "abcdefgh" not in caplog.text


_plain = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="="), max_size=80)


@given(_plain)
def test_text_without_key_value_pairs_is_unchanged(text: str) -> None:
    assert redact(text) == text


@given(
    st.sampled_from(["AccessKeySecret", "SecurityToken", "Signature", "security_token"]),
    st.sampled_from(["=", "%3D", '": "', "': '", ": "]),
    st.lists(st.sampled_from([*"AZaz09+/-_.~", "%2B", "%2F", "%3D"]), min_size=1).map("".join),
    st.sampled_from(["", "&Next=1", "%26Next%3D1", '"}', " tail"]),
)
def test_secret_values_never_survive(key: str, sep: str, value: str, tail: str) -> None:
    out = redact(f"prefix {key}{sep}{value}{tail}")
    assert out == f"prefix {key}{sep}{MASK}{tail}"
    assert redact(out) == out


# --- review 4: hostile long input costs little and leaks nothing ----------------------------------------
HOSTILE_CHARS = 100_000
HOSTILE = {
    "schemes": "a://",
    "dotted": "a.",
    "userinfo": "a://b:",
    "flags": "-pass",
    "one_flag": "pass",  # "--passpass…": one long flag name
    "short_flags": "-a",
    "jwt_fragments": "eyJ-",
    "jwt_segments": "eyJaaaaa.",
}


def _hostile(unit: str) -> str:
    text = unit * (HOSTILE_CHARS // len(unit))
    return "--" + text if unit == "pass" else text


def test_hostile_100_kb_messages_are_redacted_quickly() -> None:
    """Review 4: _USERINFO_RE, _CLI_FLAG_RE and the JWT pattern backtracked quadratically and safe_message
    redacted the whole first line before cutting it: 20 KB of '--passpass…' took 2 s in redact(), 100 KB
    tens of seconds, on the run's end path. The bound is generous (a linear pass takes milliseconds)."""
    import time

    from langflow_cms.events import safe_message

    started = time.perf_counter()
    for unit in HOSTILE.values():
        text = _hostile(unit)
        assert len(safe_message(RuntimeError(text))) <= 300
        redact(text)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0 * len(HOSTILE), f"{elapsed:.1f} s for {len(HOSTILE)} hostile 100 KB strings"
    # still found where they were found before
    assert redact("id-eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl and") == "id-*** and"
    assert redact("--db-password hunter2 --x") == "--db-password *** --x"
    assert redact("see https://u:pa55@host/x") == "see https://u:***@host/x"


def test_a_very_long_text_never_passes_a_secret_through_unredacted() -> None:
    """Whatever redact() does not look at is not passed on: a secret past its bound never appears."""
    register_secret(SECRET)
    tail = f" password=hunter2hunter2 {SECRET} user@example.com"
    text = "word " * 200_000 + tail
    out = redact(text)
    assert SECRET not in out and "hunter2hunter2" not in out and "user@example.com" not in out
    assert len(out) < len(text)
    near = "password=hunter2hunter2 " + "x" * 100
    assert "hunter2hunter2" not in redact(near + "word " * 200_000)  # the bounded part is redacted


def test_epoch_millisecond_timestamps_are_not_taken_for_card_numbers():
    """A JSON log line's ``time_ms`` (13 digits) passed the card checksum about one time in ten and became
    ``[card]``, breaking the guard's log lines. Card numbers start with 2 to 6 (Mastercard, Amex, Diners,
    JCB, Visa, Discover, UnionPay); epoch milliseconds until 2033 start with 1."""
    luhn_valid = [1765000000007, 1765000000015, 1765000000023, 1765000000031]
    for stamp in luhn_valid:
        text = f'{{"event":"guard","time_ms":{stamp}}}'
        assert redact(text) == text
    assert redact("UnionPay 6212 3456 7890 1232 declined") == "UnionPay [card] declined"
