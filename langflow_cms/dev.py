"""Development defaults: the local emulator and the key pair it accepts out of the box.

These are not secrets: they only open the emulator on 127.0.0.1, and development mode refuses any
endpoint that is not on loopback, so they can never reach production CloudMonitor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aliyunsdkcore.client import AcsClient

DEV_ACCESS_KEY_ID = "langflow-cms-dev"
DEV_ACCESS_KEY_SECRET = "langflow-cms-dev-secret"
DEFAULT_EMULATOR_PORT = 8765
DEFAULT_EMULATOR_ENDPOINT = f"http://127.0.0.1:{DEFAULT_EMULATOR_PORT}"


def emulator_client() -> AcsClient:
    """A real aliyun SDK client with the emulator's key pair: no retries (a refusal shows at once) and no
    proxy (the emulator listens on loopback). Point each request at it with ``request.set_endpoint``."""
    from aliyunsdkcore.client import AcsClient

    return AcsClient(
        DEV_ACCESS_KEY_ID,
        DEV_ACCESS_KEY_SECRET,
        "cn-hangzhou",
        auto_retry=False,
        proxy={"http": None, "https": None},
    )
