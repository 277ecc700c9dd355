"""Counters shared by several replicas through Redis: pull rate limits, failed logins, last use.

The same contract as `SQLiteCounters` (one node, a local file); with several replicas behind
one load balancer these must be shared, or each replica would grant its own full quota.
"""

from __future__ import annotations

import time

import redis.asyncio as redis

PREFIX = "dockyard:"


class RedisCounters:
    def __init__(self, url: str) -> None:
        self.client = redis.from_url(url)

    async def hit(
        self, key: str, window_seconds: int, amount: int = 1, now: float | None = None
    ) -> tuple[int, float]:
        now = now or time.time()
        window = int(now // window_seconds) * window_seconds
        name = f"{PREFIX}count:{key}:{window}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incrby(name, amount)
            pipe.expire(name, 2 * window_seconds)
            count, _ = await pipe.execute()
        return int(count), window + window_seconds - now

    async def peek(
        self, key: str, window_seconds: int, now: float | None = None
    ) -> tuple[int, float]:
        now = now or time.time()
        window = int(now // window_seconds) * window_seconds
        value = await self.client.get(f"{PREFIX}count:{key}:{window}")
        return int(value or 0), window + window_seconds - now

    def peek_now(self, key: str, window_seconds: int) -> None:
        """Reading Redis needs a round trip: callers await `peek`."""
        return None

    async def touch(self, key: str, now: float | None = None) -> None:
        await self.client.hset(f"{PREFIX}touches", key, now or time.time())

    async def touched(self, keys: list[str]) -> dict[str, float]:
        if not keys:
            return {}
        values = await self.client.hmget(f"{PREFIX}touches", keys)
        return {k: float(v) for k, v in zip(keys, values, strict=True) if v is not None}

    async def close(self) -> None:
        await self.client.aclose()
