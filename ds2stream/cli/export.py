"""``ds2stream average``, ``export`` and ``transcribe``: checkpoints -> one, -> an inference file,
audio -> text."""
from pathlib import Path

import click

from ..errors import Ds2streamError
from .base import cli, renamed_option
from .decoding import decoder_from, decoder_options


@cli.command()
@renamed_option("--model", "--checkpoint", "checkpoint", required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="The ds2stream checkpoint to export (e.g. RUN_DIR/best.ckpt).")
@click.option("--format", "file_format", type=click.Choice(["mindir"]), default="mindir",
              help="MindIR, with variable batch and frames (ONNX: see docs/inference.md).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (default: beside the checkpoint, .mindir).")
@decoder_options
def export(checkpoint, file_format, out, **decoder):
    """Export a checkpoint (--model) for inference (plus a .json with its feature config, labels and, if any
    decoder option is given, the decoder settings, with a copy of the LM beside it)."""
    from ..inference.export import export_model
    from ..runtime import use_graph_mode

    config = decoder_from(**decoder)
    use_graph_mode()
    path = export_model(checkpoint, out or checkpoint.with_suffix("." + file_format), config)
    click.echo(str(path))


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


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A ds2stream checkpoint (.ckpt) or an exported .mindir.")
@click.option("--stream", is_flag=True,
              help="Feed each file chunk by chunk to a forward-only model (the stream preset): one JSON "
                   "line per change of the partial text, then the final text with word times.")
@click.option("--realtime", is_flag=True, help="With --stream: feed the audio at the speed it was spoken.")
@click.option("--chunk-ms", type=click.IntRange(min=10), default=160, show_default=True,
              help="With --stream: milliseconds of audio per chunk.")
@decoder_options
def transcribe(files, model_path, stream, realtime, chunk_ms, **decoder):
    """Print the transcript of each audio FILE (flac, wav, ... at any sample rate): FILE<TAB>TEXT.
    Decodes as the options say, else as an exported model's settings say, else greedily."""
    import json

    from ..data.audio import read_audio

    if realtime and not stream:
        raise click.UsageError("--realtime feeds a stream: give --stream too")
    transcriber = open_transcriber(model_path, decoder)
    if stream:
        try:
            transcriber.streaming_model()
        except Ds2streamError as err:
            raise click.ClickException(f"--model {model_path}: {err}") from None
    failed = 0
    for path in files:
        try:
            if not stream:
                click.echo(f"{path}\t{transcriber.transcribe_file(path)}")
                continue
            for message in transcriber.stream_samples(*read_audio(path), chunk_ms / 1000, realtime):
                click.echo(json.dumps(message if "partial" in message else {"file": str(path), **message}))
        except Ds2streamError as err:
            click.echo(f"error: {err}", err=True)
            failed += 1
    if failed:
        raise click.ClickException(f"{failed} of {len(files)} files could not be transcribed")


def open_transcriber(model_path: Path, decoder: dict):
    """The model (in graph mode) with the decoder the options ask for; a one-line error otherwise."""
    from ..inference.transcribe import Transcriber
    from ..runtime import use_graph_mode

    config = decoder_from(**decoder)
    use_graph_mode()
    return Transcriber(model_path, config)
