"""Data parallel under msrun: joining the cluster, and what the ranks must share.

Every rank builds the same model from the same seed, trains its own rows of each global batch
(``trainer.make_sampler``), and the step combines the ranks' gradients into the global batch's mean
(``step.build_train_step``); rank 0 alone writes the run directory, which every rank must see
(checkpoints are read back for rollbacks and resumes).
"""
from __future__ import annotations

from pathlib import Path


def init_distributed() -> tuple[int, int]:
    """Join the msrun cluster (MCCL on CPU): (rank, world size). The train step combines the ranks'
    gradients itself (weighted by their real rows, :func:`build_train_step`)."""
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init

    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL)
    return get_rank(), get_group_size()


def barrier(world_size: int) -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if world_size > 1:
        from mindspore.mint.distributed import barrier as wait_for_all

        wait_for_all()


def require_shared_run_dir(rank: int, found: Path) -> None:
    """Ranks > 0 read rank 0's checkpoints (resume, rollback): the run directory must be theirs too."""
    if not Path(found).exists():
        raise ValueError(f"rank {rank} cannot see {found}: a distributed run's directory must be on a "
                         f"filesystem shared by every rank (e.g. NFS), since ranks > 0 read rank 0's checkpoints")
