"""Arrow shard sets: writing them from sources, resuming, the length index, reading them back.

A shard set is a folder:
  ``shard-000000.arrow`` ...  Arrow IPC streams (memory-mappable), one row per utterance, ``SCHEMA``,
                              which Hugging Face ``datasets`` opens in place as an audio dataset
                              (``Dataset.from_file``: the schema's ``huggingface`` metadata);
  ``index.arrow``             the length index: one small row per utterance (shard, row, lengths);
  ``index.json``              the summary: shards with checksums, duration histogram, speakers,
                              feature config, label set, problems and filtered counts.
``index.json`` is written last: its presence means the set is complete. While a set is being
written, ``progress.json`` journals the shards done so that a re-run resumes after a kill.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from ..errors import ConfigError, DataError
from ..failpoints import failpoint
from ..features import FeatureConfig, spectrogram
from ..files import replace_durably, write_durably
from .audio import AudioError, encode_flac, is_flac, read_audio
from .inputs import iter_source
from .remote import Fetch, is_url
from .sources import Item, Problem
from .text import LABELS, TextError, normalize

#: 2: shards are IPC streams (1: IPC files) and ``audio`` is a struct of bytes and path (1: bytes).
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
INDEX_JSON = "index.json"
INDEX_ARROW = "index.arrow"
PROGRESS_JSON = "progress.json"
AUDIO_FORMATS = ("flac", "pcm16")
#: Audio longer than this is refused (problem ``too_long``), read from its header: LibriSpeech's
#: utterances are at most 35 s, and a file of many minutes is a recording not yet cut into
#: utterances, whose single training batch would not fit in memory.
MAX_UTTERANCE_SECONDS = 600.0

#: Hugging Face's Audio layout: the encoded file and a name for it.
AUDIO_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

#: One row per utterance. Field names follow the Hugging Face LibriSpeech loader where it has them.
SCHEMA = pa.schema([
    ("id", pa.string()),
    ("speaker_id", pa.int64()),  # -1 when the id is not LibriSpeech's <speaker>-<chapter>-<utt>
    ("chapter_id", pa.int64()),
    ("text", pa.string()),  # normalised (ds2stream.text)
    ("num_samples", pa.int64()),
    ("sample_rate", pa.int32()),
    ("duration", pa.float64()),  # seconds
    # bytes: the FLAC file, or raw int16 little-endian with --audio pcm16; path: "<id>.flac" (None for pcm16)
    ("audio", AUDIO_TYPE),
])
#: Added with --features: the spectrogram as float16, row-major (num_bins, num_frames).
FEATURE_FIELDS = [("features", pa.binary()), ("num_frames", pa.int32())]

INDEX_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("shard", pa.int32()),
    ("row", pa.int32()),
    ("speaker_id", pa.int64()),
    ("num_samples", pa.int64()),
    ("duration", pa.float64()),
    ("num_chars", pa.int32()),
])


@dataclasses.dataclass(frozen=True)
class ShardOptions:
    """What decides a shard set's content; a resumed run must use the same."""

    audio_format: str = "flac"
    with_features: bool = False
    shard_size_mb: float = 128.0
    min_duration: float = 0.0  # seconds; shorter utterances are filtered, counted
    max_duration: float = float("inf")
    feature_config: FeatureConfig = FeatureConfig()

    def __post_init__(self):
        if self.audio_format not in AUDIO_FORMATS:
            raise ConfigError(f"audio format must be one of {AUDIO_FORMATS}, got {self.audio_format!r}")
        if self.shard_size_mb <= 0:
            raise ConfigError(f"shard size must be positive, got {self.shard_size_mb} MB")
        if self.min_duration > self.max_duration:
            raise ConfigError(f"min duration {self.min_duration} s exceeds max duration {self.max_duration} s")

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["feature_config"] = self.feature_config.to_dict()
        data["max_duration"] = None if self.max_duration == float("inf") else self.max_duration
        return data


@dataclasses.dataclass(frozen=True)
class Filtered:
    """An utterance left out on purpose (duration filter), counted in the summary."""

    reason: str  # "below_min_duration" | "above_max_duration"
    source: str


# ---------------------------------------------------------------- one utterance, in a worker

