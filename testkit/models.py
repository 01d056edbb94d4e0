"""Streaming models the tests and benches build in seconds, without training: the ``stream``
preset's network with random weights, and that network with its classifier fitted (in numpy) to
read given recordings: the blank where they are silent, their transcripts where they speak."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ds2stream.data.text import BLANK_INDEX, LABELS
from ds2stream.features import FeatureConfig


def random_stream_network(features: FeatureConfig):
    """(network, config): the stream preset's network for ``features``, initialised from a fixed
    seed, its BatchNorm statistics, lookahead and classifier drawn at random so every layer shapes
    the output and the greedy text is not one letter. (Not every weight: recurrent weights that
    large are chaotic, and a 1e-5 difference between two orders of float sums grows without bound.)"""
    import mindspore as ms

    from ds2stream.network import build_model
    from ds2stream.presets import PRESETS
    from ds2stream.runtime import use_graph_mode

    use_graph_mode()
    ms.set_seed(0)
    config = dataclasses.replace(PRESETS["stream"].model, num_bins=features.num_bins)
    network = build_model(config)
    rng = np.random.default_rng(1)
    for parameter in network.get_parameters():
        shape = parameter.shape
        values = {"fc.": rng.normal(0, 3.0, shape), "lookahead": rng.normal(0, 0.5, shape),
                  "moving_mean": rng.normal(0, 0.1, shape), "moving_variance": rng.uniform(0.8, 1.25, shape),
                  "gamma": rng.uniform(0.8, 1.2, shape), "beta": rng.normal(0, 0.1, shape)}
        chosen = next((v for key, v in values.items() if key in parameter.name), None)
        if chosen is not None:
            parameter.set_data(ms.Tensor(chosen.astype(np.float32)))
    network.set_train(False)
    return network, config


class _Nowhere:
    """A stream's search that decodes nothing: the stream keeps its frames itself."""

    def advance(self, log_probs):
        pass

    def result(self) -> str:
        return ""


def fit_classifier(network, config, features: FeatureConfig, examples: list, speech_db: float = 25.0,
                   iterations: int = 200):
    """Fit ``network``'s classifier so that it reads ``examples``: (int16 samples, [(first
    sample, end sample, text)] of the utterances in them). An output frame inside an utterance whose
    audio is within ``speech_db`` of the utterance's loudest frame is speech, and reads the text's
    characters spread evenly over the speech frames; every other frame reads the blank. A softmax
    regression (Adam, L2) on the classifier's inputs, which the rest of the network (random) gives.
    Returns the network's StreamingModel with the fitted classifier (its stages compiled)."""
    from ds2stream.inference.stream import StreamingModel

    model = StreamingModel.from_network(network, config, features)
    # The classifier's inputs H through the same stages: an identity classifier gives
    # log_softmax(H) = H - c per frame, and H minus its mean over the features is that minus its
    # own mean. A classifier whose rows sum to 0 reads H as it reads H minus its mean.
    probe = StreamingModel(model.convs, model.rnn, {"lookahead.weight": model.lookahead,
                                                    "fc.module.weight": np.eye(config.rnn_hidden, dtype=np.float32)},
                           config, features)
    frame = features.hop_length * config.time_stride  # samples per output frame
    inputs, targets = [], []
    for samples, utterances in examples:
        stream = probe.open(_Nowhere())
        stream.push(samples)
        stream.end()
        log_probs = stream.log_probs
        inputs.append(log_probs - log_probs.mean(axis=1, keepdims=True))
        reads = np.full(len(log_probs), BLANK_INDEX)
        for first, end, text in utterances:
            frames = np.arange(first // frame, min(len(log_probs), -(-end // frame)))
            power = [np.mean(samples[k * frame: (k + 1) * frame].astype(np.float64) ** 2) + 1e-9 for k in frames]
            decibels = 10 * np.log10(power)
            speech = frames[decibels > decibels.max() - speech_db]
            for j, k in enumerate(speech):
                reads[k] = LABELS.index(text[j * len(text) // len(speech)])
        targets.append(reads)
    weights = _softmax_regression(np.concatenate(inputs), np.concatenate(targets), iterations)
    model.classifier = weights.astype(np.float32)
    import mindspore as ms

    network.fc.module.weight.set_data(ms.Tensor(model.classifier))
    return model


def _softmax_regression(x: np.ndarray, y: np.ndarray, iterations: int, l2: float = 1e-3) -> np.ndarray:
    """(classes, features) weights, rows summing to 0, by Adam on standardised features."""
    scale = x.std(axis=0) + 1e-6
    z = x / scale
    weights = np.zeros((len(LABELS), x.shape[1]))
    first, second = np.zeros_like(weights), np.zeros_like(weights)
    for step in range(1, iterations + 1):
        logits = z @ weights.T
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        gradient = p.T @ z / len(y) + l2 * weights
        first = 0.9 * first + 0.1 * gradient
        second = 0.999 * second + 0.001 * gradient ** 2
        weights -= 0.025 * (first / (1 - 0.9 ** step)) / (np.sqrt(second / (1 - 0.999 ** step)) + 1e-8)
    weights /= scale
    return weights - weights.mean(axis=1, keepdims=True)


def save_stream_checkpoint(network, config, features: FeatureConfig, path: Path) -> Path:
    """The network as a ds2stream checkpoint, as training writes one."""
    from ds2stream.checkpoint import CHECKPOINT_FORMAT, save_checkpoint

    save_checkpoint(network, path, {"format": CHECKPOINT_FORMAT, "labels": LABELS, "model_config": config.to_dict(),
                                    "feature_config": features.to_dict()})
    return path
