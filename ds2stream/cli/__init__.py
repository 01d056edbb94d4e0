"""Command-line interface: importing a verb module registers its commands on the root group."""
from . import corpus, decoding, demo, download, evaluate, export, serve, shard, train  # noqa: F401  (registers commands)
from .base import cli

main = cli
