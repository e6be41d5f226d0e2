"""A local, stdlib-only CloudMonitor (CMS) endpoint for development and tests.

It verifies real RPC v1 signatures, validates PutCustomMetric and PutCustomEvent like CMS documents
(stricter by default), stores what it accepts in SQLite, answers DescribeCustomMetricList /
DescribeMetricList / DescribeCustomEventAttribute from that store, keeps alarm rules, contacts and contact
groups, stands in for STS GetCallerIdentity, and can inject throttling, 5xx, latency, dropped connections
and HTTP-200 error bodies. Its limits are its own copy of the documented API (``limits``). See
docs/emulator.md.
"""

from .auth import KeyPair
from .faults import Faults
from .server import DEFAULT_USER_ID, Emulator

__all__ = ["DEFAULT_USER_ID", "Emulator", "Faults", "KeyPair"]
