"""The epoch-end anomaly: is an epoch-end checkpoint worse because of its BatchNorm running statistics
(moved last by the epoch's partial batches, which come last, in bucket order)? Evaluates a checkpoint as saved,
then after re-estimating BatchNorm's running statistics on random full training batches (forward passes in
train mode, no weight updated). Prints one JSON line, and writes it with the machine to OUT.

    python bench/epoch_end.py CHECKPOINT TRAIN_SHARDS TEST_SHARDS [BATCHES] [OUT]
"""
import argparse
import dataclasses
import json
from pathlib import Path

import harness
import numpy as np

from ds2stream.pipeline import BATCH_COLUMNS

#: The epoch whose batch plan the statistics are re-estimated on (any one: the batches are drawn at random).
EPOCH = 7


def reestimate_batch_norm(network, source, batches: int, seed: int = 0) -> tuple[int, float]:
    """Forward ``batches`` random batches of ``source`` in train mode (BatchNorm's running statistics
    move, no weight does), full batches only: (batches drawn, the largest change of a statistic)."""
    from mindspore import Tensor

    from ds2stream.model import running_statistics

    source.set_epoch(EPOCH)
    steps = np.random.default_rng(seed).permutation(len(source.sampler))[:batches]
    before = {p.name: p.asnumpy().copy() for p in running_statistics(network)}
    network.set_train(True)
    for step in steps:
        batch = dict(zip(BATCH_COLUMNS, source.batch(int(step))))
        if batch["mask"].min() < 1:  # a partial batch: its filler rows would move the statistics too
            continue
        network(Tensor(batch["features"]), Tensor(batch["feature_lengths"].astype(np.int32)))
    network.set_train(False)
    moved = max(float(np.abs(p.asnumpy() - before[p.name]).max()) for p in running_statistics(network))
    return len(steps), moved


def measure(checkpoint: Path, train_dir: Path, test_dir: Path, batches: int) -> dict:
    from ds2stream.checkpoint import load_model, model_features
    from ds2stream.inference.evaluate import evaluate
    from ds2stream.model import ModelConfig
    from ds2stream.pipeline import ShardSet
    from ds2stream.runtime import use_graph_mode
    from ds2stream.training.config import TrainConfig
    from ds2stream.training.plan import make_source

    use_graph_mode()
    network, meta = load_model(checkpoint)
    features = model_features(meta)
    test = ShardSet(test_dir, features)
    before = evaluate(network, test)
    config = TrainConfig.from_dict(meta["train_config"])
    unaugmented = dataclasses.replace(config, augment=type(config.augment)())
    source = make_source(ShardSet(train_dir, features), ModelConfig.from_dict(meta["model_config"]), unaugmented)
    drawn, moved = reestimate_batch_norm(network, source, batches)
    after = evaluate(network, test)
    return {"checkpoint": str(checkpoint), "cer_saved": before.cer, "wer_saved": before.wer,
            "cer_bn_reestimated": after.cer, "wer_bn_reestimated": after.wer, "bn_moved": moved, "batches": drawn}


def main():
    from ds2stream.runtime import quiet_framework_logs

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("train_shards", type=Path)
    parser.add_argument("test_shards", type=Path)
    parser.add_argument("batches", type=int, nargs="?", default=40, help="random training batches drawn")
    parser.add_argument("out", type=Path, nargs="?", help="write the result with the machine here")
    args = parser.parse_args()
    quiet_framework_logs(False)  # before mindspore is imported
    result = measure(args.checkpoint, args.train_shards, args.test_shards, args.batches)
    print(json.dumps(result))
    if args.out:
        harness.save(args.out, result)


if __name__ == "__main__":
    main()
