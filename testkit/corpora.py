"""Small LibriSpeech-shaped inputs built from real audio, for the tests and the benchmarks."""
from __future__ import annotations

import shutil
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

    from ds2stream.data.audio import read_audio
    from ds2stream.data.sources import SourceItem, iter_folder

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


def utterances_of_lengths(clips_dir: Path, root: Path, sample_counts, subset: str = "train-other",
                          seed: int = 0) -> Path:
    """A LibriSpeech-layout folder with one utterance of exactly each of ``sample_counts`` samples,
    real speech: whole recordings from ``clips_dir`` joined (so the transcript is exact), then
    silence up to the count. Speaker 7000, chapter 1. Returns ``root/LibriSpeech``."""
    import soundfile

    from ds2stream.data.audio import read_audio
    from ds2stream.data.sources import SourceItem, iter_folder

    clips = [(read_audio(item.audio_path)[0], item.transcript)
             for item in iter_folder(Path(clips_dir)) if isinstance(item, SourceItem)]
    rng = np.random.default_rng(seed)
    corpus = Path(root) / "LibriSpeech"
    folder = corpus / subset / "7000" / "1"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, count in enumerate(sample_counts):
        parts, words, total = [], [], 0
        while True:
            audio, text = clips[int(rng.integers(len(clips)))]
            if total + len(audio) > count:
                break
            parts.append(audio)
            words.append(text)
            total += len(audio)
        if not parts:
            raise ValueError(f"{count} samples is shorter than any recording in {clips_dir}")
        samples = np.concatenate(parts + [np.zeros(count - total, dtype=np.int16)])
        utt_id = f"7000-1-{number:04d}"
        soundfile.write(folder / f"{utt_id}.flac", samples, 16000, subtype="PCM_16")
        lines.append(f"{utt_id} {' '.join(words)}\n")
    (folder / "7000-1.trans.txt").write_text("".join(lines))
    return corpus



def fuzzed_corpus(clips_dir: Path, root: Path, scale: int = 1, seed: int = 0) -> tuple[Path, dict, dict]:
    """A LibriSpeech-layout folder of good recordings mixed with every kind of bad input a corpus
    can hold (~250 bad files at ``scale`` 1): random bytes and truncated files named .flac, empty
    files, other sample rates, stereo, truncated WAVs, a two-hour recording, audio shorter than one
    window, transcripts that are not UTF-8 or hold digits, audio without a line and lines without
    audio, an id twice, an id in another speaker's folder. Good files come with LF, CRLF and tab
    separated transcript lines, and at 8 and 16 bits.

    Returns ``(root/LibriSpeech, good, bad)``: ``good`` maps each id that must arrive to its
    transcript; ``bad`` maps each kind of problem to how many must be reported.
    """
    import soundfile

    from ds2stream.data.audio import read_audio
    from ds2stream.data.sources import SourceItem, iter_folder

    clips = [(item.id, read_audio(item.audio_path)[0], item.transcript, Path(item.audio_path).read_bytes())
             for item in iter_folder(Path(clips_dir)) if isinstance(item, SourceItem)]
    rng = np.random.default_rng(seed)
    corpus = Path(root) / "LibriSpeech"
    good: dict[str, str] = {}
    bad: dict[str, int] = {}
    speakers = iter(range(8001, 9000))

    def clip():
        return clips[int(rng.integers(len(clips)))]

    def batch(count: int, kind: str | None, write, text=None, newline="\n", encoding="utf-8", separator=" "):
        """``count`` utterances of a new speaker (chapter 1) with its transcript file; ``write(path_stem,
        samples, flac)`` writes each audio file. Returns the folder and the ids."""
        speaker = next(speakers)
        folder = corpus / "fuzz" / str(speaker) / "1"
        folder.mkdir(parents=True)
        chosen = [clip() for _ in range(count)]
        ids = [f"{speaker}-1-{i:04d}" for i in range(count)]
        texts = [text or transcript for _, _, transcript, _ in chosen]
        lines = "".join(f"{utt_id}{separator}{t}{newline}" for utt_id, t in zip(ids, texts))
        (folder / f"{speaker}-1.trans.txt").write_bytes(lines.encode(encoding))
        for utt_id, (_, samples, _, flac) in zip(ids, chosen):
            write(folder / utt_id, samples, flac)
        if kind is None:
            good.update(zip(ids, texts))
        else:
            bad[kind] = bad.get(kind, 0) + count
        return folder, ids

    def copy_flac(stem, samples, flac):
        stem.with_suffix(".flac").write_bytes(flac)

    n = scale
    batch(20 * n, None, copy_flac)
    batch(10 * n, None, copy_flac, newline="\r\n")
    batch(10 * n, None, copy_flac, separator="\t")
    batch(10 * n, None, lambda stem, samples, _: soundfile.write(stem.with_suffix(".flac"), samples, 16000,
                                                                 subtype="PCM_S8"))
    batch(50 * n, "unreadable_audio", lambda stem, *_: stem.with_suffix(".flac").write_bytes(
        rng.bytes(int(rng.integers(1, 5000)))))
    batch(50 * n, "unreadable_audio", lambda stem, _, flac: stem.with_suffix(".flac").write_bytes(
        flac[:int(rng.integers(1, len(flac)))]))

    def truncated_wav(stem, samples, _):
        soundfile.write(stem.with_suffix(".wav"), samples, 16000, subtype="PCM_16")
        data = stem.with_suffix(".wav").read_bytes()
        stem.with_suffix(".wav").write_bytes(data[:int(rng.integers(100, len(data) - 2))])

    batch(20 * n, "unreadable_audio", truncated_wav)
    batch(20 * n, "empty_audio", lambda stem, *_: stem.with_suffix(".flac").write_bytes(b""))
    for rate in (8000, 22050, 44100):
        batch(10 * n, "sample_rate", lambda stem, samples, _: soundfile.write(
            stem.with_suffix(".flac"), samples, rate, subtype="PCM_16"))
    batch(25 * n, "channels", lambda stem, samples, _: soundfile.write(
        stem.with_suffix(".flac"), np.stack([samples, samples], axis=1), 16000, subtype="PCM_16"))
    batch(10 * n, "too_short", lambda stem, samples, _: soundfile.write(
        stem.with_suffix(".flac"), samples[:int(rng.integers(1, 160))], 16000, subtype="PCM_16"))

    def two_hours(stem, *_):
        with soundfile.SoundFile(stem.with_suffix(".flac"), "w", 16000, 1, subtype="PCM_16") as handle:
            for _ in range(120):
                handle.write(np.zeros(16000 * 60, dtype=np.int16))

    batch(1, "too_long", two_hours)
    batch(15 * n, "text", copy_flac, text="CAFÉ AU LAIT", encoding="latin-1")  # not UTF-8
    batch(5 * n, "text", copy_flac, text="CHAPTER 12")  # digits are not labels
    folder, ids = batch(10 * n, None, copy_flac)  # ... then audio without a line, a line without audio
    for number in range(10 * n):
        copy_flac(folder / f"{folder.parent.name}-1-{9000 + number}", *clip()[1::2])
    bad["missing_transcript"] = 10 * n
    transcript = next(folder.glob("*.trans.txt"))
    with open(transcript, "a") as handle:
        for number in range(10 * n):
            handle.write(f"{folder.parent.name}-1-{8000 + number} A LINE WITHOUT AUDIO\n")
        for utt_id in ids[:5 * n]:
            handle.write(f"{utt_id} A SECOND LINE FOR THE SAME ID\n")
    bad["missing_audio"] = 10 * n
    bad["duplicate_id"] = 5 * n
    folder, ids = batch(5 * n, None, copy_flac)
    for utt_id in ids:  # the same files under another chapter's ids, in this chapter's folder
        stray = utt_id.replace("-1-", "-2-")
        (folder / f"{utt_id}.flac").rename(folder / f"{stray}.flac")
        transcript = next(folder.glob("*.trans.txt"))
        transcript.write_text(transcript.read_text().replace(utt_id, stray))
        del good[utt_id]
    bad["id_mismatch"] = 5 * n
    return corpus, good, bad


