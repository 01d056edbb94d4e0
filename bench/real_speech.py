"""Where real speech fails: one checkpoint read on the corpus's held-out voices and on real
recordings, beside what differs between them.

For every held-out set (`--test NAME=SHARDS`, the first one the reference the others are compared
with):
- greedy CER / WER, and the same set band-limited to 4 kHz (resampled to 8 kHz and back, as FSDD
  was made from its 8 kHz recordings);
- the audio: level (RMS, dBFS), DC offset, leading and trailing silence (frames 40 dB under the
  loudest), the share of energy above 4 kHz, speaking rate (characters a second of speech);
- the spread of the per-utterance CER and the worst utterances, with the rank correlation of CER
  with speaking rate, level and duration;
- with `--lm`: beam search with that LM (`--decoder-config`, else the decoder's defaults), so
  that one sees what the LM mends.

    python bench/real_speech.py --model RUN/checkpoints/step-N.ckpt \\
        --test corpus=shards/test real-dev=shards/real-dev fsdd=shards/fsdd-test \\
        [--lm lm.arpa [--decoder-config decoder.json]] [--out bench/out/real-speech-diagnosis.json]
    python bench/real_speech.py --report bench/out/real-speech-diagnosis.json     # the table
"""
import argparse
import dataclasses
import json
from pathlib import Path

import harness
import numpy as np
from time_to_accuracy import named_sets

#: A frame (25 ms) this far under the utterance's loudest counts as silence.
SILENCE_DB = 40.0
FRAME_SECONDS = 0.025


