"""The root ``ds2stream`` command group; each verb group lives in its own module of this package."""
import functools
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
