"""A small quantile sketch: DDSketch's logarithmic mapping over a dense, bounded array of counts.

Why our own and not the ``ddsketch`` package: its ``add`` costs several Python calls per value (~2 µs,
slower than prometheus_client's whole ``observe``), and its stores hold Python ints. Here a value costs
one ``log``, one ``ceil`` and one array increment, the counts live in a 4-byte ``array``, and the bins are
capped so one series never exceeds a few KB. The guarantee is DDSketch's: every quantile whose rank falls
in the covered range is returned within ``RELATIVE_ACCURACY`` of the true value.

Bins: key ``k`` holds values in ``(GAMMA**(k-1), GAMMA**k]``; its representative value
``2 * GAMMA**k / (GAMMA + 1)`` is within ``RELATIVE_ACCURACY`` of anything in the bin. When the keys of one
sign span more than ``MAX_BINS``, the lowest bins are folded into the lowest kept bin (only the smallest
values lose accuracy; the upper percentiles that alarms watch never do), in O(1) per value. Negative values
go to a mirrored store, values closer to zero than ``MIN_MAGNITUDE`` to a zero count.
"""

from __future__ import annotations

import math
from array import array

RELATIVE_ACCURACY = 0.0075
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_MULTIPLIER = 1 / math.log(GAMMA)
MAX_BINS = 768
"""768 bins × 4 bytes = 3 KB at most per sign, covering a 1:100,000 range of values at full accuracy."""
MIN_MAGNITUDE = 1e-9


ZERO_BIN = 1 << 40
"""The key of values within MIN_MAGNITUDE of zero in an exact bin dict (``bin_of``)."""
NEGATIVE_BINS = -(1 << 40)
"""Added to the key of a negative value's magnitude in an exact bin dict."""


def bin_of(value: float) -> int:
    """The key of ``value`` in an exact bin dict ``{key: count}``: the open window's sketch, kept as a dict of
    ints, which the garbage collector never tracks (``Sketch.from_bins`` makes the sketch once sealed)."""
    if value > MIN_MAGNITUDE:
        return math.ceil(math.log(value) * _MULTIPLIER)
    if value < -MIN_MAGNITUDE:
        return math.ceil(math.log(-value) * _MULTIPLIER) + NEGATIVE_BINS
    return ZERO_BIN


def key_of(magnitude: float) -> int:
    """The bin key of a positive value."""
    return math.ceil(math.log(magnitude) * _MULTIPLIER)


def value_of(key: int) -> float:
    """The representative value of a bin, within RELATIVE_ACCURACY of anything in it (``inf`` for the top
    bins of values near the float maximum; callers clamp to the exact min and max)."""
    try:
        return 2 * GAMMA**key / (GAMMA + 1)
    except OverflowError:
        return math.inf


def rank(q: float, count: int) -> int:
    """The nearest rank (1-based) of quantile ``q`` among ``count`` values: the smallest value with at least
    ``q`` of the values at or below it, ``ceil(q * count)``. So the P99 of fewer than 100 values is their
    maximum. The rule of CloudMonitor's raw-data percentiles as the emulator has them (docs/metrics.md)."""
    return min(max(1, math.ceil(q * count)), count)


class Store:
    """Counts per bin key for one sign, as a dense array starting at ``offset``, at most MAX_BINS long.

    Like DDSketch's collapsing-lowest store: once the keys span MAX_BINS, a key below the kept range adds to
    the lowest bin in O(1) (no copy), and a new highest key shifts the range up with one C-level slice copy,
    folding the lowest bins into the new lowest. So the worst case per value is O(1) amortised whatever the
    spread of the values (``make bench`` row "sketch add at a 1:10^9 spread").
    """

    __slots__ = ("counts", "offset")

    def __init__(self) -> None:
        self.counts = array("I")
        self.offset = 0

    def add(self, key: int, n: int = 1) -> None:
        i = key - self.offset
        counts = self.counts
        if 0 <= i < len(counts):
            counts[i] += n
        elif i < 0 and len(counts) >= MAX_BINS:
            counts[0] += n  # below the kept range of a full store: collapse into the lowest bin
        else:
            self._extend(key)
            counts = self.counts
            counts[max(key - self.offset, 0)] += n

    def _extend(self, key: int) -> None:
        """Widen the array to hold ``key``, folding the lowest bins into the lowest kept one when the span
        would pass MAX_BINS. Slices and ``sum`` run in C: no Python loop over the bins."""
        counts = self.counts
        if not counts:
            self.counts, self.offset = array("I", [0]), key
            return
        low = min(key, self.offset)
        high = max(key, self.offset + len(counts) - 1)
        low = max(low, high - MAX_BINS + 1)
        wider = array("I", bytes(4 * (high - low + 1)))
        skip = low - self.offset  # bins below the new range, folded into its first bin
        if skip > 0:
            wider[0] = sum(counts[: skip + 1])
            kept = counts[skip + 1 :]
            wider[1 : 1 + len(kept)] = kept
        else:
            wider[-skip : -skip + len(counts)] = counts
        self.counts, self.offset = wider, low

    @classmethod
    def of_items(cls, items: list[tuple[int, int]]) -> Store:
        """A store of (key, count) pairs sorted by key: the same bins, folded the same way, as adding them."""
        store = cls.__new__(cls)
        if len(items) == 1:  # the usual case: every value of the window in one bin
            store.offset, n = items[0]
            store.counts = array("I", (n,))
        elif not items:
            store.counts, store.offset = array("I"), 0
        else:
            high = items[-1][0]
            low = max(items[0][0], high - MAX_BINS + 1)
            counts = store.counts = array("I", bytes(4 * (high - low + 1)))
            store.offset = low
            for key, n in items:
                counts[key - low if key > low else 0] += n
        return store

    def merge(self, other: Store) -> None:
        if not self.counts:  # into an empty store (each new 300 s window): a copy, in C
            self.counts, self.offset = array("I", other.counts), other.offset
            return
        for i, n in enumerate(other.counts):
            if n:
                self.add(other.offset + i, n)

    def items(self) -> list[tuple[int, int]]:
        """Non-empty (key, count) pairs in ascending key order."""
        return [(self.offset + i, n) for i, n in enumerate(self.counts) if n]


