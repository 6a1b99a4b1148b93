"""What a cluster-wide throughput check costs per submit (numbers for docs/redis.md).

Compares the two ways of sharing an account's token bucket between instances:
  per-submit: one Lua call to the bucket in Redis for every submit_sm;
  shares:     what RedisCluster.admit does, tokens taken in blocks of 50 ms of the rate.
Run by hand against a throwaway redis-server (it starts one):

    python -m tests.redis.measure_throughput
"""

from __future__ import annotations

import asyncio
import time

from bridge.store.redis import RedisCluster, RedisStore
from bridge.store.redis.connection import first_reply
from bridge.store.redis.scripts import TAKE_TOKENS
from tests.redis.support import print_measured


async def measure(url: str, submits: int = 20_000) -> dict[str, float]:
    store = RedisStore(url, prefix="measure")
    await store.open()
    cluster = RedisCluster(store)
    try:
        redis = store.connection
        key = redis.key("tp:per-submit")
        command = TAKE_TOKENS.command(key, "1000000", "1000000", 1)
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(submits):
            await redis.submit([command], first_reply)
        sequential = (time.perf_counter() - started) / submits
        sequential_cpu = (time.process_time() - cpu) / submits

        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(submits // 100):  # 100 submits in flight, as with a few busy binds
            await asyncio.gather(*(redis.submit([command], first_reply) for _ in range(100)))
        concurrent = (time.perf_counter() - started) / submits
        concurrent_cpu = (time.process_time() - cpu) / submits

        # The default throughput (500/s): a block is 25 tokens. Each account's first
        # 500 submits fit its burst, so nothing here waits for the rate itself.
        batches = redis.batches
        started, cpu = time.perf_counter(), time.process_time()
        allowed = 0
        for i in range(submits):
            allowed += await cluster.admit(f"shares-{i // 500}", 500.0)
        shares = (time.perf_counter() - started) / submits
        shares_cpu = (time.process_time() - cpu) / submits
        round_trips = redis.batches - batches
    finally:
        await store.close()
    return {
        "per_submit_sequential_us": round(sequential * 1e6, 1),
        "per_submit_sequential_cpu_us": round(sequential_cpu * 1e6, 1),
        "per_submit_100_in_flight_us": round(concurrent * 1e6, 1),
        "per_submit_100_in_flight_cpu_us": round(concurrent_cpu * 1e6, 1),
        "shares_us": round(shares * 1e6, 2),
        "shares_cpu_us": round(shares_cpu * 1e6, 2),
        "shares_round_trips": round_trips,
        "shares_allowed": allowed,
    }


def main() -> None:
    print_measured(measure)


if __name__ == "__main__":
    main()
