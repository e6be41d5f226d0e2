"""A spool shared under two host names loses no host's windows (issue 23 §4): when the only worker of a
host name is SIGKILLed after sealing a minute into its host journal, a process of another host name
merges and sends that orphaned journal (under the dead host's own instance), once.

Real processes on a real spool directory; the lonely worker's host name is set by patching
``socket.gethostname`` in it, and it kills itself right after the hand-off of its sealed windows."""

from __future__ import annotations

import textwrap

import pytest

from langflow_cms.delivery.journal import host_directory
from tests.test_spool import run, spool_env

pytestmark = pytest.mark.timeout(300)

LONELY = textwrap.dedent(
    """
    import os, signal, socket
    socket.gethostname = lambda: "lonely-host"
    from langflow_cms import get_reporter
    rep = get_reporter()
    for i in range(70):
        rep.record("lonely", float(i % 7), {"flow": "f"})
    with rep._cycle_lock:
        rep._hand_off(rep.storage.collect(force=True))  # sealed into host/lonely-host/, not merged yet
        rep.host.snapshot()  # as the cycle does after the hand-off: the sealed windows are in the journal
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_the_sealed_minute_of_a_killed_host_s_only_worker_is_delivered_once(emulator, tmp_path):
    """Before: the killed worker's sealed minute stayed in host/lonely-host/ for ever (0 of 70)."""
    env = {**spool_env(tmp_path, emulator.endpoint), "LANGFLOW_CMS_HOST_MERGE": "true"}
    lonely = run(LONELY, env)
    assert lonely.returncode == -9, lonely.stderr
    assert list((tmp_path / "host" / "lonely-host").glob("60-*/*.json"))  # sealed, in its journal
    other = run("from langflow_cms import get_reporter; assert get_reporter().close(timeout=20)", env)
    assert other.returncode == 0, other.stderr
    for period in (60, 300):
        entries = [e for e in emulator.entries("lonely") if e["period"] == period]
        assert sum(e["values"]["SampleCount"] for e in entries) == 70, (period, entries)
        assert {e["dimensions"]["instance"].split("-")[0] for e in entries} == {"lonely"}
    assert host_directory(tmp_path) != tmp_path / "host" / "lonely-host"
    assert not list((tmp_path / "host" / "lonely-host").glob("*/*[0-9].json"))  # every file merged
