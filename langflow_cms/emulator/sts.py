"""A stand-in for STS ``GetCallerIdentity`` (Version 2015-04-01), so a CLI can learn the account id
(``acs_customMetric_<AccountId>``) from the emulator. STS itself cannot exist here; this is the one mocked
API. Field names follow the Tea model ``alibabacloud_sts20150401.GetCallerIdentityResponseBody``
(AccountId, Arn, IdentityType, PrincipalId, RequestId, RoleId, UserId); the values (a RAM user named after
the AccessKeyId, a UserId derived from it) are the emulator's invention.
"""

from __future__ import annotations

import hashlib
from typing import Any

STS_VERSION = "2015-04-01"


def get_caller_identity(user_id: str, key_id: str) -> dict[str, Any]:
    principal = str(int(hashlib.sha256(key_id.encode()).hexdigest()[:15], 16))
    return {
        "AccountId": user_id,
        "UserId": principal,
        "PrincipalId": principal,
        "Arn": f"acs:ram::{user_id}:user/{key_id}",
        "IdentityType": "RAMUser",
    }
