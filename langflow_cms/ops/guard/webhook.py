"""``guard serve``: a CMS alarm callback that makes the guard evaluate at once.

A CloudMonitor alarm rule (e.g. the fleet P95 of a flow) can call a webhook when it fires; pointing it at
``http://<guard>:<port>/evaluate?token=<shared token>`` wakes the guard's loop now instead of at its next
period. CMS cannot sign its callbacks with a key of ours, so the check is a shared token (the query
parameter, or an ``X-Guard-Token`` header), compared in constant time; anything else gets 403 and wakes
nothing. The token is checked before any body is read; an authorised request needs a Content-Length from
0 to 64 KB (411 without one, 400 when it is not a number or negative, 413 above), and every connection has
a socket timeout, so a client that stalls holds a server thread for ``timeout_s`` at most. The callback
carries no decision: the guard still decides from CMS data by its rule.
"""

from __future__ import annotations

import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN_VARIABLE = "LANGFLOW_CMS_GUARD_TOKEN"
PATH = "/evaluate"
MAX_BODY = 65536
"""The largest alarm callback body read (CMS sends a few hundred bytes of the alarm's details)."""


class Trigger:
    """An HTTP listener whose authorised POSTs to ``/evaluate`` set ``wake``."""

    def __init__(
        self, token: str, host: str = "127.0.0.1", port: int = 0, *, timeout_s: float = 10.0
    ) -> None:
        if len(token) < 16:
            raise ValueError(f"{TOKEN_VARIABLE} must be at least 16 characters")
        self.wake = threading.Event()
        self.calls = 0
        trigger = self
        expected = token.encode()

        class Handler(BaseHTTPRequestHandler):
            timeout = timeout_s  # the socket's: a stalled request line, header or body ends the connection

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, text: str, *, close: bool = False) -> None:
                body = text.encode()
                self.close_connection = self.close_connection or close  # an unread body is not a request
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                if close:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                given = self.headers.get("X-Guard-Token") or (parse_qs(url.query).get("token") or [""])[0]
                if url.path != PATH:
                    return self._answer(404, "not found", close=True)
                if not hmac.compare_digest(given.encode(), expected):
                    return self._answer(403, "bad token", close=True)
                declared = self.headers.get("Content-Length")
                if declared is None:
                    return self._answer(411, "Content-Length required", close=True)
                if not declared.strip().isdigit():
                    return self._answer(400, "bad Content-Length", close=True)
                if int(declared) > MAX_BODY:
                    return self._answer(413, f"body over {MAX_BODY} bytes", close=True)
                self.rfile.read(int(declared))  # the alarm's details: not needed to decide
                trigger.calls += 1
                trigger.wake.set()
                return self._answer(202, "evaluating")

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="guard-webhook", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
