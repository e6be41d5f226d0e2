"""Fault injection: throttling, 5xx, latency, dropped connections, HTTP-200 error bodies, a QPS limiter,
and a scripted sequence of answers for deterministic retry tests.

Faults apply after a request authenticated, and by default only to PutCustomMetric (``Faults.actions``),
so read-back calls such as DescribeCustomMetricList keep working while a test has the write path failing.

Script tokens, one consumed per faulted call, before any ratio is considered:

``ok``                  answer normally
``<Code>``              error answer, e.g. ``Throttling.User`` (400), ``InternalError`` (500),
                        ``ServiceUnavailable`` (503); unknown codes answer HTTP 400
``<Code>:<status>``     error answer with an explicit HTTP status, e.g. ``Busy:429``
``body:<Code>``         HTTP 200 whose JSON body carries ``Code`` (not stored)
``drop``                close the connection without an answer; nothing stored
``drop-after``          store the entries, then close without an answer (ambiguous delivery)
``delay:<seconds>``     answer normally after the extra delay (data stored before the wait)
``late:<seconds>``      wait, then store and answer: a request applied late, after a client's read timeout
                        gave up on it (a stale write that lands after the writes that followed it)
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

_FIVE_XX = ("InternalError", "ServiceUnavailable")


@dataclass
class Faults:
    """The fault configuration; all off by default. Ratios are probabilities in [0, 1]."""

    throttle_ratio: float = 0.0
    error_ratio: float = 0.0
    drop_ratio: float = 0.0
    latency: float = 0.0
    body_error: str | None = None
    body_error_ratio: float = 1.0
    qps: float | None = None
    script: list[str] = field(default_factory=list)
    seed: int | None = None
    actions: list[str] = field(default_factory=lambda: ["PutCustomMetric"])
    """The API actions the faults apply to; other actions always answer normally."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault settings: {unknown}")
        faults = cls(**data)
        faults.validate()
        return faults

    def validate(self) -> None:
        for name in ("throttle_ratio", "error_ratio", "drop_ratio", "body_error_ratio"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.latency < 0:
            raise ValueError("latency must be >= 0")
        if self.qps is not None and self.qps <= 0:
            raise ValueError("qps must be > 0")
        self.script = [str(token) for token in self.script]
        self.actions = [str(action) for action in self.actions]
        for token in self.script:
            parse_token(token)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """What to do with one PutCustomMetric call. ``kind``: ok, error, body_error, drop, drop_after, late."""

    kind: str = "ok"
    code: str | None = None
    http_status: int | None = None
    delay: float = 0.0
    label: str | None = None


def parse_token(token: str) -> Decision:
    """Turn one script token into a Decision (see the module docstring); ValueError if malformed."""
    label = f"script:{token}"
    if token == "ok":
        return Decision(label=label)
    if token in ("drop", "drop-after"):
        return Decision(kind=token.replace("-", "_"), label=label)
    if token.startswith("delay:"):
        return Decision(delay=float(token.removeprefix("delay:")), label=label)
    if token.startswith("late:"):
        return Decision(kind="late", delay=float(token.removeprefix("late:")), label=label)
    if token.startswith("body:") and token != "body:":
        return Decision(kind="body_error", code=token.removeprefix("body:"), label=label)
    code, _, status = token.partition(":")
    if not code or (status and not status.isdigit()):
        raise ValueError(f"bad script token {token!r}")
    return Decision(kind="error", code=code, http_status=int(status) if status else None, label=label)


class FaultInjector:
    """Holds the current Faults and decides each call's fate; thread-safe."""

    def __init__(self, faults: Faults | None = None) -> None:
        self._lock = threading.Lock()
        self._admitted: deque[float] = deque()
        self.configure(faults or Faults())

    def configure(self, faults: Faults) -> None:
        faults.validate()
        with self._lock:
            self._faults = faults
            self._script = deque(faults.script)
            self._random = random.Random(faults.seed)
            self._admitted.clear()

    def snapshot(self) -> dict[str, Any]:
        """Current settings; ``script`` lists only the tokens not yet consumed."""
        with self._lock:
            return {**self._faults.to_dict(), "script": list(self._script)}

    def decide(self, action: str) -> Decision:
        with self._lock:
            faults = self._faults
            if action not in faults.actions:
                return Decision()
            if self._script:
                decision = parse_token(self._script.popleft())
                return Decision(
                    decision.kind,
                    decision.code,
                    decision.http_status,
                    decision.delay + faults.latency,
                    decision.label,
                )
            decision = self._by_chance(faults)
            return Decision(
                decision.kind, decision.code, decision.http_status, faults.latency, decision.label
            )

    def _by_chance(self, faults: Faults) -> Decision:
        if faults.qps is not None:
            now = time.monotonic()
            while self._admitted and now - self._admitted[0] >= 1.0:
                self._admitted.popleft()
            if len(self._admitted) >= faults.qps:
                return Decision(kind="error", code="Throttling.User", label="qps")
            self._admitted.append(now)
        roll = self._random.random
        if faults.drop_ratio and roll() < faults.drop_ratio:
            return Decision(kind="drop", label="drop_ratio")
        if faults.throttle_ratio and roll() < faults.throttle_ratio:
            return Decision(kind="error", code="Throttling.User", label="throttle_ratio")
        if faults.error_ratio and roll() < faults.error_ratio:
            return Decision(kind="error", code=self._random.choice(_FIVE_XX), label="error_ratio")
        if faults.body_error and roll() < faults.body_error_ratio:
            return Decision(kind="body_error", code=faults.body_error, label="body_error")
        return Decision()
