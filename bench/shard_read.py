"""Reading shards back, format 2 (IPC streams, Hugging Face's audio struct) against format 1 (IPC
files, audio as bytes), and Hugging Face `datasets` opening the same format-2 files in place; and
`ds2stream shard` from Hugging Face parquet files against the same corpus as a folder. One run.

On a LibriSpeech-layout corpus with train-clean-100's lengths (from the bundled real speech):
  open          map every shard and read its table (the reader does this once per worker)
  random rows   every utterance's audio bytes and text, in random order, as the training reader
                fetches them (``ShardSet.record``); rows/s and MB/s, page cache warm
  datasets      ``Dataset.from_file`` on every format-2 shard (no copy), then every row in the same
                random order with the audio not decoded (``Audio(decode=False)``)

    python bench/shard_read.py [--hours 1]
"""
import argparse
import shutil
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

from ds2stream.data import SAMPLE_DIR
from ds2stream.data.shards import ShardOptions, audio_bytes, write_shard_set
from ds2stream.pipeline import ShardSet
from testkit.corpora import format_1_copy, hf_librispeech_rows, synthetic_librispeech, write_hf_parquet


def best_of(repeats, func):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def read_with_ds2stream(shard_dir: Path, order: np.ndarray) -> tuple[float, float, int]:
    """(open seconds, random-read seconds, audio bytes read)."""
    shard_set = ShardSet(shard_dir)
    opened = best_of(3, lambda: [ShardSet(shard_dir)._table(s) for s in range(len(shard_set.summary["shards"]))])
    total = [0]

    def read_all():
        fresh = ShardSet(shard_dir)
        total[0] = sum(len(audio_bytes(fresh.record(int(p)))) for p in order)

    return opened, best_of(3, read_all), total[0]


def read_with_datasets(shard_dir: Path, order: np.ndarray) -> tuple[float, float]:
    import datasets

    shard_set = ShardSet(shard_dir)
    files = [str(shard_dir / info["file"]) for info in shard_set.summary["shards"]]
    opened = best_of(3, lambda: [datasets.Dataset.from_file(f) for f in files])
    tables = [datasets.Dataset.from_file(f).cast_column("audio", datasets.Audio(decode=False)) for f in files]

    def read_all():
        for position in order:
            row = tables[shard_set.shard[position]][int(shard_set.row[position])]
            assert row["audio"]["bytes"]

    return opened, best_of(3, read_all)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/shard_read.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ds2stream-bench-read-"))
    try:
        corpus = synthetic_librispeech(SAMPLE_DIR / "train", work / "src", args.hours)
        summary = write_shard_set([corpus], work / "v2", ShardOptions(), jobs=2)
        format_1_copy(work / "v2", work / "v1")
        order = np.random.default_rng(0).permutation(summary["utterances"])
        print(f"corpus: {summary['utterances']} utterances, {summary['hours']:.2f} h, "
              f"{len(summary['shards'])} shards of {ShardOptions().shard_size_mb:.0f} MB, FLAC")
        print(f"{'reader':42s} {'open s':>7s} {'rows/s':>9s} {'MB/s':>8s}")
        rates = {}
        for name, folder in (("format 1 (IPC file), ShardSet", "v1"), ("format 2 (IPC stream), ShardSet", "v2")):
            opened, seconds, total = read_with_ds2stream(work / folder, order)
            rates[name] = len(order) / seconds
            print(f"{name:42s} {opened:7.3f} {rates[name]:9.0f} {total / 1e6 / seconds:8.0f}")
        opened, seconds = read_with_datasets(work / "v2", order)
        rates["datasets"] = len(order) / seconds
        print(f"{'format 2, datasets.Dataset.from_file':42s} {opened:7.3f} {rates['datasets']:9.0f}")
        first, second = rates["format 1 (IPC file), ShardSet"], rates["format 2 (IPC stream), ShardSet"]
        print(f"format 2 / format 1 random rows: {second / first:.2f}x")

        rows = hf_librispeech_rows(corpus)
        parquet = write_hf_parquet(rows, work / "train.parquet")
        start = time.perf_counter()
        write_shard_set([parquet], work / "from-parquet", ShardOptions(), jobs=2)
        from_parquet = time.perf_counter() - start
        start = time.perf_counter()
        write_shard_set([corpus], work / "from-folder", ShardOptions(), jobs=2)
        from_folder = time.perf_counter() - start
        hours = summary["hours"]
        print(f"shard from parquet: {hours * 3600 / from_parquet:.0f}x real time; "
              f"from the folder: {hours * 3600 / from_folder:.0f}x (2 jobs)")
        harness.save(args.out, {"utterances": summary["utterances"], "hours": hours, "random_rows_per_s": rates,
                                "shard_x_real_time": {"parquet": hours * 3600 / from_parquet,
                                                      "folder": hours * 3600 / from_folder}})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
