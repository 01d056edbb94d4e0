"""Constructed CTC log-probabilities, for the decoder tests: where the acoustic evidence says
exactly what a test needs (a clean spelling, a character heard as another)."""
from __future__ import annotations

import numpy as np

from ds2stream.data.text import BLANK_INDEX, LABELS


def frames(*columns: dict) -> np.ndarray:
    """(T, C) log-probabilities: each frame's listed characters get their probability, the blank
    the rest ("_" names the blank)."""
    out = np.full((len(columns), len(LABELS)), 1e-6)
    for t, column in enumerate(columns):
        for char, p in column.items():
            out[t, BLANK_INDEX if char == "_" else LABELS.index(char)] = p
        out[t, BLANK_INDEX] += max(0.0, 1.0 - out[t].sum())
    return np.log(out / out.sum(axis=1, keepdims=True))


def spell(text: str, confusions: dict | None = None) -> np.ndarray:
    """A clean alignment of ``text`` (each character, then a blank), with optional confusions:
    {position: {char: p, ...}} for the character at that position."""
    columns = []
    for i, char in enumerate(text):
        columns.append((confusions or {}).get(i, {char: 0.95}))
        columns.append({"_": 0.95})
    return frames(*columns)
