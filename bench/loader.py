"""What the shard reader delivers, and how much padding each batching mode costs.

1. Padding ratio (padded frames / real frames - 1) of the three batch modes on LibriSpeech
   train-clean-100's length distribution (28,539 utterances, from the length index alone):
   fixed (the zoo: batch 8, every batch padded to 1250 frames, longer utterances cannot be used
   whole), unbucketed (batch 8, padded to the batch's longest) and bucketed (16 buckets, a budget
   of 8 x 1250 = 10,000 padded frames per batch: the zoo's batch-8 memory), with ds2stream's edges
   (least padding) and with Lhotse's (quantiles of equal total duration).
2. Throughput: utterances and audio-hours per wall-second that the GeneratorDataset reader
   delivers as padded bucketed batches (FLAC decoding, native features, labels), with 1 and 2
   workers, on a shard set with train-clean-100's lengths made from real speech; then with 1
   worker (the training default) a row per augmentation (speed, volume, noise, SpecAugment, all).
3. The ratio to what a training step consumes: the `small` preset's audio-seconds per second,
   measured in the same run (a middle bucket's batches, graph mode, the compiling step left out),
   and the zoo preset's from bench/step.py (c): ZOO_STEP_AUDIO_SECONDS_PER_SECOND.

    python bench/loader.py [--hours 0.5]
"""
import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

from ds2stream.data import SAMPLE_DIR
from ds2stream.data.shards import ShardOptions, write_shard_set
from ds2stream.pipeline import (
    BATCH_COLUMNS,
    STANDARD_AUGMENT,
    AugmentConfig,
    Augmenter,
    BatchMode,
    BatchSampler,
    BatchSource,
    EpochIterator,
    ShardSet,
    round_up_frames,
)
from ds2stream.pipeline.augment import speed_samples, switch
from testkit.corpora import sample_durations, synthetic_librispeech

ZOO_STEP_AUDIO_SECONDS_PER_SECOND = 4.66
TRAIN_CLEAN_100_UTTERANCES = 28539


def equal_duration_edges(frames: np.ndarray, num_buckets: int) -> np.ndarray:
    """Lhotse's rule: bucket edges where the cumulative duration crosses each k / num_buckets."""
    ordered = np.sort(frames)
    cumulative = np.cumsum(ordered) / ordered.sum()
    inner = [ordered[np.searchsorted(cumulative, k / num_buckets)] for k in range(1, num_buckets)]
    return np.unique(round_up_frames(np.array(inner + [ordered[-1]], dtype=np.int64)))


def padding_table():
    rng = np.random.default_rng(0)
    frames = (sample_durations("train-clean-100", TRAIN_CLEAN_100_UTTERANCES, rng) * 100).astype(np.int64) + 1
    chars, shards = frames // 7, np.arange(len(frames)) // 300
    rows = []
    budget = {"max_frames": 8 * 1250}
    for name, mode, sizing in (("fixed", BatchMode.FIXED, {"batch_size": 8}),
                               ("unbucketed", BatchMode.UNBUCKETED, {"batch_size": 8}),
                               ("bucketed", BatchMode.BUCKETED, budget),
                               ("bucketed, equal-duration edges", BatchMode.BUCKETED,
                                {**budget, "edges": equal_duration_edges(frames, 16)})):
        sampler = BatchSampler(frames, chars, shards, mode=mode, num_buckets=16, **sizing)
        stats = sampler.stats(sampler.plan(0))
        rows.append((name, stats.padding_ratio, len(stats.batches_per_shape), sum(stats.dropped.values())))
    print(f"padding on train-clean-100 lengths ({len(frames)} utterances, mean {frames.mean() / 100:.1f} s)")
    print(f"{'mode':32s} {'padding':>8s} {'shapes':>7s} {'left out':>9s}")
    for name, ratio, shapes, dropped in rows:
        print(f"{name:32s} {ratio:8.1%} {shapes:7d} {dropped:9d}")
    return [{"mode": name, "padding_ratio": ratio, "shapes": shapes, "left_out": dropped}
            for name, ratio, shapes, dropped in rows]


