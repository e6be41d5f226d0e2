"""#24 §5: what the storage leaves for the cyclic garbage collector, and how its pauses of the collector overlap.

A full collector pass walks every object the collector tracks; at 200,000 series the storage's ~10 tracked
objects per series made one pass take 1.5–3 s, inside whichever ``record()`` happened to start it. The oracle
here is the interpreter's own count (``gc.get_objects()``), not the storage's.
"""

from __future__ import annotations

import gc
import threading

import pytest

from langflow_cms.pipeline.storage import gc_paused


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
