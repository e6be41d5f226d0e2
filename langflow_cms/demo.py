"""`make demo`: start the local emulator, produce a realistic workload, print what CMS holds.

Everything goes through the real path: ``get_reporter()`` aggregates, the reporter signs and sends
PutCustomMetric with the real SDK over HTTP, the emulator verifies the signature and stores the entries,
and the table is read back with DescribeCustomMetricList + DescribeMetricList, as from real CMS.
"""

from __future__ import annotations

import os
import random
import sys
import time

from aliyunsdkcore.client import AcsClient

from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from langflow_cms.emulator import DEFAULT_USER_ID, Emulator
from langflow_cms.readback import format_table, merge_instances, series_rows

FLOW_METRIC = "langflow_flow_duration_ms"
NODE_METRIC = "langflow_node_duration_ms"
NODES = (
    ("ChatInput-a1B2c", "ChatInput", 2.0),
    ("Prompt-x1Y2z", "Prompt", 4.0),
    ("FakeLLM-q7R8s", "LLM", 900.0),
)


def simulated_workload(runs: int = 400, seed: int = 7) -> None:
    """Poem-generator runs: LLM latency is log-normal with a tail; about 3 % of runs fail in the LLM."""
    from langflow_cms import get_reporter

    reporter = get_reporter()
    rng = random.Random(seed)
    for _ in range(runs):
        total, status = 0.0, "ok"
        for node, component, typical in NODES:
            took = rng.lognormvariate(0, 0.5) * typical
            node_status = "error" if component == "LLM" and rng.random() < 0.03 else "ok"
            reporter.record(
                NODE_METRIC,
                took,
                {"flow": "poem", "node": node, "component": component, "status": node_status},
            )
            total += took
            if node_status == "error":
                status = "error"
                break
        reporter.record(FLOW_METRIC, total, {"flow": "poem", "status": status})
        reporter.record(
            "langflow_llm_tokens",
            rng.randint(20, 60),
            {"flow": "poem", "model": "fake-llm", "direction": "output"},
        )


def print_tables(emulator: Emulator, since_ms: int) -> None:
    client = AcsClient(
        DEV_ACCESS_KEY_ID,
        DEV_ACCESS_KEY_SECRET,
        "cn-hangzhou",
        auto_retry=False,
        proxy={"http": None, "https": None},
    )
    for metric, columns in ((FLOW_METRIC, ["flow"]), (NODE_METRIC, ["flow", "node", "component"])):
        rows = merge_instances(
            series_rows(
                client,
                endpoint=emulator.endpoint,
                user_id=DEFAULT_USER_ID,
                metric_names=[metric],
                since_ms=since_ms,
            )
        )
        print(f"\n{metric} (read back from the emulator)")
        print(format_table(rows, columns))


def main() -> int:
    started = int(time.time() // 60 * 60 * 1000) - 60_000
    with Emulator(port=0) as emulator:
        os.environ.update({"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emulator.endpoint})
        print(f"CMS emulator listening on {emulator.endpoint}")
        simulated_workload()
        from langflow_cms import get_reporter

        reporter = get_reporter()
        reporter.close(timeout=30)
        print(f"reporter: {reporter.health()}")
        stats = emulator.stats()
        print(
            f"emulator: {stats['requests']} PutCustomMetric calls, {stats['entries']} entries, "
            f"{stats['rejected']} rejected"
        )
        print_tables(emulator, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