class Sketch:
    """Relative-error quantiles over any finite floats; mergeable, so 300 s windows are five 60 s ones."""

    __slots__ = ("negative", "positive", "zeros")

    def __init__(self) -> None:
        self.positive = Store()
        self.negative = Store()
        self.zeros = 0

    def add(self, value: float) -> None:
        if value > MIN_MAGNITUDE:  # the hot path: key_of and Store.add inlined (one call instead of three)
            store = self.positive
            i = math.ceil(math.log(value) * _MULTIPLIER) - store.offset
            if 0 <= i < len(store.counts):
                store.counts[i] += 1
            else:
                store.add(i + store.offset)
        elif value < -MIN_MAGNITUDE:
            self.negative.add(key_of(-value))
        else:
            self.zeros += 1

    def merge(self, other: Sketch) -> None:
        self.positive.merge(other.positive)
        self.negative.merge(other.negative)
        self.zeros += other.zeros

    @classmethod
    def from_bins(cls, bins: dict) -> Sketch:
        """The sketch of an exact bin dict (keys ``bin_of(value) - bins["o"]``; other keys are ignored)."""
        positive: list[tuple[int, int]] = []
        negative: list[tuple[int, int]] = []
        zeros = 0
        offset = bins.get("o", 0)
        for key, n in bins.items():
            if type(key) is not int:
                continue
            key += offset
            if key == ZERO_BIN:
                zeros += n
            elif key < NEGATIVE_BINS // 2:
                negative.append((key - NEGATIVE_BINS, n))
            else:
                positive.append((key, n))
        sketch = cls.__new__(cls)
        if len(positive) > 1:
            positive.sort()
        sketch.positive = Store.of_items(positive)
        if len(negative) > 1:
            negative.sort()
        sketch.negative = Store.of_items(negative)
        sketch.zeros = zeros
        return sketch

    def add_to_bins(self, bins: dict) -> None:
        """Add this sketch's counts to an exact bin dict (its keys less ``bins["o"]``)."""
        offset = bins.get("o", 0)
        for key, n in self.positive.items():
            key -= offset
            bins[key] = bins.get(key, 0) + n
        for key, n in self.negative.items():
            key += NEGATIVE_BINS - offset
            bins[key] = bins.get(key, 0) + n
        if self.zeros:
            key = ZERO_BIN - offset
            bins[key] = bins.get(key, 0) + self.zeros

    def quantiles(self, qs: tuple[float, ...], count: int) -> list[float]:
        """Values at the nearest ranks ``rank(q, count)`` (1-based), for ascending ``qs``."""
        bins = [(-value_of(k), n) for k, n in reversed(self.negative.items())]
        if self.zeros:
            bins.append((0.0, self.zeros))
        bins += [(value_of(k), n) for k, n in self.positive.items()]
        out: list[float] = []
        seen, it = 0, iter(bins)
        value = 0.0
        for q in qs:
            target = rank(q, count)
            while seen < target:
                value, n = next(it)
                seen += n
            out.append(value)
        return out

    def to_dict(self) -> dict:
        """A JSON-able form, for the disk spool."""
        return {
            "p": [self.positive.offset, self.positive.counts.tolist()],
            "n": [self.negative.offset, self.negative.counts.tolist()],
            "z": self.zeros,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Sketch:
        sketch = cls()
        for store, (offset, counts) in ((sketch.positive, data["p"]), (sketch.negative, data["n"])):
            store.offset, store.counts = offset, array("I", counts)
        sketch.zeros = data["z"]
        return sketch


class BinSketch(Sketch):
    """A sketch made from an exact bin dict (``bin_of``), its stores built on first use: a sealed window
    costs one object until it is encoded, and a collection of 200,000 series stays short."""

    __slots__ = ("bins",)

    def __init__(self, bins: dict) -> None:  # the stores are unset: ``__getattr__`` builds them
        self.bins = bins

    def __getattr__(self, name: str) -> object:
        if name not in ("positive", "negative", "zeros"):
            raise AttributeError(name)
        built = Sketch.from_bins(self.bins)
        self.positive, self.negative, self.zeros = built.positive, built.negative, built.zeros
        self.bins = {}
        return getattr(self, name)
