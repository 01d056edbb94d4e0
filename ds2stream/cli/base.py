"""The root ``ds2stream`` command group; each verb group lives in its own module of this package."""
import functools
import logging

import click

from .. import __version__
from ..data.remote import RETRIES, TIMEOUT_SECONDS
from ..errors import Ds2streamError
from ..runtime import quiet_framework_logs


class Ds2streamGroup(click.Group):
    """Every verb's Ds2streamError (a file, a value, a setting it cannot use) becomes one ``Error:``
    line wherever it is raised, deep in a run or in a reader's worker; anything else is a bug and
    keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Ds2streamError as err:
            raise click.ClickException(str(err)) from None


@click.group(cls=Ds2streamGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="ds2stream")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages, and MindSpore's own warnings.")
def cli(verbose: bool):
    """ds2stream: DeepSpeech2 on LibriSpeech with MindSpore, fast on a CPU.

    Data flows one way: LibriSpeech files (`download`; `corpus` reads sentences aloud into
    one) -> `shard` -> Arrow shards (`info`) -> `train` -> a run's checkpoints (`plot`, `average`)
    -> `eval` / `export` / `transcribe` / `serve`, with a word LM from `lm`. `demo` runs it all
    on the bundled sample.
    """
    quiet_framework_logs(verbose)  # before any verb imports mindspore (they import it lazily)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def renamed_option(name: str, old_name: str, dest: str, **kwargs):
    """An option whose old spelling keeps working, hidden from ``--help`` (scripts written for it
    go on running): ``old_name`` gives the value when ``name`` is not given. ``default`` and
    ``required`` apply to the two together."""
    default, required = kwargs.pop("default", None), kwargs.pop("required", False)
    if default is not None and not kwargs.get("is_flag"):
        kwargs["show_default"] = str(default)
    old_kwargs = {k: v for k, v in kwargs.items() if k in ("type", "is_flag")}

    def decorate(function):
        @functools.wraps(function)
        def merged(*args, **values):
            new, old = values.pop(dest), values.pop(dest + "_old")
            value = new if new not in (None, False) else old
            if value in (None, False) and required:
                raise click.MissingParameter(param_hint=f"'{name}'", param_type="option")
            return function(*args, **{dest: default if value is None else value}, **values)

        merged = click.option(old_name, dest + "_old", hidden=True, **old_kwargs)(merged)
        return click.option(name, dest, **kwargs)(merged)

    return decorate


class OldPositional(click.Argument):
    """A positional argument an option has replaced: scripts written for it go on running, but
    neither the usage line nor ``--help`` shows it."""

    def get_usage_pieces(self, ctx):
        return []


def download_options(function):
    """What ``shard`` and ``download`` take for reading a URL: checksums and patience."""
    options = (
        click.option("--md5", help="The archive's MD5, checked as it downloads (one URL; LibriSpeech's archives are "
                                   "checked against their published sums without it)."),
        click.option("--sha256", help="The archive's SHA-256, checked as it downloads (one URL)."),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=TIMEOUT_SECONDS, show_default=True,
                     help="Seconds without a byte from a URL before the connection is retried."),
        click.option("--retries", type=click.IntRange(min=0), default=RETRIES, show_default=True,
                     help="Retries in a row, with backoff, before a URL is given up."),
    )
    for option in reversed(options):
        function = option(function)
    return function


def note_above_progress(line: str) -> None:
    """A line for the user (a retry, a resume) on stderr, above any progress bar, not in the output."""
    import sys

    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)
