"""Model log-probabilities -> transcripts: greedy through the native kernel, or beam search.

``greedy_decode`` validates and calls ``csrc/ctc_greedy.pyx``; ``greedy_decode_reference`` is the
pure-Python definition it is tested against. Both take the label set and blank from ``text``.
``DecoderConfig`` says which decoder (and LM) to use; ``make_decoder`` turns it into a function
(``beam.py`` holds the beam search, ``lm.py`` the language model, ``hotwords.py`` the words it
may be told to favour).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ..data.text import BLANK_INDEX, LABELS
from ..errors import ConfigError, DataError


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
    try:
        paths = _ctc_greedy.best_path(log_probs, lengths, blank, time_major)
    except ValueError as err:  # the kernel's one error: a NaN, named by utterance and frame
        raise DataError(f"{err}: the model that made them is broken") from None
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
        nan_frames = np.flatnonzero(np.isnan(frames).any(axis=1))
        if nan_frames.size:
            raise DataError(f"log-probs hold NaN (utterance {b}, frame {int(nan_frames[0])}): "
                            "the model that made them is broken")
        best = [int(np.argmax(frame)) for frame in frames]
        collapsed = [k for t, k in enumerate(best) if t == 0 or k != best[t - 1]]
        texts.append("".join(labels[k] for k in collapsed if k != blank))
    return texts


DECODERS = ("greedy", "beam")


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """How log-probabilities become text: greedy, or beam search with an optional LM. Travels
    with a model (``--decoder-config`` JSON, the MindIR sidecar) so a model and its decoder
    stay together."""
    decoder: str = "greedy"
    beam_width: int = 32
    lm: str | None = None  # an ARPA file
    alpha: float = 0.5  # LM weight
    beta: float = 1.0  # word bonus (with an LM only)
    oov_penalty: float = 16.0  # cost of a word outside the LM's vocabulary (with an LM only; results/unseen-voices.md)

    def __post_init__(self):
        if self.decoder not in DECODERS:
            raise ConfigError(f"decoder {self.decoder!r} is not one of {', '.join(DECODERS)}")
        if self.beam_width < 1:
            raise ConfigError(f"beam width must be at least 1, got {self.beam_width}")
        if self.lm and self.decoder != "beam":
            raise ConfigError("an LM needs --decoder beam")
        if self.oov_penalty < 0:
            raise ConfigError(f"the OOV penalty is a cost: 0 or more, got {self.oov_penalty}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def for_hotwords(self, hotwords) -> "DecoderConfig":
        """These settings as they decode with ``hotwords`` (a ``hotwords.Hotwords``; none: unchanged).
        Greedy decoding cannot favour a word, so with hotwords it becomes the beam search at this
        config's width (``beam_width``: the beam's default unless set): whoever gives hotwords wants
        them applied, and a server's clients cannot change the decoder it was started with."""
        if hotwords and self.decoder == "greedy":
            return dataclasses.replace(self, decoder="beam")
        return self

    @classmethod
    def from_dict(cls, data: dict, source: Path) -> "DecoderConfig":
        """Settings read from ``source`` (a JSON file or a sidecar): an LM path in them is relative
        to that file, so that the two move together."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown decoder settings {unknown}; known: {sorted(known)}")
        config = cls(**data)
        if config.lm and not Path(config.lm).is_absolute():
            config = dataclasses.replace(config, lm=str((Path(source).parent / config.lm).resolve()))
        return config

    @classmethod
    def read(cls, path: Path) -> "DecoderConfig":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: not a decoder settings file ({err})") from None
        return cls.from_dict(data, path)


def read_lm(path):
    """An ARPA LM (``lm.NGramLM``), checked against the label set: a one-line DataError naming the file otherwise."""
    from .lm import read_arpa

    lm = read_arpa(Path(path))
    outside = sorted({c for word in lm.vocabulary - {"<s>", "</s>", "<unk>"} for c in word} - set(LABELS))
    if outside:
        raise DataError(f"{path}: the LM's words hold characters outside the label set {outside!r} "
                         "(build it from normalised text: `ds2stream lm`)")
    return lm


def make_decoder(config: DecoderConfig | None = None, lm=None, hotwords=None):
    """``decode(log_probs (T, C) of one utterance) -> text`` for ``config`` (default: greedy).
    Reads and checks the config's LM, unless ``lm`` (from :func:`read_lm`) is that LM already read.

    ``hotwords`` (a ``hotwords.Hotwords``) bias the beam search, which a greedy config becomes
    (:meth:`DecoderConfig.for_hotwords`)."""
    config = (config or DecoderConfig()).for_hotwords(hotwords)
    if config.decoder == "greedy":
        return lambda log_probs: greedy_decode(np.asarray(log_probs, np.float32)[None])[0]
    from .beam import BeamSearch

    if config.lm:
        return BeamSearch(config.beam_width, lm or read_lm(config.lm), config.alpha, config.beta, config.oov_penalty,
                          hotwords=hotwords)
    return BeamSearch(config.beam_width, hotwords=hotwords)  # no LM: the acoustics alone, no word bonus either
