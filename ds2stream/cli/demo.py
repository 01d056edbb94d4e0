"""``ds2stream demo``: the main job (shard, train, evaluate) in one command."""
from pathlib import Path

import click

from ..presets import PRESETS
from .base import cli


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("ds2stream-demo"),
              help="Folder for shards and the run (a previous demo's is replaced).")
@click.option("--train", "train_inputs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Training data instead of the sample: LibriSpeech folders, .tar.gz or zoo CSV (repeatable).")
@click.option("--dev", "dev_inputs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Data that chooses the best checkpoint (optional; without it the last one is evaluated).")
@click.option("--test", "test_inputs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Held-out data instead of the sample's test split (repeatable).")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="tiny", help="Model and training recipe.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs (default: the preset's).")
def demo(out, train_inputs, dev_inputs, test_inputs, preset, epochs):
    """Shard, train and evaluate: by default the tiny preset on the bundled sample (1,020 training,
    180 dev and 300 test recordings of spoken digits from FSDD, CC BY-SA 4.0), in a few minutes on
    2 cores. The dev set chooses the checkpoint; the test set only measures it.

    Prints the WER/CER table, the time each stage took and where the run directory is; the same
    figures go to OUT/demo.json.
    """
    from ..demo import run_demo
    from .evaluate import format_report

    if bool(train_inputs) != bool(test_inputs) or (dev_inputs and not train_inputs):
        raise click.UsageError("give --train and --test (and optionally --dev), or none (the bundled sample)")
    result = run_demo(out, list(train_inputs), list(test_inputs), list(dev_inputs), preset, epochs,
                      progress=False, log=click.echo)
    click.echo("")
    click.echo(format_report(result.report, out / "shards" / "test"))
    click.echo("")
    click.echo(f"{'stage':8s} {'seconds':>8s}")
    for stage, seconds in result.stage_seconds.items():
        click.echo(f"{stage:8s} {seconds:8.1f}")
    click.echo(f"{'total':8s} {sum(result.stage_seconds.values()):8.1f}")
    click.echo(f"run directory: {result.run_dir} (metrics.jsonl; evaluated {result.checkpoint.name}: "
               f"`ds2stream transcribe --model {result.checkpoint} FILE`)")
