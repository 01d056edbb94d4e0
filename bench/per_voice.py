"""Error rates per test voice, from `ds2stream eval --json` reports on a `ds2stream corpus` test set.

Corpus CER and WER of each speaker (summed edits over summed reference length), with the voice
each speaker id stands for (from the corpus's corpus-plan.json, when given).

    python bench/per_voice.py EVAL.json [EVAL2.json ...] [--plan corpus/corpus-plan.json] [--out JSON]
"""
import argparse
import json
from collections import defaultdict
from pathlib import Path

import harness

from ds2stream.error_rates import cer, wer


def per_speaker(report: dict) -> dict[str, dict]:
    by_speaker = defaultdict(list)
    for utterance in report["utterances_detail"]:
        by_speaker[utterance["id"].split("-")[0]].append(utterance)
    return {speaker: {"utterances": len(rows), "cer": cer([r["ref"] for r in rows], [r["hyp"] for r in rows]),
                      "wer": wer([r["ref"] for r in rows], [r["hyp"] for r in rows])}
            for speaker, rows in sorted(by_speaker.items())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--plan", type=Path, help="the corpus's corpus-plan.json (names the voices)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    voices = {}
    if args.plan:
        voices = {str(v["speaker"]): f"{v['engine']}:{v['name']}" for v in json.loads(args.plan.read_text())["voices"]}
    result = {str(path): per_speaker(json.loads(path.read_text())) for path in args.reports}
    for path, speakers in result.items():
        print(path)
        for speaker, figures in speakers.items():
            print(f"  {speaker} {voices.get(speaker, ''):28s} {figures['utterances']:4d} utt  "
                  f"CER {100 * figures['cer']:5.1f} %  WER {100 * figures['wer']:5.1f} %")
    if args.out:
        harness.save(args.out, {"voices": voices, "reports": result})


if __name__ == "__main__":
    main()
