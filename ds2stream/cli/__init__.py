"""Command-line interface: importing a verb module registers its commands on the root group."""
from . import (  # noqa: F401  (registers commands)
    average,
    corpus,
    demo,
    download,
    evaluate,
    export,
    info,
    lm,
    plot,
    serve,
    shard,
    train,
    transcribe,
)
from .base import cli

main = cli
