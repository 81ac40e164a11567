"""An API process whose Redis connections are all busy says it is overloaded (503
`server_busy`), not that Redis is down: redis-py's bounded pool raises the same
`ConnectionError` class for both, told apart by its message, which this pins."""

import json

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from spool.api.errors import redis_unavailable
from spool.shared.connections import open_redis

pytestmark = pytest.mark.inprocess


async def test_a_pool_with_no_free_connection_is_server_busy(redis_url: str) -> None:
    client = open_redis(redis_url, max_connections=1, client_name="busy", pool_wait_s=0.05)
    held = await client.connection_pool.get_connection()  # the only connection
    try:
        with pytest.raises(RedisConnectionError) as caught:
            await client.ping()
    finally:
        await client.connection_pool.release(held)
        await client.aclose()
    response = redis_unavailable(caught.value)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert json.loads(bytes(response.body))["error"]["code"] == "server_busy"


def test_an_unreachable_redis_is_redis_unavailable() -> None:
    response = redis_unavailable(RedisConnectionError("Error 111 connecting to 127.0.0.1:1."))
    assert json.loads(bytes(response.body))["error"]["code"] == "redis_unavailable"
