"""Test rig: real parts (stock mlx_lm.server, redis-server) and a scripted upstream.

Fixtures live in tests/rig/, one module per part, registered here.
"""
pytest_plugins = [
    "tests.rig.scripted_upstream",
    "tests.rig.proxy_server",
    "tests.rig.caches",
    "tests.rig.redis_server",
    "tests.rig.mlx_server",
    "tests.rig.tap",
]
