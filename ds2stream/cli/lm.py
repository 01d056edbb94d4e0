"""``ds2stream lm``: a word n-gram LM from text files or shard sets."""
from pathlib import Path

import click

from ..errors import Ds2streamError
from .base import cli


@cli.command("lm")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--order", type=click.IntRange(min=1, max=9), default=4, help="n of the n-grams.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="ARPA file to write (.arpa, or .arpa.gz).")
@click.option("--discount-fallback", is_flag=True,
              help="Use fixed discounts (0.5, 1, 1.5) where the text is too small to estimate them (as lmplz).")
def lm_command(inputs, order, out, discount_fallback):
    """Build a word n-gram LM (interpolated modified Kneser-Ney) from INPUTS: text files (one
    sentence a line, or `<id> <text>` lines as .trans.txt files) or shard sets (their transcripts).
    Text is normalised as transcripts are (numbers written out)."""
    from ..data.text import read_sentences
    from ..inference.lm import build_lm, write_arpa
    from ..pipeline import ShardSet

    sentences = []
    for path in inputs:
        try:
            if path.is_dir():
                shard_set = ShardSet(path)
                sentences += [shard_set.text(i) for i in range(len(shard_set))]
            else:
                sentences += read_sentences(path)
        except (Ds2streamError, OSError, UnicodeDecodeError) as err:
            raise click.ClickException(f"{path}: {err}") from None
    lm = build_lm((s.split() for s in sentences), order, discount_fallback=discount_fallback)
    write_arpa(lm, out)
    counts = ", ".join(f"{sum(len(g) == n for g in lm.prob)} {n}-grams" for n in range(1, order + 1))
    click.echo(f"{out}: {len(sentences)} sentences, {len(lm.vocabulary) - 3} words; {counts}")