def convert(item: Item, options: ShardOptions):
    """Decode and check one source item: a row dict, a Problem or a Filtered."""
    if isinstance(item, Problem):
        return item
    config = options.feature_config
    try:
        if item.audio_bytes is not None:
            data = item.audio_bytes
        else:
            with open(item.audio_path, "rb") as handle:
                data = handle.read()
        samples, rate = read_audio(data, name=item.origin, max_seconds=MAX_UTTERANCE_SECONDS, span=item.span,
                                   channel=item.channel)
    except AudioError as err:
        return Problem(err.kind, item.origin, str(err))
    except OSError as err:
        return Problem("unreadable_audio", item.origin, f"{item.origin}: {err}")
    if rate != config.sample_rate:
        return Problem(
            "sample_rate", item.origin,
            f"{item.origin}: sample rate {rate} Hz, the feature config needs {config.sample_rate} Hz; "
            f"resample first, e.g. `sox in.flac -r {config.sample_rate} out.flac`",
        )
    if len(samples) < config.min_samples:
        return Problem("too_short", item.origin,
                       f"{item.origin}: {len(samples)} samples, fewer than one window ({config.min_samples})")
    duration = len(samples) / rate
    if duration < options.min_duration:
        return Filtered("below_min_duration", item.origin)
    if duration > options.max_duration:
        return Filtered("above_max_duration", item.origin)
    try:
        text = normalize(item.transcript, strict=True)
    except TextError as err:
        return Problem("text", item.origin, f"{item.origin}: {err}")
    if not text:
        return Problem("text", item.origin, f"{item.origin}: empty transcript")
    if options.audio_format == "pcm16":
        audio = samples.astype("<i2").tobytes()
    else:
        whole = item.span is None and item.channel is None
        audio = bytes(data) if whole and is_flac(data) else encode_flac(samples, rate)
    row = {
        "id": item.id, "speaker_id": item.speaker_id, "chapter_id": item.chapter_id,
        "text": text, "num_samples": len(samples), "sample_rate": rate,
        "duration": duration,
        "audio": {"bytes": audio, "path": f"{item.id}.flac" if options.audio_format == "flac" else None},
    }
    if options.with_features:
        features = spectrogram(samples, config)
        row["features"] = features.astype(np.float16).tobytes()
        row["num_frames"] = features.shape[1]
    return row


def _convert_star(args):
    return convert(*args)


# ---------------------------------------------------------------- the shard set on disk

