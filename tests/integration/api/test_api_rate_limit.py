"""Per-app rate limits: 429 with Retry-After, then recovery; counted in Redis or in process."""

from __future__ import annotations

import pytest

from tests.fixtures.workers import wait_until

pytestmark = pytest.mark.services


@pytest.fixture(params=["redis", "in-process"])
def limited_api(request, make_api):
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return make_api(api_rate_limit=3, api_rate_limit_window_seconds=2, api_rate_limit_url=url)


def test_over_the_limit_an_app_gets_429_with_retry_after_then_recovers(limited_api):
    developer = limited_api.developer()
    answers = [developer.get("/v1/runs").status_code for _ in range(3)]
    refused = developer.get("/v1/runs")
    assert answers == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json()["type"].endswith("/rate-limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    wait_until(lambda: developer.get("/v1/runs").status_code == 200, timeout=10, what="recovery")


def test_the_limit_is_per_app(limited_api):
    busy, quiet = limited_api.developer("busy"), limited_api.developer("quiet")
    for _ in range(4):
        busy.get("/v1/runs")
    assert busy.get("/v1/runs").status_code == 429
    assert quiet.get("/v1/runs").status_code == 200


def test_redis_counts_are_shared_between_api_processes(make_api, redis_url):
    settings = {
        "api_rate_limit": 3,
        "api_rate_limit_window_seconds": 30,
        "api_rate_limit_url": redis_url,
    }
    first, second = make_api(**settings), make_api(**settings)
    developer = first.developer()
    other_process = type(developer)(
        second.client, developer.app_id, developer.api_key, developer.key_id
    )
    assert [developer.get("/v1/runs").status_code for _ in range(3)] == [200, 200, 200]
    assert other_process.get("/v1/runs").status_code == 429


def test_an_unreachable_redis_falls_back_to_counting_in_process(make_api):
    api = make_api(
        api_rate_limit=2,
        api_rate_limit_window_seconds=30,
        api_rate_limit_url="redis://127.0.0.1:19499/0",
    )
    developer = api.developer()
    assert [developer.get("/v1/runs").status_code for _ in range(3)] == [200, 200, 429]


def test_batched_redis_counting_stays_within_the_limit_across_processes(redis_url):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from portability.api._ratelimit import RedisRateLimiter

    async def allowed_by_two_processes() -> tuple[int, int]:
        first = RedisRateLimiter(redis_url, limit=200, window=60, prefix="t:rl")
        second = RedisRateLimiter(redis_url, limit=200, window=60, prefix="t:rl")
        allowed = 0
        for _ in range(150):
            for limiter in (first, second):
                allowed += await limiter.hit(7) is None
        await first.close()
        await second.close()
        return allowed, first.batch

    # Its own thread and loop: a session-wide browser fixture may hold this thread's loop.
    with ThreadPoolExecutor(1) as pool:
        allowed, batch = pool.submit(asyncio.run, allowed_by_two_processes()).result()
    assert batch == 5
    assert 200 - 2 * (batch - 1) <= allowed <= 200
