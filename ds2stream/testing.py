"""Small LibriSpeech-shaped inputs built from real audio, for tests, tools and benchmarks."""
from __future__ import annotations

import shutil
import socket
import sys
import tarfile
from pathlib import Path

import numpy as np

# Files the real LibriSpeech archives carry beside the audio; readers must pass over them.
LIBRISPEECH_EXTRA_FILES = ("README.TXT", "CHAPTERS.TXT", "SPEAKERS.TXT", "LICENSE.TXT", "BOOKS.TXT")


def librispeech_tree(split_dir: Path, root: Path, subset: str = "dev-clean", per_chapter: int | None = None) -> Path:
    """Copy a LibriSpeech-layout split (``<spk>/<chap>/...``) to ``root/LibriSpeech/<subset>/``,
    keeping at most ``per_chapter`` utterances of each chapter. Returns ``root/LibriSpeech``."""
    corpus = Path(root) / "LibriSpeech"
    for name in LIBRISPEECH_EXTRA_FILES:
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(f"{name}: not a transcript\n")
    for transcript in sorted(Path(split_dir).glob("*/*/*.trans.txt")):
        chapter_dir = corpus / subset / transcript.parent.relative_to(split_dir)
        chapter_dir.mkdir(parents=True, exist_ok=True)
        lines = transcript.read_text().splitlines(keepends=True)[:per_chapter]
        (chapter_dir / transcript.name).write_text("".join(lines))
        for line in lines:
            utt_id = line.split()[0]
            shutil.copy(transcript.parent / f"{utt_id}.flac", chapter_dir / f"{utt_id}.flac")
    return corpus


def librispeech_archive(corpus: Path, archive: Path) -> Path:
    """Pack a ``LibriSpeech`` folder as the official archives are: members ``LibriSpeech/...``."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(corpus, arcname="LibriSpeech")
    return archive


# ---------------------------------------------------------------- LibriSpeech-length corpora

#: Utterance-length profiles of LibriSpeech subsets (seconds), as mixtures that match the
#: published shape: train-clean-100 has mean ~12.7 s, range 1-24.5 s, most utterances 12-17 s;
#: test-clean has mean ~7.4 s and a long tail up to 35 s.
LENGTH_PROFILES = ("train-clean-100", "test-clean")


def sample_durations(profile: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``count`` utterance durations (s) with the length distribution of a LibriSpeech subset."""
    if profile == "train-clean-100":
        kind = rng.choice(3, size=count, p=[0.64, 0.31, 0.05])
        core = np.clip(rng.normal(14.9, 1.2, count), 12.0, 17.0)
        short = rng.uniform(1.0, 12.0, count)
        long = rng.uniform(17.0, 24.5, count)
        return np.choose(kind, [core, short, long])
    if profile == "test-clean":
        return np.clip(1.3 + rng.gamma(1.6, 3.8, count), 1.3, 35.0)
    raise ValueError(f"unknown length profile {profile!r}; known: {LENGTH_PROFILES}")


def synthetic_librispeech(clips_dir: Path, root: Path, hours: float, profile: str = "train-clean-100",
                          subset: str = "train-clean-100", seed: int = 0, per_chapter: int = 50) -> Path:
    """A LibriSpeech-layout corpus of real speech with real transcripts and a subset's lengths:
    each utterance joins recordings from ``clips_dir`` (a LibriSpeech-layout split, e.g. the
    bundled FSDD digits) and its transcript joins theirs. Returns ``root/LibriSpeech``."""
    import soundfile

    from .audio import read_audio
    from .sources import SourceItem, iter_folder

    clips = [(read_audio(item.audio_path)[0], item.transcript)
             for item in iter_folder(Path(clips_dir)) if isinstance(item, SourceItem)]
    rng = np.random.default_rng(seed)
    durations = sample_durations(profile, max(1, int(hours * 3600 / 10)), rng)
    durations = durations[np.cumsum(durations) <= hours * 3600] if durations.sum() > hours * 3600 else durations
    corpus = Path(root) / "LibriSpeech"
    speakers = 40
    lines: dict[Path, list[str]] = {}
    for number, duration in enumerate(durations):
        speaker, chapter, utt = 1000 + number % speakers, number // (speakers * per_chapter), number // speakers
        utt %= per_chapter
        folder = corpus / subset / str(speaker) / str(chapter)
        folder.mkdir(parents=True, exist_ok=True)
        utt_id = f"{speaker}-{chapter}-{utt:04d}"
        target = int(duration * 16000)
        parts, words, total = [], [], 0
        while total < target:
            audio, text = clips[int(rng.integers(len(clips)))]
            parts.append(audio)
            words.append(text)
            total += len(audio)
        # Whole clips only, so the transcript is exact; the last clip may overrun by < 2.3 s.
        soundfile.write(folder / f"{utt_id}.flac", np.concatenate(parts), 16000, subtype="PCM_16")
        lines.setdefault(folder / f"{speaker}-{chapter}.trans.txt", []).append(f"{utt_id} {' '.join(words)}\n")
    for path, entries in lines.items():
        path.write_text("".join(entries))
    return corpus


def free_port() -> int:
    """A TCP port free on loopback right now (for msrun's scheduler in tests and benches)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_msrun(workers: int, log_dir: Path) -> list[str]:
    """The msrun command (before its task) for ``workers`` ranks on this machine, on a free port.
    msrun is run as a module of this interpreter: its console script may be a shell shim."""
    return [sys.executable, "-m", "mindspore.parallel.cluster.run", f"--worker_num={workers}",
            f"--local_worker_num={workers}", "--master_addr=127.0.0.1", f"--master_port={free_port()}",
            "--join=True", f"--log_dir={log_dir}"]
