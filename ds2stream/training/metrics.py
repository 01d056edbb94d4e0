"""``metrics.jsonl``: one JSON line per step, per epoch and per event (non-finite step, kernel
error, rollback, checkpoint, resume), each with its ``global_step``; and its curves as a PNG.

The records are the dataclasses below, the file's one schema: training writes them, ``plot`` and
the benches read them back (``read_records``). A step's line has no ``event`` key; every other
line names its kind in ``event``.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import DataError
from ..files import write_durably


@dataclasses.dataclass
class StepRecord:
    """One training step (skipped ones too: their loss and grad_norm are None)."""
    epoch: int
    step: int  # within the epoch
    global_step: int  # steps done, this one included
    loss: float | None
    grad_norm: float | None
    lr: float
    step_seconds: float
    audio_seconds: float  # real audio in the batch (filler rows apart)
    shape: list  # the features' (rows, 1, bins, frames)
    event = None


@dataclasses.dataclass
class EpochEnd:
    """An epoch's summary, with its dev error rates where the run has a dev set."""
    epoch: int
    global_step: int
    mean_loss: float | None
    seconds: float
    audio_seconds: float
    padding_ratio: float
    data_wait_seconds: float
    dropped: dict  # utterances the sampler left out, by reason
    skipped_total: int  # steps without an update so far
    shapes: int  # batch shapes of the epoch
    dev_wer: float | None = None
    dev_cer: float | None = None
    dev_utterances: int | None = None
    dev_seconds: float | None = None
    event = "epoch_end"


@dataclasses.dataclass
class FailedStep:
    """A step whose update was skipped: a non-finite loss or gradient, or a kernel error."""
    kind: str  # "nonfinite" or "kernel_error": the line's event
    epoch: int
    step: int
    global_step: int
    loss: str
    grad_norm: str
    error: str | None
    ids: list  # the utterances of the batch

    @property
    def event(self) -> str:
        return self.kind


@dataclasses.dataclass
class Rollback:
    """Too many failed steps in a row: back to a checkpoint with a lower learning rate."""
    checkpoint: str | None
    lr_scale: float
    global_step: int
    event = "rollback"


@dataclasses.dataclass
class CheckpointSaved:
    path: str
    global_step: int
    event = "checkpoint"


@dataclasses.dataclass
class Resumed:
    checkpoint: str
    global_step: int
    metric_lines_dropped: int
    event = "resume"


Record = StepRecord | EpochEnd | FailedStep | Rollback | CheckpointSaved | Resumed
_BY_EVENT = {cls.event: cls for cls in (StepRecord, EpochEnd, Rollback, CheckpointSaved, Resumed)}


def to_json(record: Record) -> dict:
    """The record as its JSON line's object: ``event`` first (none for a step), then its fields."""
    fields = dataclasses.asdict(record)
    if isinstance(record, FailedStep):
        fields.pop("kind")
    return fields if record.event is None else {"event": record.event, **fields}


def from_json(line: dict) -> Record:
    event = line.get("event")
    if event in ("nonfinite", "kernel_error"):
        return FailedStep(kind=event, **{k: v for k, v in line.items() if k != "event"})
    if event not in _BY_EVENT:
        raise DataError(f"a metrics line of unknown kind {event!r}: {line}")
    return _BY_EVENT[event](**{k: v for k, v in line.items() if k != "event"})


def read_records(run_dir: Path) -> list[Record]:
    """Every record of a run's ``metrics.jsonl`` (a torn last line, from a kill, is passed over)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise DataError(f"{run_dir}: no metrics.jsonl (not a run directory?)")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(from_json(json.loads(line)))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLog:
    """Appends records to a run's ``metrics.jsonl`` (only where ``enabled``: rank 0 of a run)."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled
        self._handle = None

    def write(self, record: Record) -> None:
        if not self.enabled:
            return
        if self._handle is None:
            self._handle = open(self.path, "a")
        self._handle.write(json.dumps(to_json(record)) + "\n")
        self._handle.flush()

    def truncate_after(self, global_step: int) -> int:
        """Keep the lines of the first ``global_step`` steps (a resume redoes the rest, and a kill
        may have torn the last line); returns how many lines were dropped."""
        if not self.enabled or not self.path.exists():
            return 0
        lines = self.path.read_text().splitlines()
        kept = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("global_step", 0) <= global_step:
                kept.append(line)
        if len(kept) < len(lines):
            write_durably(self.path, "".join(line + "\n" for line in kept))
        return len(lines) - len(kept)

    def discard(self) -> bool:
        """Remove the file (a run started again); True if there was one."""
        if not self.enabled or not self.path.exists():
            return False
        self.path.unlink()
        return True


def plot_run(run_dir: Path, out: Path | None = None) -> Path:
    """Loss, learning rate and dev WER/CER curves of a run as one PNG."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'ds2stream[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_records(run_dir)
    steps = [r for r in records if isinstance(r, StepRecord)]
    epochs = [r for r in records if isinstance(r, EpochEnd)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    good = [r for r in steps if r.loss is not None]
    axes[0].plot([r.global_step for r in good], [r.loss for r in good], lw=0.6)
    axes[0].set(title="CTC loss per label", xlabel="step", yscale="log")
    axes[1].plot([r.global_step for r in steps], [r.lr for r in steps])
    axes[1].set(title="learning rate", xlabel="step")
    for key, label in (("dev_wer", "WER"), ("dev_cer", "CER")):
        points = [(r.epoch + 1, getattr(r, key)) for r in epochs if getattr(r, key) is not None]
        if points:
            axes[2].plot(*zip(*points), marker="o", label=label)
    axes[2].set(title="dev error rates", xlabel="epoch", ylim=(0, None))
    axes[2].legend()
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
