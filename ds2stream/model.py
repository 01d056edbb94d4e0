"""DeepSpeech2 in MindSpore: conv front end, RNN layers, a linear classifier. This module holds what
shapes the network, without importing MindSpore; the cells and ``build_model`` are in ``network.py``.

Parameter names and shapes are the model zoo's (``conv.conv1.weight``, ``conv.bn1.gamma``,
``RNN.lstms.0.weight_ih_l0``, ``fc.module.weight``, ...), so zoo checkpoints load. The conv
geometry lives in one table (:class:`ConvLayer` rows of a :class:`ModelConfig`); the RNN input size,
the output lengths and the export shapes are all derived from it and from ``FeatureConfig``.

Input ``features`` (B, 1, num_bins, T) and ``lengths`` (B,); output log-probabilities
(T_out, B, num_classes), time-major as CTC wants them, and ``output_lengths`` (B,).

Improvements on the zoo, each a named switch of :class:`ModelConfig`:
  ``mask_padding``   -- padding frames are zeroed after every layer and never enter a recurrence:
                        the backward direction starts at each utterance's own last frame;
  ``rnn_batch_norm`` -- BatchNorm on the input of every RNN layer but the first (as the DS2 paper);
  ``activation``     -- ``hardtanh`` (clipped ReLU, 0..20, as the DS2 paper) instead of ``tanh``;
  ``dropout``        -- in training, each RNN layer's outputs are dropped with this probability
                        (no parameters: a checkpoint loads with any value).
With all of them off the network is the zoo's, and so are its parameters.

A streaming model (``bidirectional=False``) has forward-only RNN layers and, before the
classifier, the DS2 paper's lookahead ("row") convolution: each output frame is a per-feature
weighted sum of the last RNN layer's outputs at this frame and the next ``lookahead`` ones, so the
model sees a little of the future at a fixed latency (``inference/stream.py`` runs it chunk by chunk).
"""
from __future__ import annotations

import dataclasses
import enum
import os

import numpy as np

from ._config import config_from_dict
from .data.text import NUM_CLASSES
from .errors import ConfigError
from .features import FeatureConfig

# MindSpore 2.10 runs convolutions through oneDNN 3.10, which on AVX-512 CPUs picks a reference
# implementation for MindSpore's plain NCHW layout: the zoo's 21x11 conv ran at 0.7 GFLOP/s here.
# Capped at AVX2 it uses its JIT GEMM convolution, 80x faster (bench/step.py). Read by oneDNN at
# its first primitive, so setting it before any network runs is enough; a user's value wins.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")


class Activation(str, enum.Enum):
    TANH = "tanh"
    HARDTANH = "hardtanh"  # min(max(x, 0), 20): the DS2 paper's clipped ReLU


class RNNType(str, enum.Enum):
    LSTM = "lstm"
    GRU = "gru"  # MindSpore 2.10 has no fused CPU GRU: it unrolls per frame (slow to compile and run)


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """One conv layer of the front end: (frequency, time) pairs, no bias, then BatchNorm."""

    channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]  # on both sides

    def out_size(self, size, axis: int):
        """Frames (axis 1) or bins (axis 0) after this layer, for an int or an integer array."""
        return (size + 2 * self.padding[axis] - self.kernel[axis]) // self.stride[axis] + 1


