"""The signal guard, directly: a signal outside a write stops at once, inside one it waits for the write (saying
so once), nested writes finish together, a second signal does not wait, and the handlers come back."""

from __future__ import annotations

import logging
import signal

import pytest

from dogbreed.training.guards import HANDLED_SIGNALS, SignalGuard, SignalStop, critical_section


def test_the_guarded_signals_are_term_int_and_hup():
    assert HANDLED_SIGNALS == (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def test_outside_a_write_a_signal_stops_at_once():
    with SignalGuard() as guard, pytest.raises(SignalStop) as caught:
        signal.raise_signal(signal.SIGHUP)
    assert caught.value.signum == signal.SIGHUP and str(caught.value) == "SIGHUP"
    assert guard.signal_name == "SIGHUP"


def test_inside_nested_writes_a_signal_waits_for_the_outermost_and_is_said_once(caplog):
    written = []
    with caplog.at_level(logging.WARNING, logger="dogbreed.training.guards"), SignalGuard() as guard:
        with pytest.raises(SignalStop) as caught:
            with critical_section():
                with critical_section():
                    signal.raise_signal(signal.SIGTERM)
                    written.append("inner")
                written.append("outer")  # the inner block ending does not stop the run yet
            written.append("after")  # not reached: the outermost block ending stops it
    assert written == ["inner", "outer"]
    assert caught.value.signum == signal.SIGTERM and guard.signal_name == "SIGTERM"
    assert caplog.messages == ["received SIGTERM: stopping once the file being written is complete"]


def test_a_second_signal_during_a_write_stops_at_once(caplog):
    """The user insists (a second Ctrl-C): the write is abandoned (checkpoints go through a partial file, so
    nothing half-written is left under a final name); the first signal stays the one the run reports."""
    written = []
    with caplog.at_level(logging.WARNING, logger="dogbreed.training.guards"), SignalGuard() as guard:
        with pytest.raises(SignalStop) as caught, critical_section():
            signal.raise_signal(signal.SIGTERM)
            written.append("after the first")
            signal.raise_signal(signal.SIGINT)
            written.append("after the second")
    assert written == ["after the first"]
    assert caught.value.signum == signal.SIGINT and guard.signal_name == "SIGTERM"
    assert caplog.messages == ["received SIGTERM: stopping once the file being written is complete"]


def test_the_previous_handlers_come_back_and_without_a_guard_a_write_is_plain():
    seen = []
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: seen.append(signum))
    try:
        with SignalGuard():
            assert signal.getsignal(signal.SIGHUP) is not previous
        with critical_section():  # no guard active: nothing is deferred
            signal.raise_signal(signal.SIGHUP)
        assert seen == [signal.SIGHUP]
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert SignalGuard._active is None
