"""``ds2stream train``: shards -> a run directory with checkpoints and metrics."""
import json
from pathlib import Path

import click

from ..features import FeatureConfig, Normalize, Scale
from ..pipeline.augment import MAX_PITCH_SEMITONES, ROOM_RT60, STANDARD_AUGMENT
from ..pipeline.buckets import BatchMode
from ..presets import PRESETS, get_preset
from .base import cli, renamed_option


@cli.command()
@click.option("--shards", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Training shard set (from `ds2stream shard`).")
@click.option("--dev-shards", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Shard set evaluated (WER/CER) at every epoch end; the best run is kept as best.ckpt.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="tiny", help="Model and training defaults.")
@click.option("--out", "run_dir", type=click.Path(file_okay=False, path_type=Path), help="New run directory.")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Continue the run in this directory from its newest checkpoint (its configs are reused).")
@click.option("--batch-mode", type=click.Choice([m.value for m in BatchMode]),
              help="bucketed: length buckets padded to their edge; unbucketed: random batches padded to their "
                   "longest; fixed: the zoo's, every batch padded to 12.5 s (default: the preset's).")
@click.option("--bucketed/--unbucketed", default=None, help="Short for --batch-mode bucketed / unbucketed.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs in all (default: the preset's).")
@click.option("--lr", "learning_rate", type=float, help="Peak learning rate (default: the preset's).")
@click.option("--lr-schedule", type=click.Choice(["exponential", "linear"]),
              help="After warm-up: exponential, a fixed decay per epoch; linear, from the peak to 0 at the run's "
                   "end (its --max-minutes of training steps, else its --epochs) (default: the preset's).")
@click.option("--weight-decay", type=click.FloatRange(min=0),
              help="Decoupled weight decay (AdamW): each step, weight matrices and kernels shrink by the "
                   "learning rate times this (default: the preset's).")
@click.option("--dropout", type=click.FloatRange(min=0, max=1, max_open=True),
              help="A new run's model drops each RNN layer's outputs with this probability in training "
                   "(default: the preset's; a resumed run keeps its model).")
@click.option("--max-frames", type=click.IntRange(min=1), help="Padded frames per batch (default: the preset's).")
@click.option("--num-buckets", type=click.IntRange(min=1), help="Length buckets (default: the preset's).")
@click.option("--max-duration", type=click.FloatRange(min=0, min_open=True),
              help="Leave out utterances longer than this many seconds (counted in the epoch records). "
                   "Default: train on every length; one longer than the --max-frames budget trains alone.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), help="Steps between checkpoints.")
@click.option("--keep-last", type=click.IntRange(min=0),
              help="Step checkpoints kept (default: the preset's, 3); 0 keeps every one.")
@renamed_option("--jobs", "--workers", "workers", type=click.IntRange(min=1),
                help="Reader worker processes (default: the preset's, 1).")
@click.option("--seed", type=int, help="Seed of initialisation and batch order.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop (with a checkpoint) after this many steps.")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True),
              help="Stop (with a checkpoint) once this command's training steps have taken this many minutes "
                   "(dev evaluation and checkpoint writes not counted; a resume starts the count afresh). With "
                   "the linear schedule it is the run's budget: the run ends there, not at the preset's epochs.")
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start from these weights (a ds2stream or zoo checkpoint of the same model; Adam state "
                   "is not carried over).")
@click.option("--distributed", is_flag=True,
              help="Data parallel under msrun, one process per rank: `msrun ... python -m ds2stream.cli train "
                   "--distributed ...` (the run directory must be shared by every rank).")
@click.option("--allow-plan-change", is_flag=True,
              help="With --resume: go on even though --seed, --max-frames, --num-buckets, --max-duration, the "
                   "speed perturbation, the number of ranks or the shard set differ from the run's (at the same "
                   "fraction of the epoch).")
@click.option("--augment/--no-augment", default=None,
              help="Every augmentation on (the preset's rates, or the standard ones: speeds "
                   f"{'/'.join(map(str, STANDARD_AUGMENT.speeds))}, volume +-{STANDARD_AUGMENT.volume_db:g} dB, noise "
                   f"on {STANDARD_AUGMENT.noise_prob:.0%} at {STANDARD_AUGMENT.snr_db[0]:g}-"
                   f"{STANDARD_AUGMENT.snr_db[1]:g} dB SNR, SpecAugment) or off. Default: the preset's "
                   f"(on in {', '.join(n for n, p in PRESETS.items() if p.train.augment.enabled)}).")
@click.option("--speed-perturb/--no-speed-perturb", default=None, help="Speed perturbation on or off.")
@click.option("--volume-perturb/--no-volume-perturb", default=None, help="Volume perturbation on or off.")
@click.option("--spec-augment/--no-spec-augment", default=None, help="SpecAugment's masks on or off.")
@click.option("--noise", "noise_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Mix noise from this folder of audio files (any length, any rate) instead of synthetic "
                   "coloured noise; switches noise on.")
@click.option("--noise-prob", type=click.FloatRange(0, 1), help="Share of utterances mixed with noise (0: off).")
@click.option("--vtlp", type=click.FloatRange(0, 0.5, max_open=True),
              help="Vocal tract length perturbation: warp the mel filters by a factor drawn per utterance in "
                   "[1 - VTLP, 1 + VTLP] (0.1 is usual; 0: off). Needs mel features.")
@click.option("--channel-prob", type=click.FloatRange(0, 1),
              help="Share of utterances played through a random channel: spectral tilt, band limit (0: off).")
