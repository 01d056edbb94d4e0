"""Streaming recognition: audio arrives in chunks, text grows as it does.

A forward-only model (``ModelConfig.bidirectional=False``, causal features) is run stage by stage,
each stage keeping what it needs of the past:

  samples -> :class:`FeatureStream` (the native kernel over the samples that no later sample can
  change; the causal mean of ``normalize="sliding"`` carried, or the global statistics applied) ->
  each conv layer over the frames it has, keeping the ``kernel - stride`` it will need again (the
  utterance's zero padding at the start and at the end, as the whole-utterance pass) -> the forward
  RNN layers from their carried state -> the lookahead convolution once its future frames are there
  -> the classifier.

The log-probabilities are those of the whole-utterance forward pass of the same model, to float
tolerance, whatever the chunk sizes (tested). They are decoded as they come: greedily, or by a
prefix beam search (with an LM) that goes on from where it stopped (``BeamSearch.start``); the
text so far is the partial result, the text at the end the final one, as decoding the whole.
With endpoint rules (``endpoint.EndpointRules``) a stream that stays open is cut into segments,
one per utterance: at each endpoint the decoder starts afresh and the segment is reported.
"""
from __future__ import annotations

import numpy as np

from ..data.text import BLANK_INDEX, LABELS
from ..errors import ConfigError, DataError
from ..features import (
    INT16_SCALE,
    SLIDING_WINDOW,
    FeatureConfig,
    Normalize,
    globally_normalized,
    sliding_mean_removed,
    spectrogram,
)
from ..model import ModelConfig
from .endpoint import EndpointDetector, EndpointRules, Segment, segment_of

#: What a stream's features may be normalised by, for the errors that say so.
_CAUSAL = [repr(mode.value) for mode in Normalize if mode.causal]
CAUSAL_NORMALIZATIONS = f"normalize {', '.join(_CAUSAL[:-1])} or {_CAUSAL[-1]}"


