"""The redis-server rig itself: the fault tests rely on these behaviours."""
import socket

import pytest
import redis

from tests.rig.redis_server import RedisServer


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_kill_refuses_connections_and_start_comes_back_on_the_same_port(redis_server: RedisServer):
    port = redis_server.port
    redis.Redis.from_url(redis_server.url).set("k", "v")
    redis_server.kill()
    assert not redis_server.running and refused(port)
    redis_server.start()
    assert redis_server.port == port and redis_server.url == f"redis://127.0.0.1:{port}/0"
    assert redis.Redis.from_url(redis_server.url).get("k") is None  # nothing persisted


def test_pause_hangs_the_server_until_resumed(redis_server: RedisServer):
    client = redis.Redis.from_url(redis_server.url, socket_timeout=0.2)
    redis_server.pause()
    with pytest.raises(redis.TimeoutError):
        client.ping()
    redis_server.resume()
    client = redis.Redis.from_url(redis_server.url, socket_timeout=0.2)
    assert client.ping()


def test_restart_after_stop(redis_server: RedisServer):
    redis_server.stop()
    redis_server.restart()
    assert redis.Redis.from_url(redis_server.url).ping()


@pytest.mark.parametrize("round_", [1, 2])
def test_the_shared_server_is_empty_for_each_test(redis_shared: RedisServer, round_):
    client = redis.Redis.from_url(redis_shared.url)
    assert client.dbsize() == 0
    client.set("left-behind", round_)
