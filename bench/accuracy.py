"""4. Accuracy: P50/P95/P99 of a reporter window vs the exact percentiles of the same samples.

The samples go through ``Window.add`` (what ``record()`` calls) and come out of ``Window.statistics()``
(what is sent to CMS, rounded to 6 significant digits and clamped to the exact min/max). Exact values are
X and ``"linear"``
(numpy's default, interpolated). Heavy tails are where fixed-bucket histograms fail, so both
distributions are heavy-tailed.
"""

from __future__ import annotations

import numpy as np

from bench.common import Row, Section

GOAL = 0.01
KEYS = (("P50", 0.50), ("P95", 0.95), ("P99", 0.99))


def distributions(n: int, seed: int = 42) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "log-normal(μ=5, σ=1) ms": rng.lognormal(mean=5.0, sigma=1.0, size=n),
        "Pareto(α=1.5, min 10 ms)": 10.0 * (1.0 + rng.pareto(1.5, size=n)),
    }


def window_of(samples: np.ndarray):
    from langflow_cms.pipeline.window import Window

    window = Window("bench", (), 0)
    add = window.add
    for value in samples.tolist():
        add(value)
    return window


def run(scale: float = 1.0) -> Section:
    n = max(int(1_000_000 * scale), 1000)
    rows: list[Row] = []
    lines = [
        "| distribution | quantile | ours | exact (nearest rank) | error | exact (linear) | error |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, samples in distributions(n).items():
        stats = window_of(samples).statistics()
        worst = 0.0
        for key, q in KEYS:
            lower = float(np.quantile(samples, q, method="inverted_cdf"))
            linear = float(np.quantile(samples, q, method="linear"))
            err_lower = abs(stats[key] - lower) / lower
            err_linear = abs(stats[key] - linear) / linear
            worst = max(worst, err_lower, err_linear)
            lines.append(
                f"| {name} | {key} | {stats[key]:.6g} | {lower:.6g} | {err_lower:.3%} | "
                f"{linear:.6g} | {err_linear:.3%} |"
            )
        rows.append(
            Row(
                f"4. Accuracy, {n:,} samples, {name}: worst of P50/P95/P99",
                f"max rel. error {worst:.3%}",
                "exact (numpy nearest rank & linear)",
                f"{worst:.3%}",
                "≤ 1 %",
                worst <= GOAL,
            )
        )
    details = [
        f"**Accuracy.** {n:,} samples per distribution (seeded), all in one 60 s window, compared with "
        "numpy's exact percentiles:\n\n" + "\n".join(lines)
    ]
    return Section(rows, details)
