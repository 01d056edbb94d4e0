"""Fault injection, the long version of tests/test_faults.py: kill -9 at random times, a larger
fuzzed corpus. One run; prints a table and writes bench/out/faults.json.

  (a) `ds2stream shard` of a LibriSpeech-length corpus (folder, then .tar.gz): ``--kills`` runs,
      each SIGKILLed at a random moment of an uninterrupted run's duration and then re-run with the
      same command: the shards must be byte-identical to an uninterrupted run's, no utterance lost
      or duplicated;
  (b) `ds2stream train` (tiny preset, the bundled sample, dev evaluation every epoch): ``--kills``
      runs, each killed at a random moment and then resumed; and one run killed at each failpoint
      in turn (just before best.ckpt, during a checkpoint write, during dev evaluation, after a
      step's metric line, between a checkpoint's rename and the rotation), resumed after each: the
      final parameters and best.ckpt must be bit-identical to an uninterrupted run's, every step
      logged once;
  (c) a fuzzed corpus (``testing.fuzzed_corpus``, ``--scale`` times ~250 bad files) through
      `ds2stream shard`, folder and .tar.gz: every bad file reported by kind, every good one there.

    python bench/faults.py [--kills 5] [--hours 1.5] [--scale 4] [--seed 0]
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

import harness
import numpy as np

from ds2stream.checkpoint import read_checkpoint
from ds2stream.data import SAMPLE_DIR
from ds2stream.data.shards import ShardOptions, load_index, read_shard, write_shard_set
from ds2stream.failpoints import ENV as KILL_AT
from testkit.corpora import fuzzed_corpus, librispeech_archive, synthetic_librispeech

TRAIN_FLAGS = ["--preset", "tiny", "--epochs", "3", "--checkpoint-every", "10", "--keep-last", "2"]
FAILPOINTS = ["best_before_copy:1", "checkpoint_written:1", "dev_evaluation:1", "step_logged:5",
              "checkpoint_renamed:1"]


def command(*args):
    return [sys.executable, "-m", "ds2stream.cli", *map(str, args)]


def run_and_kill(args, delay: float) -> bool:
    """Start ``args``, SIGKILL it after ``delay`` seconds; True if it was still running then."""
    process = subprocess.Popen(command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    running = process.poll() is None
    if running:
        process.send_signal(signal.SIGKILL)
    process.wait()
    return running


def shard_rows(shard_dir: Path) -> list[str]:
    summary, _ = load_index(shard_dir)
    return [utt for info in summary["shards"] for utt in read_shard(shard_dir / info["file"], ["id"])["id"].to_pylist()]


def bench_shard(work: Path, rng, kills: int, hours: float) -> list[dict]:
    """Each trial: a new output folder, a kill at a random moment, the same command to the end."""
    corpus = synthetic_librispeech(SAMPLE_DIR / "train", work / "src", hours)
    archive = librispeech_archive(corpus, work / "train.tar.gz")
    rows = []
    for name, source in (("folder", corpus), ("tar.gz", archive)):
        options = ["--shard-size", "2", "--features", "--jobs", "1"]
        started = time.perf_counter()
        subprocess.run(command("shard", source, "--out", work / f"whole-{name}", *options), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        typical = time.perf_counter() - started
        reference = load_index(work / f"whole-{name}")[0]
        landed = identical = lost = duplicated = 0
        for trial in range(kills):
            args = ["shard", source, "--out", work / f"killed-{name}-{trial}", *options]
            landed += run_and_kill(args, float(rng.uniform(0.05, 0.95)) * typical)
            subprocess.run(command(*args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            resumed = load_index(work / f"killed-{name}-{trial}")[0]
            ids = shard_rows(work / f"killed-{name}-{trial}")
            identical += [s["sha256"] for s in resumed["shards"]] == [s["sha256"] for s in reference["shards"]]
            lost += reference["utterances"] - len(set(ids))
            duplicated += len(ids) - len(set(ids))
        rows.append({"what": f"shard, {name}", "runs": kills, "kills": landed, "identical": f"{identical}/{kills}",
                     "lost": lost, "duplicated": duplicated, "seconds_uninterrupted": round(typical, 1)})
    return rows


def bench_train(work: Path, rng, kills: int) -> list[dict]:
    """Random moments: each trial a new run killed once, then --resume (or, killed before its first
    checkpoint, the same command again) to the end. Failpoints: one run killed at each in turn."""
    for split in ("train", "dev"):
        write_shard_set([SAMPLE_DIR / split], work / "shards" / split, ShardOptions(), jobs=2)
    data = ["--shards", work / "shards" / "train", "--dev-shards", work / "shards" / "dev"]
    started = time.perf_counter()
    subprocess.run(command("train", *data, "--out", work / "whole", *TRAIN_FLAGS), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    typical = time.perf_counter() - started

    def params(path):
        values, meta = read_checkpoint(path)
        return {k: v.asnumpy() for k, v in values.items()}

    whole_last = sorted((work / "whole" / "checkpoints").glob("step-*.ckpt"))[-1]
    expected, expected_best = params(whole_last), params(work / "whole" / "best.ckpt")
    whole_steps = sum("event" not in json.loads(line) for line in (work / "whole" / "metrics.jsonl").open())

    def check(run: Path) -> tuple[bool, int, int]:
        last = sorted((run / "checkpoints").glob("step-*.ckpt"))[-1]
        got, best = params(last), params(run / "best.ckpt")
        same = last.name == whole_last.name and all(np.array_equal(got[k], expected[k]) for k in expected) \
            and all(np.array_equal(best[k], expected_best[k]) for k in expected_best)
        steps = [json.loads(line).get("global_step") for line in (run / "metrics.jsonl").open()
                 if "event" not in json.loads(line)]
        return same, len(set(range(1, whole_steps + 1)) - set(steps)), len(steps) - len(set(steps))

    rows = []
    landed = identical = lost = duplicated = 0
    for trial in range(kills):
        run = work / f"killed-{trial}"
        start = ["train", *data, "--out", run, *TRAIN_FLAGS]
        landed += run_and_kill(start, float(rng.uniform(0.05, 0.95)) * typical)
        resumed = subprocess.run(command("train", "--resume", run), capture_output=True, text=True)
        if resumed.returncode != 0:  # killed before the first checkpoint: the same command again
            assert "no checkpoint" in resumed.stderr or "not a run directory" in resumed.stderr, resumed.stderr
            subprocess.run(command(*start), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        same, missing, twice = check(run)
        identical, lost, duplicated = identical + same, lost + missing, duplicated + twice
    rows.append({"what": "train, random moments", "runs": kills, "kills": landed,
                 "identical": f"{identical}/{kills}", "lost": lost, "duplicated": duplicated,
                 "seconds_uninterrupted": round(typical, 1)})
    run = work / "killed-at-failpoints"
    hit = 0
    for number, point in enumerate(FAILPOINTS):
        args = ["train", *data, "--out", run, *TRAIN_FLAGS] if number == 0 else ["train", "--resume", run]
        hit += subprocess.run(command(*args), env={**os.environ, KILL_AT: point}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == -9
    subprocess.run(command("train", "--resume", run), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    same, missing, twice = check(run)
    rows.append({"what": f"train, failpoints ({', '.join(FAILPOINTS)})", "runs": 1, "kills": hit,
                 "identical": f"{int(same)}/1", "lost": missing, "duplicated": twice,
                 "seconds_uninterrupted": round(typical, 1)})
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
        rows.append({"what": f"fuzzed corpus, {name}", "bad_files": sum(bad.values()), "good_files": len(good),
                     "crashed": finished.returncode != 0 or "Traceback" in finished.stderr,
                     "reported_as_expected": summary["problem_counts"] == bad,
                     "lost": len(set(good) - set(ids)), "duplicated": len(ids) - len(set(ids))})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=5, help="runs killed at a random moment, per target")
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
    except BaseException:
        print(f"the run's files are kept in {work}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    print(f"total {time.perf_counter() - started:.0f} s")
    harness.save(Path(__file__).resolve().parent / "out" / "faults.json", {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
