"""The POP/CMS error answers the emulator can give: code, HTTP status and the real message text.

Codes, statuses and messages follow cms-api.md §1.3. Entries marked *inferred* there (or not listed there at
all: InvalidAction.NotFound, InvalidVersion, InvalidSignatureMethod, InvalidSignatureVersion,
InvalidTimeStamp.Format, MissingSecurityToken, InvalidSecurityToken.*) use the usual POP wording; a client
must not depend on their exact message text.
"""

from __future__ import annotations

from dataclasses import dataclass

SIGNATURE_MISMATCH_PREFIX = (
    "Specified signature is not matched with our calculation. server string to sign is:"
)

# code -> (HTTP status, message)
CATALOG: dict[str, tuple[int, str]] = {
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Throttling": (400, "Request was denied due to request throttling."),
    "Throttling.Api": (400, "Request was denied due to api flow control."),
    "SignatureDoesNotMatch": (400, SIGNATURE_MISMATCH_PREFIX),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "MissingSecurityToken": (400, "SecurityToken is mandatory for this action."),
    "InvalidSecurityToken.Mismatch": (400, "Specified SecurityToken mismatch with the AccessKey."),
    "InvalidSecurityToken.Expired": (400, "Specified SecurityToken is expired."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "InvalidSignatureMethod": (400, "Specified signature method is not supported."),
    "InvalidSignatureVersion": (400, "Specified signature version is not supported."),
    "Forbidden": (403, "User not authorized to operate on the specified resource."),
    "InternalError": (500, "The request processing has failed due to some unknown error."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
}


@dataclass
class ApiError(Exception):
    """An error answer; raised anywhere in request handling and turned into the JSON error body."""

    code: str
    http_status: int
    message: str

    def __str__(self) -> str:
        return f"{self.http_status} {self.code}: {self.message}"


def api_error(code: str, message: str | None = None, http_status: int | None = None) -> ApiError:
    """An ApiError for a catalogued ``code``; unknown codes default to HTTP 400."""
    status, text = CATALOG.get(code, (400, code))
    return ApiError(code, http_status or status, message if message is not None else text)


def missing_parameter(name: str) -> ApiError:
    return ApiError(
        "MissingParameter",
        400,
        f'The input parameter "{name}" that is mandatory for processing this request is not supplied.',
    )


def invalid_parameter(name: str, reason: str) -> ApiError:
    return ApiError("InvalidParameter", 400, f'The specified parameter "{name}" is not valid: {reason}')


def signature_mismatch(server_string_to_sign: str) -> ApiError:
    """The SDK compares the text after the first ``:`` with its own StringToSign (cms-api.md §3.5)."""
    return ApiError("SignatureDoesNotMatch", 400, SIGNATURE_MISMATCH_PREFIX + server_string_to_sign)