class FeatureStream:
    """The features of a stream, as its samples arrive: each frame once no later sample can change
    it (a centred frame needs ``n_fft // 2`` samples past its centre), the last ones at :meth:`end`
    (with the whole utterance's reflect padding). Equal to :func:`features.spectrogram` of all the
    samples; needs a causal normalisation (none, sliding or global)."""

    def __init__(self, config: FeatureConfig):
        if not config.normalize.causal:
            raise ConfigError(f"features normalised {config.normalize.value!r} depend on the whole utterance: a "
                              f"stream needs {CAUSAL_NORMALIZATIONS}")
        self.config = config
        self._raw = config.unnormalized
        self._pad = config.n_fft // 2
        # Samples kept before the next frame's centre: its left half-window, rounded up to whole hops
        # (so the kernel's frames line up with the stream's), and one hop more (see end()).
        self._keep = (-(-self._pad // config.hop_length) + 1) * config.hop_length
        self._samples = np.zeros(0, np.float32)
        self._start = 0  # stream position of self._samples[0]
        self._next = 0  # the next frame to give
        self._history = np.zeros((config.num_bins, 0), np.float32)  # raw frames for the sliding mean
        self.ended = False

    @property
    def received(self) -> int:
        """Samples pushed so far."""
        return self._start + len(self._samples)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Features (num_bins, frames) of the frames these samples complete (maybe none)."""
        if self.ended:
            raise DataError("the stream has ended")
        samples = np.asarray(samples)
        if samples.dtype == np.int16:
            samples = samples.astype(np.float32) / np.float32(INT16_SCALE)
        elif not np.issubdtype(samples.dtype, np.floating) or samples.ndim != 1:
            raise DataError(f"a stream takes 1-D int16 or float samples, got {samples.dtype} {samples.shape}")
        elif not np.isfinite(samples).all():  # one NaN would spread through every frame after it
            bad = self.received + int(np.flatnonzero(~np.isfinite(samples))[0])
            raise DataError(f"the stream's samples hold NaN or inf (first at sample {bad})")
        self._samples = np.concatenate([self._samples, samples.astype(np.float32)])
        received = self.received
        # Frame i is final once i * hop + pad <= received (its window ends there; it reflects
        # nothing at the end) and the start's reflect padding (pad + 1 samples) is there.
        last = (received - self._pad) // self.config.hop_length if received > self._pad else -1
        return self._frames(last + 1)

    def end(self) -> np.ndarray:
        """The remaining frames, with the end's reflect padding, as the whole utterance has them."""
        if self.ended:
            return np.zeros((self.config.num_bins, 0), np.float32)
        self.ended = True
        received = self.received
        if received < self.config.min_samples:
            raise DataError(f"the stream has {received} samples; the features need at least "
                            f"{self.config.min_samples}")
        return self._frames(int(self.config.num_frames(received)))

    def _frames(self, stop: int) -> np.ndarray:
        """Frames ``self._next`` up to ``stop`` (exclusive), then the samples they no longer need dropped."""
        hop = self.config.hop_length
        if stop <= self._next:
            return np.zeros((self.config.num_bins, 0), np.float32)
        # The kernel on the kept samples: its frame j is centred at self._start + j * hop.
        offset = self._start // hop
        raw = spectrogram(self._samples, self._raw)[:, self._next - offset: stop - offset]
        self._next = stop
        drop = max(0, self._next * hop - self._keep - self._start)
        self._samples, self._start = self._samples[drop:], self._start + drop
        if self.config.normalize is Normalize.SLIDING:
            out = sliding_mean_removed(raw, self._history)
            # The raw frames the sliding mean needs from before the next chunk.
            self._history = np.concatenate([self._history, raw], axis=1)[:, -(SLIDING_WINDOW - 1):]
            return out
        if self.config.normalize is Normalize.GLOBAL:
            return globally_normalized(raw, self.config)
        return raw


class ConvStream:
    """One conv layer's time axis over a stream: frames in, the output frames they complete out.
    Holds the input frames the next outputs need; the zero padding of the whole-utterance pass is
    put in at the start and at :meth:`end`."""

    def __init__(self, kernel: int, stride: int, padding: int, shape: tuple[int, ...]):
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.buffer = np.zeros((*shape, padding), np.float32)  # the start's zero padding

    def take(self, frames: np.ndarray, end: bool = False) -> np.ndarray | None:
        """The window of input frames for the outputs now complete (or None), the rest kept."""
        parts = [self.buffer, frames]
        if end:
            parts.append(np.zeros((*self.buffer.shape[:-1], self.padding), np.float32))
        self.buffer = np.concatenate(parts, axis=-1)
        count = (self.buffer.shape[-1] - self.kernel) // self.stride + 1
        if count <= 0:
            return None
        window = self.buffer[..., :(count - 1) * self.stride + self.kernel]
        self.buffer = self.buffer[..., count * self.stride:]
        return window


def build_stream_stages(network, config: ModelConfig):
    """The network's layers as stages a stream runs one chunk at a time, owning them (the
    network's parameters are renamed under the stages: give a copy): each conv layer without time
    padding (the stream supplies it), the RNN layers from a state."""
    import mindspore as ms

    from ..network import ConvStage, RNNStage

    convs = [ConvStage(network.conv, i) for i in range(len(config.conv))]
    for stage, (channels, bins) in zip(convs, config.conv_shapes):
        stage.set_inputs(ms.Tensor(shape=[None, channels, bins, None], dtype=ms.float32))
    rnn = RNNStage(network.RNN)
    state = ms.Tensor(shape=[config.rnn_layers, None, config.rnn_hidden], dtype=ms.float32)
    rnn.set_inputs(ms.Tensor(shape=[None, None, config.rnn_input_size], dtype=ms.float32), state, state)
    for cell in (*convs, rnn):
        cell.set_train(False)
    return convs, rnn


class StreamingModel:
    """A forward-only model as stages a stream steps through: :meth:`open` gives a :class:`Stream`.
    The stages are MindSpore cells (compiled once in graph mode) or exported MindIR graphs; the
    lookahead and the classifier are small enough to run in numpy."""

    def __init__(self, convs: list, rnn, head: dict[str, np.ndarray], model_config: ModelConfig,
                 features: FeatureConfig):
        check_streamable(model_config, features)
        self.config, self.features = model_config, features
        self.convs, self.rnn = convs, rnn
        self.lookahead = head.get("lookahead.weight")  # (lookahead + 1, hidden)
        self.classifier = head["fc.module.weight"]  # (classes, hidden)
        self.frame_seconds = model_config.frame_seconds(features)

    @classmethod
    def from_network(cls, network, model_config: ModelConfig, features: FeatureConfig) -> "StreamingModel":
        import mindspore as ms

        from ..network import build_model

        check_streamable(model_config, features)
        params = {p.name: p.asnumpy() for p in network.get_parameters()}
        # The stages take the layers of a copy of the network: a cell given to another cell takes
        # its parameters' names under the new owner, and the caller's network keeps its own.
        copy = build_model(model_config)
        ms.load_param_into_net(copy, {name: ms.Parameter(ms.Tensor(value), name=name)
                                      for name, value in params.items()}, strict_load=True)
        convs, rnn = build_stream_stages(copy, model_config)
        return cls(convs, rnn, {k: v for k, v in params.items() if k in HEAD_PARAMETERS}, model_config, features)

    def open(self, search=None, endpoint: EndpointRules | None = None) -> "Stream":
        """A new stream; ``search``: a beam search to feed (``BeamSearch.start()``), else greedy;
        ``endpoint``: rules that cut it into segments, else one utterance."""
        return Stream(self, search, endpoint)


#: The parameters the numpy head (lookahead and classifier) takes.
HEAD_PARAMETERS = ("lookahead.weight", "fc.module.weight")


def check_streamable(model_config: ModelConfig, features: FeatureConfig) -> None:
    """A ConfigError saying why a model cannot stream, if it cannot."""
    if model_config.bidirectional:
        raise ConfigError("this model is bidirectional: it needs the whole recording before its first "
                          "word; streaming takes a forward-only model (the 'stream' preset)")
    if model_config.rnn_type.value != "lstm":
        raise ConfigError("streaming runs LSTM layers")
    if not features.normalize.causal:
        raise ConfigError(f"this model's features are normalised {features.normalize.value!r}, over the whole "
                          f"utterance: streaming needs {CAUSAL_NORMALIZATIONS}")


class Stream:
    """One recognition in progress: :meth:`push` samples (at the model's rate), :meth:`end`; the
    log-probabilities so far are :attr:`log_probs`, the text so far :attr:`text`. With endpoint
    rules, :attr:`segments` are those ended so far, :attr:`partial` the current one's text, and
    :attr:`log_probs` the current one's frames."""

    def __init__(self, model: StreamingModel, search=None, endpoint: EndpointRules | None = None):
        from .beam import BeamSearch

        config = model.config
        # Greedy is the beam search's best path (width 1, no LM), fed as the frames come.
        self.model, self.search = model, search or BeamSearch(beam_width=1).start()
        self.features = FeatureStream(model.features)
        shapes = [(1, channels, bins) for channels, bins in config.conv_shapes]  # one stream: batch 1
        self.convs = [ConvStream(layer.kernel[1], layer.stride[1], layer.padding[1], shape)
                      for layer, shape in zip(config.conv, shapes)]
        self.conv_outputs = shapes[1:]
        self.h = np.zeros((config.rnn_layers, 1, config.rnn_hidden), np.float32)
        self.c = np.zeros_like(self.h)
        self.pending = np.zeros((0, config.rnn_hidden), np.float32)  # RNN outputs awaiting their lookahead
        self._log_probs: list[np.ndarray] = []
        self.endpoints = None if endpoint is None else EndpointDetector(endpoint, model.frame_seconds)
        self.segments: list[Segment] = []  # ended, with words (endpoint rules only)
        self._segment_start = 0  # the stream's output frame where the current segment began

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Run what these samples complete; the new output frames' log-probabilities (frames, classes)."""
        return step([self], [samples])[0]

    def end(self) -> np.ndarray:
        """The stream's end: the frames its last samples complete, padded as the whole utterance."""
        return step([self], [None], [True])[0]

    @property
    def log_probs(self) -> np.ndarray:
        return np.concatenate(self._log_probs) if self._log_probs else np.zeros((0, len(LABELS)), np.float32)

    @property
    def text(self) -> str:
        """The transcript of the frames so far (the search's best); after :meth:`end`, what decoding
        the whole recording gives. With endpoint rules: the segments' texts, then the current one's."""
        if self.endpoints is None:
            return self.search.result()
        return " ".join([segment.text for segment in self.segments] + self.partial.split())

    @property
    def partial(self) -> str:
        """The text of the utterance under way (with endpoint rules: of the current segment)."""
        return self.search.result().strip()

    def _head(self, end: bool) -> np.ndarray:
        """Lookahead, classifier, log-softmax over the RNN outputs whose future is known."""
        span = 0 if self.model.lookahead is None else len(self.model.lookahead) - 1
        ready = len(self.pending) if end else max(0, len(self.pending) - span)
        if not ready:
            return np.zeros((0, len(LABELS)), np.float32)
        if span:
            padded = np.concatenate([self.pending, np.zeros((span, self.pending.shape[1]), np.float32)])
            mixed = sum(self.model.lookahead[j] * padded[j:j + ready] for j in range(span + 1))
        else:
            mixed = self.pending[:ready]
        self.pending = self.pending[ready:]
        logits = mixed @ self.model.classifier.T
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = (shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))).astype(np.float32)
        self._decode(log_probs, end)
        return log_probs

    def _decode(self, log_probs: np.ndarray, end: bool) -> None:
        """The frames to the search, a segment ended where the endpoint rules say (and at the end)."""
        while self.endpoints is not None and len(log_probs):
            position = self.endpoints.find(log_probs.argmax(axis=1) == BLANK_INDEX)
            if position is None:
                break
            self._advance(log_probs[: position + 1])
            self._end_segment()
            log_probs = log_probs[position + 1:]
        self._advance(log_probs)
        if end and self.endpoints is not None:
            self._end_segment()

    def _advance(self, log_probs: np.ndarray) -> None:
        if len(log_probs):
            self._log_probs.append(log_probs)
            self.search.advance(log_probs)

    def _end_segment(self) -> None:
        """Report the current segment (if it has words) and start the next with a new search of
        the same decoder. Only the decoder restarts: the features, the conv layers' frames and the
        RNN state flow on (as in sherpa-onnx), so an endpoint changes no frame of the model's
        output. Zeroing the RNN state too read worse on the tests' model (a random network with a
        fitted classifier: weak evidence, but no trained streaming model was at hand); the cost of
        keeping it is an open microphone running the recurrence past the longest utterance the
        model was trained on (bench/streaming.py --joined on a trained model would show it)."""
        log_probs, rate = self.log_probs, self.model.features.sample_rate
        segment = segment_of(len(self.segments), self.search.result(), log_probs, self._segment_start,
                             self.model.frame_seconds, self.features.received / rate)
        if segment is not None:
            self.segments.append(segment)
        self._segment_start += len(log_probs)
        self._log_probs = []
        self.search = self.search.search.start()  # BeamSearch.start: a new search of the same settings
        self.endpoints.restart()


