"""``ds2stream demo``: the main job on the bundled FSDD sample."""
from pathlib import Path

import click

from .base import cli

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample" / "fsdd"


@cli.command()
def demo():
    """Run the main job on the bundled sample (FSDD digits, CC BY-SA 4.0).

    What runs today: the native spectrogram and CTC greedy kernels on the bundled audio.
    Sharding, training and evaluation arrive with their own commands.
    """
    import time

    from ..audio import read_audio
    from ..features import FeatureConfig, spectrogram

    files = sorted(SAMPLE_DIR.glob("*/*/*/*.flac"))
    if not files:
        raise click.ClickException(f"no bundled sample under {SAMPLE_DIR}; reinstall ds2stream")
    config = FeatureConfig()
    start = time.perf_counter()
    seconds = 0.0
    for path in files:
        audio, rate = read_audio(path)
        seconds += len(audio) / rate
        spectrogram(audio, config)
    elapsed = time.perf_counter() - start
    click.echo(
        f"features: {len(files)} utterances, {seconds / 60:.1f} min of audio in {elapsed:.2f} s "
        f"({seconds / elapsed:.0f}x real time, decoding included)"
    )
    click.echo("training and evaluation are not there yet: see the README's status table.")
