"""A shard set opened for reading: its summary, length index and lazily memory-mapped shards."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..data.shards import audio_bytes, load_index, read_shard
from ..data.text import LABELS, ctc_min_frames
from ..errors import DataError
from ..features import STD_FLOOR, FeatureConfig, Normalize, spectrogram


class ShardSet:
    """A complete shard set: its summary, length index and lazily memory-mapped shards."""

    def __init__(self, shard_dir: Path, feature_config: FeatureConfig | None = None):
        self.dir = Path(shard_dir)
        self.summary, index = load_index(self.dir)
        stored = FeatureConfig.from_dict(self.summary["feature_config"])
        self.feature_config = feature_config or stored
        if self.summary["labels"] != LABELS:
            raise DataError(f"{self.dir}: made with labels {self.summary['labels']!r}, "
                             f"this ds2stream uses {LABELS!r}; shard the data again")
        self.use_stored_features = self.summary["features"] and stored == self.feature_config
        self.ids = index.column("id")  # kept in Arrow: no Python objects for workers to copy
        self.shard = index.column("shard").to_numpy()
        self.row = index.column("row").to_numpy()
        self.num_samples = index.column("num_samples").to_numpy()
        self.num_chars = index.column("num_chars").to_numpy()
        self.frames = self.feature_config.num_frames(self.num_samples)
        self._tables: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def content_id(self) -> str:
        """A digest of the shards' checksums: the same for the same utterances, wherever the set lies."""
        digest = hashlib.sha256()
        for info in self.summary["shards"]:
            digest.update(info["sha256"].encode())
        return digest.hexdigest()[:16]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tables"] = {}  # each process maps the shards itself
        return state

    @functools.cached_property
    def ctc_lengths(self) -> np.ndarray:
        """Output frames each transcript needs under CTC (reads only the text columns)."""
        needed = np.zeros(len(self), dtype=np.int64)
        for shard in np.unique(self.shard):
            at = np.flatnonzero(self.shard == shard)
            texts = self._table(int(shard)).column("text").take(self.row[at]).to_pylist()
            needed[at] = [ctc_min_frames(text) for text in texts]
        return needed

    def _table(self, shard: int):
        if shard not in self._tables:  # opened per process: workers map the files themselves
            self._tables[shard] = read_shard(self.dir / self.summary["shards"][shard]["file"])
        return self._tables[shard]

    def record(self, position: int) -> dict:
        """The stored row of the utterance at index position (audio bytes are a view of the map)."""
        table = self._table(int(self.shard[position]))
        return table.slice(int(self.row[position]), 1).to_pylist()[0]

    def text(self, position: int) -> str:
        """The normalised transcript of one utterance (reads only the text column)."""
        return self._table(int(self.shard[position])).column("text")[int(self.row[position])].as_py()

    def samples(self, position: int) -> tuple[np.ndarray, str]:
        """(int16 samples, normalised text) of one utterance."""
        record = self.record(position)
        return decode_samples(record, self.summary["audio_format"]), record["text"]

    def features(self, position: int) -> tuple[np.ndarray, str]:
        """(spectrogram (num_bins, frames) float32, normalised text) of one utterance."""
        record = self.record(position)
        if self.use_stored_features:
            spect = np.frombuffer(record["features"], dtype=np.float16)
            spect = spect.reshape(self.feature_config.num_bins, record["num_frames"]).astype(np.float32)
        else:
            spect = spectrogram(decode_samples(record, self.summary["audio_format"]), self.feature_config)
        return spect, record["text"]


def decode_samples(record: dict, audio_format: str) -> np.ndarray:
    if audio_format == "pcm16":
        return np.frombuffer(audio_bytes(record), dtype="<i2")
    from ..data.audio import read_audio

    return read_audio(audio_bytes(record), name=record["id"])[0]


def with_global_statistics(config: FeatureConfig, shard_dir: Path, workers: int = 2) -> FeatureConfig:
    """``config`` (normalize "global") with each feature row's mean and std over every frame of every
    utterance of the shard set: unaugmented audio, as recognition will see it. Sums in float64 in
    the utterances' order, so the same shards give the same numbers on every rank and every run."""
    raw = config.unnormalized
    shards = ShardSet(shard_dir, raw)

    def moments(position: int) -> tuple[int, np.ndarray, np.ndarray]:
        spect = spectrogram(shards.samples(position)[0], raw).astype(np.float64)
        return spect.shape[1], spect.sum(axis=1), np.square(spect).sum(axis=1)

    frames, total, squares = 0, np.zeros(raw.num_bins), np.zeros(raw.num_bins)
    with ThreadPoolExecutor(max(1, workers)) as pool:  # the kernel releases the GIL
        for n, row_sum, row_squares in pool.map(moments, range(len(shards))):
            frames, total, squares = frames + n, total + row_sum, squares + row_squares
    if frames == 0:
        raise DataError(f"{shard_dir}: no utterance to compute the global feature statistics from")
    mean = total / frames
    std = np.sqrt(np.maximum(squares / frames - np.square(mean), 0.0))
    return dataclasses.replace(config, normalize=Normalize.GLOBAL, global_mean=tuple(mean),
                               global_std=tuple(np.maximum(std, STD_FLOOR)))
