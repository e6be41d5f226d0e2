"""A local, stdlib-only CloudMonitor (CMS) endpoint for development and tests.

It verifies real RPC v1 signatures, validates PutCustomMetric like CMS documents (stricter by default),
stores what it accepts in SQLite, answers DescribeCustomMetricList / DescribeMetricList from that store,
and can inject throttling, 5xx, latency, dropped connections and HTTP-200 error bodies. See
docs/emulator.md.
"""

from .auth import KeyPair
from .faults import Faults
from .server import DEFAULT_USER_ID, Emulator

__all__ = ["DEFAULT_USER_ID", "Emulator", "Faults", "KeyPair"]
