"""Where utterances come from: LibriSpeech folders, LibriSpeech .tar.gz archives, zoo CSV manifests
(``hf_parquet`` and ``lhotse`` read the other tools' formats; ``inputs`` picks the reader).

Each source yields, in a deterministic order, either a :class:`SourceItem` (transcript and where
its audio is) or a :class:`Problem` (something that cannot become an utterance, named by file).
Nothing is decoded here: decoding and checks happen in ``shards`` worker processes.

LibriSpeech layout: ``<root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` and
``<speaker>-<chapter>.trans.txt`` with lines ``<utt-id> <TEXT>``. A folder input may be at any
level of it. The zoo's CSV manifest has rows ``wav_path,txt_path`` (a header row is passed over;
a relative path is taken relative to the CSV's folder); the text file holds the transcript, the id
is the audio file name without its extension.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import tarfile
import zlib
from pathlib import Path
from typing import Iterator, Union

from ..errors import DataError
from .remote import CHUNK, Fetch, is_url

AUDIO_EXTENSIONS = (".flac", ".wav")
TRANSCRIPT_SUFFIX = ".trans.txt"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_LIBRISPEECH_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


@dataclasses.dataclass(frozen=True)
class SourceItem:
    """One utterance before decoding. Exactly one of audio_path / audio_bytes is set; ``span`` and
    ``channel`` pick a part of it (a Lhotse supervision in a longer or multi-channel recording)."""

    id: str
    transcript: str  # as found, not yet normalised
    origin: str  # the audio's file (or archive:member, or manifest:line) for messages
    audio_path: str | None = None
    audio_bytes: bytes | None = None
    span: tuple[float, float] | None = None  # (start, duration) seconds; None: the whole file
    channel: int | None = None  # None: the file must be mono

    @property
    def speaker_id(self) -> int:
        return _id_part(self.id, 1)

    @property
    def chapter_id(self) -> int:
        return _id_part(self.id, 2)


@dataclasses.dataclass(frozen=True)
class Problem:
    """Input that does not become a row. kind is one of PROBLEM_KINDS."""

    kind: str
    source: str
    message: str


#: Every kind of problem, with what it means; the summary and the index count by these.
PROBLEM_KINDS = {
    "unreadable_audio": "corrupt or truncated audio file",
    "empty_audio": "audio file with no samples",
    "too_short": "audio shorter than one spectrogram window",
    "sample_rate": "audio not at the feature config's sample rate",
    "channels": "audio with more than one channel",
    "missing_audio": "transcript line with no audio file",
    "missing_transcript": "audio file with no transcript line",
    "text": "transcript with characters outside the label set, or empty",
    "missing_file": "CSV row pointing at a file that does not exist",
    "csv_row": "CSV row that is not wav_path,txt_path",
    "archive": "archive that is truncated or unreadable",
    "duplicate_id": "utterance id already taken by an earlier utterance (or an earlier transcript line)",
    "id_mismatch": "utterance id whose speaker or chapter differs from the folders it lies in",
    "too_long": "audio far longer than an utterance (an unsegmented recording)",
    "span": "supervision whose time span lies outside its recording",
    "manifest_row": "parquet row or Lhotse manifest entry without a field an utterance needs, or of a kind "
                    "ds2stream does not read",
    "unreadable_manifest": "parquet file or Lhotse manifest that is truncated or unreadable",
}

Item = Union[SourceItem, Problem]


def _id_part(utt_id: str, group: int) -> int:
    """Speaker (1) or chapter (2) of a LibriSpeech id; -1 when the id has another form."""
    match = _LIBRISPEECH_ID.match(utt_id)
    return int(match.group(group)) if match else -1


def parse_transcripts(lines, origin: str, texts: dict[str, str] | None = None) -> tuple[dict[str, str], list[Problem]]:
    """``<utt-id> <TEXT>`` lines (any whitespace after the id, CRLF or LF) -> {id: text}.

    A line without text is a problem, and so is an id seen before (in these lines or in ``texts``,
    the transcripts already read for the same folder): the first transcript is kept.
    """
    texts = {} if texts is None else texts
    problems, first_line = [], {}
    for number, line in enumerate(lines, 1):
        fields = line.split(None, 1)
        if not fields:
            continue
        utt_id, text = fields[0], (fields[1].strip() if len(fields) > 1 else "")
        where = f"{origin}:{number}"
        if not text:
            problems.append(Problem("text", where, f"{where}: no transcript for {utt_id}"))
        elif utt_id in texts:
            earlier = f"line {first_line[utt_id]}" if utt_id in first_line else "an earlier transcript file"
            problems.append(Problem("duplicate_id", where,
                                    f"{where}: {utt_id} already has a transcript ({earlier}); kept the first"))
        else:
            texts[utt_id], first_line[utt_id] = text, number
    return texts, problems


def id_folder_mismatch(utt_id: str, folder: str) -> str | None:
    """Why a LibriSpeech id does not belong in ``folder`` (``.../<speaker>/<chapter>``), or None.
    Only checked where both the id and the two innermost folders are LibriSpeech-shaped."""
    match = _LIBRISPEECH_ID.match(utt_id)
    parts = os.path.normpath(folder).replace(os.sep, "/").split("/")[-2:]
    if not match or len(parts) < 2 or not all(part.isdigit() for part in parts):
        return None
    if (int(match.group(1)), int(match.group(2))) == (int(parts[0]), int(parts[1])):
        return None
    return (f"id {utt_id} names speaker {int(match.group(1))}, chapter {int(match.group(2))}, but it lies in "
            f"{parts[0]}/{parts[1]}; rename it or move it to its speaker's and chapter's folder")


def _paired(utt_id: str, text: str, origin: str, folder: str, **audio) -> Item:
    """The SourceItem of an id with both transcript and audio, or an id_mismatch Problem."""
    mismatch = id_folder_mismatch(utt_id, folder)
    if mismatch:
        return Problem("id_mismatch", origin, f"{origin}: {mismatch}")
    return SourceItem(utt_id, text, origin=origin, **audio)


def _unpaired(folder: str, texts: dict[str, str], audio: dict[str, str]) -> Iterator[Problem]:
    """Problems for transcript lines without audio and audio (id -> its origin) without a line."""
    for utt_id in sorted(set(texts) - set(audio)):
        yield Problem("missing_audio", f"{folder}/{utt_id}",
                      f"{folder}: transcript line {utt_id} has no audio file")
    for utt_id in sorted(set(audio) - set(texts)):
        yield Problem("missing_transcript", audio[utt_id], f"{audio[utt_id]}: audio with no transcript line")


def iter_folder(root: Path) -> Iterator[Item]:
    """An extracted LibriSpeech tree at any level (corpus, subset, speaker or chapter folder)."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        audio = {Path(f).stem: os.path.join(folder, f) for f in sorted(files)
                 if f.lower().endswith(AUDIO_EXTENSIONS)}
        texts: dict[str, str] = {}
        for name in sorted(f for f in files if f.endswith(TRANSCRIPT_SUFFIX)):
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8", errors="replace") as handle:
                _, problems = parse_transcripts(handle, path, texts)
            yield from problems
        for utt_id in sorted(set(texts) & set(audio)):
            yield _paired(utt_id, texts[utt_id], audio[utt_id], folder, audio_path=audio[utt_id])
        yield from _unpaired(folder, texts, audio)


