"""``ds2stream transcribe``: audio files -> text, whole or streamed; ``open_transcriber`` is
shared with ``serve``."""
from pathlib import Path

import click

from ..errors import Ds2streamError
from ..inference.transcribe import CHUNK_SECONDS, MAX_CHUNK_MS
from .base import cli
from .decoding import decoder_from, decoder_options, hotword_options, hotwords_from
from .endpoint import endpoint_options


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A ds2stream checkpoint (.ckpt) or an exported .mindir.")
@click.option("--stream", is_flag=True,
              help="Feed each file chunk by chunk to a forward-only model (the stream preset): one JSON "
                   "line per change of the partial text, then the final text with word times.")
@click.option("--realtime", is_flag=True, help="With --stream: feed the audio at the speed it was spoken.")
@click.option("--chunk-ms", type=click.IntRange(min=10, max=MAX_CHUNK_MS), default=round(CHUNK_SECONDS * 1000),
              show_default=True, help=f"With --stream: milliseconds of audio per chunk (at most {MAX_CHUNK_MS}).")
@endpoint_options
@decoder_options
@hotword_options
def transcribe(files, model_path, stream, realtime, chunk_ms, endpoint, hotwords_path, hotword_boost, **decoder):
    """Print the transcript of each audio FILE (flac, wav, ... at any sample rate): FILE<TAB>TEXT.
    Decodes as the options say, else as an exported model's settings say, else greedily; with
    --hotwords, by the beam search. With --stream and --endpoint, a FILE of several utterances
    gives a line per utterance (segment) with its start and end in seconds, as it ends."""
    import json

    from ..data.audio import read_audio

    if realtime and not stream:
        raise click.UsageError("--realtime feeds a stream: give --stream too")
    if endpoint and not stream:
        raise click.UsageError("endpoints cut a stream: give --stream too")
    transcriber = open_transcriber(model_path, decoder, hotwords_from(hotwords_path, hotword_boost))
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
            for message in transcriber.stream_samples(*read_audio(path), chunk_ms / 1000, realtime, endpoint):
                click.echo(json.dumps(message if "partial" in message else {"file": str(path), **message}))
        except Ds2streamError as err:
            click.echo(f"error: {err}", err=True)
            failed += 1
    if failed:
        raise click.ClickException(f"{failed} of {len(files)} files could not be transcribed")


def open_transcriber(model_path: Path, decoder: dict, hotwords=None):
    """The model (in graph mode) with the decoder the options ask for (and ``hotwords``, from
    ``hotwords_from``); a one-line error otherwise."""
    from ..inference.transcribe import Transcriber
    from ..runtime import use_graph_mode

    config = decoder_from(**decoder)
    use_graph_mode()
    return Transcriber(model_path, config, hotwords)
