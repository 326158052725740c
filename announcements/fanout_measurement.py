"""Why platform-wide announcements use the one ``platform`` group: a measurement, not a test.

Run: ``.venv/bin/python -m announcements.fanout_measurement`` (starts its own throw-away Redis).
It times one ``group_send`` to a group holding every socket against one ``group_send`` per
tenant group over the same sockets. Measured 2026-11-25 on the shared 2-core CI machine
(median of 20, busy neighbours):

    2 tenants x 50 sockets: platform   2.7 ms | per tenant   7.4 ms
   20 tenants x 10 sockets: platform   7.6 ms | per tenant  57.3 ms
  100 tenants x  5 sockets: platform  10.2 ms | per tenant 220.3 ms
  200 tenants x  5 sockets: platform  24.1 ms | per tenant 797.5 ms

One send per tenant costs a Redis round trip per tenant and delivers twice to a user who is
in two tenants; the platform group costs one round trip and reaches each socket once.
"""

import asyncio
import os
import statistics
import time

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1")  # settings must not start a second Redis
from channels_redis.core import RedisChannelLayer

from liveplatform.embedded_redis import free_loopback_port, start_redis_server


async def main(tenants: int, per_tenant: int, rounds: int = 20) -> None:
    """Time both fan-outs over ``tenants`` groups of ``per_tenant`` channels each."""
    port = free_loopback_port()
    proc = start_redis_server(port, die_with_parent=True)
    try:
        layer = RedisChannelLayer(hosts=[{"address": f"redis://127.0.0.1:{port}/0"}], capacity=100000, expiry=600)
        for t in range(tenants):
            for _ in range(per_tenant):
                ch = await layer.new_channel()
                await layer.group_add("platform", ch)
                await layer.group_add(f"tenant.{t}", ch)
        msg = {"type": "realtime.event", "id": 1, "text": "x" * 400}
        plat, per = [], []
        for _ in range(rounds):
            s = time.perf_counter()
            await layer.group_send("platform", msg)
            plat.append(time.perf_counter() - s)
            s = time.perf_counter()
            for t in range(tenants):
                await layer.group_send(f"tenant.{t}", msg)
            per.append(time.perf_counter() - s)
        print(
            f"{tenants:>4} tenants x {per_tenant:>3} sockets: "
            f"platform group median {statistics.median(plat) * 1000:7.2f} ms"
            f" | one send per tenant median {statistics.median(per) * 1000:7.2f} ms"
        )
        await layer.flush()
    finally:
        proc.kill()


if __name__ == "__main__":
    for tenants, per in [(2, 50), (20, 10), (100, 5), (200, 5)]:
        asyncio.run(main(tenants, per))
