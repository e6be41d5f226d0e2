"""#24 §5: what the storage leaves for the cyclic garbage collector, and how pauses of the collector overlap.

A full collector pass walks every object the collector tracks; at 200,000 series the storage's ~10 tracked
objects per series made one pass take 1.5–3 s, inside whichever ``record()`` happened to start it. The oracle
here is the interpreter's own count (``gc.get_objects()``), not the storage's.
"""

from __future__ import annotations

import gc
import threading

import pytest

from langflow_cms import clock
from langflow_cms.pipeline.pause import gc_paused
from langflow_cms.pipeline.storage import Scope, Storage

SERIES = 20_000
START = 1_800_000_000.0  # a 300 s boundary


def _tracked() -> int:
    gc.collect()  # the interpreter untracks what holds only atomic values (tuples, dicts) on a full pass
    return len(gc.get_objects())


def test_live_series_with_open_windows_and_rollups_hold_no_tracked_objects(monkeypatch):
    """Failed before the columnar storage: 20,000 series held about 180,000 tracked objects (a Series, its
    list of cache keys, a Window, its Sketch, two Stores, two arrays, and the same again per open roll-up)."""
    now = [START + 30]
    monkeypatch.setattr(clock, "wall", lambda: now[0])
    before = _tracked()
    storage = Storage(max_series_per_metric=10 * SERIES, max_metrics=10)
    scope = Scope(storage, "", {"instance": "i"})
    handle = scope.series("bound", {"node": "n1"})  # one bound series: one object, however many exist
    for i in range(SERIES):
        scope.record("m", float(i % 97) + 0.5, {"k": str(i), "status": "ok"})
    scope.observe(handle, 1.0)
    sealed = storage.collect(START + 61)  # minute 0 sealed into the open 300 s roll-ups
    assert sum(w.count for w in sealed if w.period == 60) == SERIES + 1
    del sealed
    now[0] = START + 90
    for i in range(SERIES):  # minute 1's windows open
        scope.record("m", -float(i % 13), {"k": str(i), "status": "ok"})
    storage.drain()
    assert len(storage.open_rollups()) == SERIES + 1
    grown = _tracked() - before
    assert storage.series_count() == SERIES + 1
    assert grown < SERIES // 20, (
        f"{grown:,} tracked objects for {SERIES:,} series"
    )  # other threads allocate too
    # and what they hold is intact: minute 1 and the roll-up come out whole
    windows = storage.collect(START + 301, force=True)
    minute = [w for w in windows if w.period == 60 and w.name == "m"]
    rolled = [w for w in windows if w.period == 300 and w.name == "m"]
    assert len(minute) == len(rolled) == SERIES
    assert sum(w.count for w in minute) == SERIES and sum(w.count for w in rolled) == 2 * SERIES
    assert min(w.low for w in rolled) == -12.0 and max(w.high for w in rolled) == 96.5


def test_evicted_and_reused_rows_never_mix_series(monkeypatch):
    """A stale handle (a value queued for a series evicted since) must never land in another series."""
    now = [START + 30]
    monkeypatch.setattr(clock, "wall", lambda: now[0])
    storage = Storage(max_series_per_metric=1000, max_metrics=10)
    scope = Scope(storage, "", {})
    handle = scope.series("m", {"k": "old"})
    scope.record("m", 1.0, {"k": "old"})
    for minute in range(1, 6):  # sealed, then idle: evicted
        storage.collect(START + 60 * minute + 1)
    assert storage.series_count() == 0
    for i in range(50):  # new series may take its row
        scope.record("m", 2.0, {"k": f"new{i}"})
    scope.observe(handle, 7.0)  # the old bound series comes back with its own value
    windows = storage.collect(START + 1000, force=True)
    by_key = {dict(w.dimensions)["k"]: w for w in windows if w.period == 60}
    assert by_key["old"].count == 1 and by_key["old"].total == 7.0
    assert all(by_key[f"new{i}"].total == 2.0 for i in range(50))


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_two_overlapping_pauses_keep_the_collector_off_until_the_last_ends(collector_on):
    """Failed before: the first pause to end switched the collector back on while the second (a close on
    another thread) still ran, so its hundreds of thousands of objects started full passes."""
    entered, first_may_end, first_ended = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with gc_paused():
            entered.set()
            first_may_end.wait(10)
        first_ended.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert entered.wait(10)
    with gc_paused():
        first_may_end.set()
        assert first_ended.wait(10)
        assert not gc.isenabled(), "the other pause ended and switched the collector on under this one"
    thread.join(10)
    assert gc.isenabled()


def test_a_pause_leaves_an_application_that_switched_the_collector_off_alone(collector_on):
    """An application's own choice, made before or during a pause, is kept."""
    gc.disable()  # the application's
    with gc_paused():
        pass
    assert not gc.isenabled()
    gc.enable()
    with gc_paused():
        gc.enable()  # the application switches it on while we run
        gc.disable()
        gc.enable()
    assert gc.isenabled()


def test_the_ledger_of_sent_windows_holds_no_tracked_objects():
    """The reporter keeps what it sent for ten minutes (a resend carries everything). Failed before: it kept
    each window itself, about six tracked objects (window, sketch, stores, arrays) per series and minute."""
    from langflow_cms.pipeline.window import Ledger, Window

    ledger = Ledger()
    before = _tracked()
    for minute in range(3):
        for i in range(2000):
            window = Window("m", (("k", str(i)),), int(START) + 60 * minute)
            window.add(float(i) + 0.5)
            ledger.complete(window).statistics()  # as the reporter encodes it
    again = Window("m", (("k", "7"),), int(START))
    again.add(100.0)
    resent = ledger.complete(again)  # a late value for minute 0 of series 7: sent with what it had
    assert (resent.count, resent.low, resent.high) == (2, 7.5, 100.0)
    del window, again, resent
    grown = _tracked() - before
    assert len(ledger) == 6000
    assert grown < 600, f"{grown:,} tracked objects for 6,000 sent windows"  # 64 shards, other threads
