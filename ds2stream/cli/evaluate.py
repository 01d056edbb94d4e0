"""``ds2stream eval``: WER/CER of a checkpoint on a shard set."""
import json
from pathlib import Path

import click

from ..inference.evaluate import EVAL_MAX_FRAMES
from .base import cli


@cli.command("eval")
@click.option("--shards", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Shard set to evaluate on.")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A ds2stream checkpoint (e.g. RUN_DIR/best.ckpt).")
@click.option("--verbose", is_flag=True, help="Print Ref:/Hyp:/WER:/CER: for every utterance.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report with every utterance as JSON.")
@click.option("--max-frames", type=click.IntRange(min=1), default=EVAL_MAX_FRAMES, help="Padded frames per batch.")
@click.option("--workers", type=click.IntRange(min=1), default=1, help="Reader worker processes.")
def evaluate_command(shards, checkpoint, verbose, json_path, max_frames, workers):
    """Evaluate CHECKPOINT on SHARDS: corpus WER and CER, greedy decoding, bucketed batches."""
    from ..checkpoint import CheckpointError, check_meta, load_model
    from ..inference.evaluate import evaluate
    from ..pipeline import ShardSet
    from ..runtime import use_graph_mode

    use_graph_mode()
    try:
        network, meta = load_model(checkpoint)
        shard_set = ShardSet(shards)
        check_meta(meta, checkpoint, shard_set.feature_config)
        if len(shard_set) == 0:
            raise ValueError(f"{shards}: the shard set holds no utterance (see `ds2stream info {shards} --problems`)")
    except (CheckpointError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    report = evaluate(network, shard_set, max_frames=max_frames, workers=workers)
    if verbose:
        for result in report.results:
            click.echo(f"Ref: {result['ref']}\nHyp: {result['hyp']}\n"
                       f"WER: {result['wer']:.4f}  CER: {result['cer']:.4f}\n")
    click.echo(format_report(report, shards))
    if json_path:
        json_path.write_text(json.dumps({**report.summary(), "checkpoint": str(checkpoint),
                                         "shards": str(shards), "utterances_detail": report.results}, indent=1))


def format_report(report, shards) -> str:
    s = report.summary()
    return "\n".join([
        f"{shards}: {s['utterances']} utterances, {s['audio_hours']:.3f} h of audio",
        f"WER {s['wer']:.2%} ({report.words.edits} word edits / {report.words.reference_length} words: "
        f"{report.words.substitutions} sub, {report.words.deletions} del, {report.words.insertions} ins)",
        f"CER {s['cer']:.2%} ({report.chars.edits} / {report.chars.reference_length} characters)",
        f"empty hypotheses: {s['empty_hypotheses']}",
        f"time: {s['wall_seconds']:.1f} s, real-time factor {s['real_time_factor']:.4f} "
        f"(padding {s['padding_ratio']:.1%})",
    ])