def iter_archive(path: Path | str, fetch: Fetch | None = None) -> Iterator[Item]:
    """A LibriSpeech archive read as a stream (never extracted): a file, or a URL read as it
    downloads (``fetch``: how). An archive file that ends early is a problem; everything complete
    before that point is kept. A URL's archive must arrive whole and, where a checksum is known,
    match it: anything else is a DataError, after the utterances that came before it."""
    pending_audio: dict[str, dict[str, tuple[str, bytes]]] = {}
    pending_text: dict[str, dict[str, str]] = {}
    seen_text: dict[str, dict[str, str]] = {}  # every transcript line read, per folder (for duplicates)
    last_member = "(none)"
    stream = (fetch or Fetch()).open(path) if is_url(path) else None
    try:
        opened = (tarfile.open(fileobj=io.BufferedReader(stream, CHUNK), mode="r|*") if stream
                  else tarfile.open(path, mode="r|*"))
        with opened as archive:
            for member in archive:
                if not member.isfile():
                    continue
                last_member = member.name
                folder, name = os.path.split(member.name)
                origin = f"{path}:{member.name}"
                if name.endswith(TRANSCRIPT_SUFFIX):
                    data = archive.extractfile(member).read().decode("utf-8", errors="replace")
                    seen = seen_text.setdefault(folder, {})
                    before = set(seen)
                    _, problems = parse_transcripts(data.splitlines(), origin, seen)
                    yield from problems
                    audio = pending_audio.get(folder, {})
                    for utt_id in [utt_id for utt_id in seen if utt_id not in before]:  # in file order
                        if utt_id in audio:
                            audio_origin, data = audio.pop(utt_id)
                            yield _paired(utt_id, seen[utt_id], audio_origin, folder, audio_bytes=data)
                        else:
                            pending_text.setdefault(folder, {})[utt_id] = seen[utt_id]
                elif name.lower().endswith(AUDIO_EXTENSIONS):
                    utt_id = Path(name).stem
                    data = archive.extractfile(member).read()
                    text = pending_text.get(folder, {}).pop(utt_id, None)
                    if text is None:
                        pending_audio.setdefault(folder, {})[utt_id] = (origin, data)
                    else:
                        yield _paired(utt_id, text, origin, folder, audio_bytes=data)
        if stream is not None:
            stream.drain()
            stream.checksums.verify(str(path))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        if stream is not None:  # the network's faults were retried below this: the bytes are wrong
            raise DataError(f"{path}: not a readable archive at byte {stream.position}, after member "
                            f"{last_member} ({err}); nothing was marked complete") from None
        yield Problem("archive", str(path),
                      f"{path}: archive unreadable or truncated after member {last_member} ({err})")
    finally:
        if stream is not None:
            stream.close()
    for folder in sorted(set(pending_audio) | set(pending_text)):
        audio = {utt_id: origin for utt_id, (origin, _) in pending_audio.get(folder, {}).items()}
        yield from _unpaired(f"{path}:{folder}", pending_text.get(folder, {}), audio)


