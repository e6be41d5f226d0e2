"""#28: one way to call CMS. delivery/transport.py is the one client: signing, deadlines, retries, the rate
limiter and the error type, for the reporter's writes, the alarms commands and the readers alike."""

from __future__ import annotations

import time

import pytest
from aliyunsdkcms.request.v20190101.DescribeContactListRequest import DescribeContactListRequest
from aliyunsdkcore.client import AcsClient

from langflow_cms.config import Config
from langflow_cms.credentials import Credential, credential_provider
from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET


def _transport(emulator):
    from langflow_cms.delivery.transport import Transport

    config = Config.from_env({"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emulator.endpoint})
    return Transport(config, credential_provider(Credential(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET)))


def test_the_transport_reads_too_and_returns_the_parsed_reply(emulator):
    transport = _transport(emulator)
    reply = transport.call_json(DescribeContactListRequest(), time.monotonic() + 10)
    assert isinstance(reply, dict) and reply["Code"] == "200" and reply["RequestId"]
    emulator.set_faults(body_error="InternalError", actions=["DescribeContactList"])
    from langflow_cms.delivery.transport import CmsError

    with pytest.raises(CmsError) as info:
        transport.call_json(DescribeContactListRequest(), time.monotonic() + 10)
    assert info.value.code == "InternalError" and info.value.retryable
    assert "RequestId" in str(info.value)  # an operator can quote it to support


def test_alarms_and_readers_use_the_one_client_its_limiter_and_its_errors(emulator):
    from langflow_cms.delivery import transport
    from langflow_cms.ops import query
    from langflow_cms.ops.alarms import AlarmClient

    client = AlarmClient.from_env(
        {
            "LANGFLOW_CMS_DEV": "1",
            "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "",
        }
    )
    assert type(client.transport) is transport.Transport
    assert client.call("DescribeContactList", {})["Code"] == "200"
    assert query.RateLimiter is transport.RateLimiter
    assert query.CmsQueryError is transport.CmsError

    acs = AcsClient(
        DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, "cn-hangzhou", proxy={"http": None, "https": None}
    )
    emulator.set_faults(body_error="InternalError", actions=["DescribeCustomMetricList"])
    with pytest.raises(transport.CmsError) as info:
        query.describe_custom_metric_list(acs, endpoint=emulator.endpoint)
    assert info.value.code == "InternalError" and "RequestId" in str(info.value)
    assert len(emulator.requests("DescribeCustomMetricList")) == 1  # reads retry throttling only
