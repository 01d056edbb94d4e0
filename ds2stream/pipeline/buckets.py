"""The bucket rule: which padded lengths batches have. The one place that rounds frames, chooses
bucket edges and sizes batches from a frame budget (lengths are ``FeatureConfig.num_frames`` of the
length index). Each batch is padded to its bucket's edge (a bounded set of shapes, which a
static graph would compile once each); edges that minimise the padded frames of an epoch
(``bucket_boundaries``) pad about half as much as Lhotse's equal-duration quantiles on
LibriSpeech's lengths (``bench/loader.py``)."""
from __future__ import annotations

import enum

import numpy as np

from ..errors import ConfigError

#: Bucket edges are rounded up to a multiple of this many frames (friendlier strides, fewer shapes).
FRAME_MULTIPLE = 8
#: The zoo pads every training batch to this many frames (12.5 s) and every eval batch to 3500.
ZOO_TRAIN_FRAMES = 1250
ZOO_EVAL_FRAMES = 3500


class BatchMode(str, enum.Enum):
    BUCKETED = "bucketed"  # length buckets with the least padding, padded to the bucket's edge
    UNBUCKETED = "unbucketed"  # random batches padded to their longest (rounded up to FRAME_MULTIPLE)
    FIXED = "fixed"  # the zoo: every batch padded to ZOO_TRAIN_FRAMES; longer utterances dropped


def round_up_frames(frames, multiple: int = FRAME_MULTIPLE):
    """Frames (an int or an integer array) rounded up to ``multiple``: every padded batch length."""
    return -(-frames // multiple) * multiple


def bucket_boundaries(frames: np.ndarray, num_buckets: int, multiple: int = FRAME_MULTIPLE) -> np.ndarray:
    """Upper edges (frames, inclusive) of at most ``num_buckets`` buckets that minimise padding.

    Every batch is padded to its bucket's edge, so the padded frames of an
    epoch are ``sum over buckets of (utterances in it) x edge``; the edges here minimise that sum
    exactly (dynamic programming over the distinct lengths, rounded up to ``multiple``). Bucket k
    holds lengths in ``(edges[k-1], edges[k]]``; the last edge covers the longest length.
    Compared with Lhotse's edges at quantiles of equal total duration this halves the padding on
    LibriSpeech train-clean-100's lengths (bench/loader.py measures both).
    """
    frames = np.asarray(frames, dtype=np.int64)
    if frames.size == 0:
        raise ValueError("no lengths to estimate bucket boundaries from")
    if num_buckets < 1:
        raise ConfigError(f"num_buckets must be at least 1, got {num_buckets}")
    lengths, counts = np.unique(round_up_frames(frames, multiple), return_counts=True)
    below = np.concatenate([[0], np.cumsum(counts)])  # utterances shorter than lengths[j]
    n, buckets = len(lengths), min(num_buckets, len(lengths))
    # cost[b, j]: least padded frames for the j shortest lengths in b buckets; split[b, j]: where
    # the last of those buckets starts.
    cost = np.full((buckets + 1, n + 1), np.inf)
    cost[0, 0] = 0.0
    split = np.zeros((buckets + 1, n + 1), dtype=np.int64)
    for b in range(1, buckets + 1):
        for j in range(b, n + 1):
            starts = np.arange(b - 1, j)
            candidates = cost[b - 1, starts] + (below[j] - below[starts]) * lengths[j - 1]
            best = int(np.argmin(candidates))
            cost[b, j], split[b, j] = candidates[best], starts[best]
    edges, j = [], n
    for b in range(buckets, 0, -1):
        edges.append(lengths[j - 1])
        j = split[b, j]
    return np.array(edges[::-1], dtype=np.int64)


def batch_sizes_for(edges: np.ndarray, max_frames: int | None, batch_size: int | None) -> np.ndarray:
    """Rows per batch for each bucket: ``batch_size``, or as many as fit ``rows x edge <= max_frames``.

    A bucket whose edge is above the budget still gets one row: an utterance longer than the budget
    trains alone (its memory is needed anyway) rather than stopping the run or being left out.
    """
    if (max_frames is None) == (batch_size is None):
        raise ValueError("give exactly one of max_frames (a padded-frame budget) or batch_size")
    if batch_size is not None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        return np.full(len(edges), batch_size, dtype=np.int64)
    if max_frames < 1:
        raise ConfigError(f"max_frames must be positive, got {max_frames}")
    return np.maximum(1, max_frames // edges).astype(np.int64)
