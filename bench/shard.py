"""Audio-hours per wall-second of `ds2stream shard` against the seed's data preparation, one run.

On a LibriSpeech-layout corpus with train-clean-100's utterance lengths (testkit.corpora makes it from the
bundled real speech), times on this machine:
  (a) ds2stream shard, audio-only shards, from the folder      (--jobs 2)
  (b) ds2stream shard, audio-only shards, from the .tar.gz     (--jobs 2, read as a stream)
  (c) ds2stream shard --features, from the folder              (--jobs 2)
  (d) the seed's route from the same .tar.gz: extract it, decode every flac, write it as wav,
      write the json and csv manifests (ds2stream.data.zoo.prepare_zoo_manifest, with in-process
      soundfile: faster than the seed's sox calls)
and the disk each output takes.

    python bench/shard.py [--hours 2] [--jobs 2]
"""
import argparse
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import harness

from ds2stream.data import SAMPLE_DIR
from ds2stream.data.shards import ShardOptions, write_shard_set
from ds2stream.data.zoo import prepare_zoo_manifest
from testkit.corpora import librispeech_archive, synthetic_librispeech


def disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def timed(label, hours, func, out):
    start = time.perf_counter()
    func()
    seconds = time.perf_counter() - start
    speed = hours * 3600 / seconds
    return {"way": label, "seconds": seconds, "x_real_time": speed, "disk_mb": disk_mb(out)}


def seed_route(archive: Path, out: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(out / "extracted", filter="data")
    prepare_zoo_manifest(out / "extracted" / "LibriSpeech", out / "zoo")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/out/shard.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ds2stream-bench-shard-"))
    try:
        corpus = synthetic_librispeech(SAMPLE_DIR / "train", work / "src", args.hours)
        archive = librispeech_archive(corpus, work / "train-clean-100.tar.gz")
        summary = write_shard_set([corpus], work / "warm", ShardOptions(), jobs=args.jobs)
        hours = summary["hours"]
        results = [
            timed("(a) shard, folder, audio only", hours,
                  lambda: write_shard_set([corpus], work / "a", ShardOptions(), jobs=args.jobs), work / "a"),
            timed("(b) shard, tar.gz stream, audio only", hours,
                  lambda: write_shard_set([archive], work / "b", ShardOptions(), jobs=args.jobs), work / "b"),
            timed("(c) shard, folder, --features", hours,
                  lambda: write_shard_set([corpus], work / "c", ShardOptions(with_features=True), jobs=args.jobs),
                  work / "c"),
            timed("(d) seed: untar, flac -> wav, json + csv", hours,
                  lambda: seed_route(archive, work / "d"), work / "d"),
        ]
        print(f"corpus: {summary['utterances']} utterances, {hours:.2f} h, train-clean-100 lengths, "
              f"source flac {disk_mb(corpus):.0f} MB; {args.jobs} jobs")
        print(f"{'way':40s} {'seconds':>8s} {'x real time':>12s} {'disk MB':>8s}")
        for r in results:
            print(f"{r['way']:40s} {r['seconds']:8.2f} {r['x_real_time']:12.0f} {r['disk_mb']:8.0f}")
        seed = results[-1]["x_real_time"]
        for r in results[:-1]:
            print(f"{r['way']:40s} {r['x_real_time'] / seed:6.1f}x the seed's route")
        harness.save(args.out, {"utterances": summary["utterances"], "hours": hours, "jobs": args.jobs,
                                "source_flac_mb": disk_mb(corpus), "ways": results})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
