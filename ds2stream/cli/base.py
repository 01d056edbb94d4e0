"""The root ``ds2stream`` command group; each verb group lives in its own module of this package."""
import logging

import click

from .. import __version__
from ..runtime import quiet_framework_logs


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="ds2stream")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages, and MindSpore's own warnings.")
def cli(verbose: bool):
    """ds2stream: DeepSpeech2 on LibriSpeech with MindSpore, fast on a CPU.

    Data flows one way: LibriSpeech files -> `shard` -> Arrow shards -> `train` -> checkpoint
    -> `eval` / `export` / `transcribe`. `demo` runs it all on the bundled sample.
    """
    quiet_framework_logs(verbose)  # before any verb imports mindspore (they import it lazily)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
