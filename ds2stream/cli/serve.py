"""``ds2stream serve``: a model behind an HTTP API and a web page."""
from pathlib import Path

import click

from ..inference.serve import ServeLimits
from .base import cli
from .decoding import decoder_options, hotword_options, hotwords_from
from .transcribe import open_transcriber


@cli.command()
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A ds2stream checkpoint (.ckpt) or an exported .mindir.")
@decoder_options
@hotword_options
@click.option("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, help="TCP port to listen on.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=ServeLimits.max_upload_mb,
              help="Larger uploads are refused (413).")
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), default=ServeLimits.max_seconds,
              help="Longer audio is refused (422); a stream ends there (with endpoints: a segment).")
@click.option("--max-batch", type=click.IntRange(min=1), default=ServeLimits.max_batch,
              help="Requests that arrive together share one forward pass, up to this many.")
@click.option("--max-queue", type=click.IntRange(min=1), default=ServeLimits.max_queue,
              help="Requests waiting for the model, at most; more are refused (503 with Retry-After).")
@click.option("--max-streams", type=click.IntRange(min=1), default=ServeLimits.max_streams,
              help="WebSocket streams (/stream) open at once, at most; more are closed with code 1013.")
@click.option("--idle-seconds", type=click.FloatRange(min=0, min_open=True), default=ServeLimits.idle_seconds,
              help="A stream that sends nothing for this long is closed (code 4408).")
@click.option("--max-hotwords", type=click.IntRange(min=0), default=ServeLimits.max_hotwords,
              help="Phrases in a request's hotwords, at most (besides --hotwords'); more are refused (400, 1008).")
@click.option("--max-hotword-chars", type=click.IntRange(min=1), default=ServeLimits.max_hotword_chars,
              help="Characters of one of a request's hotwords, at most; longer ones are refused (400, 1008).")
def serve(model_path, host, port, max_upload_mb, max_seconds, max_batch, max_queue, max_streams, idle_seconds,
          max_hotwords, max_hotword_chars, hotwords_path, hotword_boost, **decoder):
    """Serve MODEL over HTTP: POST /transcribe (the audio as a multipart field 'file' or as the
    body) answers {"text", "words": [{"word", "start", "end"}], "duration"}; GET / is a page to
    upload a file or record from the microphone; with a forward-only model (the stream preset)
    the WebSocket /stream answers while the audio arrives (docs/serving.md). Every transcript
    favours --hotwords; a request may add its own (a field or query parameter 'hotwords', the lines
    of a hotwords file; /stream: the start message's "hotwords"), with --hotword-boost by default.
    Needs aiohttp: pip install 'ds2stream[serve]'."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise click.ClickException("serve needs aiohttp: pip install 'ds2stream[serve]'") from None
    from ..inference.serve import serve as run_server
    from ..inference.serve import warm_up

    transcriber = open_transcriber(model_path, decoder, hotwords_from(hotwords_path, hotword_boost, for_requests=True))
    limits = ServeLimits(max_upload_mb=max_upload_mb, max_seconds=max_seconds, max_batch=max_batch,
                         max_queue=max_queue, max_streams=max_streams, idle_seconds=idle_seconds,
                         max_hotwords=max_hotwords, max_hotword_chars=max_hotword_chars)
    warm_up(transcriber, limits)
    run_server(transcriber, host, port, limits, print_=click.echo)
