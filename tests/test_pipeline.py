"""The reader: bucket rule, epoch plans (exactly once, shapes, ranks, resume) and batch arrays."""
import numpy as np
import pytest

from ds2stream.data.shards import ShardOptions, write_shard_set
from ds2stream.data.text import BLANK_INDEX, ctc_min_frames, encode
from ds2stream.errors import DataError
from ds2stream.features import spectrogram
from ds2stream.pipeline import (
    BatchMode,
    BatchSampler,
    BatchSource,
    EpochIterator,
    ShardSet,
    bucket_boundaries,
    decode_samples,
)
from ds2stream.presets import PRESETS
from ds2stream.training.plan import make_sampler
from testkit.corpora import sample_durations, utterances_of_lengths


def halve(frames):
    """A stand-in model geometry: one stride-2 layer."""
    return (np.asarray(frames) + 1) // 2


@pytest.fixture(scope="module")
def shard_set(tmp_path_factory, sample_dir):
    out = tmp_path_factory.mktemp("shards") / "train"
    write_shard_set([sample_dir / "train"], out, ShardOptions(shard_size_mb=0.5), jobs=2)
    return ShardSet(out)


@pytest.fixture(scope="module")
def librispeech_lengths():
    """train-clean-100's 28,539 utterance lengths (frames) and transcript lengths, no audio needed."""
    rng = np.random.default_rng(0)
    frames = (sample_durations("train-clean-100", 28539, rng) * 100).astype(np.int64) + 1
    return frames, frames // 7, np.arange(len(frames)) // 300  # ~15 chars/s; 300 utterances a shard


def sampler_for(frames, chars, shards, mode, **kw):
    sizing = {"max_frames": 20000} if mode is BatchMode.BUCKETED else {"batch_size": 16}
    return BatchSampler(frames, chars, shards, mode=mode, **{**sizing, **kw})


# ---------------------------------------------------------------- the bucket rule

def test_bucket_edges_minimise_padding_worked_by_hand():
    # {1,2,3 | 10} pads to 3*3 + 10 = 19 frames; {1 | 2,3,10} to 31; {1,2 | 3,10} to 24.
    assert bucket_boundaries(np.array([1, 2, 3, 10]), 2, multiple=1).tolist() == [3, 10]
    frames = np.array([10] * 100 + [100] * 10 + [1000])
    assert bucket_boundaries(frames, 3, multiple=1).tolist() == [10, 100, 1000]
    assert bucket_boundaries(frames, 3, multiple=8).tolist() == [16, 104, 1000]
    assert bucket_boundaries(frames, 1, multiple=1).tolist() == [1000]


def test_bucket_edges_are_never_worse_than_any_other_split():
    rng = np.random.default_rng(4)
    frames = rng.integers(1, 60, 40)
    edges = bucket_boundaries(frames, 3, multiple=1)

    def padded(e):
        return int(np.asarray(e)[np.searchsorted(e, frames)].sum())

    values = np.unique(frames)
    for a in values:
        for b in values[values > a]:
            assert padded(edges) <= padded(np.array([a, b, frames.max()]))


def test_bucket_edges_merge_when_lengths_repeat():
    assert bucket_boundaries(np.full(50, 37), 8).tolist() == [40]
    with pytest.raises(ValueError, match="no lengths"):
        bucket_boundaries(np.array([]), 4)


def test_bucketed_padding_meets_the_target_on_librispeech_lengths(librispeech_lengths):
    frames, chars, shards = librispeech_lengths
    padding = {mode: sampler_for(frames, chars, shards, mode).stats(
        sampler_for(frames, chars, shards, mode).plan(0)).padding_ratio for mode in BatchMode}
    assert padding[BatchMode.BUCKETED] <= 0.10
    assert padding[BatchMode.BUCKETED] < padding[BatchMode.UNBUCKETED] < padding[BatchMode.FIXED]


def test_bucketed_padding_is_lower_than_unbucketed_on_fsdd(shard_set):
    ratios = {}
    for mode, sizing in ((BatchMode.BUCKETED, {"max_frames": 4000}), (BatchMode.UNBUCKETED, {"batch_size": 32})):
        sampler = BatchSampler(shard_set.frames, shard_set.num_chars, shard_set.shard, mode=mode, **sizing)
        ratios[mode] = sampler.stats(sampler.plan(0)).padding_ratio
    assert ratios[BatchMode.BUCKETED] < ratios[BatchMode.UNBUCKETED]


# ---------------------------------------------------------------- epoch plans

