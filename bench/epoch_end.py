"""The epoch-end anomaly: is an epoch-end checkpoint worse because of its BatchNorm running statistics
(moved last by the epoch's partial batches, which come last, in bucket order)? Evaluates a checkpoint as saved,
then after re-estimating BatchNorm's running statistics on random full training batches (forward passes in
train mode, no weight updated). Prints one JSON line, and writes it with the machine to OUT.

    python bench/epoch_end.py CHECKPOINT TRAIN_SHARDS TEST_SHARDS [BATCHES] [OUT]
"""
import dataclasses
import json
import sys
from pathlib import Path

import harness
import numpy as np
from mindspore import Tensor

from ds2stream.checkpoint import load_model, model_features
from ds2stream.inference.evaluate import evaluate
from ds2stream.model import ModelConfig, running_statistics
from ds2stream.pipeline import ShardSet
from ds2stream.runtime import quiet_framework_logs, use_graph_mode
from ds2stream.training.config import TrainConfig
from ds2stream.training.plan import make_source

quiet_framework_logs(False)
use_graph_mode()
checkpoint, train_dir, test_dir = map(Path, sys.argv[1:4])
batches = int(sys.argv[4]) if len(sys.argv) > 4 else 40
network, meta = load_model(checkpoint)
features = model_features(meta)
test = ShardSet(test_dir, features)
before = evaluate(network, test)
config = TrainConfig.from_dict(meta["train_config"])
model_config = ModelConfig.from_dict(meta["model_config"])
train = ShardSet(train_dir, features)
source = make_source(train, model_config, dataclasses.replace(config, augment=type(config.augment)()))
source.set_epoch(7)
network.set_train(True)
rng = np.random.default_rng(0)
steps = rng.permutation(len(source.sampler))[:batches]
stats_before = {p.name: p.asnumpy().copy() for p in running_statistics(network)}
for step in steps:
    b = source.batch(int(step))
    if b[5].min() < 1:  # skip partial batches (filler rows)
        continue
    network(Tensor(b[0]), Tensor(b[1].astype(np.int32)))
network.set_train(False)
moved = max(float(np.abs(p.asnumpy() - stats_before[p.name]).max()) for p in running_statistics(network))
after = evaluate(network, test)
result = {"checkpoint": str(checkpoint), "cer_saved": before.cer, "wer_saved": before.wer,
          "cer_bn_reestimated": after.cer, "wer_bn_reestimated": after.wer, "bn_moved": moved,
          "batches": int(len(steps))}
print(json.dumps(result))
if len(sys.argv) > 5:
    harness.save(sys.argv[5], result)
