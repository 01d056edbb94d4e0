"""How to train: ``TrainConfig``, saved in the run directory and in every checkpoint, and ``Preset``,
a model with its training defaults (the named ones: ``ds2stream.presets``)."""
from __future__ import annotations

import dataclasses
import enum

from .._config import config_from_dict, enum_choice
from ..errors import ConfigError
from ..features import FeatureConfig
from ..model import ModelConfig
from ..pipeline.augment import AugmentConfig
from ..pipeline.buckets import BatchMode

#: The TrainConfig fields that decide which utterances form each batch, in which order (with the
#: number of ranks and the shard set's content; ``speeds`` is ``augment.speeds``): a resume that
#: changes one would not continue the run it claims to continue, so it is refused unless asked
#: for (``--allow-plan-change``).
PLAN_FIELDS = ("seed", "num_buckets", "max_frames", "batch_mode", "sortagrad", "max_duration", "speeds")


#: The epochs of a run whose budget of minutes ends it (a linear schedule given --max-minutes):
#: the preset's epochs would otherwise stop it early, its rate far from 0 on a fast machine.
EPOCHS_UNTIL_BUDGET = 1_000_000


class LRSchedule(str, enum.Enum):
    """The learning rate after warm-up."""

    EXPONENTIAL = "exponential"  # lr_decay_per_epoch per epoch of steps
    # From the peak to 0 at the end of the run (schedule_minutes of training steps, else `epochs`):
    # a schedule that ends with the budget, as budgeted training does (Li et al., ICLR 2020).
    LINEAR = "linear"


class BestBy(str, enum.Enum):
    """Which dev error rate picks best.ckpt."""

    WER = "wer"
    # While words are still mostly wrong: at 80 % WER one checkpoint's WER against another's is
    # noise, their CER is not.
    CER = "cer"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train. Saved in the run directory and in every checkpoint."""

    epochs: int = 10
    learning_rate: float = 3e-4  # peak, reached after warm-up
    warmup_steps: int = 500  # linear warm-up from learning_rate / warmup_steps
    lr_schedule: LRSchedule = LRSchedule.EXPONENTIAL
    lr_decay_per_epoch: float = 0.9  # exponential decay after warm-up, per epoch of steps
    schedule_minutes: float | None = None  # "linear": the run's budget of step minutes (train --max-minutes)
    clip_norm: float = 400.0  # global gradient norm
    # Decoupled weight decay (AdamW, Loshchilov & Hutter 2019): every step each weight matrix and
    # kernel (not biases or norms) shrinks by learning rate x weight_decay before Adam's update.
    weight_decay: float = 0.0
    max_frames: int = 10000  # padded feature frames per batch (rows x bucket frames)
    num_buckets: int = 16
    sortagrad: bool = True  # the first epoch goes shortest bucket first
    seed: int = 0
    checkpoint_every: int = 500  # steps; and at every epoch end
    keep_last: int = 3  # step checkpoints kept (best.ckpt is kept apart); 0 keeps every one
    guard_patience: int = 5  # failed steps in a row before going back to the last checkpoint
    workers: int = 1  # reader worker processes
    batch_mode: BatchMode = BatchMode.BUCKETED
    max_duration: float | None = None  # seconds; longer utterances are left out (counted)
    augment: AugmentConfig = AugmentConfig()  # in the reader's workers; off unless a preset or a flag says
    best_by: BestBy = BestBy.WER
    # The features the model learns from, computed from the shards' audio; None: the ones the
    # shards were made with (ds2stream shard's default, DeepSpeech2's linear spectrogram).
    features: FeatureConfig | None = None
    # One training graph for every batch shape (batch rows and frames left open) instead of one
    # graph per bucket shape: each static graph keeps its own buffers, so memory grew with the
    # number of buckets (24 GB with 13 shapes of `fast`).
    dynamic_shapes: bool = True

    def __post_init__(self):
        if isinstance(self.augment, dict):  # read back from config.json or a checkpoint
            object.__setattr__(self, "augment", AugmentConfig.from_dict(self.augment))
        if isinstance(self.features, dict):
            object.__setattr__(self, "features", FeatureConfig.from_dict(self.features))
        if self.keep_last < 0:
            raise ConfigError(f"keep_last must be a count of checkpoints, or 0 to keep every one; got {self.keep_last}")
        # config.json holds their strings
        for field, kind in (("lr_schedule", LRSchedule), ("batch_mode", BatchMode), ("best_by", BestBy)):
            object.__setattr__(self, field, enum_choice(kind, getattr(self, field), field))
        if self.schedule_minutes is not None and self.schedule_minutes <= 0:
            raise ConfigError(f"schedule_minutes must be positive minutes, got {self.schedule_minutes}")
        if self.weight_decay < 0 or self.weight_decay * self.learning_rate >= 1:  # else it zeroes or flips
            raise ConfigError(f"weight_decay must be 0 or more, and times the learning rate "
                              f"({self.learning_rate:g}) below 1; got {self.weight_decay}")
        if self.max_duration is not None and self.max_duration <= 0:
            raise ConfigError(f"max_duration must be positive seconds, got {self.max_duration}")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "features": self.features.to_dict() if self.features else None,
                "lr_schedule": self.lr_schedule.value, "batch_mode": self.batch_mode.value,
                "best_by": self.best_by.value}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return config_from_dict(cls, data)

    def learning_rate_at(self, step: int, steps_per_epoch: int, train_seconds: float = 0.0) -> float:
        """Linear warm-up to ``learning_rate``, then the decay ``lr_schedule`` names.

        :param train_seconds: the run's summed step seconds before this step (``linear`` with
            ``schedule_minutes`` reads its progress from them).
        """
        warm = self.learning_rate * (step + 1) / self.warmup_steps if step < self.warmup_steps else self.learning_rate
        if self.lr_schedule is LRSchedule.LINEAR:
            done = step / max(self.epochs * steps_per_epoch, 1)
            if self.schedule_minutes is not None:
                done = max(done, train_seconds / (60 * self.schedule_minutes))
            return min(warm, self.learning_rate * max(0.0, 1.0 - done))
        if step < self.warmup_steps:
            return warm
        epochs_after = (step - self.warmup_steps) / max(steps_per_epoch, 1)
        return self.learning_rate * self.lr_decay_per_epoch ** epochs_after


@dataclasses.dataclass(frozen=True)
class Preset:
    """A model and its training defaults under one name: what a new run starts from."""

    name: str
    model: ModelConfig
    train: TrainConfig
