"""Training's MindSpore cells: the parts of the compiled step (:func:`step.build_train_step` puts
them together) and the all-reduce of :class:`distributed.AllReduceSum`.

Imported lazily: mindspore takes seconds to import. Every cell but :class:`AllReduce` is made with
``auto_prefix=False``, so the network's parameters keep their own names inside the step (and the
optimizer's are ``moment1.<name>``, ...), as checkpoints hold them.
"""
from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops

from ..data.text import BLANK_INDEX


class NetWithLoss(nn.Cell):
    """Masked mean over the batch of CTC loss per label: filler rows (mask 0) never count."""

    def __init__(self, network: nn.Cell):
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

    def __init__(self, net_with_loss: NetWithLoss, weights):
        super().__init__(auto_prefix=False)
        self.net_with_loss, self.weights = net_with_loss, weights
        self.grad = ops.GradOperation(get_by_list=True)

    def construct(self, features, feature_lengths, labels, label_lengths, mask):
        loss = self.net_with_loss(features, feature_lengths, labels, label_lengths, mask)
        grads = self.grad(self.net_with_loss, self.weights)(features, feature_lengths, labels, label_lengths,
                                                            mask)
        return loss, grads


class Update(nn.Cell):
    """Global-norm clipping to ``clip_norm``, weight decay (AdamW's, when ``weight_decay`` > 0) and
    ``optimizer``'s step, skipped (nothing written) unless loss and norm are finite."""

    def __init__(self, optimizer: nn.Optimizer, clip_norm: float, weight_decay: float):
        super().__init__(auto_prefix=False)
        self.optimizer, self.clip_norm = optimizer, clip_norm
        self.weight_decay = weight_decay
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
    """``loss_and_grads`` then ``update``; ``distributed``: in between, each rank's loss and gradients
    weighted by its share of the global batch's real rows and summed over the ranks."""

    def __init__(self, loss_and_grads: LossAndGrads, update: Update, distributed: bool):
        super().__init__(auto_prefix=False)
        self.loss_and_grads, self.update = loss_and_grads, update
        self.distributed = distributed
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


class AllReduce(nn.Cell):
    """The sum of a tensor over every rank, in a graph (MCCL on CPU reduces float32 there)."""

    def __init__(self):
        super().__init__()
        self.all_reduce = ops.AllReduce()

    def construct(self, x):
        return self.all_reduce(x)
