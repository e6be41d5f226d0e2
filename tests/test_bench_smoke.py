"""The benchmark harness runs end to end: `python -m bench --quick` on a tiny size fills every row.

Not a performance test (tiny sizes on a shared machine prove nothing about speed); it keeps `make bench`
from rotting when the code it measures changes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPECTED_ROWS = ("| 1. ", "| 1b. ", "| 1c. ", "| 2. ", "| 3. ", "| 4. ", "| 5. ", "| 6. ")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quick_bench_writes_a_complete_table(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scale", "0.01", "--rounds", "3", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    for prefix in EXPECTED_ROWS:
        assert any(line.startswith(prefix) for line in text.splitlines()), f"no row {prefix!r}"
    assert text.count("| 3. API calls") == 3 and text.count("| 4. Accuracy") == 2
    assert text.count("| 5. Memory") == 2 and text.count("| 6. Isolation") == 2
    for heading in ("## Machine", "## Results", "## How to reproduce"):
        assert heading in text
    assert "CPU" in text and "Python" in text