@pytest.mark.parametrize("mode", list(BatchMode))
@pytest.mark.parametrize("world_size", [1, 2])
def test_each_utterance_once_per_epoch_and_ranks_in_step(librispeech_lengths, mode, world_size):
    frames, chars, shards = librispeech_lengths
    samplers = [sampler_for(frames, chars, shards, mode, rank=r, world_size=world_size, seed=3)
                for r in range(world_size)]
    plans = [s.plan(1) for s in samplers]
    real = np.concatenate([rows[mask > 0] for plan in plans for rows, mask in zip(plan.rows, plan.masks)])
    kept = np.flatnonzero(samplers[0].keep)
    assert len(real) == len(np.unique(real)) == len(kept)
    assert set(real.tolist()) == set(kept.tolist())
    assert len({len(plan.rows) for plan in plans}) == 1  # every rank runs the same number of steps
    for batches in zip(*(zip(plan.rows, plan.frames) for plan in plans)):
        assert len({(len(rows), int(f)) for rows, f in batches}) == 1  # the ranks' i-th batches share a shape
    if mode is BatchMode.FIXED:
        assert samplers[0].dropped["longer_than_fixed_frames"] == int((frames > 1250).sum()) > 0


def test_every_batch_shape_belongs_to_the_bucket_set(librispeech_lengths):
    frames, chars, shards = librispeech_lengths
    sampler = sampler_for(frames, chars, shards, BatchMode.BUCKETED, num_buckets=12)
    allowed = {(int(size), int(edge)) for size, edge in zip(sampler.batch_sizes, sampler.edges)}
    plan = sampler.plan(0)
    shapes = {(len(rows), int(f)) for rows, f in zip(plan.rows, plan.frames)}
    assert shapes <= allowed and len(shapes) == len(allowed)
    assert all(size * edge <= 20000 for size, edge in allowed)
    for rows, f in zip(plan.rows, plan.frames):
        assert frames[rows].max() <= f  # nothing is cropped


def test_same_seed_same_batches_and_epochs_differ(librispeech_lengths):
    frames, chars, shards = librispeech_lengths
    a = sampler_for(frames, chars, shards, BatchMode.BUCKETED, seed=5)
    b = sampler_for(frames, chars, shards, BatchMode.BUCKETED, seed=5)
    for x, y in zip(a.plan(2).rows, b.plan(2).rows):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(a.plan(2).rows, a.plan(3).rows))


def test_sortagrad_orders_the_first_epoch_only(librispeech_lengths):
    frames, chars, shards = librispeech_lengths
    sampler = sampler_for(frames, chars, shards, BatchMode.BUCKETED, sortagrad=True)
    assert np.all(np.diff(sampler.plan(0).frames) >= 0)
    assert not np.all(np.diff(sampler.plan(1).frames) >= 0)


def test_transcripts_that_cannot_fit_ctc_are_left_out_and_counted():
    frames = np.array([100, 100, 100, 40])
    chars = np.array([10, 50, 51, 5])  # output = 50 frames for 100 input frames
    sampler = BatchSampler(frames, chars, np.zeros(4), batch_size=2, output_lengths=halve)
    assert sampler.dropped == {"transcript_longer_than_output": 1}
    assert sampler.keep.tolist() == [True, True, False, True]


def test_repeated_letters_count_against_the_output_frames(shard_set):
    # "THREE" has 5 letters but CTC needs 6 output frames (a blank between the two Es).
    frames, chars, ctc = np.array([10, 10, 12]), np.array([5, 5, 5]), np.array([6, 5, 6])
    sampler = BatchSampler(frames, chars, np.zeros(3), batch_size=2, output_lengths=halve, ctc_lengths=ctc)
    assert sampler.dropped == {"transcript_longer_than_output": 1}
    assert sampler.keep.tolist() == [False, True, True]
    assert shard_set.ctc_lengths.tolist() == [ctc_min_frames(shard_set.text(i)) for i in range(len(shard_set))]
    assert (shard_set.ctc_lengths > shard_set.num_chars).any()  # the sample has THREE and other doubles


def test_an_utterance_longer_than_the_frame_budget_trains_alone():
    # 2451 frames (24.5 s) round up to a 2456-frame bucket: above a 2451-frame budget, still planned.
    sampler = BatchSampler(np.array([50, 60, 70, 2451]), np.ones(4), np.zeros(4), max_frames=2451, num_buckets=2)
    plan = sampler.plan(0)
    assert sampler.edges.tolist() == [72, 2456] and sampler.batch_sizes.tolist() == [3, 1]
    assert sorted(len(rows) for rows in plan.rows) == [1, 3] and sorted(plan.frames.tolist()) == [72, 2456]
    assert sampler.dropped == {}


def test_longer_than_max_duration_is_left_out_and_counted():
    sampler = BatchSampler(np.array([50, 60, 3001]), np.ones(3), np.zeros(3), max_frames=1000,
                           max_utterance_frames=3000)
    assert sampler.dropped == {"longer_than_max_duration": 1} and sampler.keep.tolist() == [True, True, False]


#: 1 s to 35 s (LibriSpeech's range), odd sample counts; 392,000 samples = 2,451 frames (24.5 s).
LIBRISPEECH_EXTREMES = [16_001, 40_003, 97_777, 160_001, 255_555, 392_000, 479_999, 559_999]