def _is_header(row: list[str], base: Path) -> bool:
    """A first row such as ``wav_path,txt_path``: no cell names a file, the first no audio file."""
    cells = [cell.strip() for cell in row]
    return not cells[0].lower().endswith(AUDIO_EXTENSIONS) and not any((base / cell).is_file() for cell in cells)


def iter_csv(path: Path) -> Iterator[Item]:
    """The zoo's manifest: rows of ``wav_path,txt_path``; a header row, if any, is passed over."""
    base = path.parent
    first = True
    # surrogateescape: a path in another encoding than UTF-8 still names its file on Linux.
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        for number, row in enumerate(csv.reader(handle), 1):
            where = f"{path}:{number}"
            if not row or all(not cell.strip() for cell in row):
                continue
            if first and _is_header(row, base):
                first = False
                continue
            first = False
            if len(row) != 2:
                yield Problem("csv_row", where, f"{where}: expected wav_path,txt_path, got {row!r}")
                continue
            audio_path, text_path = (base / cell.strip() for cell in row)
            missing = [str(p) for p in (audio_path, text_path) if not p.is_file()]
            if missing:
                yield Problem("missing_file", where, f"{where}: no such file {', '.join(missing)}")
                continue
            text = text_path.read_text(encoding="utf-8", errors="replace").strip()
            if not text:
                yield Problem("text", str(text_path), f"{text_path}: empty transcript")
                continue
            yield SourceItem(audio_path.stem, text, origin=str(audio_path), audio_path=str(audio_path))
