"""Endpoints: where a stream that stays open ends one utterance (a *segment*) and the next begins.

The rules are Kaldi's (``OnlineEndpointRule``) and sherpa-onnx's (``endpoint.h``): a segment ends
when any rule fires, each rule judged on the segment's best path (each output frame's most probable
label, whatever the decoder), where *silence* is a frame whose best label is the CTC blank:

  rule 1  ``silence_without_speech``  this much trailing silence, nothing decoded yet (the decoder
                                      restarts and nothing is reported: a long pause);
  rule 2  ``silence_after_speech``    this much trailing silence after something was decoded;
  rule 3  ``max_segment``             a segment this long, whatever it holds (speech may go on).

Seconds are counted in output frames (the features' hop times the convolutions' time stride:
40 ms for the ``stream`` preset), each rule's rounded up to whole frames. A segment is reported
when its text holds a word: its words with their times in the stream, and its ``start`` and
``end``, where its first word starts and its last word ends.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import ConfigError
from .align import word_times


@dataclasses.dataclass(frozen=True)
class EndpointRules:
    """When a segment ends (the module docstring); the defaults are sherpa-onnx's. The same names
    are the keys of ``/stream``'s ``"endpoint"`` and the ``--endpoint-*`` options of ``transcribe``."""

    silence_after_speech: float = dataclasses.field(default=1.2, metadata={
        "help": "Seconds of silence after speech that end a segment (rule 2)."})
    silence_without_speech: float = dataclasses.field(default=2.4, metadata={
        "help": "Seconds of silence, nothing decoded, after which the decoder starts afresh (rule 1)."})
    max_segment: float = dataclasses.field(default=20.0, metadata={
        "help": "Seconds a segment lasts at most: it ends there, mid-word or not (rule 3)."})

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            # bool is an int to Python, and true is no number of seconds
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(f"endpoint {field.name} must be seconds above 0, got {value!r}")
            object.__setattr__(self, field.name, float(value))

    @classmethod
    def from_dict(cls, data) -> "EndpointRules":
        """Rules from JSON (``/stream``'s start message): missing keys take the defaults."""
        names = [field.name for field in dataclasses.fields(cls)]
        if not isinstance(data, dict):
            raise ConfigError(f'endpoint must be an object such as {{"{names[0]}": 0.8}}, got {data!r}')
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"unknown endpoint rules {', '.join(map(str, unknown))}; known: {', '.join(names)}")
        return cls(**data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class EndpointDetector:
    """The rules over one segment's best path, a frame at a time; :meth:`restart` for the next."""

    def __init__(self, rules: EndpointRules, frame_seconds: float):
        def frames(seconds: float) -> int:
            return max(1, math.ceil(seconds / frame_seconds - 1e-9))  # 1.2 s of 40-ms frames: 30, not 31

        self.rules = rules
        self.after_speech = frames(rules.silence_after_speech)
        self.without_speech = frames(rules.silence_without_speech)
        self.max_frames = frames(rules.max_segment)
        self.restart()

    def restart(self) -> None:
        self.frames = 0  # in the segment
        self.trailing = 0  # blank frames at its end
        self.speech = False  # a frame whose best label is not the blank

    def find(self, blank: np.ndarray) -> int | None:
        """Over the next frames (``blank``: whether each one's best label is the blank), the
        position of the first that ends the segment, or None. The frames up to that one (all, for
        None) count as the segment's."""
        for position, is_blank in enumerate(blank.tolist()):
            self.frames += 1
            if is_blank:
                self.trailing += 1
            else:
                self.trailing, self.speech = 0, True
            silence = self.after_speech if self.speech else self.without_speech
            if self.trailing >= silence or self.frames >= self.max_frames:
                return position
        return None


@dataclasses.dataclass(frozen=True)
class Segment:
    """One ended segment of a stream; times in seconds from the stream's start."""

    index: int  # among the stream's reported segments, from 0
    start: float  # its first word's start
    end: float  # its last word's end
    text: str  # its words, one space between
    words: list  # [{"word", "start", "end"}]

    def to_dict(self) -> dict:
        """The message ``/stream`` and ``transcribe --stream`` give as it ends."""
        return {"segment": self.index, "start": self.start, "end": self.end, "text": self.text, "words": self.words}

    def summary(self) -> dict:
        """What the final message lists of it (its words are in the final's own)."""
        return {"segment": self.index, "start": self.start, "end": self.end, "text": self.text}


def segment_of(index: int, text: str, log_probs: np.ndarray, first_frame: int, frame_seconds: float,
               audio_seconds: float) -> Segment | None:
    """The segment a decoder's ``text`` of these frames makes (None without a word): its words
    aligned to ``log_probs``, which begin at output frame ``first_frame`` of the stream; times
    capped at the ``audio_seconds`` received (a last frame can reach past the audio)."""
    offset = first_frame * frame_seconds
    words = [{"word": w.word, "start": round(min(w.start + offset, audio_seconds), 3),
              "end": round(min(w.end + offset, audio_seconds), 3)}
             for w in word_times(text, log_probs, frame_seconds)]  # the text as decoded: its spaces are labels too
    if not words:
        return None
    return Segment(index, words[0]["start"], words[-1]["end"], " ".join(w["word"] for w in words), words)
