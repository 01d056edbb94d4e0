"""Load on `ds2stream serve`: concurrent clients on loopback, each posting recordings one after the
other, then latency (p50/p95), throughput in audio-seconds per second, and failed requests. One run;
the server is started here as a user starts it, and warmed with one pass over the files first (graph
mode compiles each batch shape once).

With ``--saturate``, then past saturation: requests arrive at random (Poisson) times at rising rates,
from half the measured capacity to several times it, each rate for ``--seconds``; per rate, the
latency of the accepted requests, how many were refused (503) or failed otherwise, and the server's
memory (RSS, sampled every 0.2 s) — a server past its capacity refuses, it does not queue without bound.

    python bench/serve.py --model MODEL --shards SHARDS [--clients 8] [--requests 200] [--files 40]
                          [--saturate --factors 0.5 1 2 4 8 --seconds 20 --out serve-load.json]
"""
import argparse
import asyncio
import time
from pathlib import Path

import harness
import numpy as np


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


async def open_loop(url: str, bodies: list[bytes], rate: float, seconds: float, seed: int) -> dict:
    """Requests at Poisson arrival times of ``rate`` per second for ``seconds``, each on its own
    (nobody waits for an answer before sending the next); what came back, and the server's RSS."""
    import aiohttp

    from testkit.servers import served_stats

    rng = np.random.default_rng(seed)
    latencies, statuses, rss, errors = [], [], [], []

    async def one(session, body):
        started = time.perf_counter()
        try:
            async with session.post(url + "/transcribe", data=body,
                                    headers={"Content-Type": "audio/flac"}) as response:
                await response.read()
                statuses.append(response.status)
                if response.status == 200:
                    latencies.append(time.perf_counter() - started)
                elif response.status == 503 and "Retry-After" not in response.headers:
                    errors.append("503 without Retry-After")
        except aiohttp.ClientError as error:
            statuses.append(None)
            errors.append(repr(error))

    async def sample_memory(stop):
        while not stop.is_set():
            rss.append(served_stats()["rss_mb"])
            await asyncio.sleep(0.2)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_memory(stop))
        tasks, started, at = [], time.perf_counter(), 0.0
        while True:
            at += rng.exponential(1 / rate)
            if at >= seconds:
                break
            await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
            tasks.append(asyncio.create_task(one(session, bodies[len(tasks) % len(bodies)])))
        await asyncio.gather(*tasks)
        stop.set()
        await sampler
    latencies = np.array(latencies) if latencies else np.zeros(1)
    return {"rate": rate, "sent": len(tasks), "answered": statuses.count(200), "refused_503": statuses.count(503),
            "other_status": sum(1 for s in statuses if s not in (200, 503, None)), "failed": statuses.count(None),
            "errors": sorted(set(errors))[:5], "latency_p50_s": float(np.percentile(latencies, 50)),
            "latency_p95_s": float(np.percentile(latencies, 95)), "latency_max_s": float(latencies.max()),
            "answered_per_s": statuses.count(200) / seconds, "rss_mb_start": rss[0], "rss_mb_max": max(rss),
            "rss_mb_end": rss[-1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--shards", type=Path, required=True, help="recordings to send (a shard set)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--files", type=int, default=40, help="distinct recordings, sent round-robin")
    parser.add_argument("--saturate", action="store_true", help="then open-loop arrivals at rising rates")
    parser.add_argument("--factors", type=float, nargs="+", default=[0.5, 1, 2, 4, 8],
                        help="arrival rates, as multiples of the measured capacity")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each rate lasts")
    parser.add_argument("--max-queue", type=int, default=None, help="the server's (default: its own default)")
    parser.add_argument("--out", type=Path, default=None, help="a JSON of the figures")
    args = parser.parse_args()

    from ds2stream.data.shards import audio_bytes
    from ds2stream.pipeline import ShardSet
    from testkit.servers import served

    shard_set = ShardSet(args.shards)
    positions = np.linspace(0, len(shard_set) - 1, min(args.files, len(shard_set))).astype(int)
    bodies = [audio_bytes(shard_set.record(int(p))) for p in positions]
    server_args = [] if args.max_queue is None else ["--max-queue", args.max_queue]
    levels = []
    with served(args.model, *server_args) as url:
        asyncio.run(load(url, bodies, args.clients, len(bodies)))  # warm: every batch shape compiled
        started = time.perf_counter()
        latencies, audio, failed = asyncio.run(load(url, bodies, args.clients, args.requests))
        wall = time.perf_counter() - started
        capacity = len(latencies) / wall
        latencies = np.array(latencies)
        print(f"{args.requests} requests from {args.clients} clients, {len(bodies)} recordings of "
              f"{np.mean(audio):.2f} s on average ({args.model.name}, {args.shards})")
        print(f"latency p50 {np.percentile(latencies, 50):.3f} s, p95 {np.percentile(latencies, 95):.3f} s, "
              f"max {latencies.max():.3f} s; throughput {sum(audio) / wall:.1f} audio-s/s "
              f"({capacity:.1f} requests/s); failed {failed}", flush=True)
        for number, factor in enumerate(args.factors if args.saturate else []):
            level = asyncio.run(open_loop(url, bodies, factor * capacity, args.seconds, seed=number))
            levels.append({"factor": factor, **level})
            print(f"{factor:4.1f}x capacity ({level['rate']:.1f}/s): sent {level['sent']}, answered "
                  f"{level['answered']}, refused {level['refused_503']}, failed {level['failed']}; accepted p50 "
                  f"{level['latency_p50_s']:.2f} s p95 {level['latency_p95_s']:.2f} s max "
                  f"{level['latency_max_s']:.2f} s; server RSS {level['rss_mb_start']:.0f} -> max "
                  f"{level['rss_mb_max']:.0f} MB{'; ' + ', '.join(level['errors']) if level['errors'] else ''}",
                  flush=True)
    if args.out:
        harness.save(args.out, {
            "model": str(args.model), "shards": str(args.shards), "recordings": len(bodies),
            "mean_seconds": float(np.mean(audio)), "closed_loop": {
                "clients": args.clients, "requests": args.requests, "requests_per_s": capacity,
                "audio_s_per_s": sum(audio) / wall, "latency_p50_s": float(np.percentile(latencies, 50)),
                "latency_p95_s": float(np.percentile(latencies, 95)), "failed": failed},
            "open_loop_seconds": args.seconds, "open_loop": levels})


if __name__ == "__main__":
    main()
