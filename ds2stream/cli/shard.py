"""``ds2stream shard``: LibriSpeech inputs -> an Arrow shard set."""
import os
import shutil
import time
from pathlib import Path

import click

from ..data.shards import AUDIO_FORMATS, ShardOptions
from ..errors import Ds2streamError
from .base import cli, download_options, note_above_progress
from .info import format_summary


class InputPath(click.ParamType):
    """A path that exists, or an http(s) URL (kept as text)."""
    name = "input"

    def convert(self, value, param, ctx):
        from ..data.remote import is_url

        if is_url(value):
            return value
        return click.Path(exists=True, path_type=Path).convert(value, param, ctx)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=InputPath())
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the shard set (created).")
@click.option("--audio", "audio_format", type=click.Choice(AUDIO_FORMATS), default=ShardOptions.audio_format,
              help="Store the original FLAC bytes, or raw int16 samples.")
@click.option("--features/--no-features", default=ShardOptions.with_features,
              help="Also store the spectrogram (float16), computed by the native kernel.")
@click.option("--shard-size", type=float, default=ShardOptions.shard_size_mb, help="Approximate shard size in MB.")
@click.option("--min-duration", type=float, default=ShardOptions.min_duration,
              help="Leave out shorter utterances (s), counted.")
@click.option("--max-duration", type=float, default=None, help="Leave out longer utterances (s), counted.")
@click.option("--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1,
              help="Worker processes decoding audio.")
@click.option("--strict", is_flag=True, help="Exit non-zero if any input had a problem.")
@click.option("--overwrite", is_flag=True, help="Delete a shard set already in --out first.")
@download_options
def shard(inputs, out_dir, audio_format, features, shard_size, min_duration, max_duration, jobs,
          strict, overwrite, md5, sha256, timeout, retries):
    """Pack LibriSpeech INPUTS into an Arrow shard set with a length index.

    Each INPUT is an extracted LibriSpeech folder at any level (LibriSpeech/,
    LibriSpeech/train-clean-100/, one speaker), a LibriSpeech .tar.gz read as a stream (never
    extracted), or its http(s) URL, sharded as it downloads (never written to disk; resumed
    across dropped connections, checksummed), a zoo CSV manifest of wav_path,txt_path rows, a
    Hugging Face parquet file (or its download folder) or a Lhotse manifest. Several inputs make
    one set.

    Bad input (corrupt audio, missing transcript lines or audio, a sample rate other than the
    feature config's, stereo, characters outside the label set, a truncated archive, a CSV row
    pointing at a missing file) is reported by file name, counted in the summary and in the
    index, and never stops the good utterances; inputs that give no utterance at all are an
    error that says why. Re-running the same command after an interruption finishes the set
    without losing or duplicating an utterance.
    """
    from tqdm import tqdm

    from ..data.inputs import count_hint
    from ..data.remote import Fetch, is_url
    from ..data.shards import Filtered, write_shard_set
    from ..data.sources import Problem

    urls = [i for i in inputs if is_url(i)]
    if (md5 or sha256) and len(urls) != 1:
        raise click.UsageError(f"--md5/--sha256 check one URL input; {len(urls)} given")

    try:
        counts = [count_hint(path) for path in inputs]
    except Ds2streamError as err:
        raise click.BadParameter(str(err), param_hint="INPUTS") from None
    try:
        options = ShardOptions(audio_format=audio_format, with_features=features, shard_size_mb=shard_size,
                               min_duration=min_duration,
                               max_duration=float("inf") if max_duration is None else max_duration)
    except Ds2streamError as err:
        raise click.UsageError(str(err)) from None
    if overwrite and out_dir.exists():
        shutil.rmtree(out_dir)

    # The total (and so the ETA) is known unless an input is an archive, read once as a stream.
    total = None if None in counts else sum(counts)
    bar = tqdm(total=total, unit=" utt", dynamic_ncols=True, desc="shard")
    seconds = [0.0]

    transfer = Transfer()

    def progress(result):
        if isinstance(result, Problem):
            tqdm.write(f"problem [{result.kind}] {result.message}")
        elif not isinstance(result, Filtered):
            seconds[0] += result["duration"]
        bar.set_postfix_str(f"{seconds[0] / 3600:.2f} h audio{transfer.line()}", refresh=False)
        bar.update()

    fetch = Fetch(md5=md5, sha256=sha256, timeout=timeout, retries=retries, log=note_above_progress,
                  on_bytes=transfer.update)
    try:
        summary = write_shard_set(inputs, out_dir, options, jobs=jobs, progress=progress, fetch=fetch)
    finally:
        bar.close()
    rate = seconds[0] / max(bar.format_dict["elapsed"], 1e-9)
    click.echo(format_summary(summary, out_dir))
    if seconds[0]:
        click.echo(f"speed: {rate:.0f}x real time ({jobs} jobs) for the audio of this run")
    if not summary["utterances"]:
        raise click.ClickException(f"{out_dir} holds no utterance: {_why_none(summary, inputs)}")
    if strict and summary["problems"]:
        raise click.ClickException(f"{len(summary['problems'])} problems (--strict)")


class Transfer:
    """Bytes of the URL being read, its rate and ETA, for the progress bar."""

    def __init__(self):
        self.url, self.position, self.total, self.started = None, 0, None, None

    def update(self, url, position, total):
        if url != self.url:
            self.url, self.started, self.first = url, time.monotonic(), position
        self.position, self.total = position, total

    def line(self) -> str:
        if self.url is None:
            return ""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = (self.position - self.first) / elapsed
        text = f", {self.position / 1e6:.0f}"
        if self.total:
            eta = (self.total - self.position) / rate if rate > 0 else float("inf")
            text += f" of {self.total / 1e6:.0f} MB at {rate / 1e6:.1f} MB/s, ETA {_clock(eta)}"
        else:
            text += f" MB at {rate / 1e6:.1f} MB/s"
        return text


def _clock(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _why_none(summary: dict, inputs) -> str:
    """Why a shard set came out empty, in the terms of what the user can change."""
    filtered, problems = sum(summary["filtered"].values()), len(summary["problems"])
    if filtered and problems:
        return (f"{filtered} were left out by --min-duration/--max-duration and the other {problems} had a "
                "problem (listed above)")
    if filtered:
        return f"all {filtered} were left out by --min-duration/--max-duration"
    if problems:
        return f"every one of the {problems} found had a problem (listed above)"
    from ..data.inputs import READABLE_INPUTS

    return f"none found in {', '.join(map(str, inputs))}; ds2stream reads {READABLE_INPUTS}"
