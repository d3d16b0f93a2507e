"""The gate in front of anonymous verification: a per-client rate limit (the ``limits``
library's moving window, in memory or in Redis as configured) and a per-client cap on
verifications in progress. What is let through goes to the budgeted verification pool."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import AsyncIterator

from fastapi import Request
from limits import parse, storage, strategies

from pipeline.config import Settings
from pipeline.errors import BadInput


class RateLimited(BadInput):
    """Too many requests from one client (HTTP 429 with Retry-After)."""

    code = "rate_limited"

    def __init__(self, zh: str, en: str, retry_after: int = 1) -> None:
        super().__init__(zh, en)
        self.retry_after = retry_after


def client_of(request: Request) -> str:
    """Return the client's address (behind a proxy: what uvicorn's --proxy-headers made of
    X-Forwarded-For, for proxies it trusts)."""
    return request.client.host if request.client else "unknown"


class Gate:
    """A named rate limit and concurrency cap per client."""

    def __init__(self, settings: Settings, name: str, rate: str, per_client: int) -> None:
        self.name = name
        self.item = parse(rate)
        self.limiter = strategies.MovingWindowRateLimiter(
            storage.storage_from_string(settings.rate_limit_storage))
        self.per_client = per_client
        self.running: Counter[str] = Counter()
        self._lock = asyncio.Lock()

    def hit(self, client: str) -> None:
        """Count one request of ``client``; RateLimited past the rate."""
        if not self.limiter.hit(self.item, self.name, client):
            reset = self.limiter.get_window_stats(self.item, self.name, client).reset_time
            wait = max(1, math.ceil(reset - time.time()))
            raise RateLimited(f"请求过于频繁，请 {wait} 秒后再试",
                              f"too many requests from this address: try again in {wait} s",
                              wait)

    @contextlib.asynccontextmanager
    async def admit(self, client: str) -> AsyncIterator[None]:
        """Hold one of ``client``'s places while the body of the ``async with`` runs;
        RateLimited when the client is over its rate or has ``per_client`` running."""
        async with self._lock:
            self.hit(client)
            if self.running[client] >= self.per_client:
                raise RateLimited("同时进行的验证过多，请稍后再试",
                                  f"this address already has {self.per_client} "
                                  "verifications running; wait for them", 1)
            self.running[client] += 1
        try:
            yield
        finally:
            self.running[client] -= 1
            if self.running[client] <= 0:
                del self.running[client]
