"""``ds2stream info``: a shard set's summary; ``format_summary`` is shared with ``shard``."""
from pathlib import Path

import click

from .base import OldPositional, cli


def format_summary(summary: dict, shard_dir: Path) -> str:
    lines = [
        f"{shard_dir}: {summary['utterances']} utterances, {summary['hours']:.3f} h, "
        f"{len(summary['speakers'])} speakers, {len(summary['shards'])} shards",
        f"durations: {summary['duration_min']:.2f}-{summary['duration_max']:.2f} s",
    ]
    for reason, count in sorted(summary["filtered"].items()):
        lines.append(f"filtered {reason}: {count}")
    if summary["problem_counts"]:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["problem_counts"].items()))
        lines.append(f"problems: {len(summary['problems'])} ({counts}); each is listed in index.json")
    else:
        lines.append("problems: none")
    return "\n".join(lines)


@cli.command()
@click.option("--shards", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The shard set to summarise (required).")
@click.argument("shard_dir", required=False, cls=OldPositional,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--problems", "show_problems", is_flag=True, help="List every problem recorded at shard time.")
def info(shards, shard_dir, show_problems):
    """Summarise the shard set in --shards: hours, utterances, speakers, durations, problems."""
    from ..data.shards import load_index

    if shards and shard_dir and shards != shard_dir:
        raise click.UsageError(f"two shard sets given ({shards}, {shard_dir}): give one, as --shards")
    shard_dir = shards or shard_dir
    if shard_dir is None:
        raise click.MissingParameter(param_hint="'--shards'", param_type="option")
    summary, _ = load_index(shard_dir)
    click.echo(format_summary(summary, shard_dir))
    click.echo(f"audio: {summary['audio_format']}, features stored: {summary['features']}, "
               f"feature config: {summary['feature_config']}")
    hist = summary["duration_histogram"]
    peak = max(hist["counts"]) or 1
    click.echo("duration histogram (s):")
    for low, count in zip(hist["edges"], hist["counts"]):
        if count:
            click.echo(f"  {low:5.1f}-{low + hist['edges'][1] - hist['edges'][0]:<5.1f} {count:8d} "
                       + "#" * max(1, round(40 * count / peak)))
    if show_problems:
        for problem in summary["problems"]:
            click.echo(f"[{problem['kind']}] {problem['message']}")
