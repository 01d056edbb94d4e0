"""Which source reads an input of ``ds2stream shard``: a LibriSpeech folder or archive, a zoo CSV
manifest, a Hugging Face parquet file (or a folder of them, as Hugging Face downloads it) or a
Lhotse manifest."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ..errors import DataError
from .hf_parquet import PARQUET_SUFFIX, iter_parquet, parquet_rows
from .lhotse import check_manifest, count_entries, is_manifest, iter_lhotse
from .remote import Fetch, is_url, url_name
from .sources import ARCHIVE_SUFFIXES, AUDIO_EXTENSIONS, Item, iter_archive, iter_csv, iter_folder


def parquet_files(folder: Path) -> list[Path]:
    """The parquet files of a folder that holds no LibriSpeech audio (a Hugging Face download), sorted.
    Stops at the first audio file: a LibriSpeech tree is not walked to its end here."""
    found = []
    for root, dirs, files in os.walk(folder):
        if any(f.lower().endswith(AUDIO_EXTENSIONS) for f in files):
            return []
        dirs.sort()
        found += [Path(root) / f for f in sorted(files) if f.endswith(PARQUET_SUFFIX)]
    return found


#: What ``ds2stream shard`` reads, for messages that say so.
READABLE_INPUTS = ("LibriSpeech folders (<speaker>/<chapter>/*.trans.txt beside the audio), LibriSpeech .tar.gz "
                   "archives (files or http(s) URLs), zoo .csv manifests, Hugging Face .parquet files and Lhotse "
                   ".jsonl(.gz) manifests")


def input_kind(path: Path | str) -> str:
    """'folder', 'parquet_folder', 'archive', 'csv', 'parquet' or 'lhotse'; DataError naming the path
    otherwise (and for a parquet file or manifest that ds2stream cannot read as an input). A URL
    is read as a stream, so it must be an archive's."""
    if is_url(path):
        if not url_name(path).lower().endswith(ARCHIVE_SUFFIXES):
            raise DataError(f"{path}: a URL must name a .tar.gz, .tgz or .tar archive (other inputs are read "
                            "from disk)")
        return "archive"
    path = Path(path)
    if path.is_dir():
        return "parquet_folder" if parquet_files(path) else "folder"
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    name = path.name.lower()
    if name.endswith(ARCHIVE_SUFFIXES):
        return "archive"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(PARQUET_SUFFIX):
        return "parquet"
    if is_manifest(path):
        check_manifest(path)
        return "lhotse"
    raise DataError(f"{path}: not one of the inputs ds2stream reads: {READABLE_INPUTS}")


def iter_source(path: Path | str, fetch: Fetch | None = None) -> Iterator[Item]:
    """The items of one input; ``fetch`` says how a URL is read."""
    kind = input_kind(path)
    if kind == "archive":
        return iter_archive(path if is_url(path) else Path(path), fetch)
    path = Path(path)
    if kind == "parquet_folder":
        return (item for file in parquet_files(path) for item in iter_parquet(file))
    return {"folder": iter_folder, "csv": iter_csv, "parquet": iter_parquet, "lhotse": iter_lhotse}[kind](path)


def count_hint(path: Path | str) -> int | None:
    """How many items a source will yield, when that is cheap to know (for a progress bar's ETA);
    None for an archive, which is only read once, as a stream, and for cuts (several per line)."""
    kind = input_kind(path)
    if kind == "archive":
        return None
    path = Path(path)
    if kind == "folder":
        return sum(1 for _, _, files in os.walk(path) for f in files if f.lower().endswith(AUDIO_EXTENSIONS))
    if kind == "csv":
        with open(path, encoding="utf-8", errors="replace") as handle:
            return sum(1 for line in handle if line.strip())
    if kind == "parquet":
        return parquet_rows(path)
    if kind == "parquet_folder":
        return sum(parquet_rows(file) for file in parquet_files(path))
    if kind == "lhotse":
        return count_entries(path)
    return None
