"""Issue #10: a Hypothesis state machine over record / observe / flush / close / fork and the clock.

Whatever the interleaving, against the real emulator over real HTTP:
- record() and observe() never raise, whatever they are given;
- every valid value recorded before close() is delivered exactly once per period (60 s and 300 s);
- no (series, period, time) is ever written twice (CMS keeps the last write);
- every invalid value is counted, and every value after close() is counted as dropped;
- a forked child delivers what it recorded, under its own instance, without touching the parent's totals.
"""

from __future__ import annotations

import decimal
import os
import time
from collections import Counter

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from langflow_cms import clock
from langflow_cms.config import Config
from langflow_cms.credentials import Credential, credential_provider
from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from langflow_cms.emulator import Emulator
from langflow_cms.naming import as_number
from langflow_cms.reporter import Reporter

VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
NAMES = st.sampled_from(["alpha", "beta", "bad name", "", "gamma_1"])
VALID_NAMES = {"alpha", "beta", "gamma_1"}


class ReporterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.emulator = Emulator(port=0).start()
        settings_ = {
            "LANGFLOW_CMS_DEV": "1",
            "LANGFLOW_CMS_ENDPOINT": self.emulator.endpoint,
            "LANGFLOW_CMS_MAX_QPS": "200",
        }
        provider = credential_provider(Credential(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, source="test"))
        self.reporter = Reporter(Config.from_env(settings_), provider, start=False)
        self.now = time.time()
        clock.wall = lambda: self.now  # the process's wall clock: records and collections read it alike
        self.expected: Counter[str] = Counter()
        self.invalid = 0
        self.after_close = 0
        self.children = 0
        self.closed = False
        self.handle = self.reporter.series("alpha", {"k": "bound"})

    def _account(self, name: str, value: object) -> None:
        if as_number(value) is None or name not in VALID_NAMES:
            self.invalid += 1  # a bad value or name is invalid, before or after close
        elif self.closed:
            self.after_close += 1
        else:
            self.expected[name] += 1

    @rule(name=NAMES, value=VALUES, key=st.sampled_from(["a", "b"]))
    def record(self, name: str, value: object, key: str) -> None:
        self.reporter.record(name, value, {"k": key})  # never raises
        self._account(name, value)

    @rule(value=VALUES)
    def observe(self, value: object) -> None:
        self.reporter.observe(self.handle, value)  # never raises
        self._account("alpha", value)

    @rule(timeout=st.sampled_from([0.0, 5.0]))
    def flush(self, timeout: float) -> None:
        self.reporter.flush(timeout=timeout)

    @rule(seconds=st.sampled_from([1, 30, 61, 299, 600]))
    def advance_clock(self, seconds: int) -> None:
        self.now += seconds

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self) -> None:
        self.reporter.close(timeout=10)
        self.closed = True

    @precondition(lambda self: not self.closed and self.children < 2)
    @rule()
    def fork(self) -> None:
        pid = os.fork()
        if pid == 0:  # the child: its own reporter state (after-fork hook), records, delivers, leaves
            code = 1
            try:
                self.reporter.record("child", 1.0, {"k": "a"})
                code = 0 if self.reporter.close(timeout=10) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        self.children += 1

    def teardown(self) -> None:
        try:
            if not self.closed:
                assert self.reporter.close(timeout=10)
            parent = self.reporter.config.instance
            for period in (60, 300):
                got: Counter[str] = Counter()
                for entry in self.emulator.entries():
                    mine = entry["period"] == period and entry["dimensions"]["instance"] == parent
                    if mine and not entry["name"].startswith("langflow_cms_"):
                        got[entry["name"]] += int(entry["values"]["SampleCount"])
                assert got == +self.expected, (period, got, self.expected)
            children = [e for e in self.emulator.entries("child") if e["period"] == 60]
            assert sum(e["values"]["SampleCount"] for e in children) == self.children
            assert parent not in {e["dimensions"]["instance"] for e in children}
            assert self.emulator.overwrites() == 0
            assert self.reporter.health()["invalid"] == self.invalid
            assert self.reporter._counters()["dropped:after_close"] == self.after_close
        finally:
            clock.wall = time.time
            self.emulator.stop()


ReporterMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
test_reporter_state_machine = ReporterMachine.TestCase


def test_decimal_and_huge_ints_are_numbers_and_text_is_not():
    assert as_number(decimal.Decimal("5")) == 5.0
    assert as_number(10**400) is None and as_number(True) is None and as_number("12") is None
    assert as_number("12", text=True) == 12.0
