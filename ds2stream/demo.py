"""The main job end to end: shard -> train -> evaluate, on the bundled sample or the user's data."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

from .data import SAMPLE_DIR
from .errors import DataError
from .files import write_durably

MARKER = ".ds2stream-demo"
#: What a demo measured, for scripts and reports: the test set's scores, the stages' seconds.
RESULT_FILE = "demo.json"


@dataclasses.dataclass
class DemoResult:
    run_dir: Path
    checkpoint: Path  # the one evaluated
    stage_seconds: dict
    report: object  # evaluate.EvalReport
    train_utterances: int
    test_utterances: int


def prepare_out_dir(out: Path) -> None:
    """Use ``out`` for a demo: a fresh folder, or one a previous demo made (emptied)."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise DataError(f"{out} exists and was not made by `ds2stream demo`; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by ds2stream demo; deleted by the next demo run with this --out\n")


def run_demo(out: Path, train_inputs: list[Path] | None = None, test_inputs: list[Path] | None = None,
             dev_inputs: list[Path] | None = None, preset: str = "tiny", epochs: int | None = None,
             progress: bool = True, log=print, train_config=None) -> DemoResult:
    """Shard the inputs (default: the bundled sample), train ``preset``, evaluate on the test inputs.

    ``train_config`` (a TrainConfig) replaces the preset's training defaults: bench/accuracy.py
    trains every preset's model with one recipe, so that only the model differs.

    With dev inputs (the sample has them) the checkpoint with the best dev WER is evaluated;
    without, the last one: the test set never chooses a checkpoint.
    """
    from .checkpoint import load_model, model_features
    from .data.shards import ShardOptions, write_shard_set
    from .inference.evaluate import evaluate
    from .pipeline import ShardSet
    from .presets import get_preset
    from .runtime import use_graph_mode
    from .training.trainer import Trainer

    out = Path(out)
    prepare_out_dir(out)
    if not train_inputs:
        train_inputs, dev_inputs, test_inputs = ([SAMPLE_DIR / split] for split in ("train", "dev", "test"))
    splits = {"train": train_inputs, "dev": dev_inputs, "test": test_inputs}
    seconds = {}

    started = time.perf_counter()
    jobs = os.cpu_count() or 1
    for name, inputs in ((name, inputs) for name, inputs in splits.items() if inputs):
        summary = write_shard_set(inputs, out / "shards" / name, ShardOptions(), jobs=jobs)
        log(f"shard {name}: {summary['utterances']} utterances, {summary['hours'] * 60:.1f} min of audio, "
            f"{len(summary['problems'])} problems")
    seconds["shard"] = time.perf_counter() - started

    started = time.perf_counter()
    use_graph_mode()
    chosen = get_preset(preset)
    config = train_config or chosen.train
    config = config if epochs is None else dataclasses.replace(config, epochs=epochs)
    dev = out / "shards" / "dev" if dev_inputs else None
    trainer = Trainer(out / "run", out / "shards" / "train", chosen.model, config, dev_shard_dir=dev,
                      progress=progress)
    trainer.start_new()

    def on_epoch_end(record):
        scores = f", dev WER {record['dev_wer']:.2%}, CER {record['dev_cer']:.2%}" if dev else ""
        log(f"epoch {record['epoch'] + 1}/{config.epochs}: loss {record['mean_loss']:.3f}{scores} "
            f"({record['seconds']:.0f} s)")

    trainer.fit(on_epoch_end=on_epoch_end)
    seconds["train"] = time.perf_counter() - started

    started = time.perf_counter()
    checkpoint = out / "run" / "best.ckpt" if dev else trainer.checkpoints()[-1]
    log(f"evaluating {checkpoint} on the test set")
    network, meta = load_model(checkpoint)
    test_set = ShardSet(out / "shards" / "test", model_features(meta))  # the run's features, not the shards'
    report = evaluate(network, test_set)
    seconds["eval"] = time.perf_counter() - started
    result = DemoResult(out / "run", checkpoint, seconds, report, len(trainer.shards), len(test_set))
    write_durably(out / RESULT_FILE, json.dumps({
        "preset": preset, "epochs": config.epochs, "checkpoint": str(checkpoint),
        "train_utterances": result.train_utterances, "test_utterances": result.test_utterances,
        "test": report.summary(), "stage_seconds": {stage: round(s, 1) for stage, s in seconds.items()}},
        indent=1).encode())
    return result