#: The zoo's conv front end.
ZOO_CONV = (
    ConvLayer(32, (41, 11), (2, 2), (20, 5)),
    ConvLayer(32, (21, 11), (2, 1), (10, 5)),
)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that shapes the network. Saved in every checkpoint."""

    conv: tuple[ConvLayer, ...] = ZOO_CONV
    rnn_type: RNNType = RNNType.LSTM
    rnn_layers: int = 5
    rnn_hidden: int = 1024  # bidirectional, directions summed
    bidirectional: bool = True  # False: forward-only layers, for streaming
    lookahead: int = 0  # future frames of the lookahead convolution (0: none)
    activation: Activation = Activation.TANH
    mask_padding: bool = False
    rnn_batch_norm: bool = False
    dropout: float = 0.0
    num_bins: int = FeatureConfig().num_bins
    num_classes: int = NUM_CLASSES

    def __post_init__(self):
        object.__setattr__(self, "activation", Activation(self.activation))
        object.__setattr__(self, "rnn_type", RNNType(self.rnn_type))
        object.__setattr__(self, "conv", tuple(
            layer if isinstance(layer, ConvLayer) else ConvLayer(**{k: tuple(v) if isinstance(v, list) else v
                                                                    for k, v in layer.items()})
            for layer in self.conv))
        if self.lookahead < 0 or (self.lookahead and self.bidirectional):
            raise ConfigError(f"lookahead {self.lookahead}: a lookahead convolution is for a forward-only "
                              f"(bidirectional=False) model, of 0 or more frames")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout {self.dropout}: a probability, 0 or more and below 1")
        if not self.bidirectional and not self.mask_padding:
            raise ConfigError("a forward-only model needs mask_padding (padding frames would enter the "
                              "lookahead convolution otherwise)")

    def output_lengths(self, frames):
        """Model output frames for input frames (int or integer array): the conv layers' time axis."""
        for layer in self.conv:
            frames = layer.out_size(frames, 1)
        return frames

    @property
    def conv_shapes(self) -> list[tuple[int, int]]:
        """(channels, bins) into each conv layer, then out of the last: the frequency axis."""
        shapes = [(1, self.num_bins)]
        for layer in self.conv:
            shapes.append((layer.channels, layer.out_size(shapes[-1][1], 0)))
        return shapes

    @property
    def rnn_input_size(self) -> int:
        channels, bins = self.conv_shapes[-1]
        return channels * bins

    @property
    def time_stride(self) -> int:
        return int(np.prod([layer.stride[1] for layer in self.conv]))

    def frame_seconds(self, features: FeatureConfig) -> float:
        """Seconds of audio per output frame: the features' hop times the convolutions' time stride."""
        return features.hop_length / features.sample_rate * self.time_stride

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["activation"], data["rnn_type"] = self.activation.value, self.rnn_type.value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return config_from_dict(cls, data)


def count_parameters(config: ModelConfig) -> int:
    """Every parameter a checkpoint holds: weights, biases, BatchNorm's gamma, beta and moving
    statistics (the zoo preset: 86,608,224)."""
    total, channels = 0, 1
    for layer in config.conv:
        total += layer.channels * channels * layer.kernel[0] * layer.kernel[1] + 4 * layer.channels
        channels = layer.channels
    gates = 4 if config.rnn_type is RNNType.LSTM else 3
    directions = 2 if config.bidirectional else 1
    size = config.rnn_input_size
    for i in range(config.rnn_layers):
        if config.rnn_batch_norm and i > 0:
            total += 4 * size
        total += directions * gates * config.rnn_hidden * (size + config.rnn_hidden + 2)
        size = config.rnn_hidden
    if config.lookahead:
        total += (config.lookahead + 1) * config.rnn_hidden
    return total + config.num_classes * config.rnn_hidden


# ---------------------------------------------------------------- MindSpore
# The cells themselves and ``build_model`` live in ``network.py``; what follows imports mindspore
# lazily: it takes seconds to import and the data stages do not need it.

def open_inputs(config: ModelConfig) -> tuple:
    """The network's inputs (features, lengths) with batch and frames left open, as the training
    step, the network itself and the exported MindIR take them."""
    import mindspore as ms

    return (ms.Tensor(shape=[None, 1, config.num_bins, None], dtype=ms.float32),
            ms.Tensor(shape=[None], dtype=ms.int32))


def running_statistics(network) -> list:
    """BatchNorm's running means and variances: what the forward pass moves in training, outside
    the optimizer (MindSpore names them ``moving_mean`` / ``moving_variance``)."""
    return [p for p in network.get_parameters() if "moving_" in p.name]


def parameter_shapes(network) -> dict[str, tuple]:
    """{name: shape} of every parameter (trainable and BatchNorm statistics), as a checkpoint has them."""
    return {p.name: tuple(p.shape) for p in network.get_parameters()}
