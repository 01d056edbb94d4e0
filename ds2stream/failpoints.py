"""Failpoints: named places where this process can be made to die as a ``kill -9`` would.

The fault-injection tests (``tests/test_faults.py``, ``bench/faults.py``) set
``DS2STREAM_KILL_AT=NAME`` or ``NAME:N`` (the N-th time the point is reached, 1-based) and check
that re-running the same command, or ``--resume``, ends exactly as a run that never stopped.
Random-time kills cannot reliably hit a window of milliseconds such as a checkpoint's rename;
these points can. Unset (always, outside tests), a failpoint is one dictionary lookup.

Points: ``shard_written`` (a shard renamed into place, its journal entry not yet written),
``checkpoint_written`` (a checkpoint's temp file complete, not yet renamed),
``checkpoint_renamed`` (renamed, older checkpoints not yet rotated away),
``best_before_copy`` (a better epoch checkpointed, best.ckpt not yet replaced),
``dev_evaluation`` (an epoch trained, its dev evaluation running), ``step_logged`` (a step's
metrics line written).
"""
from __future__ import annotations

import os
import signal

ENV = "DS2STREAM_KILL_AT"
_hits: dict[str, int] = {}


def failpoint(name: str) -> None:
    """Die by SIGKILL here if ``DS2STREAM_KILL_AT`` names this point (and this is its N-th hit)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
