"""DeepSpeech2's MindSpore cells, built from a :class:`~ds2stream.model.ModelConfig` by :func:`build_model`.

Imported lazily (by whoever builds a network): mindspore takes seconds to import, and the data
stages, ``import ds2stream`` and the CLI's ``--help`` never need it.

  :class:`DeepSpeech2`      ``conv`` (:class:`ConvStack`) -> ``RNN`` (:class:`RNNStack` of
                            ``lstms``) -> ``lookahead`` (:class:`Lookahead`, forward-only models)
                            -> ``fc`` (:class:`SequenceWise`) -> log-softmax;
  recurrent layers          :class:`BiLSTM`, :class:`BiGRU` (directions summed) and
                            :class:`ForwardLSTM`, :class:`ForwardGRU`;
  a stream's stages         :class:`ConvStage` (one conv layer without its time padding) and
                            :class:`RNNStage` (:meth:`RNNStack.step`: the layers from a state).

The attribute names are the model zoo's, since they make the parameter names
(``conv.conv1.weight``, ``RNN.lstms.0.weight_ih_l0``, ``fc.module.weight``).
"""
from __future__ import annotations

from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Uniform, initializer

from .model import Activation, ModelConfig, RNNType, open_inputs


def time_mask(lengths, frames: int):
    """(B, frames) float mask, 1 where t < length."""
    steps = ops.arange(frames, dtype=lengths.dtype)
    return (steps.view(1, -1) < lengths.view(-1, 1)).astype("float32")


def make_activation(activation: Activation) -> nn.Cell:
    if activation is Activation.HARDTANH:
        return nn.Hardtanh(0.0, 20.0)
    return nn.Tanh()


class ConvStack(nn.Cell):
    """The conv front end: per row of ``config.conv``, ``conv<i>`` (no bias), ``bn<i>``, ``act<i>``.
    (B, 1, num_bins, T) features and (B,) lengths -> (B, channels, bins, T') and (B,) lengths."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        channels = 1
        self.layers = config.conv
        for i, layer in enumerate(config.conv, 1):
            pad_f, pad_t = layer.padding
            setattr(self, f"conv{i}", nn.Conv2d(
                channels, layer.channels, layer.kernel, stride=layer.stride, pad_mode="pad",
                padding=(pad_f, pad_f, pad_t, pad_t), has_bias=False, weight_init="HeUniform"))
            setattr(self, f"bn{i}", nn.BatchNorm2d(layer.channels, momentum=0.9))
            setattr(self, f"act{i}", make_activation(config.activation))
            channels = layer.channels
        self.count = len(config.conv)
        self.mask_padding = config.mask_padding

    def construct(self, x, lengths):
        for i in range(self.count):
            layer = self.layers[i]
            x = getattr(self, f"conv{i + 1}")(x)
            x = getattr(self, f"bn{i + 1}")(x)
            x = getattr(self, f"act{i + 1}")(x)
            lengths = layer.out_size(lengths, 1)  # the one formula, as ModelConfig.output_lengths
            if self.mask_padding:
                x = x * time_mask(lengths, x.shape[3]).view(x.shape[0], 1, 1, -1)
        return x, lengths


class ConvStage(nn.Cell):
    """Layer ``index`` of a :class:`ConvStack` as a stream runs it: padded in frequency only (the
    stream brings the time context, its zero padding included), then the layer's BatchNorm and
    activation. Takes over the stack's BatchNorm and activation cells (their parameters are named
    under this cell from then on) and a copy of its conv weight."""

    def __init__(self, stack: ConvStack, index: int):
        super().__init__()
        layer, trained = stack.layers[index], getattr(stack, f"conv{index + 1}")
        pad_f = layer.padding[0]
        self.conv = nn.Conv2d(trained.in_channels, layer.channels, layer.kernel, stride=layer.stride,
                              pad_mode="pad", padding=(pad_f, pad_f, 0, 0), has_bias=False)
        self.conv.weight.set_data(trained.weight.data)
        self.norm = getattr(stack, f"bn{index + 1}")
        self.activation = getattr(stack, f"act{index + 1}")

    def construct(self, x):
        return self.activation(self.norm(self.conv(x)))


# ---------------------------------------------------------------- recurrent layers
# Each a subclass of MindSpore's LSTM or GRU, so that its parameters keep their names
# (``weight_ih_l0``, ...); what a direction does is a mixin, written once for both kinds.

class _Recurrent:
    """What the layers below share: a zero state and zeroed padding frames."""

    def zero_state(self, batch: int, dtype):
        zeros = ops.zeros((batch, self.hidden_size), dtype)
        return (zeros, zeros) if self.is_lstm else zeros

    def masked(self, x, lengths):
        """(T, B, H) with the frames past each utterance's length zeroed."""
        frames, batch = x.shape[0], x.shape[1]
        return x * time_mask(lengths, frames).transpose().view(frames, batch, 1)


