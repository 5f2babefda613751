"""Pause the cyclic garbage collector around allocation-heavy loops that make no cycles.

Scoring a planning run builds about a million small objects (one Pick per chosen
paper per subscriber, the selections shared between subscribers), and recording
it as many row tuples; they are freed by reference counting, and none of them
form reference cycles. The collector still runs a young-generation pass every
700 allocations and, now and then, a full pass over every live object (the
run's parsed topics, the index, its memos): a share of the run's time that
bench/scoring.py makes visible, for no garbage found.
Pausing it for the loop and restoring it afterwards removes that cost; the few
cycles made meanwhile (recursive inner functions) wait for the next collection.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block; restore its state after, on errors too."""
    with _collector(enabled=False):
        yield


@contextmanager
def collector_running() -> Iterator[None]:
    """Enable the cyclic collector inside the block (a stretch of a paused loop that does
    make cycles); restore its state after, on errors too."""
    with _collector(enabled=True):
        yield


@contextmanager
def _collector(*, enabled: bool) -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable() if enabled else gc.disable()
    try:
        yield
    finally:
        gc.enable() if was_enabled else gc.disable()
