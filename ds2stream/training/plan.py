"""The batch plan of a training run: which batches each rank trains on, what decides them (the
fingerprint a resume is checked against), and where a resume goes on when the plan changed."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..model import ModelConfig
from ..pipeline import Augmenter, BatchMode, BatchSampler, BatchSource, ShardSet
from ..pipeline.augment import speed_samples
from .config import PLAN_FIELDS, TrainConfig


class PlanChangedError(ConfigError):
    """A resume whose settings would change the batch plan of the run it continues."""


def make_sampler(shards: ShardSet, model_config: ModelConfig, config: TrainConfig, rank: int = 0,
                 world_size: int = 1) -> BatchSampler:
    """Rank ``rank``'s batches of a training run: every rank plans the same global batches and
    takes its own rows of each (pipeline.BatchSampler)."""
    sizing = {"max_frames": config.max_frames}
    if config.batch_mode is not BatchMode.BUCKETED:  # a batch size from the same budget
        sizing = {"batch_size": max(1, config.max_frames // int(np.median(shards.frames)) // 2)}
    longest = None
    if config.max_duration is not None:
        fc = shards.feature_config
        longest = int(fc.num_frames(int(config.max_duration * fc.sample_rate)))
    speeds = config.augment.speeds
    speed_frames = [shards.feature_config.num_frames(speed_samples(shards.num_samples, f)) for f in speeds]
    return BatchSampler(shards.frames, shards.num_chars, shards.shard, mode=config.batch_mode,
                        num_buckets=config.num_buckets, seed=config.seed, rank=rank, world_size=world_size,
                        sortagrad=config.sortagrad, output_lengths=model_config.output_lengths,
                        ctc_lengths=shards.ctc_lengths, max_utterance_frames=longest, speeds=speeds,
                        speed_frames=speed_frames, **sizing)


def make_source(shards: ShardSet, model_config: ModelConfig, config: TrainConfig, rank: int = 0,
                world_size: int = 1) -> BatchSource:
    """Rank ``rank``'s training batches, augmented as ``config.augment`` says."""
    augmenter = Augmenter(config.augment, shards.feature_config, config.seed) if config.augment.enabled else None
    return BatchSource(shards, make_sampler(shards, model_config, config, rank, world_size),
                       model_config.output_lengths, augmenter)


def resume_position(step: int, saved_steps_per_epoch: int | None, steps_per_epoch: int) -> int:
    """The step to go on from after the batch plan changed (e.g. another number of ranks): the same
    fraction of the epoch."""
    if not saved_steps_per_epoch:
        return 0
    return min(steps_per_epoch, step * steps_per_epoch // saved_steps_per_epoch)


def plan_fingerprint(config: TrainConfig, world_size: int, shards: ShardSet) -> dict:
    """What decides the batches of every epoch: a resume must not change it unnoticed."""
    settings = {**config.to_dict(), "speeds": list(config.augment.speeds)}
    return {**{name: settings[name] for name in PLAN_FIELDS}, "world_size": world_size,
            "shard_set": shards.content_id}


def plan_changes(now: dict, meta: dict) -> list[str]:
    """'field saved -> now' for each setting of the batch plan that differs from the checkpoint's."""
    saved = dict(meta.get("plan") or {})
    if not saved:  # an older checkpoint: only the number of ranks was recorded
        saved = {"world_size": meta.get("world_size", 1)}
    return [f"{name} {saved[name]!r} -> {now[name]!r}" for name in now if name in saved and saved[name] != now[name]]
