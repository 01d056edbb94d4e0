"""``metrics.jsonl``: one JSON line per step, per epoch and per event (non-finite step, kernel
error, rollback, checkpoint, resume), each with its ``global_step``; and its curves as a PNG."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError
from ..files import write_durably


class MetricsLog:
    """Appends records to a run's ``metrics.jsonl`` (only where ``enabled``: rank 0 of a run)."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled
        self._handle = None

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        if self._handle is None:
            self._handle = open(self.path, "a")
        self._handle.write(json.dumps(record) + "\n")
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

    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise DataError(f"{run_dir}: no metrics.jsonl (not a run directory?)")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps = [r for r in records if "event" not in r]
    epochs = [r for r in records if r.get("event") == "epoch_end"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    good = [r for r in steps if r["loss"] is not None]
    axes[0].plot([r["global_step"] for r in good], [r["loss"] for r in good], lw=0.6)
    axes[0].set(title="CTC loss per label", xlabel="step", yscale="log")
    axes[1].plot([r["global_step"] for r in steps], [r["lr"] for r in steps])
    axes[1].set(title="learning rate", xlabel="step")
    for key, label in (("dev_wer", "WER"), ("dev_cer", "CER")):
        points = [(r["epoch"] + 1, r[key]) for r in epochs if r.get(key) is not None]
        if points:
            axes[2].plot(*zip(*points), marker="o", label=label)
    axes[2].set(title="dev error rates", xlabel="epoch", ylim=(0, None))
    axes[2].legend()
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
