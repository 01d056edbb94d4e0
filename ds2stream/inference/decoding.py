"""CTC greedy decoding: model log-probabilities -> transcripts, through the native kernel.

``greedy_decode`` validates and calls ``csrc/ctc_greedy.pyx``; ``greedy_decode_reference`` is the
pure-Python definition it is tested against. Both take the label set and blank from ``text``.
"""
from __future__ import annotations

import numpy as np

from ..data.text import BLANK_INDEX, LABELS


def _check(log_probs: np.ndarray, lengths, time_major: bool, labels: str, blank: int):
    log_probs = np.asarray(log_probs)
    if log_probs.ndim != 3:
        raise ValueError(f"log_probs must be 3-D (T, B, C) or (B, T, C), got shape {log_probs.shape}")
    frames, batch = log_probs.shape[:2] if time_major else log_probs.shape[1::-1]
    classes = log_probs.shape[2]
    if classes != len(labels):
        raise ValueError(f"log_probs have {classes} classes, the label set has {len(labels)}")
    if not 0 <= blank < classes:
        raise ValueError(f"blank index {blank} is outside 0..{classes - 1}")
    if lengths is None:
        lengths = np.full(batch, frames, dtype=np.int64)
    lengths = np.asarray(lengths).astype(np.int64, copy=False).reshape(-1)
    if lengths.shape[0] != batch:
        raise ValueError(f"{lengths.shape[0]} lengths for a batch of {batch}")
    bad = np.flatnonzero((lengths < 0) | (lengths > frames))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"length {int(lengths[i])} of utterance {i} is outside 0..{frames} frames")
    return log_probs, np.ascontiguousarray(lengths), batch


def greedy_decode(log_probs, lengths=None, *, time_major: bool = False,
                  labels: str = LABELS, blank: int = BLANK_INDEX) -> list[str]:
    """Best-path decode a batch: argmax per frame, collapse repeats, drop blanks.

    :param log_probs: float32 ``(B, T, C)``, or ``(T, B, C)`` with ``time_major=True``.
    :param lengths: valid frames per utterance (B,); None means all T.
    :return: one string per utterance.
    """
    from .. import _ctc_greedy

    log_probs, lengths, _ = _check(log_probs, lengths, time_major, labels, blank)
    log_probs = np.ascontiguousarray(log_probs, dtype=np.float32)
    paths = _ctc_greedy.best_path(log_probs, lengths, blank, time_major)
    return ["".join(labels[i] for i in path) for path in paths]


def greedy_decode_reference(log_probs, lengths=None, *, time_major: bool = False,
                            labels: str = LABELS, blank: int = BLANK_INDEX) -> list[str]:
    """The plain-Python definition of :func:`greedy_decode`."""
    log_probs, lengths, batch = _check(log_probs, lengths, time_major, labels, blank)
    if time_major:
        log_probs = log_probs.transpose(1, 0, 2)
    texts = []
    for b in range(batch):
        frames = log_probs[b, : lengths[b]]
        if np.isnan(frames).any():
            raise ValueError(f"log-probs hold NaN (utterance {b})")
        best = [int(np.argmax(frame)) for frame in frames]
        collapsed = [k for t, k in enumerate(best) if t == 0 or k != best[t - 1]]
        texts.append("".join(labels[k] for k in collapsed if k != blank))
    return texts