def _write_table_durably(path: Path, table: pa.Table, schema: pa.Schema, stream: bool = False) -> None:
    """An Arrow IPC file (or stream) written to a temporary name, then renamed into place (``files``)."""
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, (pa.ipc.new_stream if stream else pa.ipc.new_file)(sink, schema) as writer:
        writer.write_table(table)
    replace_durably(tmp, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.arrow"


def shard_schema(options: ShardOptions) -> pa.Schema:
    schema = pa.schema(list(SCHEMA) + ([pa.field(*f) for f in FEATURE_FIELDS] if options.with_features else []))
    return schema.with_metadata({
        "ds2stream.feature_config": json.dumps(options.feature_config.to_dict()),
        "ds2stream.labels": LABELS,
        "ds2stream.audio_format": options.audio_format,
        "huggingface": json.dumps({"info": {"features": hf_features(schema, options)}}),
    })


def hf_features(schema: pa.Schema, options: ShardOptions) -> dict:
    """The columns as Hugging Face ``datasets`` features: ``audio`` is its Audio feature when it holds
    FLAC files (raw pcm16 is not a file it decodes: a struct of bytes and path then)."""
    names = {pa.string(): "string", pa.int64(): "int64", pa.int32(): "int32", pa.float64(): "float64",
             pa.binary(): "binary"}
    features = {}
    for field in schema:
        if field.name == "audio":
            features["audio"] = ({"sampling_rate": options.feature_config.sample_rate, "_type": "Audio"}
                                 if options.audio_format == "flac" else
                                 {"bytes": {"dtype": "binary", "_type": "Value"},
                                  "path": {"dtype": "string", "_type": "Value"}})
        else:
            features[field.name] = {"dtype": names[field.type], "_type": "Value"}
    return features


@dataclasses.dataclass
class ShardSetWriter:
    """Writes rows into numbered shards of about ``shard_size_mb``, each atomically, and journals
    progress after every shard so that an interrupted run resumes where the last shard ended."""

    out_dir: Path
    options: ShardOptions
    inputs: list[str]
    shards: list[dict] = dataclasses.field(default_factory=list)
    problems: list[dict] = dataclasses.field(default_factory=list)
    filtered: dict = dataclasses.field(default_factory=dict)
    consumed: int = 0  # source items fully accounted for by the shards written
    seen_ids: set = dataclasses.field(default_factory=set)
    _rows: list = dataclasses.field(default_factory=list)
    _bytes: int = 0

    def fingerprint(self) -> dict:
        return {"format_version": FORMAT_VERSION, "inputs": self.inputs, "options": self.options.to_dict()}

    # -- resume
    def finished(self) -> dict | None:
        """The summary of a complete set of the same inputs and options in out_dir, else None."""
        path = self.out_dir / INDEX_JSON
        if (self.out_dir / PROGRESS_JSON).exists() or not path.exists():
            return None
        summary = json.loads(path.read_text())
        same = {"format_version": summary.get("format_version"), "inputs": summary.get("inputs"),
                "options": summary.get("options")} == self.fingerprint()
        return summary if same else None

    def resume(self) -> None:
        """Load the journal of an interrupted run with the same inputs and options, if any; remove
        files it does not vouch for (temp files, shards written after its last entry)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        journal = self.out_dir / PROGRESS_JSON
        if journal.exists():
            state = json.loads(journal.read_text())
            if state["fingerprint"] != self.fingerprint():
                raise DataError(
                    f"{self.out_dir} holds an unfinished shard set made from other inputs or options; "
                    f"re-run the same command to finish it, or use another --out (or --overwrite)"
                )
            self.shards, self.problems = state["shards"], state["problems"]
            self.filtered, self.consumed = state["filtered"], state["consumed"]
            for info in self.shards:
                table = read_shard(self.out_dir / info["file"], columns=["id"])
                self.seen_ids.update(table.column("id").to_pylist())
        elif any(self.out_dir.iterdir()):
            raise DataError(f"{self.out_dir} is not empty; use another --out (or --overwrite)")
        kept = {info["file"] for info in self.shards} | {PROGRESS_JSON}
        for path in self.out_dir.iterdir():
            if path.name not in kept and (path.suffix in (".arrow", ".tmp") or path.name == INDEX_ARROW):
                path.unlink()
        if not journal.exists():  # before the first shard: a kill from here on leaves a set to resume
            self._journal()

    # -- writing
    def add(self, result, position: int) -> None:
        """Account for the result of source item number ``position`` (0-based, in order)."""
        if isinstance(result, Problem):
            self.problems.append(dataclasses.asdict(result))
        elif isinstance(result, Filtered):
            self.filtered[result.reason] = self.filtered.get(result.reason, 0) + 1
        elif result["id"] in self.seen_ids:
            self.problems.append(dataclasses.asdict(Problem(
                "duplicate_id", result["id"], f"utterance id {result['id']} appears more than once; kept the first")))
        else:
            self.seen_ids.add(result["id"])
            self._rows.append(result)
            self._bytes += len(result["audio"]["bytes"]) + len(result.get("features", b""))
            if self._bytes >= self.options.shard_size_mb * 1e6:
                self._flush(position + 1)

    def _flush(self, consumed: int) -> None:
        if self._rows:
            schema = shard_schema(self.options)
            table = pa.Table.from_pylist(self._rows, schema=schema)
            path = self.out_dir / shard_name(len(self.shards))
            _write_table_durably(path, table, schema, stream=True)
            failpoint("shard_written")
            durations = table.column("duration").to_numpy()
            self.shards.append({
                "file": path.name, "rows": table.num_rows, "bytes": path.stat().st_size,
                "sha256": _sha256(path), "duration_total": float(durations.sum()),
                "duration_min": float(durations.min()), "duration_max": float(durations.max()),
            })
            self._rows, self._bytes = [], 0
        self.consumed = consumed
        self._journal()

    def _journal(self) -> None:
        state = {"fingerprint": self.fingerprint(), "shards": self.shards, "problems": self.problems,
                 "filtered": self.filtered, "consumed": self.consumed}
        write_durably(self.out_dir / PROGRESS_JSON, json.dumps(state))

    def finish(self, consumed: int) -> dict:
        """Write the last shard, the length index and index.json; return the summary."""
        self._flush(consumed)
        index = _length_index(self.out_dir, self.shards)
        _write_table_durably(self.out_dir / INDEX_ARROW, index, INDEX_SCHEMA)
        summary = _summary(index, self)
        write_durably(self.out_dir / INDEX_JSON, json.dumps(summary, indent=1))
        (self.out_dir / PROGRESS_JSON).unlink()
        return summary


def _length_index(out_dir: Path, shards: list[dict]) -> pa.Table:
    parts = []
    for number, info in enumerate(shards):
        table = read_shard(out_dir / info["file"], columns=["id", "speaker_id", "num_samples", "duration", "text"])
        rows = table.num_rows
        parts.append(pa.table({
            "id": table.column("id"),
            "shard": pa.array(np.full(rows, number, dtype=np.int32)),
            "row": pa.array(np.arange(rows, dtype=np.int32)),
            "speaker_id": table.column("speaker_id"),
            "num_samples": table.column("num_samples"),
            "duration": table.column("duration"),
            "num_chars": pa.compute.utf8_length(table.column("text")).cast(pa.int32()),
        }, schema=INDEX_SCHEMA))
    return pa.concat_tables(parts) if parts else INDEX_SCHEMA.empty_table()


def duration_histogram(durations: np.ndarray, bin_seconds: float = 1.0) -> dict:
    top = max(1.0, float(np.ceil(durations.max() / bin_seconds)) * bin_seconds) if len(durations) else 1.0
    edges = np.arange(0.0, top + bin_seconds, bin_seconds)
    counts, _ = np.histogram(durations, bins=edges)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def _summary(index: pa.Table, writer: ShardSetWriter) -> dict:
    durations = index.column("duration").to_numpy()
    kinds: dict[str, int] = {}
    for problem in writer.problems:
        kinds[problem["kind"]] = kinds.get(problem["kind"], 0) + 1
    return {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "inputs": writer.inputs,
        "options": writer.options.to_dict(),
        "feature_config": writer.options.feature_config.to_dict(),
        "labels": LABELS,
        "audio_format": writer.options.audio_format,
        "features": writer.options.with_features,
        "utterances": int(index.num_rows),
        "hours": float(durations.sum() / 3600),
        "duration_min": float(durations.min()) if len(durations) else 0.0,
        "duration_max": float(durations.max()) if len(durations) else 0.0,
        "duration_histogram": duration_histogram(durations),
        "speakers": sorted(set(index.column("speaker_id").to_pylist())),
        "shards": writer.shards,
        "problem_counts": kinds,
        "problems": writer.problems,
        "filtered": writer.filtered,
    }


# ---------------------------------------------------------------- the whole command

def write_shard_set(inputs: Iterable[Path | str], out_dir: Path, options: ShardOptions = ShardOptions(),
                    jobs: int = 1, progress=None, fetch: Fetch | None = None) -> dict:
    """Turn LibriSpeech inputs (paths, or archives' URLs) into a complete shard set in out_dir,
    resuming a killed run.

    :param jobs: worker processes that decode and check audio (1: in this process).
    :param progress: called as ``progress(result)`` for every source item (for a progress bar).
    :param fetch: how URLs are read (checksums, timeout, retries, progress in bytes).
    :return: the summary written to index.json (the existing one when out_dir already holds the
        complete set of the same inputs and options: a re-run after a kill that came too late).
    """
    inputs = [p if is_url(p) else Path(p) for p in inputs]
    writer = ShardSetWriter(Path(out_dir), options, [p if is_url(p) else str(p.resolve()) for p in inputs])
    done = writer.finished()
    if done is not None:
        return done
    writer.resume()

    def items() -> Iterator[tuple[Item, ShardOptions]]:
        position = 0
        for path in inputs:
            for item in iter_source(path, fetch):
                if position >= writer.consumed:  # done by the run that was interrupted
                    yield item, options
                position += 1

    if jobs > 1:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(jobs)
        results = pool.imap(_convert_star, items(), chunksize=8)
    else:
        pool = None
        results = map(_convert_star, items())
    position = writer.consumed
    try:
        for result in results:
            writer.add(result, position)
            position += 1
            if progress is not None:
                progress(result)
    finally:
        if pool is not None:
            pool.terminate()
    return writer.finish(position)


# ---------------------------------------------------------------- reading

def read_shard(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A shard (an IPC stream, or a format-1 IPC file) as a memory-mapped Arrow table (no copy of
    the audio)."""
    try:
        with pa.memory_map(str(path), "r") as source:
            is_file = source.read(6) == b"ARROW1"  # the IPC file format's magic; a stream has none
            source.seek(0)
            table = (pa.ipc.open_file(source) if is_file else pa.ipc.open_stream(source)).read_all()
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: not a readable shard ({err}); shard the data again") from None
    return table.select(columns) if columns else table


def audio_bytes(record: dict) -> bytes:
    """The stored audio of a shard row (format 2 keeps it in ``audio.bytes``, as Hugging Face does)."""
    audio = record["audio"]
    return audio["bytes"] if isinstance(audio, dict) else audio


def load_index(shard_dir: Path) -> tuple[dict, pa.Table]:
    """The summary and the length index of a complete shard set; a DataError naming what is missing."""
    shard_dir = Path(shard_dir)
    summary_path = shard_dir / INDEX_JSON
    if not summary_path.exists():
        hint = " (an unfinished run: re-run the same `ds2stream shard` command)" \
            if (shard_dir / PROGRESS_JSON).exists() else ""
        raise DataError(f"{shard_dir}: not a complete shard set, no {INDEX_JSON}{hint}")
    try:
        summary = json.loads(summary_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{summary_path}: not a readable shard set summary ({err}); shard the data again") from None
    if summary.get("format_version") not in READABLE_FORMATS:
        raise DataError(f"{shard_dir}: shard format {summary.get('format_version')}, this ds2stream reads "
                         f"formats {', '.join(map(str, READABLE_FORMATS))}; shard the data again")
    try:
        with pa.memory_map(str(shard_dir / INDEX_ARROW), "r") as source:
            index = pa.ipc.open_file(source).read_all()
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{shard_dir / INDEX_ARROW}: not a readable length index ({err}); shard the data "
                        "again") from None
    return summary, index

