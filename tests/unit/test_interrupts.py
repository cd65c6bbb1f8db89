"""Signals are recorded and raised at safe points; a second one raises at once."""

from __future__ import annotations

import os
import signal

import pytest

from fetcher.cli.interrupts import Interrupts, Terminated


def test_signal_is_only_recorded_until_checked() -> None:
    interrupts = Interrupts()
    with interrupts.installed():
        os.kill(os.getpid(), signal.SIGINT)  # handled synchronously in the main thread
        assert interrupts.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()


def test_sigterm_raises_terminated_at_check() -> None:
    interrupts = Interrupts()
    with interrupts.installed():
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(Terminated):
            interrupts.check()


def test_second_signal_raises_immediately() -> None:
    interrupts = Interrupts()
    with interrupts.installed(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)


def test_previous_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with Interrupts().installed():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_no_check_no_raise() -> None:
    Interrupts().check()
