"""The HTTP side: a ThreadingHTTPServer speaking the POP RPC protocol on ``/`` and a small unsigned admin
API under ``/_emulator/``, plus the :class:`Emulator` object tests use to run it in-process.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET

from . import alarms, contacts, eventrules, events, queries, sts
from .auth import Authenticator, KeyPair, normalise_keys
from .errors import CATALOG, ApiError, api_error
from .faults import Decision, FaultInjector, Faults
from .limits import MAX_METRIC_ENTRIES
from .store import Store
from .validation import parse_metric_list

log = logging.getLogger(__name__)

API_VERSION = "2019-01-01"
DEFAULT_USER_ID = "1000000000000000"
"""The emulated account id; custom metrics live in namespace ``acs_customMetric_<user id>``."""
JSON_CONTENT_TYPE = "application/json;charset=utf-8"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: Emulator


class _Handler(BaseHTTPRequestHandler):
    """One request. API calls go through auth → faults → action; admin calls skip auth."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        # The default handler prints the full request line (AccessKeyId, Signature) to stderr.
        # (``path`` is unset when the request line itself was refused, e.g. 414 URI too long.)
        log.debug("%s %s", getattr(self, "command", None), urlsplit(getattr(self, "path", "")).path)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        if url.path.startswith("/_emulator/"):
            self._admin(url.path, dict(parse_qsl(url.query)), body)
        elif self.command in ("GET", "POST") and url.path == "/":
            self._api(url.query, body)
        else:
            self._send_json(404, _error_body(api_error("InvalidAction.NotFound"), _request_id(), self))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", JSON_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        if "RequestId" in body:
            self.send_header("x-acs-request-id", str(body["RequestId"]))
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        """Close the socket without answering; the client sees a reset / remote disconnect."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- API -------------------------------------------------------------------------------------------

    def _api(self, query: str, body: bytes) -> None:
        emulator = self.server.emulator
        params = dict(parse_qsl(query, keep_blank_values=True))
        if body and "application/x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            params.update(parse_qsl(body.decode(), keep_blank_values=True))
        request_id = _request_id()
        record: dict[str, Any] = {
            "action": params.get("Action"),
            "request_id": request_id,
            "access_key_id": params.get("AccessKeyId"),
            "entries": _entry_count(params),
        }
        decision = Decision()
        try:
            key = emulator.authenticator.verify(self.command, params)
            if params["Version"] not in (API_VERSION, sts.STS_VERSION):
                raise api_error("InvalidVersion")
            decision = emulator.injector.decide(params["Action"])
            if decision.kind == "late":
                time.sleep(decision.delay)  # applied only now, after the client may have given up
            answer = emulator._answer(params, key, request_id, decision)
            status, payload = 200, {**answer, "RequestId": request_id}
        except ApiError as error:
            product = "Sts" if params.get("Version") == sts.STS_VERSION else "Cms"
            status, payload = error.http_status, _error_body(error, request_id, self, product)

        record["fault"] = decision.label
        if decision.delay and decision.kind != "late":
            time.sleep(decision.delay)
        if decision.kind in ("drop", "drop_after"):
            emulator.store.log_request({**record, "code": "dropped", "http_status": None, "delivered": False})
            self._drop()
            return
        emulator.store.log_request(
            {
                **record,
                # GetCallerIdentity's answer has no Code; its HTTP status stands in.
                "code": str(payload["Code"]) if "Code" in payload else str(status),
                "http_status": status,
                "message": payload.get("Message"),
            }
        )
        self._send_json(status, payload)

    # --- admin -----------------------------------------------------------------------------------------

    def _admin(self, path: str, query: dict[str, str], body: bytes) -> None:
        emulator = self.server.emulator
        if not is_loopback(self.client_address[0]):
            self._send_json(403, {"error": "the admin API only answers loopback clients"})
            return
        route = (self.command, path.rstrip("/"))
        try:
            if route == ("GET", "/_emulator/health"):
                self._send_json(200, {"ok": True, "endpoint": emulator.endpoint})
            elif route == ("GET", "/_emulator/faults"):
                self._send_json(200, emulator.faults())
            elif route in (("PUT", "/_emulator/faults"), ("POST", "/_emulator/faults")):
                emulator.set_faults(**json.loads(body or b"{}"))
                self._send_json(200, emulator.faults())
            elif route == ("GET", "/_emulator/requests"):
                self._send_json(200, {"requests": emulator.requests(query.get("action"))})
            elif route == ("GET", "/_emulator/entries"):
                self._send_json(200, {"entries": emulator.entries(query.get("name"))})
            elif route == ("GET", "/_emulator/events"):
                self._send_json(200, {"events": emulator.events(query.get("name"))})
            elif route == ("GET", "/_emulator/rules"):
                self._send_json(200, {"rules": emulator.rules()})
            elif route == ("GET", "/_emulator/event-rules"):
                self._send_json(200, {"event_rules": emulator.event_rules()})
            elif route == ("GET", "/_emulator/contacts"):
                self._send_json(200, {"contacts": emulator.contacts()})
            elif route == ("GET", "/_emulator/contact-groups"):
                self._send_json(200, {"contact_groups": emulator.contact_groups()})
            elif route == ("GET", "/_emulator/stats"):
                self._send_json(200, emulator.stats())
            elif route == ("POST", "/_emulator/reset"):
                emulator.reset()
                self._send_json(200, {"ok": True})
            else:
                self._send_json(404, {"error": f"no admin route {self.command} {path}"})
        except (ValueError, TypeError) as exc:
            self._send_json(400, {"error": str(exc)})


def _entry_count(params: Mapping[str, str]) -> int:
    """How many ``MetricList.N`` / ``EventInfo.N`` items a request carried, valid or not (request log)."""
    return len(
        {
            tuple(key.split(".")[:2])
            for key in params
            if key.startswith(("MetricList.", "EventInfo.")) and key.count(".") >= 2
        }
    )


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _error_body(
    error: ApiError, request_id: str, handler: BaseHTTPRequestHandler, product: str = "Cms"
) -> dict[str, Any]:
    return {
        "RequestId": request_id,
        "HostId": handler.headers.get("Host") or "127.0.0.1",
        "Code": error.code,
        "Message": error.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={error.code}&product={product}&requestId={request_id}",
    }


class Emulator:
    """A local CloudMonitor endpoint; use as a context manager or call start()/stop().

    ``keys`` maps AccessKeyId to a secret, or to ``(secret, security_token)`` for an STS-style key
    (an iterable of :class:`KeyPair` works too); None accepts only the dev pair from ``langflow_cms.dev``.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        keys: Mapping[str, str | tuple[str, str]] | Iterable[KeyPair] | None = None,
        strict: bool = True,
        db_path: str | None = None,
        max_entries: int = MAX_METRIC_ENTRIES,
        allow_remote: bool = False,
        user_id: str = DEFAULT_USER_ID,
        faults: Faults | None = None,
    ) -> None:
        if not is_loopback(host) and not allow_remote:
            raise ValueError(f"refusing to listen on non-loopback host {host!r} without allow_remote=True")
        self.host = host
        self.strict = strict
        self.max_entries = max_entries
        self.user_id = user_id
        self.authenticator = Authenticator(
            normalise_keys(keys if keys is not None else {DEV_ACCESS_KEY_ID: DEV_ACCESS_KEY_SECRET})
        )
        self.store = Store(db_path)
        self.injector = FaultInjector(faults)
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        server_class = _Server
        if ":" in self.host:
            server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        self._server = server_class((self.host, self._requested_port), _Handler)
        self._server.emulator = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="cms-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving. Stored entries and the request log stay readable afterwards."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator is not running")
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def namespace(self) -> str:
        """The DescribeMetricList namespace holding this account's custom metrics."""
        return queries.NAMESPACE_PREFIX + self.user_id

    # --- configuration and inspection ----------------------------------------------------------------

    def add_key(self, key_id: str, secret: str, token: str | None = None) -> None:
        self.authenticator.keys[key_id] = KeyPair(key_id, secret, token)

    def set_faults(self, **settings: Any) -> None:
        """Replace the whole fault configuration (unspecified settings go back to off); see faults.Faults."""
        self.injector.configure(Faults.from_dict(settings))

    def clear_faults(self) -> None:
        self.set_faults()

    def faults(self) -> dict[str, Any]:
        return self.injector.snapshot()

    def entries(self, name: str | None = None) -> list[dict[str, Any]]:
        return self.store.entries(name)

    def requests(self, action: str | None = None) -> list[dict[str, Any]]:
        return self.store.requests(action)

    def overwrites(self) -> int:
        return self.store.overwrites()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Stored custom events: ``[{id, group_id, name, content, time, received_at, request_id,
        access_key_id}]`` in arrival order."""
        return self.store.events(name)

    def rules(self) -> list[dict[str, Any]]:
        """Stored alarm rules as accepted (``Kind`` ``metric`` or ``event``, ``EnableState``, the request
        values, ``created_ms``/``updated_ms``), in creation order."""
        return [
            {**o["doc"], "created_ms": o["created_ms"], "updated_ms": o["updated_ms"]}
            for o in self.store.objects("rule")
        ]

    def event_rules(self) -> list[dict[str, Any]]:
        """Stored PutEventRule rules: ``[{Name, Description, EventType, GroupId, SilenceTime, State,
        EventPattern: [...], Targets: {Contact: [...], Webhook: [...]}, created_ms, updated_ms}]``."""
        return [
            {**o["doc"], "created_ms": o["created_ms"], "updated_ms": o["updated_ms"]}
            for o in self.store.objects("event_rule")
        ]

    def contacts(self) -> list[dict[str, Any]]:
        """Stored contacts: ``[{Name, Desc, Channels, Lang?, created_ms, updated_ms}]``."""
        return [
            {**o["doc"], "created_ms": o["created_ms"], "updated_ms": o["updated_ms"]}
            for o in self.store.objects("contact")
        ]

    def contact_groups(self) -> list[dict[str, Any]]:
        """Stored contact groups: ``[{Name, Describe, Contacts, EnableSubscribed, created_ms,
        updated_ms}]``."""
        return [
            {**o["doc"], "created_ms": o["created_ms"], "updated_ms": o["updated_ms"]}
            for o in self.store.objects("contact_group")
        ]

    def stats(self) -> dict[str, Any]:
        requests = self.requests()
        return {
            "requests": len(requests),
            "accepted": sum(1 for r in requests if r["code"] == "200"),
            "rejected": sum(1 for r in requests if r["code"] != "200"),
            "entries": len(self.entries()),
            "overwrites": self.overwrites(),
            "events": len(self.events()),
            "rules": len(self.store.objects("rule")),
            "event_rules": len(self.store.objects("event_rule")),
            "contacts": len(self.store.objects("contact")),
            "contact_groups": len(self.store.objects("contact_group")),
        }

    def reset(self) -> None:
        """Forget entries, events, rules, contacts, contact groups, the request log, seen nonces and
        faults."""
        self.store.reset()
        self.authenticator.reset()
        self.clear_faults()

    # --- API actions ---------------------------------------------------------------------------------

    def _answer(
        self, params: Mapping[str, str], key: KeyPair, request_id: str, decision: Decision
    ) -> dict[str, Any]:
        """The success body (minus RequestId) for an authenticated call, after applying ``decision``."""
        if decision.kind == "error":
            raise api_error(decision.code or "InternalError", http_status=decision.http_status)
        if decision.kind == "body_error":
            code = decision.code or "500"
            known = CATALOG.get("InternalError" if code == "500" else code)
            return {"Code": code, "Message": known[1] if known else code}
        if decision.kind == "drop":
            return {}
        action = params["Action"]
        if params["Version"] == sts.STS_VERSION:
            if action == "GetCallerIdentity":
                return sts.get_caller_identity(self.user_id, key.key_id)
            raise api_error("InvalidAction.NotFound")
        store, strict = self.store, self.strict
        if action == "PutCustomMetric":
            entries = parse_metric_list(params, max_entries=self.max_entries, strict=strict)
            store.add_entries(entries, request_id=request_id, access_key_id=key.key_id)
            return {"Code": "200", "Message": "success"}
        if action == "PutCustomEvent":
            return events.put_custom_event(
                params, store, strict=strict, request_id=request_id, access_key_id=key.key_id
            )
        handlers: dict[str, Any] = {
            "DescribeCustomMetricList": lambda: queries.describe_custom_metric_list(
                params, store, self.user_id
            ),
            "DescribeMetricList": lambda: queries.describe_metric_list(params, store, self.user_id),
            "DescribeCustomEventAttribute": lambda: events.describe_custom_event_attribute(params, store),
            "PutCustomMetricRule": lambda: alarms.put_custom_metric_rule(params, store, strict=strict),
            "PutCustomEventRule": lambda: alarms.put_custom_event_rule(params, store, strict=strict),
            "DescribeMetricRuleList": lambda: alarms.describe_metric_rule_list(params, store, self.namespace),
            "DeleteMetricRules": lambda: alarms.delete_metric_rules(params, store),
            "EnableMetricRules": lambda: alarms.set_metric_rules_enabled(params, store, True),
            "DisableMetricRules": lambda: alarms.set_metric_rules_enabled(params, store, False),
            "PutContact": lambda: contacts.put_contact(params, store, strict=strict),
            "PutContactGroup": lambda: contacts.put_contact_group(params, store, strict=strict),
            "DescribeContactList": lambda: contacts.describe_contact_list(params, store),
            "DescribeContactGroupList": lambda: contacts.describe_contact_group_list(params, store),
            "DeleteContact": lambda: contacts.delete_contact(params, store),
            "DeleteContactGroup": lambda: contacts.delete_contact_group(params, store),
            "PutEventRule": lambda: eventrules.put_event_rule(params, store),
            "PutEventRuleTargets": lambda: eventrules.put_event_rule_targets(params, store, strict=strict),
            "DescribeEventRuleList": lambda: eventrules.describe_event_rule_list(params, store),
            "DescribeEventRuleTargetList": lambda: eventrules.describe_event_rule_target_list(params, store),
            "DeleteEventRules": lambda: eventrules.delete_event_rules(params, store),
        }
        if action in handlers:
            return handlers[action]()
        raise api_error("InvalidAction.NotFound")
