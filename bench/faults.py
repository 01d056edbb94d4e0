"""Fault injection, the long version of tests/test_faults.py: kill -9 at random times, a larger
fuzzed corpus. One run; prints a table and writes bench/out/faults.json.

  (a) `ds2stream shard` of a LibriSpeech-length corpus (folder, then .tar.gz), killed with SIGKILL
      at random times until it finishes (each kill followed by the same command): the shards must
      be byte-identical to an uninterrupted run, no utterance lost or duplicated;
  (b) `ds2stream train` (tiny preset, the bundled sample, dev evaluation every epoch) killed at
      random times, then at each failpoint (during a checkpoint write, before best.ckpt, during dev
      evaluation, ...), each followed by --resume: the final parameters and best.ckpt must be
      bit-identical to an uninterrupted run's, every step logged once;
  (c) a fuzzed corpus (``testing.fuzzed_corpus``, ``--scale`` times ~250 bad files) through
      `ds2stream shard`, folder and .tar.gz: every bad file reported by kind, every good one there.

    python bench/faults.py [--kills 6] [--hours 1.5] [--scale 4] [--seed 0]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ds2stream.demo import SAMPLE_DIR
from ds2stream.failpoints import ENV as KILL_AT
from ds2stream.shards import ShardOptions, load_index, read_shard, write_shard_set
from ds2stream.testing import fuzzed_corpus, librispeech_archive, synthetic_librispeech
from ds2stream.train import read_checkpoint

TRAIN_FLAGS = ["--preset", "tiny", "--epochs", "4", "--checkpoint-every", "10", "--keep-last", "2"]
FAILPOINTS = ["best_before_copy:1", "checkpoint_written:1", "dev_evaluation:1", "step_logged:5",
              "checkpoint_renamed:1"]


def command(*args):
    return [sys.executable, "-m", "ds2stream.cli", *map(str, args)]


def run_killed_at_random(args, rng, kills: int, typical_seconds: float) -> tuple[int, int]:
    """Start ``args`` and SIGKILL it at a random time, ``kills`` times, then run it to the end.
    Returns (kills that landed, kills that came too late because the run had finished)."""
    landed = late = 0
    for _ in range(kills):
        process = subprocess.Popen(command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(0.05, 0.95)) * typical_seconds)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            landed += 1
        else:
            late += 1
        process.wait()
    subprocess.run(command(*args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return landed, late


def shard_rows(shard_dir: Path) -> list[str]:
    summary, _ = load_index(shard_dir)
    return [utt for info in summary["shards"] for utt in read_shard(shard_dir / info["file"], ["id"])["id"].to_pylist()]


def bench_shard(work: Path, rng, kills: int, hours: float) -> list[dict]:
    corpus = synthetic_librispeech(SAMPLE_DIR / "train", work / "src", hours)
    archive = librispeech_archive(corpus, work / "train.tar.gz")
    rows = []
    for name, source in (("folder", corpus), ("tar.gz", archive)):
        options = ["--shard-size", "2", "--features", "--jobs", "1"]
        started = time.perf_counter()
        reference = write_shard_set([source], work / f"whole-{name}",
                                    ShardOptions(shard_size_mb=2, with_features=True))
        typical = time.perf_counter() - started + 1.0  # + the CLI's start-up
        landed, late = run_killed_at_random(["shard", source, "--out", work / f"killed-{name}", *options],
                                            rng, kills, typical)
        resumed = load_index(work / f"killed-{name}")[0]
        ids = shard_rows(work / f"killed-{name}")
        same = [s["sha256"] for s in resumed["shards"]] == [s["sha256"] for s in reference["shards"]]
        rows.append({"what": f"shard, {name}", "kills": landed, "kills_after_the_end": late, "identical": same,
                     "lost": reference["utterances"] - len(set(ids)), "duplicated": len(ids) - len(set(ids))})
    return rows


def bench_train(work: Path, rng, kills: int) -> list[dict]:
    for split in ("train", "dev"):
        write_shard_set([SAMPLE_DIR / split], work / "shards" / split, ShardOptions(), jobs=2)
    data = ["--shards", work / "shards" / "train", "--dev-shards", work / "shards" / "dev"]
    started = time.perf_counter()
    subprocess.run(command("train", *data, "--out", work / "whole", *TRAIN_FLAGS), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    typical = time.perf_counter() - started
    run = work / "killed"
    # The first leg must create the run; kill it only once it has a checkpoint, at a random step.
    env = {**os.environ, KILL_AT: f"step_logged:{int(rng.integers(11, 30))}"}
    first = subprocess.run(command("train", *data, "--out", run, *TRAIN_FLAGS), env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    landed = int(first.returncode == -9)
    more, late = run_killed_at_random(["train", "--resume", run], rng, kills - 1, typical)
    landed += more
    # run_killed_at_random finished the run; failpoints need steps left: a second run through them.
    run2 = work / "killed-at-failpoints"
    hit = 0
    for number, point in enumerate(FAILPOINTS):
        args = ["train", *data, "--out", run2, *TRAIN_FLAGS] if number == 0 else ["train", "--resume", run2]
        hit += subprocess.run(command(*args), env={**os.environ, KILL_AT: point}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == -9
    subprocess.run(command("train", "--resume", run2), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def params(path):
        values, meta = read_checkpoint(path)
        return {k: v.asnumpy() for k, v in values.items()}, meta

    rows = []
    whole_last = sorted((work / "whole" / "checkpoints").glob("step-*.ckpt"))[-1]
    expected, _ = params(whole_last)
    expected_best, _ = params(work / "whole" / "best.ckpt")
    whole_steps = sum("event" not in json.loads(line) for line in (work / "whole" / "metrics.jsonl").open())
    for name, folder, kills_done in (("train, random times", run, landed), ("train, failpoints", run2, hit)):
        last = sorted((folder / "checkpoints").glob("step-*.ckpt"))[-1]
        got, _ = params(last)
        best, _ = params(folder / "best.ckpt")
        records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        steps = [r["global_step"] for r in records if "event" not in r]
        rows.append({"what": name, "kills": kills_done, "kills_after_the_end": late if folder == run else 0,
                     "identical": last.name == whole_last.name and all(np.array_equal(got[k], expected[k])
                                                                       for k in expected)
                     and all(np.array_equal(best[k], expected_best[k]) for k in expected_best),
                     "lost": len(set(range(1, whole_steps + 1)) - set(steps)),
                     "duplicated": len(steps) - len(set(steps))})
    return rows


def bench_fuzz(work: Path, scale: int, seed: int) -> list[dict]:
    corpus, good, bad = fuzzed_corpus(SAMPLE_DIR / "train", work / "fuzz", scale=scale, seed=seed)
    archive = librispeech_archive(corpus, work / "fuzz.tar.gz")
    rows = []
    for name, source in (("folder", corpus), ("tar.gz", archive)):
        finished = subprocess.run(command("shard", source, "--out", work / f"fuzz-{name}"), capture_output=True,
                                  text=True)
        summary = load_index(work / f"fuzz-{name}")[0]
        ids = shard_rows(work / f"fuzz-{name}")
        rows.append({"what": f"fuzzed corpus, {name}", "bad_files": sum(bad.values()),
                     "good_files": len(good), "crashed": finished.returncode != 0,
                     "reported_as_expected": summary["problem_counts"] == bad,
                     "lost": len(set(good) - set(ids)), "duplicated": len(ids) - len(set(ids))})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=6, help="random-time kills per target")
    parser.add_argument("--hours", type=float, default=1.5, help="audio hours of the corpus `shard` is killed on")
    parser.add_argument("--scale", type=int, default=4, help="fuzzed corpus size (x ~250 bad files)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    work = Path(tempfile.mkdtemp(prefix="ds2stream-bench-faults-"))
    started = time.perf_counter()
    try:
        rows = bench_shard(work, rng, args.kills, args.hours) + bench_train(work, rng, args.kills) + \
            bench_fuzz(work, args.scale, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    print(f"total {time.perf_counter() - started:.0f} s")
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "faults.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