@pytest.fixture(scope="module")
def long_shard_set(tmp_path_factory, sample_dir):
    root = tmp_path_factory.mktemp("long")
    corpus = utterances_of_lengths(sample_dir / "train", root, LIBRISPEECH_EXTREMES)
    write_shard_set([corpus], root / "shards", ShardOptions())
    return ShardSet(root / "shards")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_batches_every_librispeech_length(long_shard_set, preset):
    shards, chosen = long_shard_set, PRESETS[preset]
    assert shards.num_samples.tolist() == LIBRISPEECH_EXTREMES and shards.frames[5] == 2451
    sampler = make_sampler(shards, chosen.model, chosen.train)
    assert sum(sampler.dropped.values()) == 0
    plan = sampler.plan(0)
    planned = sorted(int(row) for rows, mask in zip(plan.rows, plan.masks) for row in rows[mask > 0])
    assert planned == list(range(len(shards)))  # every utterance, once
    lengths = sampler.epoch_lengths(0)[0]  # speed-perturbed in the presets that augment
    for rows, frames in zip(plan.rows, plan.frames):
        assert frames >= lengths[rows].max()
        assert len(rows) * frames <= chosen.train.max_frames or len(rows) == 1


# ---------------------------------------------------------------- batches through MindSpore

def test_batch_arrays_hold_the_utterances(shard_set):
    sampler = BatchSampler(shard_set.frames, shard_set.num_chars, shard_set.shard, num_buckets=4,
                           max_frames=3000, seed=1)
    source = BatchSource(shard_set, sampler, halve)
    features, feature_lengths, output_lengths, labels, label_lengths, mask, rows = source.batch(len(source) - 1)
    for j, position in enumerate(rows):
        record = shard_set.record(int(position))
        expected = spectrogram(decode_samples(record, "flac"))
        n = expected.shape[1]
        assert feature_lengths[j] == n and output_lengths[j] == (n + 1) // 2
        np.testing.assert_array_equal(features[j, 0, :, :n], expected)
        assert not features[j, 0, :, n:].any()
        assert label_lengths[j] == len(record["text"])
        np.testing.assert_array_equal(labels[j, :label_lengths[j]], encode(record["text"]))
        assert (labels[j, label_lengths[j]:] == BLANK_INDEX).all()
    assert mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}


def test_generator_dataset_delivers_the_plan_with_two_workers_and_resumes(shard_set):
    sampler = BatchSampler(shard_set.frames, shard_set.num_chars, shard_set.shard, num_buckets=6,
                           max_frames=3000, seed=2)
    source = BatchSource(shard_set, sampler, halve)
    one = EpochIterator(source, epoch=1, num_workers=1)
    first = [(step, batch["rows"].copy(), batch["features"].sum()) for step, batch in one]
    two = [(step, batch["rows"].copy(), batch["features"].sum()) for step, batch in
           EpochIterator(source, epoch=1, num_workers=2)]
    assert len(first) == len(two) == one.report.batches > 0
    for (s1, r1, f1), (s2, r2, f2) in zip(first, two):
        assert s1 == s2 and np.array_equal(r1, r2) and f1 == f2
    resumed = [(step, batch["rows"]) for step, batch in EpochIterator(source, epoch=1, start_step=5)]
    assert [s for s, _ in resumed] == [s for s, _, _ in first[5:]]
    for (_, rows), (_, expected, _) in zip(resumed, first[5:]):
        np.testing.assert_array_equal(rows, expected)
    assert one.report.data_wait_seconds > 0
    assert sum(one.report.batches_per_shape.values()) == one.report.batches


@pytest.mark.parametrize("workers", [1, 2])
def test_a_damaged_shard_read_by_the_workers_raises_an_error_naming_it(tmp_path, sample_dir, workers):
    write_shard_set([sample_dir / "test" / "9104"], tmp_path / "s", ShardOptions(shard_size_mb=0.2))
    shard_set = ShardSet(tmp_path / "s")
    damaged = sorted((tmp_path / "s").glob("shard-*.arrow"))[-1]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # a copy cut short
    source = BatchSource(shard_set, BatchSampler(shard_set.frames, shard_set.num_chars, shard_set.shard,
                                                 max_frames=3000), halve)
    with pytest.raises(DataError, match=f"{damaged}: not a readable shard"):
        for _ in EpochIterator(source, epoch=0, num_workers=workers):
            pass

def test_stored_features_are_used_when_the_shards_have_them(tmp_path, sample_dir):
    write_shard_set([sample_dir / "test" / "9104"], tmp_path / "f", ShardOptions(with_features=True))
    shard_set = ShardSet(tmp_path / "f")
    assert shard_set.use_stored_features
    spect, text = shard_set.features(0)
    expected = spectrogram(decode_samples(shard_set.record(0), "flac"))
    np.testing.assert_allclose(spect, expected, atol=2e-2, rtol=2e-3)
