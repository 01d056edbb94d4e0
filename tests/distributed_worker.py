"""Helper of test_distributed.py (not a test): one leg of a data-parallel run, or its single-process
reference, saving every parameter it ends with as ``OUT/<mode>-rank<R>.npz``.

    msrun ... distributed_worker.py train     SHARDS RUN OUT STEPS OVERRIDES_JSON [OPTIONS_JSON]  (a new run)
    msrun ... distributed_worker.py resume    SHARDS RUN OUT STEPS OVERRIDES_JSON [OPTIONS_JSON]  (continue RUN)
    python    distributed_worker.py reference SHARDS RUN OUT STEPS WORLD_SIZE [OPTIONS_JSON]

OPTIONS_JSON: ``{"dev_shards": DIR, "pretrained": CKPT}``, both optional.

``train``/``resume`` go through ``run_training(distributed=True)``, what `ds2stream train
--distributed` runs. ``reference`` is one process replaying the same global batches: a model built
from the same seed, and for every step the loss and gradients of each rank's rows computed apart
(BatchNorm sees each rank's rows alone, as on the ranks), combined by their share of the global
batch's real rows, then one clipped Adam update with the run's learning rate. It also writes each step's loss,
gradient norm and real rows per rank to ``OUT/reference.json``.
"""
import json
import sys
from pathlib import Path

import numpy as np


def save(trainer, out: Path, name: str) -> None:
    np.savez(out / f"{name}.npz", **{p.name: p.asnumpy() for p in trainer.step_cell.get_parameters()})


def run_leg(mode: str, shards: Path, run_dir: Path, out: Path, steps: int, overrides: dict,
            options: dict) -> None:
    from ds2stream.presets import get_preset
    from ds2stream.training.trainer import run_training

    trainer, _ = run_training(run_dir=run_dir if mode == "train" else None,
                              resume_dir=run_dir if mode == "resume" else None, shards=shards,
                              dev_shards=options.get("dev_shards"), pretrained=options.get("pretrained"),
                              preset=get_preset("tiny"), overrides=overrides, distributed=True, max_steps=steps,
                              progress=False)
    save(trainer, out, f"{mode}-rank{trainer.rank}")


def reference(shards: Path, run_dir: Path, out: Path, steps: int, world_size: int, options: dict) -> None:
    from mindspore import Tensor

    from ds2stream.model import ModelConfig
    from ds2stream.runtime import use_graph_mode
    from ds2stream.training.config import TrainConfig
    from ds2stream.training.plan import make_source
    from ds2stream.training.trainer import Trainer

    use_graph_mode()
    saved = json.loads((run_dir / "config.json").read_text())  # the distributed run's own configs
    config = TrainConfig.from_dict(saved["train_config"])
    trainer = Trainer(out / "reference-run", shards, ModelConfig.from_dict(saved["model_config"]), config,
                      progress=False)
    trainer.start_new(options.get("pretrained"))
    sources = [make_source(trainer.shards, trainer.model_config, config, rank, world_size)
               for rank in range(world_size)]
    steps_per_epoch = len(sources[0].sampler)
    trainer.network.set_train(True)
    step_cell = trainer.step_cell
    records = []
    for global_step in range(steps):
        epoch, step = divmod(global_step, steps_per_epoch)
        parts = []
        for source in sources:
            source.set_epoch(epoch)
            features, feature_lengths, _, labels, label_lengths, mask, _ = source.batch(step)
            loss, grads = step_cell.loss_and_grads(*(Tensor(a) for a in (features, feature_lengths, labels,
                                                                            label_lengths, mask)))
            parts.append((float(mask.sum()), loss.asnumpy(), [g.asnumpy() for g in grads]))
        total = sum(rows for rows, _, _ in parts)
        loss = sum(rows / total * loss for rows, loss, _ in parts)
        grads = [sum(rows / total * grads[i] for rows, _, grads in parts) for i in range(len(parts[0][2]))]
        learning_rate = np.float32(config.learning_rate_at(global_step, steps_per_epoch))
        loss, norm, finite = step_cell.update(Tensor(np.float32(loss)), tuple(Tensor(g) for g in grads),
                                              Tensor(learning_rate))
        assert bool(finite.asnumpy()), f"reference step {global_step} was not finite"
        records.append({"global_step": global_step + 1, "loss": float(loss.asnumpy()),
                        "grad_norm": float(norm.asnumpy()), "rows": [rows for rows, _, _ in parts]})
    save(trainer, out, "reference")
    (out / "reference.json").write_text(json.dumps(records))


if __name__ == "__main__":
    from ds2stream.runtime import quiet_framework_logs

    quiet_framework_logs()  # before mindspore is imported
    mode, shards, run_dir, out, steps = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), \
        int(sys.argv[5])
    options = json.loads(sys.argv[7]) if len(sys.argv) > 7 else {}
    if mode == "reference":
        reference(shards, run_dir, out, steps, int(sys.argv[6]), options)
    else:
        run_leg(mode, shards, run_dir, out, steps, json.loads(sys.argv[6]), options)