@click.option("--reverb-prob", type=click.FloatRange(0, 1),
              help=f"Share of utterances played in a simulated room: reverberation time drawn in "
                   f"{ROOM_RT60[0]:g}-{ROOM_RT60[1]:g} s (0: off).")
@click.option("--pitch-shift", type=click.FloatRange(0, MAX_PITCH_SEMITONES), metavar="SEMITONES",
              help="Shift every utterance's pitch, tempo kept, by semitones drawn in [-SEMITONES, +SEMITONES] "
                   "(0: off).")
@click.option("--feature-scale", type=click.Choice([s.value for s in Scale]),
              help="Features the model learns from, computed from the shards' audio: DeepSpeech2's linear "
                   "spectrogram or a log-mel filterbank (default: the preset's, else what the shards hold).")
@click.option("--n-mels", type=click.IntRange(min=1),
              help=f"Mel filters of mel features (default {FeatureConfig.n_mels}).")
@click.option("--feature-norm", type=click.Choice([n.value for n in Normalize]),
              help="Feature normalisation: one mean and std per utterance, one per frequency row, a causal "
                   "sliding mean of the last 3 s (streaming), one mean and std per row over the training "
                   "shards (global; computed when the run starts, kept by its checkpoints), each row's mean "
                   "and one std over the utterance (per_bin_mean), or none (default: the preset's, else what "
                   "the shards hold).")
@click.option("--feature-range-db", type=click.FloatRange(min=0), metavar="DB",
              help="Raise mel energies more than DB under the utterance's loudest to that level before "
                   "normalising (default: the preset's, off; 0: off): a recording's empty band (8 kHz audio "
                   "above 4 kHz) stays flat.")
@click.option("--pynative", is_flag=True, help="PyNative mode instead of graph mode (debugging; 4-8x slower).")
def train(shards, dev_shards, preset, run_dir, resume_dir, batch_mode, bucketed, epochs, learning_rate, lr_schedule,
          weight_decay, dropout, max_frames,
          num_buckets, max_duration, checkpoint_every, keep_last, workers, seed, max_steps, max_minutes, pretrained,
          distributed, allow_plan_change, augment, speed_perturb, volume_perturb, spec_augment, noise_dir, noise_prob,
          vtlp, channel_prob, reverb_prob, pitch_shift, feature_scale, n_mels, feature_norm, feature_range_db,
          pynative):
    """Train DeepSpeech2 on a shard set, in graph mode with bucketed shapes.

    Start a run with --shards and --out, or continue one with --resume RUN_DIR (the same next batch
    and, after the same steps, the same parameters as a run that never stopped). A resume that
    would change the batch plan (--seed, --max-frames, --num-buckets, --max-duration, speed
    perturbation, ranks, shards) is refused unless --allow-plan-change.

    Augmentation runs in the reader's workers; what an utterance gets in an epoch depends only on
    (seed, epoch, utterance), so resumed and distributed runs see the same data.
    """
    from ..training.trainer import run_training

    if (resume_dir is None) == (run_dir is None):
        raise click.UsageError("give either --out RUN_DIR (a new run) or --resume RUN_DIR")
    if resume_dir is None and shards is None:
        raise click.UsageError("a new run needs --shards")
    switch_mode = {None: None, True: "bucketed", False: "unbucketed"}[bucketed]
    if batch_mode and switch_mode and batch_mode != switch_mode:
        raise click.UsageError(f"--batch-mode {batch_mode} and --{switch_mode} contradict each other: give one")
    overrides = {"epochs": epochs, "learning_rate": learning_rate, "lr_schedule": lr_schedule,
                 "weight_decay": weight_decay, "max_frames": max_frames,
                 "num_buckets": num_buckets, "max_duration": max_duration, "checkpoint_every": checkpoint_every,
                 "keep_last": keep_last,
                 "workers": workers, "seed": seed,
                 "batch_mode": batch_mode or switch_mode}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    augment_switches = {"everything": augment, "speed": speed_perturb, "volume": volume_perturb,
                        "spec_augment": spec_augment, "noise_dir": noise_dir, "noise_prob": noise_prob,
                        "vtlp": vtlp, "channel_prob": channel_prob, "reverb_prob": reverb_prob,
                        "pitch_shift": pitch_shift}
    feature_changes = {k: v for k, v in {"scale": feature_scale, "n_mels": n_mels, "normalize": feature_norm,
                                         "dynamic_range_db": feature_range_db}.items() if v is not None}
    if feature_changes.get("dynamic_range_db") == 0:
        feature_changes["dynamic_range_db"] = None
    _, record = run_training(run_dir=run_dir, resume_dir=resume_dir, shards=shards, dev_shards=dev_shards,
                             preset=get_preset(preset), overrides=overrides, augment_switches=augment_switches,
                             feature_changes=feature_changes,
                             model_changes={"dropout": dropout} if dropout is not None else None,
                             pretrained=pretrained, distributed=distributed, graph=not pynative,
                             max_steps=max_steps, max_minutes=max_minutes, allow_plan_change=allow_plan_change)
    if record.get("event") == "schedule_ended":
        run = resume_dir or run_dir
        click.echo(f"{run}: already trained for its {record['schedule_minutes']:g} minutes, where its linear LR "
                   f"schedule ends: no step taken. To train longer, start a new run with a larger --max-minutes "
                   f"(--pretrained with one of its checkpoints starts from what it learnt).", err=True)
    if record:
        click.echo(json.dumps(record))
