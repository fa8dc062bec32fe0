"""redis-py (from PyPI) as an independent client: stock Redis clients speak to fencelock."""

from __future__ import annotations

import pytest

redis = pytest.importorskip("redis")


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_scenario(server, protocol: int) -> None:
    client = redis.Redis(host="127.0.0.1", port=server.port, protocol=protocol, client_name="redis-py-test")
    try:
        assert client.ping() is True
        assert client.echo("hi") == b"hi"
        token = client.execute_command("ACQUIRE", "inventory", 5000, "OWNER", "redis-py")
        assert isinstance(token, int) and token >= 1
        with pytest.raises(redis.ResponseError, match="^LOCKED"):
            client.execute_command("ACQUIRE", "inventory", 5000)
        assert client.execute_command("VERIFY", "inventory", token) == 5000
        assert client.execute_command("RENEW", "inventory", token, 8000) == 8000
        assert client.execute_command("RELEASE", "inventory", token) in (b"OK", "OK", True)
        with pytest.raises(redis.ResponseError, match="^STALE"):
            client.execute_command("RELEASE", "inventory", token)
        info = client.info()
        assert info["live_leases"] == 0 and info["releases"] == 1
        pipe = client.pipeline(transaction=False)
        for name in ("p1", "p2", "p3"):
            pipe.execute_command("ACQUIRE", name, 1000)
        tokens = pipe.execute()
        assert tokens == sorted(tokens) and tokens[0] > token
    finally:
        client.close()
