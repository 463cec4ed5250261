"""The wedge watchdog's decisions, and what it does on a verdict."""
import asyncio

import pytest

from launcher.watchdog import Watchdog, WatchdogPolicy
from proxy.upstream_status import UpstreamStatus

P = WatchdogPolicy(timeout=10, probe_idle_interval=60)


@pytest.mark.parametrize("silent_for,idle_for,expected", [
    (None, 0, "ok"),            # nothing running, just ran
    (None, 59.9, "ok"),
    (None, 60, "probe"),        # idle long enough: check the server can still generate
    (9.9, 0, "ok"),             # generating, tokens arriving
    (10.1, 0, "restart"),       # generating, silent past the timeout
    (10.1, 100, "restart"),
])
def test_verdicts(silent_for, idle_for, expected):
    assert P.verdict(silent_for, idle_for) == expected


def test_tick_finds_a_wedge_within_a_quarter_of_the_timeout():
    assert WatchdogPolicy(timeout=8, probe_idle_interval=60).tick == 2
    assert WatchdogPolicy(timeout=100, probe_idle_interval=20).tick == 5


class FakeGenerations:
    def __init__(self, silence):
        self.silence, self.aborted = silence, []

    def longest_silence(self):
        return self.silence

    def idle_for(self):
        return 0.0

    def abort_generations(self, error):
        self.aborted.append(error)
        return 1


class FakeSupervisor:
    def __init__(self):
        self.causes = []

    def request_restart(self, cause):
        self.causes.append(cause)


async def test_silent_generation_is_aborted_with_a_retryable_error_and_the_server_restarted():
    gens, sup = FakeGenerations(silence=5.0), FakeSupervisor()
    dog = Watchdog(WatchdogPolicy(timeout=0.2, probe_idle_interval=60), gens, sup, UpstreamStatus(), "http://127.0.0.1:9")
    task = asyncio.create_task(dog.run())
    while not sup.causes:
        await asyncio.sleep(0.01)
    task.cancel()
    assert sup.causes[0].startswith("wedged")
    err = gens.aborted[0]
    assert err.status == 503 and err.should_retry and "Retry-After" in err.headers()


async def test_idle_probe_failure_restarts():
    gens, sup = FakeGenerations(silence=None), FakeSupervisor()
    gens.idle_for = lambda: 1000.0
    dog = Watchdog(WatchdogPolicy(timeout=0.2, probe_idle_interval=0.2), gens, sup, UpstreamStatus(),
                   "http://127.0.0.1:9")  # nothing listens: the probe fails
    task = asyncio.create_task(dog.run())
    while not sup.causes:
        await asyncio.sleep(0.01)
    task.cancel()
    assert "probe" in sup.causes[0]


async def test_no_verdict_while_the_server_is_not_serving():
    gens, sup = FakeGenerations(silence=100.0), FakeSupervisor()
    status = UpstreamStatus()
    status.set("restarting")
    dog = Watchdog(WatchdogPolicy(timeout=0.1, probe_idle_interval=0.1), gens, sup, status, "http://127.0.0.1:9")
    task = asyncio.create_task(dog.run())
    await asyncio.sleep(0.3)
    task.cancel()
    assert sup.causes == []
