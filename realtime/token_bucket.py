"""The rate limit on a socket's client frames."""

from __future__ import annotations

import time


class TokenBucket:
    """Allow ``rate`` frames per second with bursts of ``burst``; refills continuously."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.capacity = rate, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> bool:
        """Spend a token for one frame: False when the client has sent too many."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
