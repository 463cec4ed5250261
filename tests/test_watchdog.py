"""The wedge watchdog's decisions, and what it does on a verdict."""
import asyncio

import pytest

from launcher.policy import proc_stat_state
from launcher.watchdog import Watchdog, WatchdogPolicy
from proxy.generation.pipeline import Silence, prefill_finished
from proxy.upstream.status import UpstreamStatus

P = WatchdogPolicy(timeout=10, prefill_timeout=600, probe_idle_interval=60)
DECODING, PREFILLING = False, True


@pytest.mark.parametrize("silences,idle_for,stopped_for,expected", [
    ([], 0, 0, "ok"),                                  # nothing running, just ran
    ([], 59.9, 0, "ok"),
    ([], 60, 0, "probe"),                              # idle long enough: check the server can still generate
    ([Silence(9.9, DECODING)], 0, 0, "ok"),            # generating, tokens arriving
    ([Silence(10.1, DECODING)], 0, 0, "restart"),      # generating, silent past the timeout
    ([Silence(10.1, DECODING)], 100, 0, "restart"),
    ([Silence(300, PREFILLING)], 0, 0, "ok"),          # a long prefill chunk: within the first-token budget
    ([Silence(600.1, PREFILLING)], 0, 0, "restart"),
    ([Silence(300, PREFILLING), Silence(10.1, DECODING)], 0, 0, "restart"),
    ([Silence(300, PREFILLING)], 0, 10.1, "restart"),  # the child is stopped: a wedge whatever the phase
    ([], 0, 10.1, "restart"),
    ([Silence(1, PREFILLING)], 0, 9.9, "ok"),          # stopped briefly (a debugger, a slow resume)
])
def test_verdicts(silences, idle_for, stopped_for, expected):
    assert P.verdict(silences, idle_for, stopped_for) == expected


def test_a_prefill_never_gets_less_than_the_idle_window():
    assert WatchdogPolicy(timeout=180, prefill_timeout=60).limit(Silence(0, PREFILLING)) == 180


@pytest.mark.parametrize("comment,finished", [
    ("keepalive 0/4096", False), ("keepalive 2048/4096", False), ("keepalive 4096/4096", True),
    ("keep-alive", False), ("", False),
])
def test_mlx_prefill_progress_comments(comment, finished):
    assert prefill_finished(comment) is finished


@pytest.mark.parametrize("stat,state", [
    ("4242 (python3) S 1 4242 4242 0 -1", "S"),
    ("4242 (mlx_lm server) T 1 4242", "T"),     # a name with a space
    ("4242 (a) b (c)) t 1", "t"),               # and with ')' in it
])
def test_proc_stat_state(stat, state):
    assert proc_stat_state(stat) == state


def test_tick_finds_a_wedge_within_a_quarter_of_the_timeout():
    assert WatchdogPolicy(timeout=8, probe_idle_interval=60).tick == 2
    assert WatchdogPolicy(timeout=100, probe_idle_interval=20).tick == 5


class FakeGenerations:
    def __init__(self, silence):
        self.silence, self.aborted = silence, []

    def silences(self):
        return [] if self.silence is None else [Silence(self.silence, DECODING)]

    def idle_for(self):
        return 0.0

    def abort_generations(self, error):
        self.aborted.append(error)
        return 1


class FakeSupervisor:
    def __init__(self, stopped=False):
        self.causes = []
        self.stopped = stopped

    def child_stopped(self):
        return self.stopped

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


async def test_a_stopped_child_is_restarted_during_a_prefill():
    gens, sup = FakeGenerations(silence=None), FakeSupervisor(stopped=True)
    gens.silences = lambda: [Silence(0.5, PREFILLING)]
    dog = Watchdog(WatchdogPolicy(timeout=0.2, prefill_timeout=600, probe_idle_interval=60), gens, sup,
                   UpstreamStatus(), "http://127.0.0.1:9")
    task = asyncio.create_task(dog.run())
    while not sup.causes:
        await asyncio.sleep(0.01)
    task.cancel()
    assert sup.causes == ["wedged: process stopped for 0.2 s"]
