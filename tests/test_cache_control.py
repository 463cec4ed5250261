import pytest

from proxy.cache.policy import CacheControl, parse_cache_control
from proxy.errors import ProxyError


def test_defaults_read_and_write():
    assert parse_cache_control({}) == CacheControl()


def test_directives():
    cc = parse_cache_control({"Cache-Control": "no-cache, max-age=30", "X-Cache-TTL": "60",
                              "X-Cache-Namespace": "team-a"})
    assert (cc.read, cc.write, cc.max_age, cc.ttl, cc.namespace) == (False, True, 30.0, 60, "team-a")
    assert cc.status_without_read == "REFRESH"
    assert parse_cache_control({"Cache-Control": "no-store, no-cache"}).status_without_read == "BYPASS"


@pytest.mark.parametrize("headers", [{"X-Cache-TTL": "0"}, {"X-Cache-TTL": "soon"},
                                     {"Cache-Control": "max-age=abc"}, {"X-Cache-Namespace": "a:b"}])
def test_bad_values_are_400(headers):
    with pytest.raises(ProxyError) as e:
        parse_cache_control(headers)
    assert e.value.status == 400
