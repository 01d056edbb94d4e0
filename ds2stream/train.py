"""Training DeepSpeech2 from shards: graph mode, bucketed shapes, a guard against non-finite steps,
atomic checkpoints and exact resume.

A run directory holds:
  ``config.json``               model, train and feature configs, label set, shard folders;
  ``metrics.jsonl``             one JSON line per step, per epoch and per event (non-finite, kernel
                                error, rollback, checkpoint, resume), each with its ``global_step``;
  ``checkpoints/step-N.ckpt``   model + Adam state + the position in the data and the fingerprint of
                                the batch plan (keep the last k), CRC-checked;
  ``best.ckpt``                 the checkpoint with the lowest dev WER (with ``--dev-shards``).

After a ``kill -9`` anywhere, ``--resume`` continues from the newest checkpoint that reads back
whole (a truncated or corrupt newer one is set aside as ``.corrupt``, with a warning), drops the
metric lines of the steps it will redo, and puts back ``best.ckpt`` if the kill fell between
checkpointing a better epoch and copying it. Every file is written to a temporary name, fsynced
and renamed (and the folder fsynced), so a crash leaves the old file or the new one, never half.

The zoo's training mistakes, and what happens here instead: its LR schedule was computed and never
applied (here :meth:`TrainConfig.learning_rate_at` sets Adam's rate every step); Adam ran with
``loss_scale=1024`` on an unscaled loss, shrinking every update 1024x (here no loss scale); no
gradient clipping (here global-norm clipping); a NaN/inf loss killed the run (here the step is
skipped, counted and logged with its utterance ids, the BatchNorm statistics it touched restored,
and after ``guard_patience`` such steps in a row the run halves the learning rate and goes back to
the last checkpoint). Nothing non-finite is ever written to the weights.

Data parallel (``--distributed``, under msrun): every rank builds the same model from the same
seed, trains its own rows of each global batch (``make_sampler``), and the step combines the
ranks' gradients into the global batch's mean (``build_train_step``); rank 0 alone writes the run
directory, which every rank must see (checkpoints are read back for rollbacks and resumes).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._config import config_from_dict
from .failpoints import failpoint
from .features import FeatureConfig
from .model import ModelConfig, build_model
from .pipeline import BatchMode, BatchSampler, BatchSource, EpochIterator, ShardSet
from .text import BLANK_INDEX, LABELS

log = logging.getLogger(__name__)

META_KEY = "ds2stream_meta"
#: The batch columns the compiled step takes, in its order (then the learning rate).
STEP_INPUTS = ("features", "feature_lengths", "labels", "label_lengths", "mask")
CHECKPOINT_FORMAT = 1
#: The TrainConfig fields that decide which utterances form each batch, in which order (with the
#: number of ranks and the shard set's content): a resume that changes one would not continue the
#: run it claims to continue, so it is refused unless asked for (``--allow-plan-change``).
PLAN_FIELDS = ("seed", "num_buckets", "max_frames", "batch_mode", "sortagrad", "max_duration")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train. Saved in the run directory and in every checkpoint."""

    epochs: int = 10
    learning_rate: float = 3e-4  # peak, reached after warm-up
    warmup_steps: int = 500  # linear warm-up from learning_rate / warmup_steps
    lr_decay_per_epoch: float = 0.9  # exponential decay after warm-up, per epoch of steps
    clip_norm: float = 400.0  # global gradient norm
    max_frames: int = 10000  # padded feature frames per batch (rows x bucket frames)
    num_buckets: int = 16
    sortagrad: bool = True  # the first epoch goes shortest bucket first
    seed: int = 0
    checkpoint_every: int = 500  # steps; and at every epoch end
    keep_last: int = 3  # step checkpoints kept (best.ckpt is kept apart); 0 keeps every one
    guard_patience: int = 5  # failed steps in a row before going back to the last checkpoint
    workers: int = 1  # reader worker processes
    batch_mode: str = "bucketed"  # or "unbucketed" (pipeline.BatchMode)
    max_duration: float | None = None  # seconds; longer utterances are left out (counted)

    def __post_init__(self):
        if self.keep_last < 0:
            raise ValueError(f"keep_last must be a count of checkpoints, or 0 to keep every one; got {self.keep_last}")
        if self.max_duration is not None and self.max_duration <= 0:
            raise ValueError(f"max_duration must be positive seconds, got {self.max_duration}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return config_from_dict(cls, data)

    def learning_rate_at(self, step: int, steps_per_epoch: int) -> float:
        """Linear warm-up to ``learning_rate``, then ``lr_decay_per_epoch`` per epoch of steps."""
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        epochs_after = (step - self.warmup_steps) / max(steps_per_epoch, 1)
        return self.learning_rate * self.lr_decay_per_epoch ** epochs_after


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here: unreadable, or made for another model or label set."""


class PlanChangedError(ValueError):
    """A resume whose settings would change the batch plan of the run it continues."""


# ---------------------------------------------------------------- MindSpore pieces

def use_graph_mode(graph: bool = True) -> None:
    import mindspore as ms

    try:
        ms.set_device("CPU")
    except RuntimeError:  # allowed only before the first kernel ran; by then the device is chosen
        if ms.get_current_device()[0] != "CPU":
            raise
    ms.set_context(mode=ms.GRAPH_MODE if graph else ms.PYNATIVE_MODE)


def build_train_step(network, config: TrainConfig, world_size: int = 1):
    """The compiled training step: CTC loss, gradients (combined across ranks when distributed),
    global-norm clipping and an Adam update that only happens when loss and gradients are finite.

    Call as ``step(features, feature_lengths, labels, label_lengths, mask, learning_rate)`` ->
    ``(loss, grad_norm, finite)``. The learning rate is an input assigned inside the graph: a
    ``Parameter.set_data`` from Python after compilation does not reach a compiled graph (measured:
    the rate stayed at its first value, the zoo's "schedule computed but never applied" again).

    With ``world_size`` > 1 (under msrun, after :func:`init_distributed`) each rank weights its
    loss and gradients by its share of the global batch's real rows and the ranks sum them: the
    loss and gradients of the masked mean over the *global* batch, even when the ranks hold
    different numbers of real rows (filler rows, mask 0, at the end of an epoch). Every rank gets
    the same sum, so every rank takes the same decision and the same update. The two halves,
    ``loss_and_grads`` and ``update``, are cells of their own so that a test can replay a
    distributed step in one process.
    """
    import mindspore as ms
    from mindspore import nn, ops

    class NetWithLoss(nn.Cell):
        """Masked mean over the batch of CTC loss per label: filler rows (mask 0) never count."""

        def __init__(self):
            super().__init__(auto_prefix=False)
            self.network = network
            self.ctc = nn.CTCLoss(blank=BLANK_INDEX, reduction="none", zero_infinity=False)

        def construct(self, features, feature_lengths, labels, label_lengths, mask):
            log_probs, output_lengths = self.network(features, feature_lengths)
            losses = self.ctc(log_probs, labels, output_lengths, label_lengths)
            per_label = losses / ops.maximum(label_lengths.astype(ms.float32), 1.0)
            return (per_label * mask).sum() / ops.maximum(mask.sum(), 1.0)

    class LossAndGrads(nn.Cell):
        """(loss, gradients of the trainable weights) of one batch on one rank."""

        def __init__(self, net_with_loss, weights):
            super().__init__(auto_prefix=False)
            self.net_with_loss, self.weights = net_with_loss, weights
            self.grad = ops.GradOperation(get_by_list=True)

        def construct(self, features, feature_lengths, labels, label_lengths, mask):
            loss = self.net_with_loss(features, feature_lengths, labels, label_lengths, mask)
            grads = self.grad(self.net_with_loss, self.weights)(features, feature_lengths, labels, label_lengths,
                                                                mask)
            return loss, grads

    class Update(nn.Cell):
        """Global-norm clipping and Adam, skipped (nothing written) unless loss and norm are finite."""

        def __init__(self, optimizer):
            super().__init__(auto_prefix=False)
            self.optimizer, self.clip_norm = optimizer, config.clip_norm

        def construct(self, loss, grads, learning_rate):
            loss = ops.depend(loss, ops.assign(self.optimizer.learning_rate, learning_rate))
            norm = ops.sqrt(ops.addn([ops.square(g).sum() for g in grads]))
            finite = ops.logical_and(ops.isfinite(loss), ops.isfinite(norm))
            if finite:
                scale = self.clip_norm / ops.maximum(norm, self.clip_norm)
                grads = tuple(g * scale for g in grads)
                loss = ops.depend(loss, self.optimizer(grads))
            return loss, norm, finite

    class TrainStep(nn.Cell):
        def __init__(self, loss_and_grads, update):
            super().__init__(auto_prefix=False)
            self.loss_and_grads, self.update = loss_and_grads, update
            self.distributed = world_size > 1
            if self.distributed:
                self.reducer = nn.DistributedGradReducer(loss_and_grads.weights, mean=False)  # a sum
                self.all_reduce = ops.AllReduce()

        def construct(self, features, feature_lengths, labels, label_lengths, mask, learning_rate):
            loss, grads = self.loss_and_grads(features, feature_lengths, labels, label_lengths, mask)
            if self.distributed:
                rows = mask.sum()
                share = rows / ops.maximum(self.all_reduce(rows), 1.0)
                grads = self.reducer(tuple(g * share for g in grads))
                loss = self.all_reduce(loss * share)
            return self.update(loss, grads, learning_rate)

    optimizer = nn.Adam(network.trainable_params(), learning_rate=config.learning_rate, loss_scale=1.0)
    return TrainStep(LossAndGrads(NetWithLoss(), optimizer.parameters), Update(optimizer))


# ---------------------------------------------------------------- checkpoints

def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries (a rename), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp: Path, path: Path) -> None:
    """Rename a complete ``tmp`` over ``path`` so that a crash leaves one or the other, whole."""
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent)


def write_text_durably(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    replace_durably(tmp, path)


def save_checkpoint(cell, path: Path, meta: dict) -> None:
    """Every parameter of ``cell`` plus ``meta`` (JSON) in one file with a CRC, written durably."""
    import mindspore as ms

    tmp = path.with_name(path.stem + ".tmp.ckpt")
    ms.save_checkpoint(cell, str(tmp), append_dict={META_KEY: json.dumps(meta)}, crc_check=True)
    failpoint("checkpoint_written")
    replace_durably(tmp, path)


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    """(parameters by name, ds2stream metadata or {} for a zoo checkpoint); CheckpointError if the
    file is missing, truncated or corrupt (its CRC, for checkpoints written with one)."""
    import mindspore as ms

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        params = ms.load_checkpoint(str(path), crc_check=True)
    except (ValueError, RuntimeError, OSError, TypeError) as err:
        reason = " ".join(str(err).split())[:200]
        raise CheckpointError(f"{path}: not a readable MindSpore checkpoint, truncated or corrupt ({reason})") from None
    meta = params.pop(META_KEY, None)
    try:
        return params, (json.loads(str(meta)) if meta is not None else {})
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: its ds2stream metadata is not valid JSON") from None


def load_weights(network, params: dict, source: Path, strict: bool = True) -> list[str]:
    """Copy the network's parameters from a checkpoint's; checks names and shapes.

    :param strict: every network parameter must be there (False: missing ones keep their values).
    :return: the checkpoint's names the network does not have (e.g. Adam state of a zoo checkpoint).
    """
    import mindspore as ms

    own = {p.name: p for p in network.get_parameters()}
    missing = sorted(set(own) - set(params))
    if strict and missing:
        raise CheckpointError(f"{source}: lacks {len(missing)} parameters of this model (first: {missing[0]}); "
                              f"it was made for another preset or model config")
    wrong = [f"{n} {tuple(params[n].shape)} != {tuple(own[n].shape)}" for n in own
             if n in params and tuple(params[n].shape) != tuple(own[n].shape)]
    if wrong:
        raise CheckpointError(f"{source}: {len(wrong)} parameters have other shapes than this model "
                              f"(first: {wrong[0]}); it was made for another preset or model config")
    ms.load_param_into_net(network, {n: params[n] for n in own if n in params}, strict_load=False)
    return sorted(set(params) - set(own))


def check_meta(meta: dict, source: Path, feature_config: FeatureConfig | None = None) -> None:
    """A ds2stream checkpoint must share the label set (and the feature config, when given)."""
    if meta.get("labels", LABELS) != LABELS:
        raise CheckpointError(f"{source}: made with labels {meta['labels']!r}, this ds2stream uses {LABELS!r}")
    if feature_config is not None and "feature_config" in meta:
        theirs = FeatureConfig.from_dict(meta["feature_config"])
        if theirs != feature_config:
            raise CheckpointError(f"{source}: trained on features {theirs.to_dict()}, these shards have "
                                  f"{feature_config.to_dict()}; shard the data with the checkpoint's config")


def load_model(checkpoint: Path):
    """Build the network a ds2stream checkpoint describes and load its weights, in eval mode."""
    params, meta = read_checkpoint(checkpoint)
    if "model_config" not in meta:
        raise CheckpointError(f"{checkpoint}: no ds2stream metadata (a zoo checkpoint? "
                              f"use `ds2stream train --preset zoo --pretrained` to start from it)")
    check_meta(meta, checkpoint)
    network = build_model(ModelConfig.from_dict(meta["model_config"]))
    load_weights(network, params, checkpoint)
    network.set_train(False)
    return network, meta


# ---------------------------------------------------------------- the run

def make_sampler(shards: ShardSet, model_config: ModelConfig, config: TrainConfig, rank: int = 0,
                 world_size: int = 1) -> BatchSampler:
    """Rank ``rank``'s batches of a training run: every rank plans the same global batches and
    takes its own rows of each (pipeline.BatchSampler)."""
    sizing = {"max_frames": config.max_frames}
    if BatchMode(config.batch_mode) is not BatchMode.BUCKETED:  # a batch size from the same budget
        sizing = {"batch_size": max(1, config.max_frames // int(np.median(shards.frames)) // 2)}
    longest = None
    if config.max_duration is not None:
        fc = shards.feature_config
        longest = int(fc.num_frames(int(config.max_duration * fc.sample_rate)))
    return BatchSampler(shards.frames, shards.num_chars, shards.shard, mode=config.batch_mode,
                        num_buckets=config.num_buckets, seed=config.seed, rank=rank, world_size=world_size,
                        sortagrad=config.sortagrad, output_lengths=model_config.output_lengths,
                        ctc_lengths=shards.ctc_lengths, max_utterance_frames=longest, **sizing)


@dataclasses.dataclass
class RunState:
    """Where a run is: saved in every checkpoint, so that a resumed run continues exactly."""

    epoch: int = 0
    step: int = 0  # the next batch of the epoch
    global_step: int = 0  # batches consumed, skipped ones included
    lr_scale: float = 1.0  # halved by every rollback
    skipped: int = 0  # steps without an update (non-finite or a kernel error), total
    best_wer: float | None = None
    best_step: int | None = None  # the global step whose checkpoint is best.ckpt


class StepResult(NamedTuple):
    loss: float
    grad_norm: float
    finite: bool  # the update was applied
    error: str | None = None  # MindSpore's kernel error, when the step could not run


def kernel_error_summary(err: Exception) -> str:
    """The informative lines of a MindSpore RuntimeError (its message is framed by rulers and a
    C++ call stack)."""
    lines = []
    for line in str(err).splitlines():
        line = line.strip()
        if line.startswith("- C++ Call Stack"):
            break
        if line and not line.startswith("---") and not line.startswith("- "):
            lines.append(line)
    return " ".join(lines)[:300] or type(err).__name__


class Trainer:
    """Trains one model on one shard set, writing a run directory.

    :param rank, world_size: data-parallel position (msrun); only rank 0 writes anything.
    """

    def __init__(self, run_dir: Path, shard_dir: Path, model_config: ModelConfig, config: TrainConfig,
                 dev_shard_dir: Path | None = None, rank: int = 0, world_size: int = 1, progress: bool = True):
        import mindspore as ms

        self.run_dir, self.config = Path(run_dir), config
        self.rank, self.world_size, self.progress = rank, world_size, progress
        self.shards = ShardSet(shard_dir)
        if len(self.shards) == 0:
            raise ValueError(f"{shard_dir}: the shard set holds no utterance (see `ds2stream info {shard_dir} "
                             f"--problems`)")
        self.dev = ShardSet(dev_shard_dir) if dev_shard_dir else None
        if self.dev is not None and len(self.dev) == 0:
            raise ValueError(f"{dev_shard_dir}: the dev shard set holds no utterance")
        self.feature_config = self.shards.feature_config
        if self.dev is not None and self.dev.feature_config != self.feature_config:
            raise ValueError(f"{dev_shard_dir}: made with features {self.dev.feature_config.to_dict()}, "
                             f"the training shards with {self.feature_config.to_dict()}")
        self.model_config = dataclasses.replace(model_config, num_bins=self.feature_config.num_bins)
        self.shard_dirs = {"train": str(Path(shard_dir).resolve()),
                           "dev": str(Path(dev_shard_dir).resolve()) if dev_shard_dir else None}
        ms.set_seed(config.seed)
        self.network = build_model(self.model_config)
        self.step_cell = build_train_step(self.network, config, world_size=world_size)
        self.sampler = make_sampler(self.shards, self.model_config, config, rank, world_size)
        self.source = BatchSource(self.shards, self.sampler, self.model_config.output_lengths)
        self.steps_per_epoch = len(self.sampler)
        self.state = RunState()
        self._moving_stats = [p for p in self.network.get_parameters() if "moving_" in p.name]
        self._snapshot = self._stats_snapshot()
        self._metrics = None

    # -- files
    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def plan_fingerprint(self) -> dict:
        """What decides the batches of every epoch: a resume must not change it unnoticed."""
        return {**{name: getattr(self.config, name) for name in PLAN_FIELDS}, "world_size": self.world_size,
                "shard_set": self.shards.content_id}

    def _meta(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "labels": LABELS, "model_config": self.model_config.to_dict(),
                "train_config": self.config.to_dict(), "feature_config": self.feature_config.to_dict(),
                "state": dataclasses.asdict(self.state), "world_size": self.world_size,
                "steps_per_epoch": self.steps_per_epoch, "plan": self.plan_fingerprint()}

    def _write_config(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "checkpoints").mkdir(exist_ok=True)
        config = {**{k: v for k, v in self._meta().items() if k != "state"}, "shards": self.shard_dirs}
        write_text_durably(self.run_dir / "config.json", json.dumps(config, indent=1))

    def _log(self, record: dict) -> None:
        if not self.is_writer:
            return
        if self._metrics is None:
            self._metrics = open(self.run_dir / "metrics.jsonl", "a")
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()

    def _truncate_metrics(self, global_step: int) -> int:
        """Keep the metric lines of the first ``global_step`` steps (a resume redoes the rest, and a
        kill may have torn the last line); returns how many lines were dropped."""
        path = self.run_dir / "metrics.jsonl"
        if not self.is_writer or not path.exists():
            return 0
        lines = path.read_text().splitlines()
        kept = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("global_step", 0) <= global_step:
                kept.append(line)
        if len(kept) < len(lines):
            write_text_durably(path, "".join(line + "\n" for line in kept))
        return len(lines) - len(kept)

    def checkpoints(self) -> list[Path]:
        return sorted((self.run_dir / "checkpoints").glob("step-*[0-9].ckpt"))

    def save(self) -> Path | None:
        """Rank 0 writes a checkpoint; every rank waits for it, so that a rollback or a resume on
        any rank reads the same newest checkpoint."""
        path = None
        if self.is_writer:
            path = self.run_dir / "checkpoints" / f"step-{self.state.global_step:08d}.ckpt"
            # Logged first: a kill before the rename leaves a line past the resumed step, dropped then.
            self._log({"event": "checkpoint", "path": str(path), "global_step": self.state.global_step})
            save_checkpoint(self.step_cell, path, self._meta())
            failpoint("checkpoint_renamed")
            if self.config.keep_last > 0:
                for old in self.checkpoints()[:-self.config.keep_last]:
                    old.unlink()
        self._barrier()
        return path

    def _save_best(self, path: Path) -> None:
        tmp = self.run_dir / "best.tmp.ckpt"
        shutil.copyfile(path, tmp)
        replace_durably(tmp, self.run_dir / "best.ckpt")

    def _barrier(self) -> None:
        if self.world_size > 1:
            from mindspore.mint.distributed import barrier

            barrier()

    def _require_shared_run_dir(self, found: Path) -> None:
        """Ranks > 0 read rank 0's checkpoints (resume, rollback): the run directory must be theirs too."""
        if not found.exists():
            raise ValueError(f"rank {self.rank} cannot see {found}: a distributed run's directory must be on a "
                             f"filesystem shared by every rank (e.g. NFS), since ranks > 0 read rank 0's checkpoints")

    def _newest_valid_checkpoint(self) -> tuple[Path, dict, dict] | None:
        """(path, parameters, metadata) of the newest checkpoint that reads back whole. Newer ones
        that do not (a kill or a disk fault) are set aside as ``.corrupt`` with a warning."""
        for path in reversed(self.checkpoints()):
            try:
                params, meta = read_checkpoint(path)
            except CheckpointError as err:
                log.warning("%s; going back to the checkpoint before it", err)
                if self.is_writer:
                    path.rename(path.with_name(path.name + ".corrupt"))
                continue
            return path, params, meta
        return None

    # -- starting points
    def start_new(self, pretrained: Path | None = None) -> None:
        """A fresh run (refuses a run directory that has checkpoints); optionally start from weights."""
        if self.run_dir.exists() and any((self.run_dir / "checkpoints").glob("*.ckpt")):
            raise ValueError(f"{self.run_dir} already holds a run; continue it with --resume, or use another --out")
        if pretrained is not None:
            params, meta = read_checkpoint(pretrained)
            check_meta(meta, pretrained, self.feature_config)
            skipped = load_weights(self.network, params, pretrained)
            log.info("loaded %s; not used: %d entries (optimizer state is not carried over)", pretrained, len(skipped))
        self._snapshot = self._stats_snapshot()
        if self.is_writer:
            self._write_config()
            stale = self.run_dir / "metrics.jsonl"  # of an attempt that stopped before its first checkpoint
            if stale.exists():
                log.warning("%s: starting again; the metrics of the attempt that stopped before its first "
                            "checkpoint are discarded", self.run_dir)
                stale.unlink()
        self._barrier()
        self._require_shared_run_dir(self.run_dir / "config.json")

    def resume(self, allow_plan_change: bool = False) -> None:
        """Continue from the newest valid checkpoint: weights, Adam state and the data position.

        :param allow_plan_change: go on even if the batch plan's settings differ from the
            checkpoint's (then at the same fraction of the epoch); otherwise PlanChangedError.
        """
        self._require_shared_run_dir(self.run_dir / "config.json")
        found = self._newest_valid_checkpoint()
        if found is None:
            raise ValueError(f"{self.run_dir}: no checkpoint to resume from (it stopped before its first one); "
                             f"start it again with the command that started it")
        path, params, meta = found
        check_meta(meta, path, self.feature_config)
        if ModelConfig.from_dict(meta["model_config"]) != self.model_config:
            raise CheckpointError(f"{path}: made for another model config")
        changed = self._plan_changes(meta)
        if changed and not allow_plan_change:
            raise PlanChangedError(
                f"{path}: resuming with {'; '.join(changed)} would change the batch plan of the run it continues; "
                f"resume with the run's own settings, or pass --allow-plan-change to go on at the same fraction "
                f"of the epoch")
        load_weights(self.step_cell, params, path)
        self.state = RunState(**meta["state"])
        if changed:
            self.state.step = resume_position(self.state.step, meta.get("steps_per_epoch"), self.steps_per_epoch)
            log.warning("%s: %s; the epoch goes on from step %d of %d (the same fraction), not exactly where it "
                        "stopped", path, "; ".join(changed), self.state.step, self.steps_per_epoch)
        self._snapshot = self._stats_snapshot()
        if self.is_writer:
            for tmp in self.run_dir.glob("**/*.tmp*"):
                tmp.unlink()
            dropped = self._truncate_metrics(self.state.global_step)
            if self.state.best_step is not None and self.state.best_step == self.state.global_step:
                self._save_best(path)  # the kill may have come before best.ckpt was replaced
            self._write_config()
            self._log({"event": "resume", "checkpoint": str(path), "global_step": self.state.global_step,
                       "metric_lines_dropped": dropped})
        self._barrier()
        log.info("resuming %s at epoch %d, step %d", path, self.state.epoch, self.state.step)

    def _plan_changes(self, meta: dict) -> list[str]:
        """'field saved -> now' for each setting of the batch plan that differs from the checkpoint's."""
        saved = dict(meta.get("plan") or {})
        if not saved:  # an older checkpoint: only the number of ranks was recorded
            saved = {"world_size": meta.get("world_size", 1)}
        now = self.plan_fingerprint()
        return [f"{name} {saved[name]!r} -> {now[name]!r}" for name in now
                if name in saved and saved[name] != now[name]]

    # -- the guard
    def _stats_snapshot(self) -> list[np.ndarray]:
        return [p.asnumpy().copy() for p in self._moving_stats]

    def _restore_stats(self) -> None:
        from mindspore import Tensor

        for param, value in zip(self._moving_stats, self._snapshot):
            param.set_data(Tensor(value))

    def _rollback(self) -> None:
        """Too many failed steps in a row: halve the learning rate, go back to the last checkpoint."""
        self.state.lr_scale *= 0.5
        found = self._newest_valid_checkpoint()
        if found:
            path, params, _ = found
            load_weights(self.step_cell, params, path)
            self._snapshot = self._stats_snapshot()
        self._log({"event": "rollback", "checkpoint": str(found[0]) if found else None,
                   "lr_scale": self.state.lr_scale, "global_step": self.state.global_step})
        log.warning("%d failed steps in a row: learning rate x%.3g, back to %s", self.config.guard_patience,
                    self.state.lr_scale, found[0] if found else "the current weights")

    def _rebuild_step(self) -> None:
        """A new compiled step with the same weights and Adam state: after a kernel error MindSpore
        refuses to run the old graph again ("An error occurred in the previous step")."""
        from mindspore import Tensor

        old = {p.name: p for p in self.step_cell.get_parameters()}
        self.step_cell = build_train_step(self.network, self.config, world_size=self.world_size)
        for param in self.step_cell.get_parameters():
            if old[param.name] is not param:
                param.set_data(Tensor(old[param.name].asnumpy()))

    # -- one step
    def train_step(self, batch: dict) -> StepResult:
        """Run one update on a batch dict (pipeline columns). A non-finite loss or gradient, or a
        MindSpore kernel error, leaves every weight, Adam moment and BatchNorm statistic as it was."""
        from mindspore import Tensor

        self.network.set_train(True)  # evaluation switches it off
        lr = self.config.learning_rate_at(self.state.global_step, self.steps_per_epoch) * self.state.lr_scale
        inputs = [Tensor(batch[k]) for k in STEP_INPUTS]
        try:
            loss, norm, finite = self.step_cell(*inputs, Tensor(np.float32(lr)))
        except RuntimeError as err:
            if self.world_size > 1:  # the other ranks wait in the all-reduce: no way to skip alone
                raise RuntimeError(f"rank {self.rank}: MindSpore kernel error in the training step "
                                   f"({kernel_error_summary(err)}); resume the run from its last checkpoint") from err
            # The kernels that fail (CTC, convolutions, LSTMs, memory) all run before the update.
            self._rebuild_step()
            self._restore_stats()
            return StepResult(float("nan"), float("nan"), False, kernel_error_summary(err))
        result = StepResult(float(loss.asnumpy()), float(norm.asnumpy()), bool(finite.asnumpy()))
        if result.finite:
            self._snapshot = self._stats_snapshot()
        else:
            self._restore_stats()
        return result

    # -- the loop
    def fit(self, on_epoch_end=None, max_steps: int | None = None) -> dict:
        """Train to ``config.epochs`` (or until ``max_steps`` global steps, then checkpoint);
        returns the last epoch's record."""
        from tqdm import tqdm

        self.network.set_train(True)
        record: dict = {}
        failed_in_a_row = 0
        hop_seconds = self.feature_config.hop_length / self.feature_config.sample_rate
        for epoch in range(self.state.epoch, self.config.epochs):
            self.state.epoch = epoch
            epoch_iter = EpochIterator(self.source, epoch, self.config.workers, start_step=self.state.step)
            bar = tqdm(total=self.steps_per_epoch, initial=self.state.step, desc=f"epoch {epoch}",
                       disable=not (self.progress and self.is_writer), dynamic_ncols=True)
            epoch_started, audio_seconds, losses = time.perf_counter(), 0.0, []
            for step, batch in epoch_iter:
                started = time.perf_counter()
                result = self.train_step(batch)
                seconds = time.perf_counter() - started
                audio = float((batch["feature_lengths"] * batch["mask"]).sum()) * hop_seconds
                self.state.step, self.state.global_step = step + 1, self.state.global_step + 1
                if result.finite:
                    failed_in_a_row = 0
                    losses.append(result.loss)
                    audio_seconds += audio
                else:
                    failed_in_a_row += 1
                    self.state.skipped += 1
                    self._log_failed_step(epoch, step, batch, result)
                    if failed_in_a_row >= self.config.guard_patience:
                        self._rollback()
                        failed_in_a_row = 0
                self._log({"epoch": epoch, "step": step, "global_step": self.state.global_step,
                           "loss": result.loss if result.finite else None,
                           "grad_norm": result.grad_norm if result.finite else None,
                           "lr": self.config.learning_rate_at(self.state.global_step - 1, self.steps_per_epoch)
                           * self.state.lr_scale, "step_seconds": seconds, "audio_seconds": audio,
                           "shape": list(batch["features"].shape)})
                failpoint("step_logged")
                elapsed = time.perf_counter() - epoch_started
                bar.set_postfix_str(f"loss {result.loss:.3f} | {audio_seconds / max(elapsed, 1e-9):.1f} audio-s/s")
                bar.update()
                if self.state.global_step % self.config.checkpoint_every == 0:
                    self.save()
                if max_steps is not None and self.state.global_step >= max_steps:
                    bar.close()
                    self.save()
                    return {"event": "max_steps", "global_step": self.state.global_step}
            bar.close()
            record = self._end_epoch(epoch, epoch_iter.report, time.perf_counter() - epoch_started,
                                     audio_seconds, losses)
            if on_epoch_end is not None:
                on_epoch_end(record)
        return record

    def _log_failed_step(self, epoch: int, step: int, batch: dict, result: StepResult) -> None:
        ids = [self.shards.ids[int(r)].as_py() for r, m in zip(batch["rows"], batch["mask"]) if m]
        what = "kernel error" if result.error else "non-finite loss or gradient"
        self._log({"event": "kernel_error" if result.error else "nonfinite", "epoch": epoch, "step": step,
                   "global_step": self.state.global_step, "loss": repr(result.loss),
                   "grad_norm": repr(result.grad_norm), "error": result.error, "ids": ids})
        log.warning("%s at epoch %d step %d (utterances %s): update skipped%s", what, epoch, step,
                    ", ".join(ids[:5]), f" ({result.error})" if result.error else "")

    def _end_epoch(self, epoch: int, report, seconds: float, audio_seconds: float, losses: list) -> dict:
        """Dev evaluation, the epoch's record, its checkpoint and best.ckpt, in the order that a kill
        anywhere between them leaves a run that resumes exactly (the record is logged before the
        checkpoint: a kill between them drops it on resume, and the epoch end is done again)."""
        self.state.epoch, self.state.step = epoch + 1, 0
        record = {"event": "epoch_end", "epoch": epoch, "global_step": self.state.global_step,
                  "mean_loss": float(np.mean(losses)) if losses else None, "seconds": seconds,
                  "audio_seconds": audio_seconds, "padding_ratio": report.padding_ratio,
                  "data_wait_seconds": report.data_wait_seconds, "dropped": report.dropped,
                  "skipped_total": self.state.skipped, "shapes": len(report.batches_per_shape)}
        if self.dev is not None and self.is_writer:
            failpoint("dev_evaluation")
            record.update(self.evaluate_dev())
        improved = record.get("dev_wer") is not None and (
            self.state.best_wer is None or record["dev_wer"] < self.state.best_wer)
        if improved:  # before saving, so that a resumed run knows the best so far
            self.state.best_wer, self.state.best_step = record["dev_wer"], self.state.global_step
        self._log(record)
        path = self.save()
        if path is not None and improved:
            failpoint("best_before_copy")
            self._save_best(path)
        return record

    def evaluate_dev(self) -> dict:
        from .evaluate import evaluate

        report = evaluate(self.network, self.dev, max_frames=self.config.max_frames * 4,
                          num_buckets=max(1, self.config.num_buckets // 2))
        self.network.set_train(True)
        return {"dev_wer": report.wer, "dev_cer": report.cer, "dev_seconds": report.wall_seconds}


# ---------------------------------------------------------------- entry points

def run_training(*, run_dir: Path | None, resume_dir: Path | None, shards: Path | None, dev_shards: Path | None,
                 preset: str, overrides: dict, pretrained: Path | None = None, distributed: bool = False,
                 graph: bool = True, max_steps: int | None = None, progress: bool = True,
                 allow_plan_change: bool = False) -> tuple[Trainer, dict]:
    """What ``ds2stream train`` does: a new run from a preset, or the resumption of a run (with the
    settings it was last run with, then ``overrides``). Returns the trainer (after training) and
    its last record."""
    from .presets import get_preset

    use_graph_mode(graph)
    rank, world_size = init_distributed() if distributed else (0, 1)
    if resume_dir is not None:
        config_path = Path(resume_dir) / "config.json"
        if not config_path.is_file():
            shared = "; a distributed run's directory must be shared by every rank (e.g. NFS)" if world_size > 1 else ""
            raise ValueError(f"{resume_dir}: not a run directory (no config.json){shared}")
        saved = json.loads(config_path.read_text())
        model_config = ModelConfig.from_dict(saved["model_config"])
        config = dataclasses.replace(TrainConfig.from_dict(saved["train_config"]), **overrides)
        trainer = Trainer(resume_dir, shards or saved["shards"]["train"], model_config, config,
                          dev_shards or saved["shards"]["dev"], rank, world_size, progress)
        trainer.resume(allow_plan_change)
    else:
        chosen = get_preset(preset)
        config = dataclasses.replace(chosen.train, **overrides)
        trainer = Trainer(run_dir, shards, chosen.model, config, dev_shards, rank, world_size, progress)
        trainer.start_new(pretrained)
    return trainer, trainer.fit(max_steps=max_steps)


def resume_position(step: int, saved_steps_per_epoch: int | None, steps_per_epoch: int) -> int:
    """The step to go on from after a change in the number of ranks: the same fraction of the epoch."""
    if not saved_steps_per_epoch:
        return 0
    return min(steps_per_epoch, step * steps_per_epoch // saved_steps_per_epoch)


def init_distributed() -> tuple[int, int]:
    """Join the msrun cluster (MCCL on CPU): (rank, world size). The train step combines the ranks'
    gradients itself (weighted by their real rows, :func:`build_train_step`)."""
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init

    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL)
    return get_rank(), get_group_size()


def plot_run(run_dir: Path, out: Path | None = None) -> Path:
    """Loss, learning rate and dev WER/CER curves of a run as one PNG."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'ds2stream[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise ValueError(f"{run_dir}: no metrics.jsonl (not a run directory?)")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps = [r for r in records if "event" not in r]
    epochs = [r for r in records if r.get("event") == "epoch_end"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    good = [r for r in steps if r["loss"] is not None]
    axes[0].plot([r["global_step"] for r in good], [r["loss"] for r in good], lw=0.6)
    axes[0].set(title="CTC loss per label", xlabel="step", yscale="log")
    axes[1].plot([r["global_step"] for r in steps], [r["lr"] for r in steps])
    axes[1].set(title="learning rate", xlabel="step")
    for key, label in (("dev_wer", "WER"), ("dev_cer", "CER")):
        points = [(r["epoch"] + 1, r[key]) for r in epochs if r.get(key) is not None]
        if points:
            axes[2].plot(*zip(*points), marker="o", label=label)
    axes[2].set(title="dev error rates", xlabel="epoch", ylim=(0, None))
    axes[2].legend()
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
