"""The planner pauses the cyclic garbage collector while scoring; it must come back."""

from __future__ import annotations

import gc

import pytest

from digest.gcpause import collector_paused, collector_running


@pytest.fixture(autouse=True)
def _restore_collector() -> object:
    was = gc.isenabled()
    yield
    gc.enable() if was else gc.disable()


def test_collector_is_paused_inside_and_running_after() -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collector_comes_back_after_an_error() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("scoring failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_a_stretch_of_a_paused_loop_can_let_the_collector_run() -> None:
    gc.enable()
    with collector_paused():
        with pytest.raises(RuntimeError), collector_running():
            assert gc.isenabled()
            raise RuntimeError("a period was taken")
        assert not gc.isenabled()  # paused again for the rest of the loop
    assert gc.isenabled()
