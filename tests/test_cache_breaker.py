"""The circuit breaker as a pure state machine, driven by a fake clock."""
import logging

import pytest

from proxy.cache.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock) -> CircuitBreaker:
    return CircuitBreaker("redis", failure_threshold=3, reset_after=5.0, clock=clock)


def open_it(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        breaker.record_failure("refused")
    assert breaker.state is BreakerState.OPEN


def test_stays_closed_below_the_threshold_and_a_success_resets_the_count(breaker):
    breaker.record_failure("x")
    breaker.record_failure("x")
    breaker.record_success()
    breaker.record_failure("x")
    breaker.record_failure("x")
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_opens_after_consecutive_failures_and_refuses_until_the_pause_is_over(breaker, clock):
    open_it(breaker)
    assert not breaker.allow()
    clock.now += 4.9
    assert not breaker.allow()


def test_after_the_pause_exactly_one_probe_goes_through(breaker, clock):
    open_it(breaker)
    clock.now += 5.0
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # the others keep bypassing while the probe is out


def test_a_successful_probe_closes(breaker, clock):
    open_it(breaker)
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0
    assert breaker.allow()


def test_a_failed_probe_reopens_for_another_full_pause(breaker, clock):
    open_it(breaker)
    clock.now += 5.0
    assert breaker.allow()
    clock.now += 0.2
    breaker.record_failure("still down")
    assert breaker.state is BreakerState.OPEN
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()


def test_a_probe_that_never_reports_does_not_leave_it_stuck_half_open(breaker, clock):
    open_it(breaker)
    clock.now += 5.0
    assert breaker.allow()  # this probe's task gets cancelled and never reports
    clock.now += 5.0
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN


def test_late_failures_while_open_do_not_extend_the_pause(breaker, clock):
    open_it(breaker)
    clock.now += 3.0
    breaker.record_failure("a call that started before it opened")
    clock.now += 2.0
    assert breaker.allow()


def test_logs_one_line_when_it_opens_and_one_when_it_recovers(breaker, clock, caplog):
    caplog.set_level(logging.INFO, logger="proxy.cache.breaker")
    for _ in range(10):
        breaker.record_failure("refused")
    for _ in range(3):  # a long outage: probes fail
        clock.now += 5.0
        assert breaker.allow()
        breaker.record_failure("refused")
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_success()
    for _ in range(5):
        breaker.record_success()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "open" in messages[0] and "refused" in messages[0]
    assert "closed" in messages[1]
