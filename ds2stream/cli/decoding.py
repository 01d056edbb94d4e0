"""The decoder options that ``eval``, ``transcribe``, ``export`` and ``serve`` share, and the
hotword options of the verbs that decode (``eval``, ``transcribe``, ``serve``)."""
import dataclasses
import functools
from pathlib import Path

import click

from ..inference.decoding import DecoderConfig
from ..inference.hotwords import DEFAULT_BOOST


def decoder_options(command):
    """--decoder, --beam-width, --lm, --alpha, --beta, --oov-penalty, --decoder-config: see ``decoder_from``.
    Each option's default is None (so that it overrides --decoder-config only when given); the
    help shows DecoderConfig's."""
    default = DecoderConfig()
    options = [
        click.option("--decoder", type=click.Choice(["greedy", "beam"]),
                     help="Default: greedy, or beam with --lm, or what --decoder-config says."),
        click.option("--beam-width", type=click.IntRange(min=1),
                     help=f"Prefixes kept per frame (default {default.beam_width})."),
        click.option("--lm", "lm_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="A word n-gram LM (ARPA, from `ds2stream lm` or KenLM's lmplz) for the beam search."),
        click.option("--alpha", type=float, help=f"LM weight (default {default.alpha:g}; `eval --tune-lm` finds one)."),
        click.option("--beta", type=float, help=f"Bonus per word (default {default.beta:g})."),
        click.option("--oov-penalty", type=click.FloatRange(min=0),
                     help=f"Cost of a word the LM does not know, charged as it leaves the vocabulary "
                          f"(default {default.oov_penalty:g})."),
        click.option("--decoder-config", "decoder_config", type=click.Path(dir_okay=False, path_type=Path),
                     help="Decoder settings JSON (from `eval --tune-lm`); the options above override it."),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), command)


def decoder_from(decoder, beam_width, lm_path, alpha, beta, oov_penalty, decoder_config):
    """The DecoderConfig the options ask for, or None when none was given (the default applies:
    greedy, or what an exported model carries). Raises click.ClickException on a bad value."""
    given = {k: v for k, v in (("decoder", decoder), ("beam_width", beam_width), ("alpha", alpha),
                               ("beta", beta), ("oov_penalty", oov_penalty)) if v is not None}
    if lm_path is not None:
        if not lm_path.is_file():
            raise click.ClickException(f"--lm {lm_path}: no such file")
        given["lm"] = str(lm_path)
        given.setdefault("decoder", "beam")
    if decoder_config is None and not given:
        return None
    base = DecoderConfig.read(decoder_config) if decoder_config else DecoderConfig()
    if given.get("decoder") == "greedy":
        given.setdefault("lm", None)
    elif any(k in given for k in ("beam_width", "alpha", "beta", "oov_penalty")):
        given.setdefault("decoder", "beam")
    return dataclasses.replace(base, **given)


def hotword_options(command):
    """--hotwords, --hotword-boost: see ``hotwords_from``. Not decoder settings (``export`` does
    not take them): words to favour belong to a use of a model, not to the model."""
    options = [
        click.option("--hotwords", "hotwords_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Words and phrases to favour (names the model may not know): one a line, optionally "
                          "followed by its own boost (`HUCKLEBERRY FINN :2.5`). They need the beam search: "
                          "greedy decoding becomes it (docs/inference.md)."),
        click.option("--hotword-boost", type=click.FloatRange(min=0, min_open=True),
                     help=f"Bonus per character of a hotword without a boost of its own (default {DEFAULT_BOOST:g})."),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), command)


def hotwords_from(hotwords_path, hotword_boost, for_requests: bool = False):
    """The hotwords the options give (empty without --hotwords); ``for_requests``: a server's,
    whose --hotword-boost is also the default of its requests' lists, so it may come alone."""
    from ..inference.hotwords import Hotwords

    boost = DEFAULT_BOOST if hotword_boost is None else hotword_boost
    if hotwords_path is None:
        if hotword_boost is not None and not for_requests:
            raise click.UsageError("--hotword-boost is the boost of --hotwords' phrases: give --hotwords too")
        return Hotwords(default_boost=boost)
    return Hotwords.read(hotwords_path, boost)
