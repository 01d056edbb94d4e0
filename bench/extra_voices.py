"""Kokoro's blended voices (ds2stream.corpus.kokoro_blended_voices) rendered as an add-on to a
corpus made before them: each reads --per-voice of that corpus's training sentences (never a dev
or test sentence), into OUT/train in the corpus's layout, to be sharded with the corpus's own
training folder. Resumes what is there.

    python bench/extra_voices.py corpus-k addon --per-voice 24
    ds2stream shard corpus-k/train addon/train ds2stream/sample/fsdd/train --out shards/train-blends
"""
import argparse
import json
import multiprocessing
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import harness  # noqa: F401  (the checkout's ds2stream and testkit)

from ds2stream import corpus
from ds2stream.data.text import read_sentences


def plan(corpus_dir: Path, per_voice: int) -> list:
    """The add-on's utterances: the blended voices in turn, each reading its own share of the corpus's
    training sentences (shuffled with a fixed seed)."""
    settings = json.loads((corpus_dir / corpus.PLAN_FILE).read_text())
    voices = [corpus.Voice(**voice) for voice in settings["voices"]]
    taken = {voice.speaker for voice in voices}
    extra = [voice for voice in corpus.kokoro_blended_voices() if voice.speaker not in taken]
    made = corpus.make_plan(read_sentences(settings["text"]), voices, settings["hours"], settings["seed"])
    sentences = sorted({utterance.text for utterance in made if utterance.split == "train"})
    random.Random(7).shuffle(sentences)
    utterances = []
    for voice in extra:
        for n in range(per_voice):
            utt_id = f"{voice.speaker}-1-{n:04d}"
            utterances.append(corpus.Utterance("train", voice, utt_id, sentences[len(utterances) % len(sentences)],
                                               voice.reading(random.Random(f"{settings['seed']}:{utt_id}"))))
    return utterances


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, help="a folder `ds2stream corpus` made")
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-voice", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    utterances = plan(args.corpus, args.per_voice)
    todo = [batch for batch in corpus._batches(utterances) if not all((args.out / u.path).exists() for u in batch)]
    print(f"{len(utterances)} utterances of {len(utterances) // args.per_voice} voices, "
          f"{sum(map(len, todo))} to render", flush=True)
    corpus.Kokoro.prepare()
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(args.jobs, mp_context=context, max_tasks_per_child=1) as pool:
        for done in pool.map(corpus._render_batch, [args.out] * len(todo), todo):
            print(f"{done[-1][0]}: {len(done)} rendered", flush=True)
    corpus.write_transcripts(args.out, utterances)


if __name__ == "__main__":
    main()
