"""``ds2stream plot``: a run's curves as a PNG."""
from pathlib import Path

import click

from .base import cli


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="PNG file (default RUN_DIR/curves.png).")
def plot(run_dir, out):
    """Plot loss, learning rate and dev WER/CER of the run in RUN_DIR as a PNG (needs matplotlib)."""
    from ..training.metrics import plot_run

    try:
        path = plot_run(run_dir, out)
    except ImportError as err:  # matplotlib is an extra
        raise click.ClickException(str(err)) from None
    click.echo(str(path))
