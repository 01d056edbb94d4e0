"""The compiled training step: CTC loss, gradients (combined across ranks when distributed),
global-norm clipping, and an Adam update (with decoupled weight decay when the config asks for it)
that happens only when loss and gradients are finite."""
from __future__ import annotations

from typing import NamedTuple

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
    from mindspore import nn

    from .cells import LossAndGrads, NetWithLoss, TrainStep, Update

    optimizer = nn.Adam(network.trainable_params(), learning_rate=config.learning_rate, loss_scale=1.0)
    step = TrainStep(LossAndGrads(NetWithLoss(network), optimizer.parameters),
                     Update(optimizer, config.clip_norm, config.weight_decay), distributed=world_size > 1)
    if config.dynamic_shapes:
        # Rows, frames and label lengths open: one compilation serves every bucket. The half a
        # replay calls on its own gets the same inputs, so that it runs the same kernels.
        batch = (*open_inputs(network.config), ms.Tensor(shape=[None, None], dtype=ms.int32),
                 ms.Tensor(shape=[None], dtype=ms.int32), ms.Tensor(shape=[None], dtype=ms.float32))
        step.set_inputs(*batch, ms.Tensor(shape=[], dtype=ms.float32))
        step.loss_and_grads.set_inputs(*batch)
    return step
