"""Retry policy for a provider's transient refusals (429, 5xx) and unreachable servers.

Only the opening of a stream is retried: once a token has reached the rater, a
retry would repeat the answer, so failures after that are the side's error. The
delay before retry ``n`` (0-based) is ``backoff_s * 2**n``, or the server's
``Retry-After`` when that is longer, capped at ``max_delay_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import openai

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    backoff_s: float = 1.0
    max_delay_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based)."""
        return min(self.max_delay_s, max(retry_after or 0.0, self.backoff_s * (2**attempt)))


def retryable(exc: BaseException) -> bool:
    """429/5xx answers and connection failures (timeouts included) are worth another try; 4xx are not."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRY_STATUSES
    return isinstance(exc, openai.APIConnectionError)


def retry_after_s(exc: BaseException) -> float | None:
    """The ``Retry-After`` seconds a refusal asked for, if it said (HTTP-date forms are ignored)."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


async def with_retries(
    call: Callable[[], Awaitable[T]], policy: RetryPolicy, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> T:
    """Await ``call()``, retrying retryable failures within ``policy``; the last failure is raised."""
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            if attempt >= policy.max_retries or not retryable(exc):
                raise
            delay = policy.delay(attempt, retry_after_s(exc))
            logger.info("retrying after %s (retry %d of %d, in %.1f s)", exc.__class__.__name__, attempt + 1,
                        policy.max_retries, delay)
            await sleep(delay)
            attempt += 1
