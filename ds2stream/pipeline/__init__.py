"""Shard set -> padded batches for MindSpore, with length bucketing, in parts apart as in Lhotse:

  ``buckets``    the bucket rule: padded lengths, bucket edges, rows per batch from a frame budget;
  ``sampler``    ``BatchSampler``: an epoch's batches from the length index alone, per rank, resumable;
  ``shard_set``  ``ShardSet``: a shard set opened for reading (length index, memory-mapped shards);
                 ``with_global_statistics``: its features' mean and std per row (global CMVN);
  ``augment``    ``AugmentConfig``, ``Augmenter``: speed, volume, noise and SpecAugment, in the workers;
  ``source``     ``BatchSource``: a planned batch -> arrays, in a GeneratorDataset's parallel workers;
                 ``EpochIterator``: an epoch of batch dicts, with its report.
"""
from .augment import STANDARD_AUGMENT, AugmentConfig, Augmenter
from .buckets import (
    FRAME_MULTIPLE,
    ZOO_EVAL_FRAMES,
    ZOO_TRAIN_FRAMES,
    BatchMode,
    batch_sizes_for,
    bucket_boundaries,
    round_up_frames,
)
from .sampler import BatchSampler, Plan, SamplerStats
from .shard_set import ShardSet, decode_samples, with_global_statistics
from .source import BATCH_COLUMNS, BatchSource, EpochIterator, EpochReport, make_dataset

__all__ = [
    "STANDARD_AUGMENT", "AugmentConfig", "Augmenter",
    "FRAME_MULTIPLE", "ZOO_EVAL_FRAMES", "ZOO_TRAIN_FRAMES", "BatchMode", "batch_sizes_for", "bucket_boundaries",
    "round_up_frames", "BatchSampler", "Plan", "SamplerStats", "ShardSet", "decode_samples",
    "with_global_statistics", "BATCH_COLUMNS",
    "BatchSource", "EpochIterator", "EpochReport", "make_dataset",
]
