"""The guard against failed steps: nothing of a failed step stays in the model, and failures in a
row call for going back to the last checkpoint.

The zoo let a NaN/inf loss kill the run. Here the compiled step writes no weight or Adam moment
when the loss or the gradient norm is not finite (``step.build_train_step``), and a MindSpore
kernel error stops the step before its update (``Trainer.train_step``); but the forward pass has
already moved BatchNorm's running statistics, so the guard keeps them as of the last good step and
puts them back. After ``patience`` failed steps in a row the trainer halves the learning rate and
goes back to its last checkpoint (``Trainer.rollback``).
"""
from __future__ import annotations

import numpy as np

from ..model import running_statistics


class StepGuard:
    def __init__(self, network, patience: int):
        self.patience = patience
        self.failed_in_a_row = 0
        self._statistics = running_statistics(network)
        self._saved: list[np.ndarray] = []
        self.keep()

    def keep(self) -> None:
        """Take the BatchNorm statistics as they are now as the good ones (after a good step, a
        load or a rollback)."""
        self._saved = [p.asnumpy().copy() for p in self._statistics]

    def restore(self) -> None:
        from mindspore import Tensor

        for param, value in zip(self._statistics, self._saved):
            param.set_data(Tensor(value))

    def after_step(self, finite: bool) -> None:
        """Keep a good step's statistics, or put back the last good ones and count the failure."""
        if finite:
            self.failed_in_a_row = 0
            self.keep()
        else:
            self.failed_in_a_row += 1
            self.restore()

    @property
    def rollback_due(self) -> bool:
        return self.failed_in_a_row >= self.patience

    def rolled_back(self) -> None:
        self.failed_in_a_row = 0
        self.keep()
