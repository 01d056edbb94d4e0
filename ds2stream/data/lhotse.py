"""Lhotse manifests as a source: a supervisions manifest (with its recordings manifest beside it),
or a cuts manifest (recordings and supervisions inside each cut); ``.jsonl`` or ``.jsonl.gz``.

One row per supervision, its audio cut from the recording exactly by the supervision's time span
(samples ``round(start x rate)`` for ``round(duration x rate)``, as Lhotse counts them) and
channel; a supervision that covers a whole one-channel file keeps the file's bytes as they are.
A recording with no supervision has no transcript, and is reported as such. What ds2stream does
not read is reported by manifest line: sources other than files (URLs, commands, memory),
recordings with transforms (speed, resampling), cuts without a recording (MixedCut, PaddingCut),
supervisions over several channels. Relative paths are taken as Lhotse takes them (from the current folder), then
from the manifest's folder.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Iterator

from ..errors import DataError
from .sources import Item, Problem, SourceItem

MANIFEST_SUFFIXES = (".jsonl", ".jsonl.gz")


def is_manifest(path: Path) -> bool:
    return path.name.lower().endswith(MANIFEST_SUFFIXES)


def _lines(path: Path) -> Iterator[tuple[str, dict | None]]:
    """(``file:line``, the entry or None when the line is not a JSON object) for every non-empty line."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    entry = None
                yield f"{path}:{number}", entry if isinstance(entry, dict) else None


def manifest_kind(path: Path) -> str:
    """'cuts', 'supervisions' or 'recordings', from the first entry; a DataError naming the file."""
    try:
        where, first = next(_lines(path), (str(path), None))
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable Lhotse manifest ({err})") from None
    if first is None:
        raise DataError(f"{where}: not a Lhotse manifest entry (a JSON object per line)")
    if "recording" in first or first.get("type", "").endswith("Cut"):
        return "cuts"
    if "recording_id" in first:
        return "supervisions"
    if "sources" in first:
        return "recordings"
    raise DataError(f"{where}: neither a cut, a supervision nor a recording (keys: {', '.join(first)})")


def recordings_beside(supervisions: Path) -> Path:
    """The recordings manifest of a supervisions manifest: the same name with ``recordings``."""
    name = supervisions.name.replace("supervisions", "recordings")
    path = supervisions.with_name(name)
    if name == supervisions.name or not path.is_file():
        raise DataError(f"{supervisions}: a supervisions manifest needs its recordings manifest beside it, "
                         f"named as Lhotse names it ({path.name if name != supervisions.name else '*recordings*'})")
    return path


def check_manifest(path: Path) -> str:
    """The manifest's kind, after checking that ds2stream can read it as an input."""
    kind = manifest_kind(path)
    if kind == "recordings":
        raise DataError(f"{path}: a recordings manifest has no transcripts; give its supervisions manifest "
                         f"(ds2stream finds the recordings beside it) or a cuts manifest")
    if kind == "supervisions":
        recordings_beside(path)
    return kind


def count_entries(path: Path) -> int | None:
    """Supervisions in a supervisions manifest (one per line); None for cuts (a cut may hold several)
    and for a manifest that cannot be read to its end (reading it reports that, by file)."""
    if check_manifest(path) != "supervisions":
        return None
    try:
        return sum(1 for _ in _lines(path))
    except (OSError, EOFError, UnicodeDecodeError):
        return None


def iter_lhotse(path: Path) -> Iterator[Item]:
    kind = check_manifest(path)
    try:
        yield from (_iter_cuts(path) if kind == "cuts" else _iter_supervisions(path))
    except (OSError, EOFError, UnicodeDecodeError) as err:
        yield Problem("unreadable_manifest", str(path), f"{path}: unreadable or truncated ({err})")