class _Bidirectional(_Recurrent):
    """One bidirectional layer, directions summed. With ``mask_padding`` each direction runs over the
    sequence reversed within its own length, so padding never enters the recurrence."""

    def __init__(self, input_size: int, hidden_size: int, mask_padding: bool):
        super().__init__(input_size, hidden_size, 1, bidirectional=True)
        self.mask_padding = mask_padding

    def construct(self, x, lengths):
        if not self.mask_padding:
            # super() names its class: graph mode resolves a bare super() from type(self), the mixin again
            out, _ = super(_Bidirectional, self).construct(x)
            return out[:, :, :self.hidden_size] + out[:, :, self.hidden_size:]
        state = self.zero_state(x.shape[1], x.dtype)
        forward, _ = self.rnn(x, state, None, self.w_ih_list[0], self.w_hh_list[0],
                              self.b_ih_list[0], self.b_hh_list[0])
        backward, _ = self.rnn(self.reverse_sequence(x, lengths), state, None, self.w_ih_list[1],
                               self.w_hh_list[1], self.b_ih_list[1], self.b_hh_list[1])
        return self.masked(forward + self.reverse_sequence(backward, lengths), lengths)


class _Forward(_Recurrent):
    """One forward-only layer; :meth:`step` goes on from a carried state (a stream's chunks). Its
    outputs past each utterance's length are zeroed (forward-only models always mask padding)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size, 1)

    def construct(self, x, lengths):
        out, _ = self.step(x, self.zero_state(x.shape[1], x.dtype))
        return self.masked(out, lengths)

    def step(self, x, state):
        return self.rnn(x, state, None, self.w_ih_list[0], self.w_hh_list[0], self.b_ih_list[0],
                        self.b_hh_list[0])


class BiLSTM(_Bidirectional, nn.LSTM):
    pass


class BiGRU(_Bidirectional, nn.GRU):
    pass


class ForwardLSTM(_Forward, nn.LSTM):
    pass


class ForwardGRU(_Forward, nn.GRU):
    pass


#: The recurrent layer classes, bidirectional and forward-only, by RNN type.
BIDIRECTIONAL = {RNNType.LSTM: BiLSTM, RNNType.GRU: BiGRU}
FORWARD = {RNNType.LSTM: ForwardLSTM, RNNType.GRU: ForwardGRU}


class RNNStack(nn.Cell):
    """``config.rnn_layers`` recurrent layers (``lstms``, whatever their kind, as the zoo names them),
    each but the first after a BatchNorm (``norms``) when ``rnn_batch_norm``; (T, B, size) in,
    (T, B, rnn_hidden) out."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        sizes = [config.rnn_input_size] + [config.rnn_hidden] * (config.rnn_layers - 1)
        if config.bidirectional:
            layers = [BIDIRECTIONAL[config.rnn_type](size, config.rnn_hidden, config.mask_padding) for size in sizes]
        else:  # a forward-only model always masks its padding (ModelConfig says so)
            layers = [FORWARD[config.rnn_type](size, config.rnn_hidden) for size in sizes]
        self.lstms = nn.CellList(layers)
        self.batch_norm = config.rnn_batch_norm
        if self.batch_norm:
            self.norms = nn.CellList([nn.BatchNorm1d(config.rnn_hidden, momentum=0.9)
                                      for _ in range(config.rnn_layers - 1)])
        self.count = config.rnn_layers
        self.has_dropout = config.dropout > 0
        if self.has_dropout:
            self.dropout = nn.Dropout(p=config.dropout)  # the identity unless set_train(True)

    def layer_input(self, x, i: int):
        """What layer ``i`` takes of the previous layer's (T, B, size) outputs ``x``."""
        if self.batch_norm and i > 0:
            frames, batch, size = x.shape
            x = self.norms[i - 1](x.view(frames * batch, size)).view(frames, batch, size)
        return x

    def construct(self, x, lengths):
        for i in range(self.count):
            x = self.lstms[i](self.layer_input(x, i), lengths)
            if self.has_dropout:
                x = self.dropout(x)
        return x

    def step(self, x, h, c):
        """Forward-only LSTM layers over a chunk (T, B, size), going on from their states h and c
        (layers, B, hidden): the chunk's outputs and the new states. Chunk by chunk, the outputs of
        :meth:`construct` (a stream stops at its end, so no frame of it is padding)."""
        hs, cs = [], []
        for i in range(self.count):
            x, (h_i, c_i) = self.lstms[i].step(self.layer_input(x, i), (h[i], c[i]))
            hs.append(h_i.squeeze(0))
            cs.append(c_i.squeeze(0))
        return x, ops.stack(hs), ops.stack(cs)


