"""Make a LibriSpeech-layout corpus with a LibriSpeech subset's utterance lengths, for benchmarks.

Utterances join real recordings (by default the bundled FSDD digits) so the audio is speech and
the transcripts are exact; speed does not depend on content. Optionally packs it as a .tar.gz
(members LibriSpeech/..., as the official archives) and writes the zoo's wav + csv manifest.

    python -m testkit.make_librispeech_like --out /tmp/ls --hours 1 --profile train-clean-100 [--archive] [--zoo-csv]

(from the checkout's root).
"""
import argparse
from pathlib import Path

from ds2stream.data import SAMPLE_DIR
from ds2stream.data.zoo import prepare_zoo_manifest
from testkit.corpora import LENGTH_PROFILES, librispeech_archive, synthetic_librispeech


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--profile", choices=LENGTH_PROFILES, default="train-clean-100")
    parser.add_argument("--clips", type=Path, default=SAMPLE_DIR / "train", help="LibriSpeech-layout source clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--archive", action="store_true", help="also write <out>/<profile>.tar.gz")
    parser.add_argument("--zoo-csv", action="store_true", help="also write the zoo's wav files and csv manifest")
    args = parser.parse_args()
    corpus = synthetic_librispeech(args.clips, args.out, args.hours, args.profile, subset=args.profile, seed=args.seed)
    print(f"corpus: {corpus}")
    if args.archive:
        print(f"archive: {librispeech_archive(corpus, args.out / f'{args.profile}.tar.gz')}")
    if args.zoo_csv:
        print(f"zoo csv: {prepare_zoo_manifest(corpus, args.out / 'zoo')}")


if __name__ == "__main__":
    main()