def _iter_supervisions(path: Path) -> Iterator[Item]:
    recordings_path = recordings_beside(path)
    recordings, used = {}, set()
    for where, entry in _lines(recordings_path):
        if entry is None or "id" not in entry:
            yield Problem("manifest_row", where, f"{where}: not a Lhotse recording")
        elif entry["id"] in recordings:  # which audio its supervisions mean is unknowable: the first stays
            first = recordings[entry["id"]][0]
            yield Problem("duplicate_id", where, f"{where}: recording {entry['id']} appears more than once; "
                                                 f"kept the first ({first})")
        else:
            recordings[entry["id"]] = (where, entry)
    for where, supervision in _lines(path):
        if supervision is None or "recording_id" not in supervision:
            yield Problem("manifest_row", where, f"{where}: not a Lhotse supervision")
            continue
        found = recordings.get(supervision["recording_id"])
        if found is None:
            yield Problem("missing_audio", where, f"{where}: supervision {supervision.get('id')} names recording "
                                                  f"{supervision['recording_id']}, not in {recordings_path}")
            continue
        used.add(supervision["recording_id"])
        yield _item(supervision, found[1], supervision.get("start", 0.0), where, path.parent)
    for recording_id, (where, _) in recordings.items():
        if recording_id not in used:
            yield Problem("missing_transcript", where, f"{where}: recording {recording_id} has no supervision")


def _iter_cuts(path: Path) -> Iterator[Item]:
    for where, cut in _lines(path):
        if cut is None or "recording" not in cut:
            kind = cut.get("type", "?") if cut else "not a JSON object"
            yield Problem("manifest_row", where,
                          f"{where}: {kind}; ds2stream reads cuts of one recording (MonoCut, MultiCut)")
            continue
        supervisions = cut.get("supervisions") or []
        if not supervisions:
            yield Problem("missing_transcript", where, f"{where}: cut {cut.get('id')} has no supervision")
        for supervision in supervisions:  # their starts count from the cut's
            yield _item(supervision, cut["recording"], cut.get("start", 0.0) + supervision.get("start", 0.0),
                        where, path.parent)


def _resolve(source: str, folder: Path) -> str:
    if os.path.isabs(source) or os.path.exists(source):
        return source
    beside = folder / source
    return str(beside) if beside.exists() else source


def _item(supervision: dict, recording: dict, start: float, where: str, folder: Path) -> Item:
    """The SourceItem of one supervision of a recording (start in the recording's seconds)."""
    utt_id, channel = supervision.get("id"), supervision.get("channel", 0)
    if not utt_id or "duration" not in supervision:
        return Problem("manifest_row", where, f"{where}: a supervision without id or duration")
    if not isinstance(channel, int):
        return Problem("manifest_row", where, f"{where}: supervision {utt_id} spans channels {channel}; "
                                              f"ds2stream reads one channel per utterance")
    if recording.get("transforms"):
        names = ", ".join(t.get("name", "?") for t in recording["transforms"])
        return Problem("manifest_row", where, f"{where}: recording {recording.get('id')} has transforms ({names}), "
                                              f"which ds2stream does not apply")
    source = next((s for s in recording.get("sources", []) if channel in s.get("channels", [])), None)
    if source is None or source.get("type") != "file":
        what = f"a {source.get('type')} source" if source else f"no source for channel {channel}"
        return Problem("manifest_row", where, f"{where}: recording {recording.get('id')} has {what}; ds2stream "
                                              f"reads audio files (download or render them first)")
    audio_path = _resolve(source["source"], folder)
    if not os.path.isfile(audio_path):
        return Problem("missing_file", where, f"{where}: no such file {audio_path} (recording {recording.get('id')})")
    duration, rate = float(supervision["duration"]), recording.get("sampling_rate", 0)
    channels = source["channels"]
    whole = (start == 0 and len(channels) == 1 and rate > 0
             and round(duration * rate) == recording.get("num_samples"))
    return SourceItem(utt_id, supervision.get("text") or "", audio_path=audio_path,
                      origin=f"{where} ({utt_id}: {audio_path} {start:.2f}-{start + duration:.2f} s)",
                      span=None if whole else (start, duration),
                      channel=None if len(channels) == 1 else channels.index(channel))