class RNNStage(nn.Cell):
    """An :class:`RNNStack`'s :meth:`~RNNStack.step` as a cell of its own, compiled (and exported)
    alone: a stream's RNN stage, ``(x, h, c) -> (out, h, c)``."""

    def __init__(self, stack: RNNStack):
        super().__init__()
        self.rnn = stack

    def construct(self, x, h, c):
        return self.rnn.step(x, h, c)


class SequenceWise(nn.Cell):
    """Applies a module to every (frame, batch) position; named ``module`` as in the zoo."""

    def __init__(self, module: nn.Cell):
        super().__init__()
        self.module = module

    def construct(self, x):
        frames, batch, size = x.shape
        return self.module(x.view(frames * batch, size)).view(frames, batch, -1)


class Lookahead(nn.Cell):
    """The DS2 paper's row convolution: out[t] = sum_j weight[j] * x[t + j], per feature, j in
    0..lookahead, zeros past the end (the masked frames past each utterance's own end)."""

    def __init__(self, lookahead: int, size: int):
        super().__init__()
        self.weight = Parameter(initializer(Uniform(1.0 / (lookahead + 1)), (lookahead + 1, size)), name="weight")
        self.span = lookahead + 1

    def construct(self, x):
        out = x * self.weight[0]
        for j in range(1, self.span):
            shifted = ops.concat((x[j:], ops.zeros_like(x[:j])), axis=0)
            out = out + shifted * self.weight[j]
        return out


class DeepSpeech2(nn.Cell):
    """The network: (B, 1, num_bins, T) features and (B,) lengths -> (T', B, num_classes)
    log-probabilities and (B,) output lengths."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.conv = ConvStack(config)
        self.RNN = RNNStack(config)
        self.has_lookahead = config.lookahead > 0
        if self.has_lookahead:
            self.lookahead = Lookahead(config.lookahead, config.rnn_hidden)
        self.fc = SequenceWise(nn.Dense(config.rnn_hidden, config.num_classes, has_bias=False))
        self.log_softmax = nn.LogSoftmax(axis=-1)

    def construct(self, features, lengths):
        x, lengths = self.conv(features, lengths)
        batch, channels, bins, frames = x.shape
        x = x.view(batch, channels * bins, frames).transpose(2, 0, 1)  # (T, B, C*F)
        x = self.RNN(x, lengths)
        if self.has_lookahead:
            x = self.lookahead(x)
        return self.log_softmax(self.fc(x)), lengths


def build_model(config: ModelConfig) -> DeepSpeech2:
    """A DeepSpeech2 network for ``config`` (parameter names as the zoo's), taking open shapes."""
    network = DeepSpeech2(config)
    # Called on its own (evaluation, transcription, the server), the network compiles one graph
    # for every batch shape rather than one per shape: each graph kept its own buffers (`lean`'s
    # eval of the sentence test split: 3.55 GB, now 1.70) and each new length cost a compile (each
    # file of a new length, in `ds2stream transcribe`). Inside the training step the step's inputs decide.
    network.set_inputs(*open_inputs(config))
    return network
