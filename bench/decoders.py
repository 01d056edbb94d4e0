"""Decoders on the same log-probabilities: greedy, beam search without and with the LM at several
beam widths, and pyctcdecode's beam search (if installed) as the kept implementation to beat.

The network runs once over the shard set; each decoder then decodes every utterance, timed on
its own (one process, so CPU-seconds = wall seconds). Reported: WER, CER, decoding seconds per
audio hour, real-time factor, and decoding's share of an eval (network + decoding).

    python bench/decoders.py --model CKPT --shards SHARDS/test --lm lm.arpa \\
        [--decoder-config decoder.json] [--widths 8 32 128] [--out bench/out/decoders.json]
"""
import argparse
import dataclasses
import time
from pathlib import Path

import harness


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a ds2stream checkpoint")
    parser.add_argument("--shards", type=Path, required=True)
    parser.add_argument("--lm", type=Path, required=True)
    parser.add_argument("--decoder-config", type=Path, help="tuned alpha/beta (eval --tune-lm); default 0.5/1.0")
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from ds2stream.checkpoint import load_model, model_features
    from ds2stream.data.text import LABELS
    from ds2stream.inference.decoding import DecoderConfig, make_decoder
    from ds2stream.inference.evaluate import run_network, score
    from ds2stream.pipeline import ShardSet
    from ds2stream.runtime import quiet_framework_logs, use_graph_mode

    quiet_framework_logs(False)
    use_graph_mode()
    network, meta = load_model(args.model)
    shard_set = ShardSet(args.shards, model_features(meta))
    outputs = run_network(network, shard_set)
    audio_hours = sum(shard_set.num_samples[p] for p in outputs.positions) / shard_set.feature_config.sample_rate / 3600
    tuned = DecoderConfig.read(args.decoder_config) if args.decoder_config else DecoderConfig("beam")
    candidates = [("greedy", DecoderConfig())]
    for width in args.widths:
        candidates.append((f"beam {width}, no LM", DecoderConfig("beam", beam_width=width)))
        candidates.append((f"beam {width} + LM", dataclasses.replace(tuned, decoder="beam", beam_width=width,
                                                                     lm=str(args.lm))))
    rows = []

    def report(name, result):
        row = {"decoder": name, "wer": result.wer, "cer": result.cer,
               "decode_seconds_per_audio_hour": result.decode_seconds / audio_hours,
               "real_time_factor": result.decode_seconds / (audio_hours * 3600),
               "share_of_eval": result.decode_seconds / (outputs.seconds + result.decode_seconds)}
        rows.append(row)
        print(f"{name:24s} WER {row['wer']:7.2%}  CER {row['cer']:7.2%}  {row['decode_seconds_per_audio_hour']:8.1f} "
              f"s/audio-h  RTF {row['real_time_factor']:.4f}  {row['share_of_eval']:6.1%} of eval", flush=True)

    print(f"{len(outputs.positions)} utterances, {audio_hours:.3f} h; network {outputs.seconds:.1f} s", flush=True)
    for name, config in candidates:
        report(name, score(shard_set, outputs, make_decoder(config)))
    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError:
        print("pyctcdecode not installed: pip install pyctcdecode (no LM: its LMs need the kenlm module)")
    else:
        labels = [" " if c == " " else ("" if c == "_" else c) for c in LABELS]
        decoder = build_ctcdecoder(labels)
        for width in args.widths:
            started = time.perf_counter()
            result = score(shard_set, outputs, lambda lp, w=width: decoder.decode(lp, beam_width=w).strip())
            report(f"pyctcdecode {width}, no LM", dataclasses.replace(
                result, decode_seconds=time.perf_counter() - started))
    if args.out:
        harness.save(args.out, {"checkpoint": str(args.model), "shards": str(args.shards), "lm": str(args.lm),
                                "tuned": tuned.to_dict(), "network_seconds": outputs.seconds,
                                "audio_hours": audio_hours, "rows": rows})


if __name__ == "__main__":
    main()
