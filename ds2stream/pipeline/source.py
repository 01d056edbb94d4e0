"""The source: one planned batch -> arrays (decode FLAC, native spectrogram or stored features,
labels, padding), built by the parallel workers of a ``mindspore.dataset.GeneratorDataset``.

Batch columns (B = batch rows, T = the bucket's frames, L = the bucket's longest transcript):
  ``features``        float32 (B, 1, num_bins, T)   zero past each utterance's frames
  ``feature_lengths`` int32 (B,)                    real frames
  ``output_lengths``  int32 (B,)                    model output frames (given by the model's function)
  ``labels``          int32 (B, L)                  label indices, padded with the blank (never counted)
  ``label_lengths``   int32 (B,)
  ``mask``            float32 (B,)                  1 for a real row, 0 for a filler row (sampler)
  ``rows``            int64 (B,)                    positions in the length index (ids, for logs)
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import numpy as np

from ..data.text import BLANK_INDEX, encode
from .augment import Augmenter
from .sampler import BatchSampler
from .shard_set import ShardSet

BATCH_COLUMNS = ["features", "feature_lengths", "output_lengths", "labels", "label_lengths", "mask", "rows"]


class BatchSource:
    """Random-access source for GeneratorDataset: item i is batch ``start_step + i`` of the plan.

    :param augmenter: training augmentation (``augment.Augmenter``), applied per utterance with
        the speed factor the plan gives it; None (evaluation): the features as stored or computed.
    """

    def __init__(self, shard_set: ShardSet, sampler: BatchSampler, output_lengths: Callable | None = None,
                 augmenter: Augmenter | None = None):
        self.shard_set, self.sampler, self.augmenter = shard_set, sampler, augmenter
        self.output_lengths = output_lengths or (lambda frames: frames)
        self.set_epoch(0)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step
        self.plan = self.sampler.plan(epoch)

    def __len__(self) -> int:
        return len(self.plan.rows) - self.start_step

    def __getitem__(self, i: int):
        return self.batch(self.start_step + int(i))

    def batch(self, step: int) -> tuple:
        """The arrays of batch ``step`` of the plan, in ``BATCH_COLUMNS`` order."""
        rows, mask = self.plan.rows[step], self.plan.masks[step]
        frames, label_pad = int(self.plan.frames[step]), int(self.plan.label_pad[step])
        bins = self.shard_set.feature_config.num_bins
        features = np.zeros((len(rows), 1, bins, frames), dtype=np.float32)
        labels = np.full((len(rows), label_pad), BLANK_INDEX, dtype=np.int32)
        feature_lengths = np.zeros(len(rows), dtype=np.int32)
        label_lengths = np.zeros(len(rows), dtype=np.int32)
        for j, position in enumerate(rows):
            spect, text = self.utterance(int(position), float(self.plan.speeds[step][j]))
            if spect.shape[1] > frames:
                raise RuntimeError(f"utterance {position}: {spect.shape[1]} frames in a batch planned for {frames} "
                                   f"(the plan's lengths and the augmentation disagree: a bug)")
            features[j, 0, :, :spect.shape[1]] = spect
            feature_lengths[j] = spect.shape[1]
            labels[j, :len(text)] = encode(text)
            label_lengths[j] = len(text)
        output_lengths = np.asarray(self.output_lengths(feature_lengths), dtype=np.int32)
        return (features, feature_lengths, output_lengths, labels, label_lengths, mask,
                np.asarray(rows, dtype=np.int64))

    def utterance(self, position: int, speed: float) -> tuple[np.ndarray, str]:
        """(spectrogram, text) of one utterance, augmented when training asks for it."""
        if self.augmenter is None:
            return self.shard_set.features(position)
        rng = self.augmenter.rng(self.epoch, position)
        if self.augmenter.config.waveform:
            samples, text = self.shard_set.samples(position)
            return self.augmenter.features(samples, None, speed, rng), text
        spect, text = self.shard_set.features(position)
        return self.augmenter.features(None, spect, speed, rng), text


def make_dataset(source: BatchSource, num_workers: int = 1):
    """A mindspore GeneratorDataset over the current plan of ``source`` (call ``set_epoch`` first).

    Workers are processes (python_multiprocessing), each building whole batches, in plan order,
    each with one BLAS/OMP thread.
    """
    import mindspore.dataset as ds

    num_workers = max(1, min(num_workers, os.cpu_count() or 1))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    return ds.GeneratorDataset(source, column_names=BATCH_COLUMNS, shuffle=False,
                               num_parallel_workers=num_workers, python_multiprocessing=num_workers > 1)


@dataclasses.dataclass
class EpochReport:
    """Per epoch: padding, shapes, what was left out, and how long the consumer waited for data."""

    epoch: int
    batches: int
    padding_ratio: float
    batches_per_shape: dict
    dropped: dict
    data_wait_seconds: float = 0.0


class EpochIterator:
    """Iterate ``(step, batch dict of numpy arrays)`` over one epoch from ``start_step``;
    ``report`` fills in as it goes (data wait = time spent waiting in next())."""

    def __init__(self, source: BatchSource, epoch: int, num_workers: int = 1, start_step: int = 0):
        source.set_epoch(epoch, start_step)
        stats = source.sampler.stats(source.plan)
        self.report = EpochReport(epoch, len(source.plan.rows), stats.padding_ratio,
                                  stats.batches_per_shape, stats.dropped)
        self.source, self.num_workers, self.start_step = source, num_workers, start_step

    def __iter__(self):
        if len(self.source) == 0:
            return
        dataset = make_dataset(self.source, self.num_workers)
        iterator = dataset.create_tuple_iterator(output_numpy=True, num_epochs=1)
        step = self.start_step
        while True:
            started = time.perf_counter()
            try:
                values = next(iterator)
            except StopIteration:
                return
            except RuntimeError as err:
                self._raise_from_the_source(step, err)
            self.report.data_wait_seconds += time.perf_counter() - started
            yield step, dict(zip(BATCH_COLUMNS, values))
            step += 1

    def _raise_from_the_source(self, step: int, err: RuntimeError) -> None:
        """A worker's exception reaches us as MindSpore's RuntimeError, the cause buried in its
        pages of call stacks. Batches are a pure function of the plan, so build the ones the workers
        may have been building (this one and those prefetched after it) here: a bad file then raises
        its own error (a DataError naming the shard, an AudioError naming the utterance) as if there
        were no workers. If they all build, the error was the framework's own: raise it."""
        import mindspore.dataset as ds

        ahead = max(1, self.num_workers) * (ds.config.get_prefetch_size() + 1)
        for position in range(step, min(step + ahead, len(self.source.plan.rows))):
            self.source.batch(position)
        raise err

