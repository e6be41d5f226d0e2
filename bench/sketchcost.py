"""8. Sketch ``add`` at a 1:10⁹ spread of values vs its normal cost, and against the ``ddsketch`` package.

Values spread log-uniformly over 9 decades (1 µs to 1,000 s in ms) need about 2,800 bins at the sketch's
0.75 % accuracy, far past ``MAX_BINS`` (768), so the collapsing store folds its lowest bins again and
again; the normal case is values within 1:100 (one range that fits). Each timed pass adds the same
pre-generated values to a fresh sketch, so growing and collapsing the store are counted; passes of the
contenders alternate, round by round.

The ``ddsketch`` package (DataDog's reference implementation, in the dev group) gets the same wide values:
``DDSketch`` (its default: unbounded dense store, 1 % accuracy) and ``LogCollapsingLowestDenseDDSketch``
at our accuracy and bin limit (the like-for-like store). The project keeps its own sketch only if it
measures faster (``pipeline/sketch.py``).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable

from bench.common import Row, Section, fmt_ns, interleaved_rounds, median_ratio, ns_per_call

GOAL = 2.0


def values(n: int, low: float, high: float, seed: int) -> list[float]:
    """``n`` values log-uniform over 10**low .. 10**high (ms), in random order."""
    rng = random.Random(seed)
    return [10.0 ** rng.uniform(low, high) for _ in range(n)]


def contenders(n: int) -> dict[str, Callable[[int], None]]:
    from ddsketch import DDSketch, LogCollapsingLowestDenseDDSketch

    from langflow_cms.pipeline.sketch import MAX_BINS, RELATIVE_ACCURACY, Sketch

    wide = values(n, -3.0, 6.0, 1)
    narrow = values(n, 0.0, 2.0, 2)

    def adder(make: Callable[[], object], data: list[float]) -> Callable[[int], None]:
        def run(calls: int) -> None:
            add = make().add  # type: ignore[attr-defined]
            for v in data[:calls]:
                add(v)

        return run

    return {
        "ours, 1:10⁹": adder(Sketch, wide),
        "ours, 1:100": adder(Sketch, narrow),
        "ddsketch DDSketch, 1:10⁹": adder(DDSketch, wide),
        "ddsketch collapsing, 1:10⁹": adder(
            lambda: LogCollapsingLowestDenseDDSketch(RELATIVE_ACCURACY, bin_limit=MAX_BINS), wide
        ),
    }


def run(scale: float = 1.0, rounds: int = 15) -> Section:
    from langflow_cms.pipeline.sketch import MAX_BINS, Sketch

    n = max(int(200_000 * scale), 2000)
    runs = contenders(n)
    for fn in runs.values():
        fn(min(n, 2000))  # warm-up
    timed = interleaved_rounds({name: ns_per_call(fn, n) for name, fn in runs.items()}, rounds)
    med = {name: statistics.median(v) for name, v in timed.items()}
    spread = median_ratio(timed["ours, 1:10⁹"], timed["ours, 1:100"])
    vs_dd = median_ratio(timed["ours, 1:10⁹"], timed["ddsketch DDSketch, 1:10⁹"])
    vs_collapsing = median_ratio(timed["ours, 1:10⁹"], timed["ddsketch collapsing, 1:10⁹"])
    bins = {}
    for label, (low, high) in {"wide": (-3.0, 6.0), "narrow": (0.0, 2.0)}.items():
        probe = Sketch()
        for v in values(n, low, high, 1):
            probe.add(v)
        bins[label] = len(probe.positive.counts)
    rows = [
        Row(
            "8. Sketch `add` at a 1:10⁹ value spread (collapsing store) vs 1:100",
            fmt_ns(med["ours, 1:10⁹"]),
            f"1:100: {fmt_ns(med['ours, 1:100'])}",
            f"{spread:.2f}×",
            "≤ 2×",
            spread <= GOAL,
        ),
        Row(
            "8b. Sketch `add`, 1:10⁹ spread, ours vs `ddsketch` `DDSketch.add`",
            fmt_ns(med["ours, 1:10⁹"]),
            f"DDSketch: {fmt_ns(med['ddsketch DDSketch, 1:10⁹'])}; collapsing (768 bins): "
            f"{fmt_ns(med['ddsketch collapsing, 1:10⁹'])}",
            f"{vs_dd:.2f}× ({1 / vs_dd:.1f}× {'faster' if vs_dd < 1 else 'slower'}); "
            f"{vs_collapsing:.2f}× vs collapsing",
            "— (info: keep ours only if faster)",
            None,
        ),
    ]
    details = [
        f"**Sketch add.** {rounds} interleaved rounds; each pass adds {n:,} pre-generated values to a fresh "
        f"sketch (loop included, equal for all). Wide: log-uniform over 10⁻³–10⁶ ms in random order; the "
        f"store ends with {bins['wide']} bins (MAX_BINS = {MAX_BINS}), having collapsed its lowest bins as "
        f"higher values arrived. Narrow: log-uniform over 1–100 ms ({bins['narrow']} bins, no collapse). "
        "Per-value "
        "medians: " + ", ".join(f"{name} {fmt_ns(v)}" for name, v in med.items()) + ". Ours is "
        f"{1 / vs_dd:.1f}× {'faster' if vs_dd < 1 else 'slower'} than `ddsketch.DDSketch.add` and "
        f"{1 / vs_collapsing:.1f}× {'faster' if vs_collapsing < 1 else 'slower'} than its collapsing sketch "
        "on the same values"
        + (
            ", so the project keeps its own sketch."
            if vs_dd < 1
            else "; by the project's rule it should switch to `ddsketch`."
        )
    ]
    return Section(rows, details)
