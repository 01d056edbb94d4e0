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

The target counts speech, not pauses ("a partial at least every 300 ms of speech"), so each gap
is also measured in seconds of speech: the speech (an energy detector, below) in the audio the
model turned into text between the two results, i.e. the gap shifted back by the model's right
context (the future audio each output frame waits for, from its config).

    python bench/streaming.py --model runs/stream/best.ckpt --shards shards/test [--clients 8]
                              [--rounds 3] [--chunk-ms 160] [--alone] [--out streaming.json]

With --joined N, endpoints instead (no server: ``transcribe --stream``'s path, in this process):
N recordings of the shard set joined into one stream by pauses of quiet (PAUSE_S, drawn; one pair
with no pause between), cut by the endpoint rules (``--endpoint-*``, ``transcribe``'s options;
silence after speech JOINED_SILENCE_AFTER_SPEECH unless given, below the shortest pause). Reported:
the share of pauses that a segment's end falls within FOUND_WITHIN_S of (a pause: from the speech's
end before it to the speech's start after it, by the detector below), segment ends near no pause,
whether the pair without a pause was split, and the WER of the stream's text against the
recordings decoded one by one (and against their transcripts).

    python bench/streaming.py --model runs/stream/best.ckpt --shards shards/test --joined 40
                              [--endpoint-silence-after-speech 0.6] [--seed 0] [--out endpoints.json]
"""
import argparse
import asyncio
import dataclasses
import json
import time
from pathlib import Path

import harness
import numpy as np

#: --joined: the pauses between recordings (seconds, drawn uniformly), how near a pause a segment's
#: end must be to find it, and the rule for silence after speech unless given (under 0.5 s, or the
#: rule could not find the shortest pauses).
PAUSE_S, FOUND_WITHIN_S, JOINED_SILENCE_AFTER_SPEECH = (0.5, 1.5), 0.3, 0.4

#: The speech detector: 25-ms frames every 10 ms whose energy is within SPEECH_DB of the
#: recording's loud frames (its 95th percentile) are speech; so are quieter stretches shorter than
#: HANGOVER_S between speech (stop closures, short breaks: counted as speech, which makes the
#: measure stricter, not kinder).
FRAME_S, HOP_S, SPEECH_DB, HANGOVER_S = 0.025, 0.010, 35.0, 0.2


def speech_mask(samples: np.ndarray, rate: int) -> np.ndarray:
    """Per 10-ms step of the recording, whether it is speech."""
    frame, hop = int(FRAME_S * rate), int(HOP_S * rate)
    x = samples.astype(np.float64)
    count = max(1, 1 + (len(x) - frame) // hop)
    energy = np.array([np.mean(x[i * hop: i * hop + frame] ** 2) for i in range(count)]) + 1e-9
    db = 10 * np.log10(energy)
    speech = db > np.percentile(db, 95) - SPEECH_DB
    on = np.flatnonzero(speech)
    for a, b in zip(on[:-1], on[1:]):
        if 1 < b - a <= HANGOVER_S / HOP_S:
            speech[a:b] = True
    return speech


def speech_between(mask: np.ndarray, start: float, stop: float) -> float:
    """Seconds of speech in the audio from ``start`` to ``stop`` seconds."""
    a, b = max(0, int(round(start / HOP_S))), max(0, int(round(stop / HOP_S)))
    return float(mask[a:b].sum()) * HOP_S


def speech_span(samples: np.ndarray, rate: int) -> tuple[float, float]:
    """Seconds from a recording's start to its first speech, and to the end of its last."""
    on = np.flatnonzero(speech_mask(samples, rate))
    return (float(on[0]) * HOP_S, float(on[-1]) * HOP_S + FRAME_S) if len(on) else (0.0, len(samples) / rate)


def joined(args, shard_set, rate: int, rules) -> dict:
    """--joined: the endpoints of one stream of args.joined recordings joined by pauses."""
    from ds2stream.error_rates import wer
    from ds2stream.inference.transcribe import Transcriber
    from ds2stream.runtime import use_graph_mode
    from testkit.corpora import joined_with_pauses

    count = args.joined
    positions = np.linspace(0, len(shard_set) - 1, count).astype(int)
    recordings, texts = zip(*(shard_set.samples(int(p)) for p in positions))
    rng = np.random.default_rng(args.seed)
    pauses = rng.uniform(*PAUSE_S, count)
    no_pause = int(rng.integers(count - 1))
    pauses[no_pause] = 0.0
    samples, spans = joined_with_pauses(list(recordings), list(pauses), rate, seed=args.seed)
    use_graph_mode()
    transcriber = Transcriber(args.model)
    started = time.perf_counter()
    *messages, final = transcriber.stream_samples(samples, rate, args.chunk_ms / 1000, endpoint=rules)
    seconds = time.perf_counter() - started
    ends = [m["end"] for m in messages if "segment" in m][:-1]  # the last ends with the stream
    speech = [(first / rate + a, first / rate + b)
              for (first, _), (a, b) in zip(spans, (speech_span(r, rate) for r in recordings))]
    # between recording i's speech and recording i + 1's
    gaps = [(speech[i][1] - FOUND_WITHIN_S, speech[i + 1][0] + FOUND_WITHIN_S) for i in range(count - 1)]
    near = [[a <= end <= b for end in ends] for a, b in gaps]
    found = [any(hits) for i, hits in enumerate(near) if i != no_pause]
    one_by_one = [" ".join(transcriber.transcribe_samples(r, rate).split()) for r in recordings]
    return {"recordings": count, "audio_seconds": round(len(samples) / rate, 1), "rules": rules.to_dict(),
            "pauses_s": [round(float(p), 2) for p in pauses[:-1]], "segments": len(ends) + 1,
            "pauses": len(found), "pauses_found": sum(found), "share_found": round(sum(found) / len(found), 3),
            "ends_near_no_pause": sum(not any(hit[k] for hit in near) for k in range(len(ends))),
            "split_without_pause": any(near[no_pause]),
            "wer_vs_one_by_one": round(wer([" ".join(one_by_one)], [final["text"]]), 4),
            "wer_vs_transcripts": round(wer([" ".join(texts)], [final["text"]]), 4),
            "stream_seconds": round(seconds, 2)}


def right_context_s(model: Path) -> float:
    """The audio after an output frame that the model needs before it can give that frame: the
    feature window, each conv layer's frames to the right, the lookahead convolution's frames."""
    from ds2stream.checkpoint import model_features, read_checkpoint
    from ds2stream.model import ModelConfig

    _, meta = read_checkpoint(model)
    config, features = ModelConfig.from_dict(meta["model_config"]), model_features(meta)
    hop = features.hop_length / features.sample_rate
    seconds, stride = features.n_fft // 2 / features.sample_rate, 1  # frames are centred
    for layer in config.conv:
        seconds += (layer.kernel[1] - 1 - layer.padding[1]) * stride * hop
        stride *= layer.stride[1]
    return seconds + config.lookahead * stride * hop


async def client(url: str, recordings: list[tuple[int, np.ndarray]], chunk: int, rate: int,
                 context_s: float) -> list[dict]:
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
                # between partials, in seconds of speech: the audio the model turned into text
                # between the two (the final result has its own target)
                mask = speech_mask(samples, rate)
                speech_gaps = [speech_between(mask, a - context_s, b - context_s)
                               for a, b in zip(times[:-1], times[1:])]
                results.append({"recording": index, "seconds": duration, "partials": len(partials),
                                "first_partial_s": partials[0] if partials else None,
                                "max_partial_gap_s": float(max(gaps)),
                                # the gaps once text has begun to come: the first partial's delay
                                # is the model's right context (fixed); these are the decoding's
                                "max_gap_after_first_s": float(max(np.diff(times))) if len(times) > 1 else None,
                                "max_speech_gap_s": max(speech_gaps) if speech_gaps else None,
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
    parser.add_argument("--joined", type=int, default=None, metavar="N",
                        help="endpoints instead: N recordings joined by pauses into one stream (3 or more)")
    parser.add_argument("--seed", type=int, default=0, help="--joined: the pauses and their noise")
    from ds2stream.cli.endpoint import option_name
    from ds2stream.inference.endpoint import EndpointRules

    for field in dataclasses.fields(EndpointRules):
        parser.add_argument(option_name(field.name), dest=field.name, type=float,
                            help=f"--joined: {field.metadata['help']}")
    args = parser.parse_args()

    from ds2stream.pipeline import ShardSet
    from testkit.servers import served, served_stats

    shard_set = ShardSet(args.shards)
    rate = 16000
    if args.joined is not None:
        if args.joined < 3:  # one pair goes without a pause: at least one other has one
            parser.error("--joined takes 3 recordings or more")
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(EndpointRules)
                 if getattr(args, f.name) is not None}
        rules = EndpointRules(**{"silence_after_speech": JOINED_SILENCE_AFTER_SPEECH, **given})
        report = {"model": str(args.model), "shards": str(args.shards), "chunk_ms": args.chunk_ms, "seed": args.seed,
                  "found_within_s": FOUND_WITHIN_S, **joined(args, shard_set, rate, rules)}
        print(json.dumps(report), flush=True)
        if args.out:
            harness.save(args.out, report)
        return
    needed = max(args.clients) * args.rounds
    positions = np.linspace(0, len(shard_set) - 1, min(needed, len(shard_set))).astype(int)
    recordings = [(i, shard_set.samples(int(p))[0]) for i, p in enumerate(positions)]
    chunk = int(rate * args.chunk_ms / 1000)
    context_s = right_context_s(args.model)
    report = {"model": str(args.model), "shards": str(args.shards), "chunk_ms": args.chunk_ms,
              "rounds": args.rounds, "right_context_s": round(context_s, 3),
              "speech_detector": {"frame_s": FRAME_S, "hop_s": HOP_S, "within_db_of_p95": SPEECH_DB,
                                  "hangover_s": HANGOVER_S}, "runs": []}
    with served(args.model, "--max-streams", str(max(args.clients))) as url:
        asyncio.run(client(url, recordings[:1], chunk, rate, context_s))  # warm: the stages compile once
        for count in args.clients:
            plays = [[recordings[(c * args.rounds + r) % len(recordings)] for r in range(args.rounds)]
                     for c in range(count)]
            cpu_before, started = served_stats()["cpu_seconds"], time.perf_counter()

            async def everyone():
                return await asyncio.gather(*(client(url, p, chunk, rate, context_s) for p in plays))

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
                   "max_speech_gap_s": summary(r["max_speech_gap_s"] for r in results),
                   "final_latency_s": summary(r["final_latency_s"] for r in results)}
            report["runs"].append(run)
            print(json.dumps(run), flush=True)
        if args.alone:
            loaded = {r["recording"]: r for r in largest}
            alone = asyncio.run(client(url, [recordings[i] for i in sorted(loaded)], chunk, rate, context_s))
            pairs = [(loaded[r["recording"]]["max_gap_after_first_s"], r["max_gap_after_first_s"]) for r in alone]
            report["alone"] = {"streams": len(alone),
                               "max_gap_after_first_s": summary(r["max_gap_after_first_s"] for r in alone),
                               "max_speech_gap_s": summary(r["max_speech_gap_s"] for r in alone),
                               "final_latency_s": summary(r["final_latency_s"] for r in alone),
                               # per recording: what load adds to its longest gap
                               "gap_added_by_load_s": summary(a - b for a, b in pairs if None not in (a, b))}
            print(json.dumps({"alone": report["alone"]}), flush=True)
    if args.out:
        harness.save(args.out, report)


if __name__ == "__main__":
    main()
