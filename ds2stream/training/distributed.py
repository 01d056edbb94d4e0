"""Data parallel under msrun: joining the cluster, its timeouts, and what the ranks must share.

Every rank builds the same model from the same seed, trains its own rows of each global batch
(``trainer.make_sampler``), and the step combines the ranks' gradients into the global batch's mean
(``step.build_train_step``); rank 0 alone writes the run directory, which every rank must see
(checkpoints are read back for rollbacks and resumes).

Two timeouts decide how a cluster fails (MindSpore's environment variables, in seconds; a value
the user exports wins):

* ``MS_NODE_TIMEOUT`` (``NODE_TIMEOUT``): a node whose heartbeat the scheduler (on node 0) misses
  this long is lost; the scheduler then stops every rank. This bounds how long the other nodes
  wait after a node dies.
* ``MS_CPU_COMM_OP_TIMEOUT`` (``COLLECTIVE_TIMEOUT``): how long a rank waits in one collective
  (all-reduce, barrier) for a slower rank that is still alive. MindSpore's 30 s is shorter than
  compiling a new batch shape or writing a large checkpoint on a shared filesystem, and would stop
  a healthy run; a dead rank is caught by the heartbeat, not by this.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError, RunStoppedError

NODE_TIMEOUT = 30
COLLECTIVE_TIMEOUT = 900


class PeerLostError(RunStoppedError):
    """The cluster lost a node (no heartbeat for ``MS_NODE_TIMEOUT`` seconds): msrun shows the
    scheduler's ``Error:`` lines, ours is one more."""


def set_cluster_timeouts() -> None:
    os.environ.setdefault("MS_NODE_TIMEOUT", str(NODE_TIMEOUT))
    os.environ.setdefault("MS_CPU_COMM_OP_TIMEOUT", str(COLLECTIVE_TIMEOUT))


def init_distributed() -> tuple[int, int]:
    """Join the msrun cluster (MCCL on CPU): (rank, world size). The train step combines the ranks'
    gradients itself (weighted by their real rows, :func:`build_train_step`).

    msrun also runs this script as node 0's scheduler, whose ``init`` does not return until the
    cluster ends: when it ends because a node was lost, that is said in ds2stream's words."""
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init

    set_cluster_timeouts()
    try:
        init()
    except RuntimeError as err:
        if os.environ.get("MS_ROLE") == "MS_SCHED" and "timed out" in str(err):
            raise PeerLostError(
                f"the cluster lost a node: no heartbeat for {os.environ['MS_NODE_TIMEOUT']} s "
                f"(MS_NODE_TIMEOUT); every rank was stopped. MindSpore said: {str(err).splitlines()[0]} "
                "Start msrun again on every node with `--resume RUN_DIR` in place of `--shards ... --out ...`: "
                "the run goes on from its last checkpoint.") from None
        raise
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL)
    return get_rank(), get_group_size()


def barrier(world_size: int) -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if world_size > 1:
        from mindspore.mint.distributed import barrier as wait_for_all

        wait_for_all()


class AllReduceSum:
    """The sum of a float32 tensor over every rank (MCCL on CPU reduces float32 in a graph; its
    eager ``mint.distributed.all_reduce`` fails there)."""

    def __init__(self):
        from .cells import AllReduce

        self.cell = AllReduce()

    def __call__(self, values: np.ndarray) -> np.ndarray:
        import mindspore as ms

        return self.cell(ms.Tensor(np.asarray(values, np.float32))).asnumpy()


# Integer counts travel as 12-bit digits in float32 (exact to 2**24): a digit summed over up to
# 4,096 ranks stays exact, and four digits carry counts below 2**48.
DIGIT_BITS, DIGITS = 12, 4


def sum_counts_over_ranks(counts, world_size: int) -> np.ndarray:
    """Every rank's non-negative integer ``counts`` summed exactly, on every rank."""
    counts = np.asarray(counts, np.int64)
    if world_size == 1:
        return counts
    if counts.min(initial=0) < 0 or counts.max(initial=0) >= 1 << (DIGIT_BITS * DIGITS):
        raise ValueError(f"counts outside 0..2**{DIGIT_BITS * DIGITS}: {counts}")
    shifts = np.arange(DIGITS) * DIGIT_BITS
    digits = (counts[:, None] >> shifts) & ((1 << DIGIT_BITS) - 1)
    summed = AllReduceSum()(digits.ravel()).reshape(digits.shape)
    return (np.rint(summed).astype(np.int64) << shifts).sum(axis=1)


def share_rank_0(parameters: list) -> None:
    """Give every rank rank 0's values of ``parameters`` (BatchNorm running statistics: each rank
    keeps its own while training, but evaluation and checkpoints use rank 0's)."""
    from mindspore.mint.distributed import broadcast

    for parameter in parameters:
        value = parameter.value()
        broadcast(value, src=0)
        parameter.set_data(value)


def require_shared_run_dir(rank: int, found: Path) -> None:
    """Ranks > 0 read rank 0's checkpoints (resume, rollback): the run directory must be theirs too."""
    if not Path(found).exists():
        raise DataError(f"rank {rank} cannot see {found}: a distributed run's directory must be on a "
                         f"filesystem shared by every rank (e.g. NFS), since ranks > 0 read rank 0's checkpoints")
