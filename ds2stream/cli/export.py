"""``ds2stream export``: a checkpoint -> an inference file (MindIR) and its description."""
from pathlib import Path

import click

from .base import cli, renamed_option
from .decoding import decoder_from, decoder_options


@cli.command()
@renamed_option("--model", "--checkpoint", "model_path", required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="The ds2stream checkpoint to export (e.g. RUN_DIR/best.ckpt).")
@click.option("--format", "file_format", type=click.Choice(["mindir"]), default="mindir",
              help="MindIR, with variable batch and frames (ONNX: see docs/inference.md).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (default: beside the checkpoint, .mindir).")
@decoder_options
def export(model_path, file_format, out, **decoder):
    """Export a checkpoint (--model) for inference (plus a .json with its feature config, labels and, if any
    decoder option is given, the decoder settings, with a copy of the LM beside it)."""
    from ..inference.export import export_model
    from ..runtime import use_graph_mode

    config = decoder_from(**decoder)
    use_graph_mode()
    path = export_model(model_path, out or model_path.with_suffix("." + file_format), config)
    click.echo(str(path))