def step(streams: list[Stream], samples: list, ends: list[bool] | None = None) -> list[np.ndarray]:
    """Several streams of one model a step on: each its new samples (or None), and its end where
    ``ends`` says. Streams whose input to a stage has the same shape share one call of it (the DS2
    paper's batch dispatch: concurrent streams cost one forward pass per stage and tick, not one
    each). Returns each stream's new log-probabilities."""
    import mindspore as ms

    ends = ends or [False] * len(streams)
    model = streams[0].model
    xs = []
    for stream, new, end in zip(streams, samples, ends):
        frames = stream.features.push(new) if new is not None and len(new) else None
        if end:
            tail = stream.features.end()
            frames = tail if frames is None else np.concatenate([frames, tail], axis=1)
        xs.append(np.zeros((model.config.num_bins, 0), np.float32)[None, None] if frames is None
                  else frames[None, None])  # (1, 1, bins, frames)
    for layer, stage in enumerate(model.convs):
        # at the end every layer takes its padding, new frames or not
        windows = [stream.convs[layer].take(x, end) for stream, x, end in zip(streams, xs, ends)]
        outputs = _shared_calls(lambda batch: [stage(ms.Tensor(batch)).asnumpy()], windows, axis=0)
        xs = [np.zeros((*stream.conv_outputs[layer], 0), np.float32) if out is None else out[0]
              for stream, out in zip(streams, outputs)]
    sequences = []
    for x in xs:  # (1, channels, bins, frames) -> (frames, 1, features)
        batch, channels, bins, count = x.shape
        sequences.append(x.reshape(batch, channels * bins, count).transpose(2, 0, 1) if count else None)
    states = [(stream.h, stream.c) for stream in streams]

    def rnn(batch_of):
        def call(x):
            h = np.concatenate([states[i][0] for i in batch_of], axis=1)
            c = np.concatenate([states[i][1] for i in batch_of], axis=1)
            out, h, c = model.rnn(ms.Tensor(x), ms.Tensor(h), ms.Tensor(c))
            return [out.asnumpy(), h.asnumpy(), c.asnumpy()]
        return call

    outputs = _shared_calls(rnn, sequences, axis=1, indexed=True)
    for stream, out in zip(streams, outputs):
        if out is not None:
            out, stream.h, stream.c = out
            stream.pending = np.concatenate([stream.pending, out[:, 0]])
    return [stream._head(end) for stream, end in zip(streams, ends)]


def _shared_calls(call, inputs: list, axis: int, indexed: bool = False) -> list:
    """``call`` once per group of ``inputs`` (arrays; None: nothing) of equal shape, stacked along
    ``axis``; each input's share of every output back (None for None). ``indexed``: ``call`` is
    first given the group's positions."""
    results: list = [None] * len(inputs)
    groups: dict[tuple, list[int]] = {}
    for i, x in enumerate(inputs):
        if x is not None:
            groups.setdefault(x.shape, []).append(i)
    for members in groups.values():
        batch = np.concatenate([inputs[i] for i in members], axis=axis)
        outputs = (call(members) if indexed else call)(batch)
        for position, i in enumerate(members):
            results[i] = [np.take(out, [position], axis=axis) for out in outputs]
    return results
