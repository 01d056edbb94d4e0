"""The sampler: plans the batches of an epoch from metadata only (the length index): which
utterances form each batch, for each rank, in which order; resumable by (epoch, step).

A batch that cannot be filled (the end of a bucket) gets filler rows: other utterances of the
bucket, drawn at random, with mask 0, so every batch of a bucket has one shape (one graph), the
loss ignores them and BatchNorm sees a usual batch (``BatchSampler._fillers``). Nothing is
cropped: an utterance whose transcript cannot fit the model's output frames under CTC (or longer
than ``max_utterance_frames``) is left out and counted in ``SamplerStats.dropped``.

With speed perturbation (``speeds``) each utterance gets a factor per epoch (drawn from
(seed, epoch) alone, so every rank agrees), and is bucketed, padded and checked against CTC at its
perturbed length: bucket edges and label padding are chosen over the lengths at every factor, so
the batch shapes stay the same small set in every epoch. A factor under which the transcript would
no longer fit the output frames (or the utterance would pass ``max_utterance_frames``) falls back
to the unperturbed length for that epoch. The number of batches can differ by a few between epochs.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable

import numpy as np

from ..errors import ConfigError, DataError
from .augment import speed_choices
from .buckets import ZOO_TRAIN_FRAMES, BatchMode, batch_sizes_for, bucket_boundaries, round_up_frames

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SamplerStats:
    """What an epoch plan holds and what it left out."""

    batches_per_shape: dict  # (rows, frames) -> batches on this rank
    real_frames: int  # feature frames of real rows on this rank
    padded_frames: int  # rows x frames of every batch on this rank, filler rows included
    dropped: dict  # reason -> utterances left out (the whole set, every epoch alike)

    @property
    def padding_ratio(self) -> float:
        """padded / real frames - 1: the share of compute spent on padding (0.08 = 8 %)."""
        return self.padded_frames / max(self.real_frames, 1) - 1.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """One rank's batches for one epoch: ``rows[i]`` index-positions, ``masks[i]``, ``frames[i]``."""

    rows: list
    masks: list
    frames: np.ndarray  # padded frames of each batch
    label_pad: np.ndarray  # padded label length of each batch
    speeds: list  # speed factor of each row (1.0 without speed perturbation)
    epoch: int = 0


