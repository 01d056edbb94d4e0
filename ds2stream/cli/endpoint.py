"""The endpoint options of ``transcribe --stream``: ``--endpoint`` and one ``--endpoint-NAME`` per
field of ``EndpointRules``, NAME spelt as the ``/stream`` start message's ``"endpoint"`` keys
(``silence_after_speech`` -> ``--endpoint-silence-after-speech``): one vocabulary for both."""
import dataclasses
import functools

import click

from ..errors import ConfigError
from ..inference.endpoint import EndpointRules

FIELDS = [field.name for field in dataclasses.fields(EndpointRules)]


def option_name(field: str) -> str:
    return "--endpoint-" + field.replace("_", "-")


def endpoint_options(command):
    """--endpoint and --endpoint-NAME SECONDS per rule, given to ``command`` as one ``endpoint``
    argument: the EndpointRules they ask for, or None (no endpoints) when none was given."""

    @functools.wraps(command)
    def with_rules(*args, endpoint: bool, **kwargs):
        given = {name: value for name in FIELDS if (value := kwargs.pop(f"endpoint_{name}")) is not None}
        for name, value in given.items():
            try:
                EndpointRules(**{name: value})
            except ConfigError as err:
                raise click.BadParameter(str(err), param_hint=f"'{option_name(name)}'") from None
        rules = EndpointRules(**given) if endpoint or given else None
        return command(*args, endpoint=rules, **kwargs)

    options = [click.option("--endpoint", is_flag=True,
                            help="With --stream: cut the stream into segments, one per utterance, by the "
                                 "endpoint rules (the options below; any of them turns this on too), and "
                                 "print each segment as it ends.")]
    for field in dataclasses.fields(EndpointRules):
        options.append(click.option(option_name(field.name), f"endpoint_{field.name}", type=float,
                                    metavar="SECONDS", help=f"{field.metadata['help']} Default {field.default:g}."))
    return functools.reduce(lambda f, option: option(f), reversed(options), with_rules)