def small_step_consumption(shard_set: ShardSet, steps: int = 3) -> float:
    """Audio-seconds per wall-second that the `small` preset's training step consumes here."""
    import dataclasses

    from ds2stream.presets import PRESETS
    from ds2stream.runtime import use_graph_mode
    from ds2stream.training.trainer import Trainer

    use_graph_mode()
    preset = PRESETS["small"]
    config = dataclasses.replace(preset.train, augment=AugmentConfig())
    trainer = Trainer(Path(tempfile.mkdtemp(prefix="ds2stream-bench-small-")), shard_set.dir, preset.model, config,
                      progress=False)
    plan = trainer.source.plan
    middle = int(np.median(plan.frames))
    chosen = [i for i, frames in enumerate(plan.frames) if frames == middle][:steps + 1]
    audio = seconds = 0.0
    for n, step in enumerate(chosen):
        batch = dict(zip(BATCH_COLUMNS, trainer.source.batch(step)))
        started = time.perf_counter()
        trainer.train_step(batch)
        if n > 0:  # the first one compiles
            seconds += time.perf_counter() - started
            audio += float((batch["feature_lengths"] * batch["mask"]).sum()) / 100
    shutil.rmtree(trainer.run_dir, ignore_errors=True)
    return audio / seconds


def throughput(hours: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="ds2stream-bench-loader-"))
    try:
        corpus = synthetic_librispeech(SAMPLE_DIR / "train", work / "src", hours)
        write_shard_set([corpus], work / "shards", ShardOptions(shard_size_mb=8), jobs=2)
        shard_set = ShardSet(work / "shards")
        audio_seconds = shard_set.num_samples.sum() / 16000
        small = small_step_consumption(shard_set)
        print(f"\nthroughput on {len(shard_set)} utterances, {audio_seconds / 3600:.2f} h (bucketed batches); "
              f"a `small` training step consumes {small:.2f} audio-s/s here")
        print(f"{'augmentation':14s} {'workers':>7s} {'utt/s':>8s} {'audio h/s':>10s} {'x small step':>13s} "
              f"{'x zoo step':>11s}")
        standard = STANDARD_AUGMENT
        rows = [("none", AugmentConfig(), 1), ("none", AugmentConfig(), 2),
                ("speed", switch(AugmentConfig(), speed=True), 1),
                ("volume", switch(AugmentConfig(), volume=True), 1),
                ("noise (all)", dataclasses.replace(AugmentConfig(), noise_prob=1.0, snr_db=standard.snr_db), 1),
                ("SpecAugment", switch(AugmentConfig(), spec_augment=True), 1),
                ("all", standard, 1), ("all", standard, 2)]
        measured = []
        for epoch, (name, augment, workers) in enumerate(rows):
            fc = shard_set.feature_config
            sampler = BatchSampler(shard_set.frames, shard_set.num_chars, shard_set.shard, max_frames=8 * 1250,
                                   speeds=augment.speeds, speed_frames=[
                                       fc.num_frames(speed_samples(shard_set.num_samples, f)) for f in augment.speeds])
            augmenter = Augmenter(augment, fc, seed=0) if augment.enabled else None
            source = BatchSource(shard_set, sampler, augmenter=augmenter)
            start = time.perf_counter()
            for _ in EpochIterator(source, epoch=epoch, num_workers=workers):
                pass
            seconds = time.perf_counter() - start
            rate = audio_seconds / seconds
            print(f"{name:14s} {workers:7d} {len(shard_set) / seconds:8.0f} {rate / 3600:10.3f} "
                  f"{rate / small:12.0f}x {rate / ZOO_STEP_AUDIO_SECONDS_PER_SECOND:10.0f}x")
            measured.append({"augmentation": name, "workers": workers, "utterances_per_s": len(shard_set) / seconds,
                             "audio_hours_per_s": rate / 3600})
        return {"utterances": len(shard_set), "hours": audio_seconds / 3600,
                "small_step_audio_s_per_s": small, "rows": measured}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=0.5, help="audio in the throughput shard set")
    parser.add_argument("--out", type=Path, default=Path("bench/out/loader.json"))
    args = parser.parse_args()
    harness.save(args.out, {"padding": padding_table(), "throughput": throughput(args.hours)})


if __name__ == "__main__":
    main()