class BatchSampler:
    """Plans the batches of an epoch from the length index alone.

    :param frames: feature frames of each utterance (index order).
    :param num_chars: transcript length of each utterance.
    :param shards: shard number of each utterance; the epoch visits shards in a shuffled order,
        ``window_shards`` at a time, and batches are drawn within a window (reads stay within a
        few memory-mapped files, like a shuffle buffer).
    :param output_lengths: the model's frames -> output frames, to leave out utterances whose
        transcript cannot fit under CTC (labels + repeats > output frames). None: keep all.
    :param ctc_lengths: output frames each transcript needs (``text.ctc_min_frames``; the
        ShardSet's ``ctc_lengths``); default ``num_chars``, which misses repeated letters.
    :param rank, world_size: data-parallel partition. Each utterance goes to one rank per epoch;
        every rank gets the same number of batches, and the ranks' i-th batches share a shape.
    :param sortagrad: epoch 0 goes shortest bucket first (SortaGrad, DeepSpeech2 paper).
    :param max_utterance_frames: leave out longer utterances (counted); None keeps every length.
    :param speeds, speed_frames: speed perturbation: the factors, and each utterance's frames at
        each factor (``speed_frames[k]`` at ``speeds[k]``; ``augment.speed_samples``).
    """

    def __init__(self, frames, num_chars, shards, *, mode=BatchMode.BUCKETED, num_buckets: int = 16,
                 max_frames: int | None = None, batch_size: int | None = None, seed: int = 0,
                 shuffle: bool = True, window_shards: int = 16, rank: int = 0, world_size: int = 1,
                 sortagrad: bool = False, output_lengths: Callable | None = None, ctc_lengths=None,
                 fixed_frames: int = ZOO_TRAIN_FRAMES, edges: np.ndarray | None = None,
                 max_utterance_frames: int | None = None, speeds: tuple = (), speed_frames=None):
        self.mode = BatchMode(mode)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
        self.frames = np.asarray(frames, dtype=np.int64)
        self.num_chars = np.asarray(num_chars, dtype=np.int64)
        self.shards = np.asarray(shards, dtype=np.int64)
        self.seed, self.shuffle, self.window_shards = seed, shuffle, max(1, window_shards)
        self.rank, self.world_size, self.sortagrad = rank, world_size, sortagrad
        keep = np.ones(len(self.frames), dtype=bool)
        self.dropped: dict[str, int] = {}
        if max_utterance_frames is not None:
            too_long = self.frames > max_utterance_frames
            self.dropped["longer_than_max_duration"] = int(too_long.sum())
            keep &= ~too_long
        if self.mode is BatchMode.FIXED:
            too_long = self.frames > fixed_frames
            self.dropped["longer_than_fixed_frames"] = int((too_long & keep).sum())
            keep &= ~too_long
        needed = self.num_chars if ctc_lengths is None else np.asarray(ctc_lengths, dtype=np.int64)
        if output_lengths is not None:
            infeasible = needed > np.asarray(output_lengths(self.frames))
            self.dropped["transcript_longer_than_output"] = int((infeasible & keep).sum())
            keep &= ~infeasible
        self.keep = keep
        if not keep.any():
            raise DataError(f"no utterance left to batch (left out: {self.dropped})")
        self.speeds = tuple(speeds)
        if self.speeds and self.mode is not BatchMode.BUCKETED:
            raise ConfigError("speed perturbation needs bucketed batches (the zoo's fixed frames would crop or drop)")
        # Each utterance's frames at each factor, and where that factor is usable (else: factor 1).
        self.speed_frames = np.asarray(speed_frames if self.speeds else np.empty((0, len(self.frames))),
                                       dtype=np.int64).reshape(len(self.speeds), len(self.frames))
        self.speed_ok = np.ones(self.speed_frames.shape, dtype=bool)
        for k, frames_k in enumerate(self.speed_frames):
            if output_lengths is not None:
                self.speed_ok[k] &= needed <= np.asarray(output_lengths(frames_k))
            if max_utterance_frames is not None:
                self.speed_ok[k] &= frames_k <= max_utterance_frames
        if self.mode is BatchMode.BUCKETED:
            every_length = np.concatenate([self.frames[keep], *(f[keep & ok] for f, ok in
                                                                zip(self.speed_frames, self.speed_ok))])
            self.edges = edges if edges is not None else bucket_boundaries(every_length, num_buckets)
            self.speed_ok &= self.speed_frames <= self.edges[-1]
            if self.frames[keep].max() > self.edges[-1]:
                too_long = self.frames > self.edges[-1]
                self.dropped["longer_than_largest_bucket"] = int((too_long & keep).sum())
                self.keep &= ~too_long
        elif self.mode is BatchMode.FIXED:
            self.edges = np.array([fixed_frames])
        else:
            top = int(self.frames[keep].max())
            self.edges = np.array([round_up_frames(top)])
        self.bucket_of = np.searchsorted(self.edges, self.frames)
        speed_buckets = [np.searchsorted(self.edges, f) for f in self.speed_frames]
        # No batch larger than its bucket (a small eval set would be mostly filler rows otherwise).
        per_rank = -(-np.bincount(self.bucket_of[self.keep], minlength=len(self.edges)) // world_size)
        for buckets, ok in zip(speed_buckets, self.speed_ok):
            per_rank = np.maximum(per_rank, -(-np.bincount(buckets[self.keep & ok], minlength=len(self.edges))
                                              // world_size))
        self.batch_sizes = np.minimum(batch_sizes_for(self.edges, max_frames, batch_size), np.maximum(per_rank, 1))
        # The longest transcript that can land in each bucket fixes its label padding (one shape).
        self.label_pad = np.ones(len(self.edges), dtype=np.int64)
        np.maximum.at(self.label_pad, self.bucket_of[self.keep], self.num_chars[self.keep])
        for buckets, ok in zip(speed_buckets, self.speed_ok):
            np.maximum.at(self.label_pad, buckets[self.keep & ok], self.num_chars[self.keep & ok])
        if len(np.unique(self.shards)) < self.world_size:
            log.warning("%d shards for %d ranks: ranks will read the same files", len(np.unique(self.shards)),
                        self.world_size)

    def __len__(self) -> int:
        """Batches per epoch on each rank: the same for every rank, and for every epoch unless the
        speeds are perturbed (then epoch 0's, what the learning-rate schedule counts in)."""
        return len(self.plan(0).rows)

    def epoch_lengths(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frames, bucket, speed factor) of every utterance in ``epoch``."""
        if not self.speeds:
            return self.frames, self.bucket_of, np.ones(len(self.frames))
        drawn = speed_choices(len(self.speeds), self.seed, epoch, len(self.frames))
        usable = self.speed_ok[drawn, np.arange(len(self.frames))]
        frames = np.where(usable, self.speed_frames[drawn, np.arange(len(self.frames))], self.frames)
        factors = np.where(usable, np.asarray(self.speeds)[drawn], 1.0)
        return frames, np.searchsorted(self.edges, frames), factors

    def _windows(self, rng) -> list[np.ndarray]:
        shard_ids = np.unique(self.shards[self.keep])
        order = rng.permutation(shard_ids) if self.shuffle else shard_ids
        return [order[i:i + self.window_shards] for i in range(0, len(order), self.window_shards)]

    def _global_batches(self, epoch: int, bucket_of: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(bucket, utterances) of every global batch (world_size x rows), in epoch order."""
        rng = np.random.default_rng([self.seed, epoch])
        carry: dict[int, np.ndarray] = {}
        batches: list[tuple[int, np.ndarray]] = []
        for window in self._windows(rng):
            members = np.flatnonzero(self.keep & np.isin(self.shards, window))
            window_batches = []
            for bucket in range(len(self.edges)):
                items = members[bucket_of[members] == bucket]
                items = rng.permutation(items) if self.shuffle else items
                items = np.concatenate([carry.pop(bucket, np.empty(0, np.int64)), items])
                size = int(self.batch_sizes[bucket]) * self.world_size
                full = len(items) // size * size
                window_batches += [(bucket, items[i:i + size]) for i in range(0, full, size)]
                if full < len(items):
                    carry[bucket] = items[full:]
            if self.shuffle:
                window_batches = [window_batches[i] for i in rng.permutation(len(window_batches))]
            batches += window_batches
        batches += [(bucket, items) for bucket, items in sorted(carry.items())]  # the partial ones
        if self.sortagrad and epoch == 0:
            batches.sort(key=lambda batch: int(self.edges[batch[0]]))  # stable: shortest bucket first
        return batches

    def plan(self, epoch: int) -> Plan:
        """This rank's batches of the epoch: the same for the same (seed, epoch)."""
        rows, masks, frames, label_pad = [], [], [], []
        lengths, bucket_of, factors = self.epoch_lengths(epoch)
        filler_rng = np.random.default_rng([self.seed, epoch, 1])  # apart from the batch order's stream
        for bucket, items in self._global_batches(epoch, bucket_of):
            size = int(self.batch_sizes[bucket])
            mine = items[self.rank::self.world_size][:size] if len(items) < size * self.world_size \
                else items[self.rank * size:(self.rank + 1) * size]
            if self.mode is BatchMode.UNBUCKETED:  # the global batch's longest, so all ranks share a shape
                frames.append(int(round_up_frames(self.frames[items].max())))
            else:
                frames.append(int(self.edges[bucket]))
            mask = np.zeros(size, dtype=np.float32)
            mask[:len(mine)] = 1.0
            fillers = self._fillers(bucket_of == bucket, lengths, frames[-1], size - len(mine), filler_rng)
            rows.append(np.concatenate([mine, fillers]))
            masks.append(mask)
            label_pad.append(int(self.label_pad[bucket]))
        return Plan(rows, masks, np.array(frames, dtype=np.int64), np.array(label_pad, dtype=np.int64),
                    [factors[r] for r in rows], epoch)

    def _fillers(self, in_bucket: np.ndarray, lengths: np.ndarray, frames: int, count: int, rng) -> np.ndarray:
        """``count`` filler rows (mask 0) for a batch that cannot be filled: other utterances of
        the bucket that fit its frames, drawn at random. The loss ignores them, but in training
        BatchNorm normalises the batch by its statistics and updates its running ones from them:
        copies of a single row (as fillers were) skewed both, and on the bundled sample they raised
        the dev WER (bench/fillers.py; measured: docs/data.md)."""
        if count == 0:
            return np.empty(0, dtype=np.int64)
        pool = np.flatnonzero(self.keep & in_bucket & (lengths <= frames))
        return rng.choice(pool, count, replace=len(pool) < count)

    def stats(self, plan: Plan) -> SamplerStats:
        shapes: dict = {}
        real = padded = 0
        lengths = self.epoch_lengths(plan.epoch)[0]
        for rows, mask, frames in zip(plan.rows, plan.masks, plan.frames):
            key = (len(rows), int(frames))
            shapes[key] = shapes.get(key, 0) + 1
            real += int(lengths[rows[mask > 0]].sum())
            padded += len(rows) * int(frames)
        return SamplerStats(shapes, real, padded, dict(self.dropped))
