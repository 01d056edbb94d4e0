"""The preset table: a model and its training defaults under one name.

``zoo``   -- the model zoo's DeepSpeech2 exactly (86.6 M parameters, tanh, no masking): loads and
             continues zoo checkpoints. Training defaults fixed: the LR schedule is applied,
             gradients are clipped, Adam has no loss scale.
``small`` -- the zoo's conv front end, 3 bidirectional LSTM-512 layers, with masking, RNN
             BatchNorm and clipped ReLU: for a first LibriSpeech run on a CPU server.
``fast``  -- 4x time subsampling (second conv strides time too, as PaddleSpeech), 3 bidirectional
             LSTM-512 layers: trades accuracy for speed on a CPU (see bench/step.py). Not GRU:
             MindSpore 2.10 has no fused GRU kernel on CPU and unrolls it frame by frame.
``lean``  -- two 16-channel convs of 11 mel rows by 5 frames (the zoo's 41 x 11 and 21 x 11 were
             sized for 161 linear bins) with 3x time subsampling, 3 bidirectional LSTM-256 layers
             with dropout 0.2 on their outputs, weight decay 0.1 (AdamW), a short warm-up, a peak LR
             of 3.2e-3 falling linearly to 0 at the run's end, 8,000-frame batches, log-mel features
             normalised per frequency row (``MEL_PER_BIN``) and best.ckpt by dev CER: for sentences
             on a 2-core machine, the recipe measured best on voices never heard in training
             (docs/results/unseen-voices.md).
``stream`` -- ``lean`` as it was when measured (the zoo's kernel sizes at 16 channels with 4x time
             subsampling, no dropout or weight decay, the schedule 8e-4, 0.8 per epoch), 3
             forward-only LSTM-384 layers (about that lean's parameters
             and cost) and a lookahead convolution over 3 output frames (120 ms), on log-mel
             features with a causal sliding mean (``MEL_SLIDING``): recognises while the audio
             arrives (``inference/stream.py``).
``tiny``  -- 8-channel convs with 4x time subsampling (as ``fast``) and 2 bidirectional LSTM-160
             layers: trains in minutes on the bundled sample (spoken digits) and in the tests.
             Convolutions were most of its step with 2x (MindSpore's profiler); 4x halves the
             second conv and the LSTMs, and on the sample it learns in fewer epochs too: the demo
             reaches the same test WER in 20 epochs instead of 35, in less than half the time
             (measured: docs/demo.md).

Augmentation (``pipeline.augment.STANDARD_AUGMENT``: speed, volume, noise, SpecAugment) is on in
``small``, ``fast`` and ``lean``; off in ``zoo`` (the seed's recipe, which had none) and ``tiny``
(measured on the bundled sample: docs/results/augmentation.md).
"""
from __future__ import annotations

import dataclasses

from .errors import ConfigError
from .features import FeatureConfig, Normalize, Scale
from .model import ZOO_CONV, Activation, ConvLayer, ModelConfig
from .pipeline.augment import STANDARD_AUGMENT
from .training.config import Preset, TrainConfig

#: Log-mel features normalised per frequency row: on voices never heard in training they read better
#: than the linear spectrogram, and a step costs less per audio-second (measured:
#: docs/results/unseen-voices.md).
MEL_PER_BIN = FeatureConfig(scale=Scale.MEL, n_mels=80, normalize=Normalize.PER_BIN)

#: The same filterbank, each row's mean over the last 3 s subtracted: causal, so a stream has it.
MEL_SLIDING = dataclasses.replace(MEL_PER_BIN, normalize=Normalize.SLIDING)

_IMPROVED = {"activation": Activation.HARDTANH, "mask_padding": True, "rnn_batch_norm": True}


def zoo_kernels_4x(channels: int) -> tuple[ConvLayer, ConvLayer]:
    """The zoo's conv kernel sizes (41 x 11, then 21 x 11) with ``channels`` each, the second conv
    striding time too: 4x time subsampling, as PaddleSpeech (fast, stream, tiny; lean before)."""
    return (dataclasses.replace(ZOO_CONV[0], channels=channels), ConvLayer(channels, (21, 11), (2, 2), (10, 5)))


#: lean's two convs: 11 mel rows by 5 frames each, frequency strided 2 by both, time 3 by the first. The
#: kernels: unseen voices read better than with the zoo's kernel sizes (zoo_kernels_4x(16), sized
#: for 161 linear bins), and a step costs less per audio-second. The 3x time subsampling (2 x 2
#: before): at 4x the test voices, read fast, left CTC few output frames per label position; 3x
#: reads better per step and per hour, for a dearer step (measured: docs/results/unseen-voices.md).
_LEAN_CONV = (ConvLayer(16, (11, 5), (2, 3), (5, 2)), ConvLayer(16, (11, 5), (2, 1), (5, 2)))
_LEAN_MODEL = ModelConfig(conv=_LEAN_CONV, rnn_layers=3, rnn_hidden=256, **_IMPROVED)
_LEAN_TRAIN = TrainConfig(epochs=4, learning_rate=8e-4, warmup_steps=100, lr_decay_per_epoch=0.8, max_frames=8000,
                          checkpoint_every=100, augment=STANDARD_AUGMENT, best_by="cer", features=MEL_PER_BIN)
#: lean's own: 4x the peak, falling linearly to 0 at the run's end (its --max-minutes, else its 4
#: epochs): on unseen voices ahead of 8e-4 decaying 0.8 per epoch, and of 1x and 2x the peak on the
#: same line (measured: docs/results/unseen-voices.md). `stream` keeps the schedule it was measured with.
_LEAN_SCHEDULE = {"lr_schedule": "linear", "learning_rate": 3.2e-3}
#: lean's regularisers, for 16 passes over a 6-hour corpus in 60 minutes: dropout 0.2 on the RNN
#: outputs and weight decay 0.1 (AdamW), ahead of the run without them (measured:
#: docs/results/unseen-voices.md).
_LEAN_DROPOUT, _LEAN_WEIGHT_DECAY = 0.2, 0.1

PRESETS = {
    "zoo": Preset("zoo", ModelConfig(), TrainConfig(learning_rate=3e-4, max_frames=10000)),
    "small": Preset("small", ModelConfig(rnn_layers=3, rnn_hidden=512, **_IMPROVED),
                    TrainConfig(learning_rate=5e-4, max_frames=20000, augment=STANDARD_AUGMENT)),
    "fast": Preset("fast", ModelConfig(
        conv=zoo_kernels_4x(32),
        rnn_layers=3, rnn_hidden=512, **_IMPROVED),
        TrainConfig(learning_rate=5e-4, max_frames=20000, augment=STANDARD_AUGMENT)),
    "lean": Preset("lean", dataclasses.replace(_LEAN_MODEL, dropout=_LEAN_DROPOUT),
                   dataclasses.replace(_LEAN_TRAIN, weight_decay=_LEAN_WEIGHT_DECAY, **_LEAN_SCHEDULE)),
    "stream": Preset("stream", dataclasses.replace(_LEAN_MODEL, conv=zoo_kernels_4x(16), rnn_hidden=384,
                                                   bidirectional=False, lookahead=3),
                     dataclasses.replace(_LEAN_TRAIN, features=MEL_SLIDING)),
    "tiny": Preset("tiny", ModelConfig(
        conv=zoo_kernels_4x(8),
        rnn_layers=2, rnn_hidden=160, **_IMPROVED),
        TrainConfig(epochs=20, learning_rate=2e-3, warmup_steps=50, lr_decay_per_epoch=0.88, max_frames=2000,
                    num_buckets=6, checkpoint_every=200)),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
