"""``ds2stream corpus``: sentences -> a LibriSpeech-layout speech corpus read by offline TTS voices."""
import os
from pathlib import Path

import click

from ..corpus import DEFAULT_ENGINES, ENGINES, LM_TEXT_FILE
from .base import cli


@cli.command()
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Corpus folder (train/, dev/, test/); an unfinished one is resumed.")
@click.option("--text", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Sentences: `<id> <text>` lines or one a line (default: 12,931 LJ Speech sentences "
                   "shipped with ds2stream).")
@click.option("--train-hours", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Hours of training speech.")
@click.option("--dev-hours", type=click.FloatRange(min=0), default=0.25, show_default=True,
              help="Hours of dev speech (voices never heard in training).")
@click.option("--test-hours", type=click.FloatRange(min=0), default=0.25, show_default=True,
              help="Hours of test speech (voices heard in neither training nor dev).")
@click.option("--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1,
              help="Rendering processes (default: one per core).")
@click.option("--engines", default=",".join(DEFAULT_ENGINES), show_default=True,
              help=f"Comma-separated TTS engines to use, of: {', '.join(ENGINES)} (an engine asked for "
                   "that is not installed stops the corpus, naming its install command; dev needs flite, test "
                   "festival; kokoro adds 10 neural training voices and about 30 minutes on 2 cores).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Which sentences each split and voice reads, and each sentence's rate and pitch.")
@click.option("--real-digits", is_flag=True,
              help="Also put the real recordings of spoken digits that ship with ds2stream (FSDD: 1,020, 6 "
                   "speakers, CC BY-SA 4.0) into train/: real speakers in the mix.")
def corpus(out, text, train_hours, dev_hours, test_hours, jobs, engines, seed, real_digits):
    """Read sentences aloud with offline text-to-speech voices into a LibriSpeech-layout corpus that
    `ds2stream shard` reads. Deterministic and resumable. Dev and test are read by engines
    that never train (flite, festival); an engine asked for that is not installed stops it, naming
    how to install it."""
    from ..corpus import DEFAULT_TEXT, make_corpus

    hours = {"train": train_hours, "dev": dev_hours, "test": test_hours}
    chosen = [e.strip() for e in engines.split(",") if e.strip()]
    summary = make_corpus(out, text or DEFAULT_TEXT, hours, jobs, chosen, seed, progress=True, log=click.echo,
                          real_digits=real_digits)
    for split, facts in summary["splits"].items():
        click.echo(f"{split}: {facts['utterances']} utterances, {facts['hours']:.2f} h, "
                   f"{len(facts['speakers'])} speakers")
    if summary["real_digits"]:
        click.echo(f"train: and {summary['real_digits']['utterances']} real recordings of digits "
                   f"({summary['real_digits']['hours'] * 60:.1f} min; FSDD, CC BY-SA 4.0: credit in "
                   f"ds2stream/sample/README.md)")
    click.echo(f"{out / LM_TEXT_FILE}: {summary['lm_text_sentences']} sentences for `ds2stream lm` "
               "(all but dev's and test's)")
    if summary["realtime_factor"]:
        click.echo(f"rendered at {summary['realtime_factor']:.0f}x real time in {summary['render_seconds']:.0f} s; "
                   f"next: ds2stream shard {out}/train --out SHARDS/train")
