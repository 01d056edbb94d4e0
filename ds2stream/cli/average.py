"""``ds2stream average``: a run's checkpoints -> one, their parameters averaged."""
from pathlib import Path

import click

from .base import cli


@cli.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--last", type=click.IntRange(min=1), help="Average only the last N of CHECKPOINTS (in the order given).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The averaged checkpoint.")
def average(checkpoints, last, out):
    """Average the parameters of CHECKPOINTS of one run (e.g. its last few:
    runs/x/checkpoints/step-*.ckpt --last 3) into one checkpoint for eval, export or transcribe."""
    from ..checkpoint import average_checkpoints
    from ..runtime import use_graph_mode

    chosen = list(checkpoints)[-last:] if last else list(checkpoints)
    use_graph_mode()
    path = average_checkpoints(chosen, out)
    click.echo(f"{path}: the mean of {len(chosen)} checkpoints ({chosen[0].name} ... {chosen[-1].name})")
