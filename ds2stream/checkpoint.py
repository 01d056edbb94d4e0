"""Checkpoint files: writing them durably, reading them back (CRC-checked), loading weights into a
network, and the folder of a run's checkpoints (rotation, the newest valid one, ``best.ckpt``).

Training writes them, inference reads them: both import this module, neither imports the other.
A checkpoint is MindSpore's format with ds2stream's metadata (JSON under ``META_KEY``: configs,
label set, the run's position and its batch plan's fingerprint); a zoo checkpoint has none.
Every file is written through ``files`` (temporary name, fsync, rename, folder fsync).
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from .data.text import LABELS
from .errors import DataError
from .failpoints import failpoint
from .features import FeatureConfig
from .files import replace_durably
from .model import ModelConfig

log = logging.getLogger(__name__)

META_KEY = "ds2stream_meta"
CHECKPOINT_FORMAT = 1


class CheckpointError(DataError):
    """A checkpoint that cannot be used here: unreadable, or made for another model or label set."""


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
    import numpy as np

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
    broken = next((n for n in own if n in params and not np.isfinite(params[n].asnumpy()).all()), None)
    if broken:  # a diverged run's weights: every output would be NaN
        raise CheckpointError(f"{source}: parameter {broken} holds NaN or infinite values; use an earlier "
                              f"checkpoint of its run")
    ms.load_param_into_net(network, {n: params[n] for n in own if n in params}, strict_load=False)
    return sorted(set(params) - set(own))


def model_features(meta: dict) -> FeatureConfig | None:
    """The features a checkpoint's model was trained on: the ones to read a shard set with (None
    where the checkpoint does not say)."""
    return FeatureConfig.from_dict(meta["feature_config"]) if "feature_config" in meta else None


def check_meta(meta: dict, source: Path, feature_config: FeatureConfig | None = None) -> None:
    """A ds2stream checkpoint must share the label set (and the feature config, when given)."""
    if meta.get("labels", LABELS) != LABELS:
        raise CheckpointError(f"{source}: made with labels {meta['labels']!r}, this ds2stream uses {LABELS!r}")
    if feature_config is not None and "feature_config" in meta:
        theirs = FeatureConfig.from_dict(meta["feature_config"])
        if theirs != feature_config:
            raise CheckpointError(f"{source}: trained on other features than this run computes "
                                  f"({theirs.differences(feature_config)}); train with the checkpoint's features")


def load_model(checkpoint: Path):
    """Build the network a ds2stream checkpoint describes and load its weights, in eval mode."""
    from .network import build_model

    params, meta = read_checkpoint(checkpoint)
    if "model_config" not in meta:
        raise CheckpointError(f"{checkpoint}: no ds2stream metadata (a zoo checkpoint? "
                              f"use `ds2stream train --preset zoo --pretrained` to start from it)")
    check_meta(meta, checkpoint)
    network = build_model(ModelConfig.from_dict(meta["model_config"]))
    load_weights(network, params, checkpoint)
    network.set_train(False)
    return network, meta


def average_checkpoints(paths: list[Path], out: Path) -> Path:
    """Write to ``out`` a checkpoint whose network parameters are the mean of ``paths``' (the
    last few checkpoints of a run: a smoother model than any one of them, as ESPnet and icefall
    average). Every one must describe the same model; the optimizer state is left out (the
    result is for evaluation, export and as ``--pretrained``), BatchNorm's running statistics are
    averaged too. The metadata is the last one's, with ``averaged_from``."""
    import mindspore as ms
    import numpy as np

    if not paths:
        raise CheckpointError("no checkpoint to average")
    network, meta = load_model(paths[-1])
    names = [p.name for p in network.get_parameters()]
    totals = {name: np.zeros(p.shape, np.float64) for name, p in zip(names, network.get_parameters())}
    for path in paths:
        params, other = read_checkpoint(path)
        same = other.get("model_config") == meta["model_config"] and model_features(other) == model_features(meta)
        if not same:
            raise CheckpointError(f"{path}: made for another model or features than {paths[-1]}; "
                                  f"only checkpoints of one run can be averaged")
        for name in names:
            totals[name] += params[name].asnumpy().astype(np.float64)
    for param in network.get_parameters():
        param.set_data(ms.Tensor((totals[param.name] / len(paths)).astype(np.float32), dtype=param.dtype))
    save_checkpoint(network, Path(out), {**meta, "averaged_from": [str(p) for p in paths]})
    return Path(out)


class CheckpointFolder:
    """A run's ``checkpoints/step-N.ckpt`` files and its ``best.ckpt``.

    :param keep_last: step checkpoints kept after each save (0: every one).
    """

    def __init__(self, run_dir: Path, keep_last: int):
        self.run_dir, self.folder, self.keep_last = Path(run_dir), Path(run_dir) / "checkpoints", keep_last
        self.best = self.run_dir / "best.ckpt"

    def paths(self) -> list[Path]:
        """The step checkpoints, oldest first."""
        return sorted(self.folder.glob("step-*[0-9].ckpt"))

    def path_for(self, global_step: int) -> Path:
        return self.folder / f"step-{global_step:08d}.ckpt"

    def save(self, cell, global_step: int, meta: dict) -> Path:
        """Write the checkpoint of ``global_step``, then drop all but the newest ``keep_last``."""
        path = self.path_for(global_step)
        save_checkpoint(cell, path, meta)
        failpoint("checkpoint_renamed")
        if self.keep_last > 0:
            for old in self.paths()[:-self.keep_last]:
                old.unlink()
        return path

    def save_best(self, path: Path) -> None:
        """Make ``best.ckpt`` a copy of the checkpoint at ``path``."""
        tmp = self.run_dir / "best.tmp.ckpt"
        shutil.copyfile(path, tmp)
        replace_durably(tmp, self.best)

    def newest_valid(self, set_aside: bool = True) -> tuple[Path, dict, dict] | None:
        """(path, parameters, metadata) of the newest checkpoint that reads back whole. Newer ones
        that do not (a kill or a disk fault) are renamed ``.corrupt`` (``set_aside``), with a warning."""
        for path in reversed(self.paths()):
            try:
                params, meta = read_checkpoint(path)
            except CheckpointError as err:
                log.warning("%s; going back to the checkpoint before it", err)
                if set_aside:
                    path.rename(path.with_name(path.name + ".corrupt"))
                continue
            return path, params, meta
        return None

    def remove_temporary(self) -> None:
        """Files a kill left half-written (never renamed into place)."""
        for tmp in self.run_dir.glob("**/*.tmp*"):
            tmp.unlink()
