"""The benchmark harness runs end to end: `python -m bench --quick` on a tiny size fills every row.

Not a performance test (tiny sizes on a shared machine prove nothing about speed); it keeps `make bench`
from rotting when the code it measures changes. Measurement 9 (one-shot `lfx run` subprocesses, a few
seconds of imports each) has a test of its own, so the table test stays quick.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPECTED_ROWS = (
    "| 1. ",
    "| 1b. ",
    "| 1c. ",
    "| 2. ",
    "| 3. ",
    "| 4. ",
    "| 5. ",
    "| 6. ",
    "| 7. ",
    "| 8. ",
    "| 8b. ",
    "| 10. ",
    "| 11. ",
    "| 11b. ",
    "| 11c. ",
    "| 12. ",
    "| 13. ",
    "| 14. ",
)
ALL_BUT_LFX_RUN = "1,2,3,4,5,6,7,8,10,11,12,13,14"


def quick_bench(tmp_path: Path, only: str, timeout: int) -> str:
    out = tmp_path / "performance.md"
    command = [sys.executable, "-m", "bench", "--quick", "--scale", "0.01", "--rounds", "3"]
    result = subprocess.run(
        [*command, "--only", only, "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out.read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.xdist_group("bench")  # each may regenerate the tracked bench/flows/*.json
@pytest.mark.timeout(240)
def test_quick_bench_writes_a_complete_table(tmp_path: Path) -> None:
    text = quick_bench(tmp_path, ALL_BUT_LFX_RUN, 230)
    for prefix in EXPECTED_ROWS:
        assert any(line.startswith(prefix) for line in text.splitlines()), f"no row {prefix!r}"
    assert text.count("| 3. API calls") == 3 and text.count("| 4. Accuracy") == 2
    assert text.count("| 12. Fleet raw points") == 3
    assert text.count("| 13. Fleet sample") == 6
    assert text.count("| 14. `record()`") == 1
    assert text.count("| 5. Memory") == 2 and text.count("| 6. Isolation") == 2
    assert "| `langflow_cms/langflow/" in text, "the CMS Metric node profile lost our functions"
    for heading in ("## Machine", "## Results", "## How to reproduce"):
        assert heading in text
    assert "CPU" in text and "Python" in text


@pytest.mark.slow
@pytest.mark.xdist_group("bench")  # each may regenerate the tracked bench/flows/*.json
@pytest.mark.timeout(300)
def test_one_shot_lfx_run_rows(tmp_path: Path) -> None:
    text = quick_bench(tmp_path, "9", 290)
    assert any(line.startswith("| 9. ") for line in text.splitlines())
    assert any(line.startswith("| 9b. ") for line in text.splitlines())
