"""Hotwords on a test set: how many of the listed words a model's transcripts now hold, and what
the list costs on the sentences that do not say them.

The network runs once over the shard set; each decoder then decodes every utterance: greedy, the
beam search without hotwords, and with them (at each ``--boosts`` value for the phrases that have
no boost of their own; without ``--boosts``, the list's). Reported per decoder:

  recall        of the listed phrases' occurrences in the references (whole words), the share the
                hypotheses hold (per utterance, at most as many as the reference has);
  false alarms  listed phrases in hypotheses beyond what their references say;
  WER without   corpus WER over the utterances whose references hold no listed phrase (what the
                list costs elsewhere), and WER over all of them.

    python bench/hotwords.py --model CKPT --shards SHARDS/test --hotwords names.txt \\
        [--decoder-config decoder.json | --lm lm.arpa] [--beam-width 32] [--boosts 0.5 1 2 4] \\
        [--out bench/out/hotwords.json]
"""
import argparse
import dataclasses
import re
from pathlib import Path

import harness


def occurrences(phrase: str, text: str) -> int:
    """How many times ``phrase`` stands in ``text`` as whole words."""
    return len(re.findall(rf"(?<!\S){re.escape(phrase)}(?!\S)", text))


def measure(report, phrases) -> dict:
    """Recall, false alarms and WERs of an eval report's utterances (``EvalReport.results``)."""
    from ds2stream.error_rates import ErrorCounts, word_errors

    said = found = extra = 0
    without, everything = ErrorCounts(), ErrorCounts()
    for result in report.results:
        ref, hyp = result["ref"], result["hyp"]
        errors = word_errors(ref, hyp)
        everything += errors
        in_ref = {p: occurrences(p, ref) for p in phrases}
        if not any(in_ref.values()):
            without += errors
        for phrase, count in in_ref.items():
            heard = occurrences(phrase, hyp)
            said, found, extra = said + count, found + min(count, heard), extra + max(0, heard - count)
    return {"recall": found / said if said else None, "occurrences": said, "found": found, "false_alarms": extra,
            "wer_without": without.rate, "words_without": without.reference_length, "wer": everything.rate,
            "decode_seconds": report.decode_seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a ds2stream checkpoint or exported .mindir")
    parser.add_argument("--shards", type=Path, required=True)
    parser.add_argument("--hotwords", type=Path, required=True, help="a hotwords file (inference/hotwords.py)")
    parser.add_argument("--boosts", type=float, nargs="+", help="default boosts to try (default: the list's)")
    parser.add_argument("--decoder-config", type=Path, help="beam settings (eval --tune-lm); default: DecoderConfig's")
    parser.add_argument("--lm", type=Path, help="an ARPA LM for the beam search (overrides the config's)")
    parser.add_argument("--beam-width", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from ds2stream.checkpoint import model_features
    from ds2stream.inference.decoding import DecoderConfig, make_decoder, read_lm
    from ds2stream.inference.evaluate import run_network, score
    from ds2stream.inference.hotwords import DEFAULT_BOOST, Hotwords
    from ds2stream.inference.transcribe import open_model
    from ds2stream.pipeline import ShardSet
    from ds2stream.runtime import quiet_framework_logs, use_graph_mode

    listed = Hotwords.read(args.hotwords)  # a bad list fails before the network loads
    beam = DecoderConfig.read(args.decoder_config) if args.decoder_config else DecoderConfig()
    beam = dataclasses.replace(beam, decoder="beam", **({"lm": str(args.lm)} if args.lm else {}),
                               **({"beam_width": args.beam_width} if args.beam_width else {}))
    lm = read_lm(beam.lm) if beam.lm else None
    quiet_framework_logs(False)
    use_graph_mode()
    model = open_model(args.model)
    shard_set = ShardSet(args.shards, model_features(model.meta))
    outputs = run_network(model.network, shard_set)
    phrases = sorted(listed.boosts)
    candidates = [("greedy", make_decoder()), (f"beam {beam.beam_width}", make_decoder(beam, lm))]
    for boost in args.boosts or [None]:
        hotwords = listed if boost is None else Hotwords.read(args.hotwords, boost)
        name = f"beam {beam.beam_width} + hotwords" + ("" if boost is None else f" (boost {boost:g})")
        candidates.append((name, make_decoder(beam, lm, hotwords)))
    print(f"{len(outputs.positions)} utterances; {len(phrases)} phrases (without a boost of their own: "
          f"{' '.join(f'{b:g}' for b in args.boosts or [DEFAULT_BOOST])}); network {outputs.seconds:.1f} s", flush=True)
    rows = []
    for name, decode in candidates:
        row = {"decoder": name, **measure(score(shard_set, outputs, decode), phrases)}
        rows.append(row)
        recall = "n/a" if row["recall"] is None else f"{row['recall']:.1%}"
        print(f"{name:32s} recall {recall:>6s} ({row['found']}/{row['occurrences']})  false alarms "
              f"{row['false_alarms']:4d}  WER without {row['wer_without']:7.2%} ({row['words_without']} words)  "
              f"WER {row['wer']:7.2%}  decoding {row['decode_seconds']:.1f} s", flush=True)
    if not rows[0]["occurrences"]:
        print("no reference holds a listed phrase: recall cannot be measured on these shards")
    if args.out:
        harness.save(args.out, {"checkpoint": str(args.model), "shards": str(args.shards),
                                "hotwords": str(args.hotwords), "phrases": listed.boosts, "beam": beam.to_dict(),
                                "network_seconds": outputs.seconds, "rows": rows})


if __name__ == "__main__":
    main()