def audio_facts(samples: np.ndarray, text: str, sample_rate: int) -> dict:
    """One utterance's level, DC, silences, band above 4 kHz and speaking rate."""
    audio = samples.astype(np.float64) / 32767.0
    frame = int(FRAME_SECONDS * sample_rate)
    count = max(len(audio) // frame, 1)
    energy = np.array([np.mean(audio[i * frame:(i + 1) * frame] ** 2) for i in range(count)]) + 1e-12
    loud = np.flatnonzero(10 * np.log10(energy / energy.max()) > -SILENCE_DB)
    lead, trail = loud[0] * FRAME_SECONDS, (count - 1 - loud[-1]) * FRAME_SECONDS
    speech_seconds = max((loud[-1] - loud[0] + 1) * FRAME_SECONDS, FRAME_SECONDS)
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    frequency = np.fft.rfftfreq(len(audio), 1 / sample_rate)
    return {"seconds": len(audio) / sample_rate, "rms_dbfs": 10 * np.log10(np.mean(audio ** 2) + 1e-12),
            "dc": float(np.mean(audio)), "leading_silence": lead, "trailing_silence": trail,
            "above_4khz": float(spectrum[frequency > 4000].sum() / max(spectrum.sum(), 1e-20)),
            "chars_per_second": len(text.replace(" ", "")) / speech_seconds}


def band_limited(shard_set_class):
    """A ShardSet whose audio passes through 8 kHz and back before its features (libsoxr, as FSDD)."""
    import soxr

    from ds2stream.features import spectrogram
    from ds2stream.pipeline.augment import exactly

    class BandLimited(shard_set_class):
        def features(self, position):
            samples, text = self.samples(position)
            rate = self.feature_config.sample_rate
            down = soxr.resample(samples.astype(np.float32), rate, 8000, quality="HQ")
            back = exactly(soxr.resample(down, 8000, rate, quality="HQ"), len(samples))
            return spectrogram(np.clip(np.round(back), -32768, 32767).astype(np.int16), self.feature_config), text

    return BandLimited


def rank_correlation(a, b) -> float:
    ranks = [np.argsort(np.argsort(np.asarray(x))) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def diagnose(spec: dict) -> dict:
    """In a process of its own (harness.call): every figure of one checkpoint."""
    from ds2stream.checkpoint import load_model, model_features
    from ds2stream.inference.decoding import DecoderConfig, make_decoder
    from ds2stream.inference.evaluate import evaluate, run_network, score
    from ds2stream.pipeline import ShardSet
    from ds2stream.runtime import quiet_framework_logs, use_graph_mode

    quiet_framework_logs(False)
    use_graph_mode()
    network, meta = load_model(Path(spec["model"]))
    features = model_features(meta)
    beam = None
    if spec.get("lm"):
        base = DecoderConfig.read(Path(spec["decoder_config"])) if spec.get("decoder_config") else DecoderConfig()
        beam = dataclasses.replace(base, decoder="beam", lm=spec["lm"])
    out = {"model": spec["model"], "global_step": meta["state"]["global_step"], "sets": {}}
    for name, shards in spec["tests"].items():
        shard_set = ShardSet(shards, features)
        outputs = run_network(network, shard_set)  # once: greedy and beam decode the same outputs
        greedy = score(shard_set, outputs, make_decoder())
        limited = evaluate(network, band_limited(ShardSet)(shards, features))
        facts = []
        for position in range(len(shard_set)):
            samples, text = shard_set.samples(position)
            facts.append({"id": shard_set.ids[position].as_py(),
                          **audio_facts(samples, text, features.sample_rate)})
        by_id = {f["id"]: f for f in facts}
        rows = [{**r, **by_id[r["id"]]} for r in greedy.results]
        cers = [r["cer"] for r in rows]
        figures = {
            "utterances": len(rows), "greedy": {"cer": greedy.cer, "wer": greedy.wer,
                                                "empty": greedy.empty_hypotheses},
            "band_limited_4khz": {"cer": limited.cer, "wer": limited.wer},
            "audio_median": {key: float(np.median([f[key] for f in facts])) for key in facts[0] if key != "id"},
            "utterance_cer_quartiles": [float(q) for q in np.percentile(cers, [25, 50, 75])],
            "cer_rank_correlation": {key: rank_correlation(cers, [r[key] for r in rows])
                                     for key in ("chars_per_second", "rms_dbfs", "seconds", "leading_silence")},
            "worst": [{k: r[k] for k in ("id", "cer", "ref", "hyp")}
                      for r in sorted(rows, key=lambda r: -r["cer"])[:5]],
        }
        if beam:
            with_lm = score(shard_set, outputs, make_decoder(beam))
            figures["beam_lm"] = {"cer": with_lm.cer, "wer": with_lm.wer, "decoder": beam.to_dict()}
        out["sets"][name] = figures
        print(f"{name}: CER {greedy.cer:.1%} WER {greedy.wer:.1%}; at 4 kHz CER {limited.cer:.1%}"
              + (f"; beam + LM CER {figures['beam_lm']['cer']:.1%} WER {figures['beam_lm']['wer']:.1%}"
                 if beam else ""), flush=True)
    return out


def report(result: dict) -> str:
    """The markdown table of a diagnosis."""
    lines = ["| set | greedy CER / WER | band-limited to 4 kHz | beam + LM CER / WER | utterance CER, quartiles "
             "| level (dBFS) | characters a second | energy above 4 kHz |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, f in result["sets"].items():
        lm = f"{f['beam_lm']['cer']:.1%} / {f['beam_lm']['wer']:.1%}" if "beam_lm" in f else "–"
        low, _, high = f["utterance_cer_quartiles"]
        audio = f["audio_median"]
        lines.append(f"| {name} | {f['greedy']['cer']:.1%} / {f['greedy']['wer']:.1%} "
                     f"| {f['band_limited_4khz']['cer']:.1%} | {lm} | {low:.0%}-{high:.0%} | {audio['rms_dbfs']:.1f} "
                     f"| {audio['chars_per_second']:.1f} | {audio['above_4khz']:.1%} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", type=Path, metavar="JSON", help="print the table of a diagnosis")
    parser.add_argument("--model", type=Path, help="a checkpoint")
    parser.add_argument("--test", nargs="+", metavar="[NAME=]PATH", help="held-out sets")
    parser.add_argument("--lm", type=Path, help="an ARPA LM: beam search with it as well")
    parser.add_argument("--decoder-config", type=Path, help="beam settings (alpha, beta, ...) for --lm")
    parser.add_argument("--out", type=Path, default=Path("bench/out/real-speech-diagnosis.json"))
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return
    if not (args.model and args.test):
        parser.error("--model and --test are needed to diagnose")
    spec = {"model": str(args.model), "tests": named_sets(args.test), "lm": args.lm and str(args.lm.resolve()),
            "decoder_config": args.decoder_config and str(args.decoder_config)}
    result = harness.call(__file__, "diagnose", spec)
    harness.save(args.out, result)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
