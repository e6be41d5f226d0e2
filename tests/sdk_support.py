"""The tests' own SDK client for the emulator (independent of the package's readers and of the demo)."""

from __future__ import annotations

from aliyunsdkcore.client import AcsClient

from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET


def emulator_client() -> AcsClient:
    """A real aliyun SDK client with the emulator's development key: no retries (a refusal shows at once)
    and no proxy (the emulator listens on loopback). Point each request at the emulator with
    ``request.set_endpoint(emulator.endpoint)``."""
    return AcsClient(
        DEV_ACCESS_KEY_ID,
        DEV_ACCESS_KEY_SECRET,
        "cn-hangzhou",
        auto_retry=False,
        proxy={"http": None, "https": None},
    )
