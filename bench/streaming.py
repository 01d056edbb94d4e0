"""Streaming latency of `ds2stream serve` (WebSocket /stream): N clients at once, each playing
recordings at real time in chunks, as a microphone would; one run on this machine.

Per stream: the first partial's latency (from the stream's start), the longest gap between partial
results (from the start, and from the first partial on), the final result's latency after the end
of the audio; over the run: p50/p95/max, the server's CPU seconds per audio second (real-time
factor over all streams), and streams that did not end with a final result (dropped). The server
is started here as a user starts it (`ds2stream serve --model MODEL`); each client plays --rounds
recordings one after the other from the shard set (unseen voices: the test split).

With --alone, the recordings of the largest run are played again one stream at a time: a gap
that is there alone too is the recording's (a pause, a long word: no new text to send), the rest
of a gap under load is the wait for the CPU (per recording: loaded gap minus alone gap).

    python bench/streaming.py --model runs/stream/best.ckpt --shards shards/test [--clients 8]
                              [--rounds 3] [--chunk-ms 160] [--alone] [--out streaming.json]
"""
import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the test harness, tests/support
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


async def client(url: str, recordings: list[tuple[int, np.ndarray]], chunk: int, rate: int) -> list[dict]:
    """Play each (index, samples) recording at real time; per recording, what was measured."""
    import aiohttp

    results = []
    async with aiohttp.ClientSession() as session:
        for index, samples in recordings:
            async with session.ws_connect(url.replace("http", "ws") + "/stream") as ws:
                await ws.send_json({"sample_rate": rate, "format": "s16le"})
                ready = await ws.receive_json()
                assert ready.get("ready"), ready
                partials, final = [], None
                started = time.perf_counter()

                async def listen():
                    nonlocal final
                    async for message in ws:
                        data = json.loads(message.data)
                        if "partial" in data:
                            partials.append(time.perf_counter() - started)
                        elif "text" in data:
                            final = (time.perf_counter(), data)

                listener = asyncio.ensure_future(listen())
                for at in range(0, len(samples), chunk):
                    # a microphone gives a chunk once it has been spoken
                    await asyncio.sleep(max(0.0, started + (at + chunk) / rate - time.perf_counter()))
                    await ws.send_bytes(samples[at: at + chunk].astype("<i2").tobytes())
                audio_end = time.perf_counter()
                await ws.send_json({"end": True})
                await listener
                duration = len(samples) / rate
                times = [min(p, duration) for p in partials]
                gaps = np.diff([0.0, *times]) if partials else [duration]
                results.append({"recording": index, "seconds": duration, "partials": len(partials),
                                "first_partial_s": partials[0] if partials else None,
                                "max_partial_gap_s": float(max(gaps)),
                                # the gaps once text has begun to come: the first partial's delay
                                # is the model's right context (fixed); these are the decoding's
                                "max_gap_after_first_s": float(max(np.diff(times))) if len(times) > 1 else None,
                                "final_latency_s": final[0] - audio_end if final else None,
                                "dropped": final is None or ws.close_code != 1000})
    return results


def summary(values) -> dict:
    values = np.array([v for v in values if v is not None], dtype=float)
    if not len(values):
        return {}
    return {"p50": round(float(np.percentile(values, 50)), 3), "p95": round(float(np.percentile(values, 95)), 3),
            "max": round(float(values.max()), 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a forward-only checkpoint (the stream preset)")
    parser.add_argument("--shards", type=Path, required=True, help="recordings to play (a shard set)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrent streams, one run each")
    parser.add_argument("--rounds", type=int, default=3, help="recordings each client plays")
    parser.add_argument("--chunk-ms", type=int, default=160)
    parser.add_argument("--alone", action="store_true",
                        help="play the largest run's recordings again one at a time (gaps: pauses or CPU?)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from support.servers import served, served_stats

    from ds2stream.pipeline import ShardSet

    shard_set = ShardSet(args.shards)
    rate = 16000
    needed = max(args.clients) * args.rounds
    positions = np.linspace(0, len(shard_set) - 1, min(needed, len(shard_set))).astype(int)
    recordings = [(i, shard_set.samples(int(p))[0]) for i, p in enumerate(positions)]
    chunk = int(rate * args.chunk_ms / 1000)
    report = {"model": str(args.model), "shards": str(args.shards), "chunk_ms": args.chunk_ms,
              "rounds": args.rounds, "runs": []}
    with served(args.model, "--max-streams", str(max(args.clients))) as url:
        asyncio.run(client(url, recordings[:1], chunk, rate))  # warm: the stages compile once
        for count in args.clients:
            plays = [[recordings[(c * args.rounds + r) % len(recordings)] for r in range(args.rounds)]
                     for c in range(count)]
            cpu_before, started = served_stats()["cpu_seconds"], time.perf_counter()

            async def everyone():
                return await asyncio.gather(*(client(url, p, chunk, rate) for p in plays))

            results = [r for per_client in asyncio.run(everyone()) for r in per_client]
            if count == max(args.clients):
                largest = results
            wall, cpu = time.perf_counter() - started, served_stats()["cpu_seconds"] - cpu_before
            audio = sum(r["seconds"] for r in results)
            run = {"clients": count, "streams": len(results), "audio_seconds": round(audio, 1),
                   "wall_seconds": round(wall, 1), "server_cpu_per_audio_second": round(cpu / audio, 3),
                   "dropped": sum(r["dropped"] for r in results),
                   "first_partial_s": summary(r["first_partial_s"] for r in results),
                   "max_partial_gap_s": summary(r["max_partial_gap_s"] for r in results),
                   "max_gap_after_first_s": summary(r["max_gap_after_first_s"] for r in results),
                   "final_latency_s": summary(r["final_latency_s"] for r in results)}
            report["runs"].append(run)
            print(json.dumps(run), flush=True)
        if args.alone:
            loaded = {r["recording"]: r for r in largest}
            alone = asyncio.run(client(url, [recordings[i] for i in sorted(loaded)], chunk, rate))
            pairs = [(loaded[r["recording"]]["max_gap_after_first_s"], r["max_gap_after_first_s"]) for r in alone]
            report["alone"] = {"streams": len(alone),
                               "max_gap_after_first_s": summary(r["max_gap_after_first_s"] for r in alone),
                               "final_latency_s": summary(r["final_latency_s"] for r in alone),
                               # per recording: what load adds to its longest gap
                               "gap_added_by_load_s": summary(a - b for a, b in pairs if None not in (a, b))}
            print(json.dumps({"alone": report["alone"]}), flush=True)
    if args.out:
        harness.save(args.out, report)


if __name__ == "__main__":
    main()