def hf_librispeech_rows(corpus: Path) -> list[dict]:
    """The rows Hugging Face's LibriSpeech parquet files (openslr/librispeech_asr) hold for a
    LibriSpeech tree: the FLAC bytes, the transcript as found, ids."""
    from ds2stream.data.sources import SourceItem, iter_folder

    rows = []
    for item in iter_folder(Path(corpus)):
        if isinstance(item, SourceItem):
            rows.append({"file": item.audio_path, "audio": {"bytes": Path(item.audio_path).read_bytes(),
                                                            "path": f"{item.id}.flac"},
                         "text": item.transcript, "speaker_id": item.speaker_id, "chapter_id": item.chapter_id,
                         "id": item.id})
    return rows


def write_hf_parquet(rows: list[dict], path: Path, row_group_size: int = 64) -> Path:
    """Rows (``hf_librispeech_rows``, or made by hand) as a parquet file of Hugging Face's schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("file", pa.string()),
                        ("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("text", pa.string()), ("speaker_id", pa.int64()), ("chapter_id", pa.int64()),
                        ("id", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=row_group_size)
    return path


def format_1_copy(shard_dir: Path, out: Path) -> Path:
    """A copy of a shard set as ds2stream wrote it before format 2 (IPC files, audio as bytes)."""
    import json
    import os

    import pyarrow as pa

    from ds2stream.data.shards import read_shard

    shutil.copytree(shard_dir, out)
    summary = json.loads((out / "index.json").read_text())
    for info in summary["shards"]:
        table = read_shard(out / info["file"])
        audio = table.column("audio").combine_chunks().field("bytes")
        table = table.set_column(table.schema.get_field_index("audio"), "audio", audio)
        with pa.OSFile(str(out / "file.tmp"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(out / "file.tmp", out / info["file"])  # never written over the mapped file
    (out / "index.json").write_text(json.dumps({**summary, "format_version": 1}))
    return out


def joined_with_pauses(recordings: list[np.ndarray], pauses: list[float], rate: int = 16000,
                       noise: float = 20.0, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``recordings`` (int16) one after the other, each followed by its pause (seconds, 0 for none)
    of quiet noise (standard deviation ``noise`` in int16 units: about -64 dBFS for 20, a quiet
    room through a microphone): the samples, and each recording's (first sample, end sample)."""
    rng = np.random.default_rng(seed)
    parts, spans, at = [], [], 0
    for samples, pause in zip(recordings, pauses, strict=True):
        gap = np.clip(rng.normal(0, noise, int(round(pause * rate))), -32768, 32767).astype(np.int16)
        parts += [samples, gap]
        spans.append((at, at + len(samples)))
        at += len(samples) + len(gap)
    return np.concatenate(parts), spans
