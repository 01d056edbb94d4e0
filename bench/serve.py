"""Load on `ds2stream serve`: concurrent clients on loopback, each posting recordings one after the
other, then latency (p50/p95), throughput in audio-seconds per second, and failed requests. One run;
the server is started here as a user starts it, and warmed with one pass over the files first (graph
mode compiles each batch shape once).

    python bench/serve.py --model MODEL --shards SHARDS [--clients 8] [--requests 200] [--files 40]
"""
import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the test harness, tests/support


async def load(url: str, bodies: list[bytes], clients: int, requests: int) -> tuple[list[float], list[float], int]:
    import aiohttp

    latencies, audio, failed = [], [], 0
    counter = iter(range(requests))

    async def client(session):
        nonlocal failed
        for number in counter:
            started = time.perf_counter()
            async with session.post(url + "/transcribe", data=bodies[number % len(bodies)],
                                    headers={"Content-Type": "audio/flac"}) as response:
                answer = await response.json()
            if response.status != 200:
                failed += 1
                continue
            latencies.append(time.perf_counter() - started)
            audio.append(answer["duration"])

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return latencies, audio, failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--shards", type=Path, required=True, help="recordings to send (a shard set)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--files", type=int, default=40, help="distinct recordings, sent round-robin")
    args = parser.parse_args()

    from support.servers import served

    from ds2stream.data.shards import audio_bytes
    from ds2stream.pipeline import ShardSet

    shard_set = ShardSet(args.shards)
    positions = np.linspace(0, len(shard_set) - 1, min(args.files, len(shard_set))).astype(int)
    bodies = [audio_bytes(shard_set.record(int(p))) for p in positions]
    with served(args.model) as url:
        asyncio.run(load(url, bodies, args.clients, len(bodies)))  # warm: every batch shape compiled
        started = time.perf_counter()
        latencies, audio, failed = asyncio.run(load(url, bodies, args.clients, args.requests))
        wall = time.perf_counter() - started
    latencies = np.array(latencies)
    print(f"{args.requests} requests from {args.clients} clients, {len(bodies)} recordings of "
          f"{np.mean(audio):.2f} s on average ({args.model.name}, {args.shards})")
    print(f"latency p50 {np.percentile(latencies, 50):.3f} s, p95 {np.percentile(latencies, 95):.3f} s, "
          f"max {latencies.max():.3f} s; throughput {sum(audio) / wall:.1f} audio-s/s "
          f"({len(latencies) / wall:.1f} requests/s); failed {failed}")


if __name__ == "__main__":
    main()
