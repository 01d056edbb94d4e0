"""Hugging Face parquet files of LibriSpeech (``openslr/librispeech_asr``) as a source.

A row holds ``audio`` (a struct of the FLAC file's ``bytes`` and its ``path``), ``text``, ``id``,
``speaker_id`` and ``chapter_id``; only ``audio``, ``text`` and ``id`` are needed (speaker and
chapter come from the id, as for every source). The FLAC bytes go into the shard as they are. A
row whose ``bytes`` are empty but whose ``path`` names a file (relative to the parquet file's folder)
reads that file. Read one batch of rows at a time: memory stays bounded whatever the file's size.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError
from .sources import Item, Problem, SourceItem

PARQUET_SUFFIX = ".parquet"
REQUIRED_COLUMNS = ("id", "text", "audio")
_BATCH_ROWS = 64  # LibriSpeech rows are ~0.3 MB of FLAC each


def open_parquet(path: Path) -> pq.ParquetFile:
    """The file, checked to have LibriSpeech's columns; a DataError naming the file otherwise."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: not a readable parquet file ({err})") from None
    schema = parquet.schema_arrow
    missing = [name for name in REQUIRED_COLUMNS if name not in schema.names]
    audio = schema.field("audio").type if "audio" in schema.names else None
    if missing or not (pa.types.is_struct(audio) and audio.get_field_index("bytes") >= 0):
        raise DataError(f"{path}: not Hugging Face LibriSpeech's schema (id, text, audio as a struct of bytes and "
                         f"path); it has {', '.join(f'{f.name}: {f.type}' for f in schema)}")
    return parquet


def parquet_rows(path: Path) -> int:
    return open_parquet(path).metadata.num_rows


def iter_parquet(path: Path) -> Iterator[Item]:
    """One item (or problem) per row, in file order."""
    parquet = open_parquet(path)
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=list(REQUIRED_COLUMNS)):
            for row in batch.to_pylist():
                number += 1
                yield _item(row, f"{path}:row {number}", path.parent)
    except (pa.ArrowException, OSError) as err:
        yield Problem("unreadable_manifest", str(path), f"{path}: unreadable after row {number} ({err})")


def _item(row: dict, where: str, folder: Path) -> Item:
    utt_id, audio = row["id"], row["audio"] or {}
    if not utt_id:
        return Problem("manifest_row", where, f"{where}: no id")
    origin = f"{where} ({utt_id})"
    if audio.get("bytes"):
        return SourceItem(utt_id, row["text"] or "", origin=origin, audio_bytes=audio["bytes"])
    path = audio.get("path")
    if path and os.path.isfile(folder / path):
        return SourceItem(utt_id, row["text"] or "", origin=str(folder / path), audio_path=str(folder / path))
    return Problem("missing_audio", where, f"{where}: {utt_id} has no audio bytes"
                   + (f", and its path {path} is not a file beside the parquet file" if path else ""))
