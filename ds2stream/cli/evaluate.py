"""``ds2stream eval``: WER/CER of a checkpoint or an exported model on a shard set."""
import json
from pathlib import Path

import click

from ..errors import DataError
from ..inference.evaluate import EVAL_MAX_FRAMES
from .base import cli, renamed_option
from .decoding import decoder_from, decoder_options, hotword_options, hotwords_from


@cli.command("eval")
@click.option("--shards", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Shard set to evaluate on.")
@renamed_option("--model", "--checkpoint", "model_path", required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="A ds2stream checkpoint (e.g. RUN_DIR/best.ckpt) or an exported .mindir.")
@renamed_option("--per-utterance", "--verbose", "per_utterance", is_flag=True,
                help="Print Ref:/Hyp:/WER:/CER: for every utterance.")
@renamed_option("--out", "--json", "report_path", type=click.Path(dir_okay=False, path_type=Path),
                help="Write the report with every utterance to this JSON file.")
@click.option("--max-frames", type=click.IntRange(min=1), default=EVAL_MAX_FRAMES, help="Padded frames per batch.")
@renamed_option("--jobs", "--workers", "workers", type=click.IntRange(min=1), default=1,
                help="Reader worker processes.")
@decoder_options
@hotword_options
@click.option("--tune-lm", "tune_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Grid-search --alpha and --beta for --lm on SHARDS (a dev set, never the test set; the "
                   "grid grows past its edge while the best lies there; at the given --oov-penalty) and write "
                   "the best decoder settings to this JSON, for eval/transcribe/export --decoder-config.")
def evaluate_command(shards, model_path, per_utterance, report_path, max_frames, workers, tune_path, hotwords_path,
                     hotword_boost, **decoder):
    """Evaluate a model (--model) on SHARDS: corpus WER and CER, bucketed batches. Decodes as the
    options say, else as an exported model's settings say, else greedily (the native kernel); with
    --hotwords, by the beam search."""
    from ..checkpoint import model_features
    from ..inference.decoding import DecoderConfig, make_decoder, read_lm
    from ..inference.evaluate import evaluate, tune_decoder
    from ..inference.transcribe import open_model
    from ..pipeline import ShardSet
    from ..runtime import use_graph_mode

    config = decoder_from(**decoder)
    if tune_path and not (config and config.lm):
        raise click.ClickException("--tune-lm needs --lm (or a --decoder-config with an LM)")
    # A bad LM, hotword list or setting fails before the network loads; the LM is read once.
    hotwords = hotwords_from(hotwords_path, hotword_boost)
    lm = read_lm(config.lm) if config and config.lm else None
    decode = make_decoder(config, lm, hotwords)
    use_graph_mode()
    model = open_model(model_path)
    if config is None and model.carried_decoder is not None:  # an export is evaluated as it transcribes
        config = model.carried_decoder
        decode = make_decoder(config, hotwords=hotwords)
    shard_set = ShardSet(shards, model_features(model.meta))  # the model's features, from the shards' audio
    if len(shard_set) == 0:
        raise DataError(f"{shards}: the shard set holds no utterance "
                        f"(see `ds2stream info --shards {shards} --problems`)")
    if tune_path:
        best, _ = tune_decoder(model.network, shard_set, config, max_frames=max_frames, workers=workers,
                               log=click.echo, lm=lm, hotwords=hotwords)
        tune_path.write_text(json.dumps(best.to_dict(), indent=1) + "\n")
        click.echo(f"best: alpha {best.alpha:g}, beta {best.beta:g} (beam width {best.beam_width}, "
                   f"OOV penalty {best.oov_penalty:g}) -> {tune_path}")
        config, decode = best, make_decoder(best, lm, hotwords)
    report = evaluate(model.network, shard_set, max_frames=max_frames, workers=workers, decode=decode)
    if per_utterance:
        for result in report.results:
            click.echo(f"Ref: {result['ref']}\nHyp: {result['hyp']}\n"
                       f"WER: {result['wer']:.4f}  CER: {result['cer']:.4f}\n")
    click.echo(format_report(report, shards))
    if report_path:
        report_path.write_text(json.dumps({**report.summary(), "checkpoint": str(model_path), "shards": str(shards),
                                           "decoder": (config or DecoderConfig()).for_hotwords(hotwords).to_dict(),
                                           "hotwords": str(hotwords_path) if hotwords_path else None,
                                           "utterances_detail": report.results}, indent=1))


def format_report(report, shards) -> str:
    s = report.summary()
    return "\n".join([
        f"{shards}: {s['utterances']} utterances, {s['audio_hours']:.3f} h of audio",
        f"WER {s['wer']:.2%} ({report.words.edits} word edits / {report.words.reference_length} words: "
        f"{report.words.substitutions} sub, {report.words.deletions} del, {report.words.insertions} ins)",
        f"CER {s['cer']:.2%} ({report.chars.edits} / {report.chars.reference_length} characters)",
        f"empty hypotheses: {s['empty_hypotheses']}",
        f"time: {s['wall_seconds']:.1f} s, real-time factor {s['real_time_factor']:.4f} "
        f"(padding {s['padding_ratio']:.1%}; decoding {s['decode_seconds']:.1f} s)",
    ])
