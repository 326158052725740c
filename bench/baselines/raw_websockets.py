"""Baseline: the Python ceiling, a raw ``websockets`` server that fans out with ``broadcast``.

It subscribes to one Redis pub/sub channel and broadcasts each message's bytes, already
the final frame, to every connected socket: one Redis message per process, no
per-socket work beyond the write. Run: ``python -m bench.baselines.raw_websockets PORT REDIS_URL``.
"""

import asyncio
import resource
import sys

from redis import asyncio as aioredis
from websockets.asyncio.server import broadcast, serve

CHANNEL = "bench_raw"


async def main(port: int, redis_url: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    clients = set()

    async def handler(connection) -> None:
        clients.add(connection)
        try:
            await connection.wait_closed()
        finally:
            clients.discard(connection)

    redis = aioredis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(CHANNEL)
    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None, backlog=4096):
        async for message in pubsub.listen():
            if message["type"] == "message":
                broadcast(clients, message["data"].decode())


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
