"""The compiled training step: CTC loss, gradients (combined across ranks when distributed),
global-norm clipping, and an Adam update (with decoupled weight decay when the config asks for it)
that happens only when loss and gradients are finite."""
from __future__ import annotations

from typing import NamedTuple

from ..data.text import BLANK_INDEX
from ..model import open_inputs
from .config import TrainConfig

#: The batch columns the compiled step takes, in its order (then the learning rate).
STEP_INPUTS = ("features", "feature_lengths", "labels", "label_lengths", "mask")


class StepResult(NamedTuple):
    loss: float
    grad_norm: float
    finite: bool  # the update was applied
    error: str | None = None  # MindSpore's kernel error, when the step could not run


def kernel_error_summary(err: Exception) -> str:
    """The informative lines of a MindSpore RuntimeError (its message is framed by rulers and a
    C++ call stack)."""
    lines = []
    for line in str(err).splitlines():
        line = line.strip()
        if line.startswith("- C++ Call Stack"):
            break
        if line and not line.startswith("---") and not line.startswith("- "):
            lines.append(line)
    return " ".join(lines)[:300] or type(err).__name__


def build_train_step(network, config: TrainConfig, world_size: int = 1):
    """The compiled training step: CTC loss, gradients (combined across ranks when distributed),
    global-norm clipping and an Adam update that only happens when loss and gradients are finite.

    Call as ``step(features, feature_lengths, labels, label_lengths, mask, learning_rate)`` ->
    ``(loss, grad_norm, finite)``. The learning rate is an input assigned inside the graph: a
    ``Parameter.set_data`` from Python after compilation does not reach a compiled graph (measured:
    the rate stayed at its first value, the zoo's "schedule computed but never applied" again).

    With ``world_size`` > 1 (under msrun, after :func:`init_distributed`) each rank weights its
    loss and gradients by its share of the global batch's real rows and the ranks sum them: the
    loss and gradients of the masked mean over the *global* batch, even when the ranks hold
    different numbers of real rows (filler rows, mask 0, at the end of an epoch). Every rank gets
    the same sum, so every rank takes the same decision and the same update. The two halves,
    ``loss_and_grads`` and ``update``, are cells of their own so that a test can replay a
    distributed step in one process.
    """
    import mindspore as ms
    from mindspore import nn, ops

    class NetWithLoss(nn.Cell):
        """Masked mean over the batch of CTC loss per label: filler rows (mask 0) never count."""

        def __init__(self):
            super().__init__(auto_prefix=False)
            self.network = network
            self.ctc = nn.CTCLoss(blank=BLANK_INDEX, reduction="none", zero_infinity=False)

        def construct(self, features, feature_lengths, labels, label_lengths, mask):
            log_probs, output_lengths = self.network(features, feature_lengths)
            losses = self.ctc(log_probs, labels, output_lengths, label_lengths)
            per_label = losses / ops.maximum(label_lengths.astype(ms.float32), 1.0)
            return (per_label * mask).sum() / ops.maximum(mask.sum(), 1.0)

    class LossAndGrads(nn.Cell):
        """(loss, gradients of the trainable weights) of one batch on one rank."""

        def __init__(self, net_with_loss, weights):
            super().__init__(auto_prefix=False)
            self.net_with_loss, self.weights = net_with_loss, weights
            self.grad = ops.GradOperation(get_by_list=True)

        def construct(self, features, feature_lengths, labels, label_lengths, mask):
            loss = self.net_with_loss(features, feature_lengths, labels, label_lengths, mask)
            grads = self.grad(self.net_with_loss, self.weights)(features, feature_lengths, labels, label_lengths,
                                                                mask)
            return loss, grads

    class Update(nn.Cell):
        """Global-norm clipping, weight decay and Adam, skipped (nothing written) unless loss and
        norm are finite."""

        def __init__(self, optimizer):
            super().__init__(auto_prefix=False)
            self.optimizer, self.clip_norm = optimizer, config.clip_norm
            self.weight_decay = config.weight_decay
            self.decayed = ms.ParameterTuple([p for p in optimizer.parameters if len(p.shape) > 1])

        def construct(self, loss, grads, learning_rate):
            loss = ops.depend(loss, ops.assign(self.optimizer.learning_rate, learning_rate))
            norm = ops.sqrt(ops.addn([ops.square(g).sum() for g in grads]))
            finite = ops.logical_and(ops.isfinite(loss), ops.isfinite(norm))
            if finite:
                scale = self.clip_norm / ops.maximum(norm, self.clip_norm)
                grads = tuple(g * scale for g in grads)
                if self.weight_decay > 0:
                    # AdamW's order: shrink first, then Adam's step from the shrunk weights
                    shrink = 1.0 - learning_rate * self.weight_decay
                    for weight in self.decayed:
                        grads = ops.depend(grads, ops.assign(weight, weight * shrink))
                loss = ops.depend(loss, self.optimizer(grads))
            return loss, norm, finite

    class TrainStep(nn.Cell):
        def __init__(self, loss_and_grads, update):
            super().__init__(auto_prefix=False)
            self.loss_and_grads, self.update = loss_and_grads, update
            self.distributed = world_size > 1
            if self.distributed:
                self.reducer = nn.DistributedGradReducer(loss_and_grads.weights, mean=False)  # a sum
                self.all_reduce = ops.AllReduce()

        def construct(self, features, feature_lengths, labels, label_lengths, mask, learning_rate):
            loss, grads = self.loss_and_grads(features, feature_lengths, labels, label_lengths, mask)
            if self.distributed:
                rows = mask.sum()
                share = rows / ops.maximum(self.all_reduce(rows), 1.0)
                grads = self.reducer(tuple(g * share for g in grads))
                loss = self.all_reduce(loss * share)
            return self.update(loss, grads, learning_rate)

    optimizer = nn.Adam(network.trainable_params(), learning_rate=config.learning_rate, loss_scale=1.0)
    step = TrainStep(LossAndGrads(NetWithLoss(), optimizer.parameters), Update(optimizer))
    if config.dynamic_shapes:
        # Rows, frames and label lengths open: one compilation serves every bucket. The half a
        # replay calls on its own gets the same inputs, so that it runs the same kernels.
        batch = (*open_inputs(network.config), ms.Tensor(shape=[None, None], dtype=ms.int32),
                 ms.Tensor(shape=[None], dtype=ms.int32), ms.Tensor(shape=[None], dtype=ms.float32))
        step.set_inputs(*batch, ms.Tensor(shape=[], dtype=ms.float32))
        step.loss_and_grads.set_inputs(*batch)
    return step
