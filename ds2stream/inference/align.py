"""Word times from CTC: the most likely alignment (Viterbi) of a transcript to the model's
log-probabilities, whichever decoder produced the transcript, then each word's first and last frame.

The alignment runs over the usual CTC trellis (a blank between and around the labels; a label may
follow itself only across a blank). A word starts at the first frame of its first character and
ends after the last frame of its last character; a frame lasts ``hop x time stride`` seconds.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..data.text import BLANK_INDEX, LABELS

_INDEX = {c: i for i, c in enumerate(LABELS)}


@dataclasses.dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds
    end: float


def ctc_align(log_probs: np.ndarray, labels: list[int], blank: int = BLANK_INDEX) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``labels``, the first and last output frame in which the best CTC path emits it.

    :param log_probs: (frames, classes) of one utterance.
    Raises ValueError when the labels cannot fit in the frames (CTC needs a frame per label, and
    one more between two equal labels).
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    frames = log_probs.shape[0]
    if not labels:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    states = np.full(2 * len(labels) + 1, blank, dtype=np.int64)
    states[1::2] = labels
    # A state may be entered from two back when it is a label unlike the one two back.
    skip = np.zeros(len(states), dtype=bool)
    skip[3::2] = states[3::2] != states[1:-2:2]
    score = np.full(len(states), -np.inf)
    score[:2] = log_probs[0, states[:2]]
    came_from = np.zeros((frames, len(states)), dtype=np.int8)  # 0: stay, 1: from one back, 2: from two back
    for t in range(1, frames):
        stay, one = score, np.concatenate([[-np.inf], score[:-1]])
        two = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        options = np.stack([stay, one, two])
        came_from[t] = np.argmax(options, axis=0)
        score = options[came_from[t], np.arange(len(states))] + log_probs[t, states]
    end = len(states) - 1 if score[-1] >= score[-2] else len(states) - 2
    if not np.isfinite(score[end]):
        raise ValueError(f"{len(labels)} labels do not fit in {frames} frames under CTC")
    path = np.empty(frames, dtype=np.int64)
    for t in range(frames - 1, -1, -1):
        path[t] = end
        end -= came_from[t, end]
    emitting = np.flatnonzero(path % 2 == 1)
    label_of = path[emitting] // 2
    first = np.full(len(labels), frames, dtype=np.int64)
    last = np.full(len(labels), -1, dtype=np.int64)
    np.minimum.at(first, label_of, emitting)
    np.maximum.at(last, label_of, emitting)
    return first, last


def word_times(text: str, log_probs: np.ndarray, frame_seconds: float) -> list[Word]:
    """The words of ``text`` (label-set characters, as the decoders give) with start and end times."""
    if not text.strip():
        return []
    first, last = ctc_align(log_probs, [_INDEX[c] for c in text])
    words, start = [], None
    for position, char in enumerate(text + " "):
        if char != " " and start is None:
            start = position
        elif char == " " and start is not None:
            words.append(Word(text[start:position], round(float(first[start]) * frame_seconds, 3),
                              round(float(last[position - 1] + 1) * frame_seconds, 3)))
            start = None
    return words


def timed_words(text: str, log_probs: np.ndarray, frame_seconds: float, duration: float) -> list[dict]:
    """``word_times`` as JSON objects, the times capped at the audio's ``duration``: the last output
    frame can reach past the end of the audio (answers give the duration rounded to the ms)."""
    return [{"word": w.word, "start": min(w.start, duration), "end": min(w.end, duration)}
            for w in word_times(text, log_probs, frame_seconds)]
