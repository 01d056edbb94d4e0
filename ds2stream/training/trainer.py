"""The training run: a model, a shard set and a run directory; graph mode, bucketed shapes, the
guard against failed steps, durable checkpoints and exact resume.

A run directory holds:
  ``config.json``               model, train and feature configs, label set, shard folders;
  ``metrics.jsonl``             a line per step, per epoch and per event (``metrics.MetricsLog``);
  ``checkpoints/step-N.ckpt``   model + Adam state + the position in the data and the fingerprint of
                                the batch plan (keep the last k), CRC-checked (``checkpoint``);
  ``best.ckpt``                 the checkpoint with the lowest dev WER, or CER (``best_by``), of
                                the epoch ends (with ``--dev-shards``).

After a ``kill -9`` anywhere, ``--resume`` continues from the newest checkpoint that reads back
whole (a truncated or corrupt newer one is set aside as ``.corrupt``, with a warning), drops the
metric lines of the steps it will redo, and puts back ``best.ckpt`` if the kill fell between
checkpointing a better epoch and copying it.

The zoo's training mistakes, and what happens here instead: its LR schedule was computed and never
applied (here :meth:`TrainConfig.learning_rate_at` sets Adam's rate every step); Adam ran with
``loss_scale=1024`` on an unscaled loss, shrinking every update 1024x (here no loss scale); no
gradient clipping (here global-norm clipping); a NaN/inf loss killed the run (here ``guard``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from .._config import replace_config
from ..checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    CheckpointFolder,
    check_meta,
    load_weights,
    model_features,
    read_checkpoint,
)
from ..data.text import LABELS
from ..error_rates import ErrorCounts
from ..errors import ConfigError, DataError, RunStoppedError
from ..failpoints import failpoint
from ..features import FeatureConfig, Normalize
from ..files import write_durably
from ..model import ModelConfig, running_statistics
from ..pipeline import EpochIterator, ShardSet, with_global_statistics
from ..pipeline.augment import switch
from ..runtime import use_graph_mode
from .config import EPOCHS_UNTIL_BUDGET, Preset, TrainConfig
from .distributed import barrier, init_distributed, require_shared_run_dir, share_rank_0, sum_counts_over_ranks
from .guard import StepGuard
from .metrics import CheckpointSaved, EpochEnd, FailedStep, MetricsLog, Resumed, Rollback, StepRecord, to_json
from .plan import PlanChangedError, make_source, plan_changes, plan_fingerprint, resume_position
from .step import STEP_INPUTS, StepResult, build_train_step, kernel_error_summary

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunState:
    """Where a run is: saved in every checkpoint, so that a resumed run continues exactly."""

    epoch: int = 0
    step: int = 0  # the next batch of the epoch
    global_step: int = 0  # batches consumed, skipped ones included
    lr_scale: float = 1.0  # halved by every rollback
    train_seconds: float = 0.0  # summed step seconds of the run, every command that trained it
    skipped: int = 0  # steps without an update (non-finite or a kernel error), total
    best_wer: float | None = None  # dev WER and CER of best.ckpt
    best_cer: float | None = None
    best_step: int | None = None  # the global step whose checkpoint is best.ckpt


class Trainer:
    """Trains one model on one shard set, writing a run directory.

    :param rank, world_size: data-parallel position (msrun); only rank 0 writes anything.
    """

    def __init__(self, run_dir: Path, shard_dir: Path, model_config: ModelConfig, config: TrainConfig,
                 dev_shard_dir: Path | None = None, rank: int = 0, world_size: int = 1, progress: bool = True):
        import mindspore as ms

        from ..network import build_model

        self.run_dir, self.config = Path(run_dir), config
        self.rank, self.world_size, self.progress = rank, world_size, progress
        self.shards = ShardSet(shard_dir, config.features)
        if len(self.shards) == 0:
            raise DataError(f"{shard_dir}: the shard set holds no utterance (see `ds2stream info --shards "
                             f"{shard_dir} --problems`)")
        self.feature_config = self.shards.feature_config
        # Dev is read with the training features, whatever its shards stored (they hold the audio).
        self.dev = ShardSet(dev_shard_dir, self.feature_config) if dev_shard_dir else None
        if self.dev is not None and len(self.dev) == 0:
            raise DataError(f"{dev_shard_dir}: the dev shard set holds no utterance")
        self.model_config = dataclasses.replace(model_config, num_bins=self.feature_config.num_bins)
        self.shard_dirs = {"train": str(Path(shard_dir).resolve()),
                           "dev": str(Path(dev_shard_dir).resolve()) if dev_shard_dir else None}
        ms.set_seed(config.seed)
        self.network = build_model(self.model_config)
        self.step_cell = build_train_step(self.network, config, world_size=world_size)
        self.source = make_source(self.shards, self.model_config, config, rank, world_size)
        self.sampler = self.source.sampler
        left_out = {reason.replace("_", " "): n for reason, n in self.sampler.dropped.items() if n}
        if left_out and self.is_writer:  # also in every epoch_end record of metrics.jsonl
            log.warning("%s: %d of %d utterances are left out of every epoch (%s)", shard_dir, sum(left_out.values()),
                        len(self.shards), ", ".join(f"{reason}: {n}" for reason, n in left_out.items()))
        self.steps_per_epoch = len(self.sampler)  # epoch 0's (with speed perturbation others differ by a few)
        self.state = RunState()
        self.guard = StepGuard(self.network, config.guard_patience)
        self.folder = CheckpointFolder(self.run_dir, config.keep_last)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl", enabled=self.is_writer)

    # -- files
    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def checkpoints(self) -> list[Path]:
        return self.folder.paths()

    def plan_fingerprint(self) -> dict:
        return plan_fingerprint(self.config, self.world_size, self.shards)

    def _meta(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "labels": LABELS, "model_config": self.model_config.to_dict(),
                "train_config": self.config.to_dict(), "feature_config": self.feature_config.to_dict(),
                "state": dataclasses.asdict(self.state), "world_size": self.world_size,
                "steps_per_epoch": self.steps_per_epoch, "plan": self.plan_fingerprint()}

    def _write_config(self) -> None:
        self.folder.folder.mkdir(parents=True, exist_ok=True)
        config = {**{k: v for k, v in self._meta().items() if k != "state"}, "shards": self.shard_dirs}
        write_durably(self.run_dir / "config.json", json.dumps(config, indent=1))

    def save(self) -> Path | None:
        """Rank 0 writes a checkpoint; every rank waits for it, so that a rollback or a resume on
        any rank reads the same newest checkpoint."""
        path = None
        if self.is_writer:
            # Logged first: a kill before the rename leaves a line past the resumed step, dropped then.
            self.metrics.write(CheckpointSaved(str(self.folder.path_for(self.state.global_step)),
                                               self.state.global_step))
            path = self.folder.save(self.step_cell, self.state.global_step, self._meta())
        barrier(self.world_size)
        return path

    # -- starting points
    def start_new(self, pretrained: Path | None = None) -> None:
        """A fresh run (refuses a run directory that has checkpoints); optionally start from weights."""
        if self.run_dir.exists() and any(self.folder.folder.glob("*.ckpt")):
            raise DataError(f"{self.run_dir} already holds a run; continue it with --resume, or use another --out")
        if pretrained is not None:
            params, meta = read_checkpoint(pretrained)
            check_meta(meta, pretrained, self.feature_config)
            skipped = load_weights(self.network, params, pretrained)
            log.info("loaded %s; not used: %d entries (optimizer state is not carried over)", pretrained, len(skipped))
        self.guard.keep()
        if self.is_writer:
            self._write_config()
            if self.metrics.discard():  # of an attempt that stopped before its first checkpoint
                log.warning("%s: starting again; the metrics of the attempt that stopped before its first "
                            "checkpoint are discarded", self.run_dir)
        barrier(self.world_size)
        require_shared_run_dir(self.rank, self.run_dir / "config.json")

    def resume(self, allow_plan_change: bool = False) -> None:
        """Continue from the newest valid checkpoint: weights, Adam state and the data position.

        :param allow_plan_change: go on even if the batch plan's settings differ from the
            checkpoint's (then at the same fraction of the epoch); otherwise PlanChangedError.
        """
        require_shared_run_dir(self.rank, self.run_dir / "config.json")
        found = self.folder.newest_valid(set_aside=self.is_writer)
        if found is None:
            raise DataError(f"{self.run_dir}: no checkpoint to resume from (it stopped before its first one); "
                             f"start it again with the command that started it")
        path, params, meta = found
        check_meta(meta, path, self.feature_config)
        if ModelConfig.from_dict(meta["model_config"]) != self.model_config:
            raise CheckpointError(f"{path}: made for another model config")
        changed = plan_changes(self.plan_fingerprint(), meta)
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
        self.guard.keep()
        if self.is_writer:
            self.folder.remove_temporary()
            dropped = self.metrics.truncate_after(self.state.global_step)
            if self.state.best_step is not None and self.state.best_step == self.state.global_step:
                self.folder.save_best(path)  # the kill may have come before best.ckpt was replaced
            self._write_config()
            self.metrics.write(Resumed(str(path), self.state.global_step, dropped))
        barrier(self.world_size)
        log.info("resuming %s at epoch %d, step %d", path, self.state.epoch, self.state.step)

    # -- failed steps
    def _rollback(self) -> None:
        """Too many failed steps in a row: halve the learning rate, go back to the last checkpoint."""
        self.state.lr_scale *= 0.5
        found = self.folder.newest_valid(set_aside=self.is_writer)
        if found:
            path, params, _ = found
            load_weights(self.step_cell, params, path)
        self.guard.rolled_back()
        self.metrics.write(Rollback(str(found[0]) if found else None, self.state.lr_scale, self.state.global_step))
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
    def learning_rate(self) -> float:
        """The rate of the next step: the schedule's, times the rollbacks' scale."""
        return self.config.learning_rate_at(self.state.global_step, self.steps_per_epoch,
                                            self.state.train_seconds) * self.state.lr_scale

    def train_step(self, batch: dict, lr: float | None = None) -> StepResult:
        """Run one update on a batch dict (pipeline columns) at ``lr`` (default: the schedule's).
        A non-finite loss or gradient, or a MindSpore kernel error, leaves every weight, Adam
        moment and BatchNorm statistic as it was."""
        from mindspore import Tensor

        self.network.set_train(True)  # evaluation switches it off
        lr = self.learning_rate() if lr is None else lr
        inputs = [Tensor(batch[k]) for k in STEP_INPUTS]
        try:
            loss, norm, finite = self.step_cell(*inputs, Tensor(np.float32(lr)))
            result = StepResult(float(loss.asnumpy()), float(norm.asnumpy()), bool(finite.asnumpy()))
        except RuntimeError as err:
            if self.world_size > 1:  # the other ranks wait in the all-reduce: no way to skip alone
                raise RunStoppedError(f"rank {self.rank}: MindSpore kernel error in the training step "
                                      f"({kernel_error_summary(err)}); resume the run from its last checkpoint") \
                    from err
            # The kernels that fail (CTC, convolutions, LSTMs, memory) all run before the update.
            self._rebuild_step()
            result = StepResult(float("nan"), float("nan"), False, kernel_error_summary(err))
        self.guard.after_step(result.finite)
        return result

    # -- the loop
    def fit(self, on_epoch_end=None, max_steps: int | None = None, max_minutes: float | None = None) -> dict:
        """Train to ``config.epochs``, or until ``max_steps`` global steps or until this call's
        steps have taken ``max_minutes`` (the summed step times, which time-to-accuracy is measured
        in: dev evaluation and checkpoint writes not counted), or, with the linear schedule, until
        the run's steps have taken its ``schedule_minutes``; then checkpoint; returns the last
        epoch's record, or the event that stopped it."""
        from tqdm import tqdm

        self.network.set_train(True)
        record: dict = {}
        step_seconds = 0.0
        if self._budget_spent():  # a resume of a run that had ended: not one step at LR 0
            return {"event": "schedule_ended", "global_step": self.state.global_step, "step_seconds": 0.0,
                    "schedule_minutes": self.config.schedule_minutes}
        for epoch in range(self.state.epoch, self.config.epochs):
            self.state.epoch = epoch
            epoch_iter = EpochIterator(self.source, epoch, self.config.workers, start_step=self.state.step)
            bar = tqdm(total=epoch_iter.report.batches, initial=self.state.step, desc=f"epoch {epoch}",
                       disable=not (self.progress and self.is_writer), dynamic_ncols=True)
            epoch_started, audio_seconds, losses = time.perf_counter(), 0.0, []
            for step, batch in epoch_iter:
                result, audio, seconds = self._step(epoch, step, batch)
                step_seconds += seconds
                if result.finite:
                    losses.append(result.loss)
                    audio_seconds += audio
                elapsed = time.perf_counter() - epoch_started
                bar.set_postfix_str(f"loss {result.loss:.3f} | {audio_seconds / max(elapsed, 1e-9):.1f} audio-s/s")
                bar.update()
                if self.state.global_step % self.config.checkpoint_every == 0:
                    self.save()
                stop = self._stop_reason(max_steps, max_minutes, step_seconds)
                if stop:
                    bar.close()
                    self.save()
                    return {"event": stop, "global_step": self.state.global_step, "step_seconds": step_seconds}
            bar.close()
            record = self._end_epoch(epoch, epoch_iter.report, time.perf_counter() - epoch_started,
                                     audio_seconds, losses)
            if on_epoch_end is not None:
                on_epoch_end(record)
        return record

    def _stop_reason(self, max_steps: int | None, max_minutes: float | None, step_seconds: float) -> str | None:
        if max_steps is not None and self.state.global_step >= max_steps:
            return "max_steps"
        if max_minutes is not None and step_seconds >= 60 * max_minutes:
            return "max_minutes"
        return "max_minutes" if self._budget_spent() else None

    def _budget_spent(self) -> bool:
        """A linear schedule's run ends with its budget (its LR is 0 there), resumed or not."""
        budget = self.config.schedule_minutes if self.config.lr_schedule == "linear" else None
        return budget is not None and self.state.train_seconds >= 60 * budget

    def _step(self, epoch: int, step: int, batch: dict) -> tuple[StepResult, float, float]:
        """One batch of the loop: the step, its metric line, and the guard's verdict acted on.
        Returns the result, the seconds of real audio the batch held and the step's seconds."""
        lr, started = self.learning_rate(), time.perf_counter()
        result = self.train_step(batch, lr)
        seconds = time.perf_counter() - started
        self.state.train_seconds += seconds
        hop_seconds = self.feature_config.hop_length / self.feature_config.sample_rate
        audio = float((batch["feature_lengths"] * batch["mask"]).sum()) * hop_seconds
        self.state.step, self.state.global_step = step + 1, self.state.global_step + 1
        if not result.finite:
            self.state.skipped += 1
            self._log_failed_step(epoch, step, batch, result)
            if self.guard.rollback_due:
                self._rollback()
        self.metrics.write(StepRecord(
            epoch=epoch, step=step, global_step=self.state.global_step,
            loss=result.loss if result.finite else None, grad_norm=result.grad_norm if result.finite else None,
            lr=lr,
            step_seconds=seconds, audio_seconds=audio, shape=list(batch["features"].shape)))
        failpoint("step_logged")
        return result, audio, seconds

    def _log_failed_step(self, epoch: int, step: int, batch: dict, result: StepResult) -> None:
        ids = [self.shards.ids[int(r)].as_py() for r, m in zip(batch["rows"], batch["mask"]) if m]
        what = "kernel error" if result.error else "non-finite loss or gradient"
        self.metrics.write(FailedStep("kernel_error" if result.error else "nonfinite", epoch, step,
                                      self.state.global_step, repr(result.loss), repr(result.grad_norm),
                                      result.error, ids))
        log.warning("%s at epoch %d step %d (utterances %s): update skipped%s", what, epoch, step,
                    ", ".join(ids[:5]), f" ({result.error})" if result.error else "")

    def _end_epoch(self, epoch: int, report, seconds: float, audio_seconds: float, losses: list) -> dict:
        """Dev evaluation, the epoch's record, its checkpoint and best.ckpt, in the order that a kill
        anywhere between them leaves a run that resumes exactly (the record is logged before the
        checkpoint: a kill between them drops it on resume, and the epoch end is done again)."""
        self.state.epoch, self.state.step = epoch + 1, 0
        record = EpochEnd(epoch=epoch, global_step=self.state.global_step,
                          mean_loss=float(np.mean(losses)) if losses else None, seconds=seconds,
                          audio_seconds=audio_seconds, padding_ratio=report.padding_ratio,
                          data_wait_seconds=report.data_wait_seconds, dropped=report.dropped,
                          skipped_total=self.state.skipped, shapes=len(report.batches_per_shape))
        if self.dev is not None:
            if self.is_writer:
                failpoint("dev_evaluation")
            record = dataclasses.replace(record, **self.evaluate_dev())
        best = {"wer": self.state.best_wer, "cer": self.state.best_cer}[self.config.best_by.value]
        value = getattr(record, f"dev_{self.config.best_by.value}")
        improved = value is not None and (best is None or value < best)
        if improved:  # before saving, so that a resumed run knows the best so far
            self.state.best_wer, self.state.best_cer = record.dev_wer, record.dev_cer
            self.state.best_step = self.state.global_step
        self.metrics.write(record)
        path = self.save()
        if path is not None and improved:
            failpoint("best_before_copy")
            self.folder.save_best(path)
        return to_json(record)

    def evaluate_dev(self) -> dict:
        """Dev WER/CER at an epoch end, in batches sized from the training budget (the network is
        in eval mode, so larger batches fit). Every rank evaluates its share of dev with rank 0's
        BatchNorm statistics (what the checkpoint holds) and the error counts are summed, so no
        rank waits at a collective while another evaluates the whole set."""
        from ..inference.evaluate import evaluate

        if self.world_size > 1:
            share_rank_0(running_statistics(self.network))
        report = evaluate(self.network, self.dev, max_frames=self.config.max_frames * 4,
                          num_buckets=max(1, self.config.num_buckets // 2), rank=self.rank,
                          world_size=self.world_size)
        self.network.set_train(True)
        counts = [*dataclasses.astuple(report.words), *dataclasses.astuple(report.chars), report.utterances]
        counts = sum_counts_over_ranks(counts, self.world_size)
        words, chars = ErrorCounts(*map(int, counts[:4])), ErrorCounts(*map(int, counts[4:8]))
        return {"dev_wer": words.rate, "dev_cer": chars.rate, "dev_utterances": int(counts[8]),
                "dev_seconds": report.wall_seconds}


#: Why a distributed run takes no budget of minutes: a rank that stopped alone would leave the
#: others waiting in the all-reduce.
_RANKS_TIME_THEIR_OWN_STEPS = ("every rank times its own steps, so ranks could stop at different steps: give a "
                               "distributed run --max-steps or --epochs, not --max-minutes")


def with_feature_statistics(config: TrainConfig, shard_dir: Path, rank: int = 0,
                            pretrained: Path | None = None) -> TrainConfig:
    """``config`` with the global feature statistics its normalisation needs: a model to start from
    brings its own (the scale its weights learnt), else they are computed from the training shards."""
    features = config.features
    if features is None or features.normalize is not Normalize.GLOBAL or features.global_mean is not None:
        return config
    if pretrained is not None:
        theirs = model_features(read_checkpoint(pretrained)[1])
        if theirs is not None and theirs.normalize is Normalize.GLOBAL and theirs.unnormalized == features.unnormalized:
            return dataclasses.replace(config, features=theirs)  # other features are refused by check_meta
    started = time.perf_counter()
    features = with_global_statistics(features, Path(shard_dir), workers=os.cpu_count() or 1)
    if rank == 0:
        log.info("%s: global feature statistics of %d rows computed in %.0f s", shard_dir, features.num_bins,
                 time.perf_counter() - started)
    return dataclasses.replace(config, features=features)


def run_training(*, run_dir: Path | None, resume_dir: Path | None, shards: Path | None, dev_shards: Path | None,
                 preset: Preset, overrides: dict, augment_switches: dict | None = None,
                 feature_changes: dict | None = None, model_changes: dict | None = None,
                 pretrained: Path | None = None, distributed: bool = False,
                 graph: bool = True, max_steps: int | None = None, max_minutes: float | None = None,
                 progress: bool = True, allow_plan_change: bool = False) -> tuple[Trainer, dict]:
    """What ``ds2stream train`` does: a new run from ``preset`` (``presets.get_preset``'s), or the
    resumption of a run (with the settings it was last run with, then ``overrides``; ``preset`` is
    not read). Returns the trainer (after training) and its last record. ``augment_switches``:
    ``augment.switch``'s arguments, applied to the run's augmentation (the preset's, or the resumed
    run's); ``feature_changes``: FeatureConfig fields changed from the run's features (the default
    FeatureConfig where it has none); ``model_changes``: ModelConfig fields changed from the
    preset's, for a new run (a resumed run keeps its model)."""
    def with_switches(config: TrainConfig) -> TrainConfig:
        if feature_changes:  # global statistics of the features before the change no longer apply
            features = replace_config(config.features or FeatureConfig(),
                                      {"global_mean": None, "global_std": None, **feature_changes})
            config = dataclasses.replace(config, features=features)
        return dataclasses.replace(config, augment=switch(config.augment, **(augment_switches or {})))

    use_graph_mode(graph)
    if distributed and max_minutes is not None:
        raise ConfigError(_RANKS_TIME_THEIR_OWN_STEPS)
    rank, world_size = init_distributed() if distributed else (0, 1)
    if resume_dir is not None:
        if model_changes:
            raise ConfigError(f"{resume_dir}: a resumed run keeps its model; model changes are for a new run")
        config_path = Path(resume_dir) / "config.json"
        if not config_path.is_file():
            shared = "; a distributed run's directory must be shared by every rank (e.g. NFS)" if world_size > 1 else ""
            raise DataError(f"{resume_dir}: not a run directory (no config.json){shared}")
        saved = json.loads(config_path.read_text())
        model_config = ModelConfig.from_dict(saved["model_config"])
        if model_config.dropout and rank == 0:
            # MindSpore's CPU dropout keeps its random state inside the kernel, out of reach of a checkpoint.
            log.warning("%s: its model drops RNN outputs (dropout %g); after a resume the dropped outputs are "
                        "drawn anew, so the run continues but does not end bit-identical to one that never stopped",
                        resume_dir, model_config.dropout)
        config = with_switches(replace_config(TrainConfig.from_dict(saved["train_config"]), overrides))
        if world_size > 1 and config.lr_schedule == "linear" and config.schedule_minutes is not None:
            raise ConfigError(f"{resume_dir}: its linear schedule ends after minutes of training steps; "
                              f"{_RANKS_TIME_THEIR_OWN_STEPS}")
        config = with_feature_statistics(config, shards or saved["shards"]["train"], rank)
        trainer = Trainer(resume_dir, shards or saved["shards"]["train"], model_config, config,
                          dev_shards or saved["shards"]["dev"], rank, world_size, progress)
        trainer.resume(allow_plan_change)
    else:
        config = with_switches(replace_config(preset.train, overrides))
        if config.lr_schedule == "linear" and config.schedule_minutes is None and max_minutes is not None:
            # The LR ends with the budget, and so does the run, however many epochs that is (an
            # explicit --epochs still stops it sooner).
            config = dataclasses.replace(config, schedule_minutes=max_minutes,
                                         epochs=overrides.get("epochs") or EPOCHS_UNTIL_BUDGET)
        model_config = replace_config(preset.model, model_changes or {})
        config = with_feature_statistics(config, shards, rank, pretrained)
        trainer = Trainer(run_dir, shards, model_config, config, dev_shards, rank, world_size, progress)
        trainer.start_new(pretrained)
    return trainer, trainer.fit(max_steps=max_steps, max_minutes=max_minutes)
