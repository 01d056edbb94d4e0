"""The corpus's test sentences read by espeak-ng voices that never train (``en+m6``,
``en-us+steph``): unseen voices of an engine that trains, to compare the held-out engines with.

    python bench/held_in_voices.py corpus/test held-in && ds2stream shard held-in/test --out shards/held-in
"""
import random
import sys
from pathlib import Path

from ds2stream.corpus import Utterance, Voice, _batches, _render_batch, write_transcripts

VOICES = (Voice(401, "test", "espeak", "en+m6", 0.95, 40), Voice(402, "test", "espeak", "en-us+steph", 1.05, 65))


def main():
    test_split, out = Path(sys.argv[1]), Path(sys.argv[2])
    texts = [line.split(" ", 1)[1].strip() for path in sorted(test_split.rglob("*.trans.txt"))
             for line in path.read_text().splitlines()]
    plan = []
    for i, text in enumerate(texts):
        voice = VOICES[i % len(VOICES)]
        utt_id = f"{voice.speaker}-1-{i // len(VOICES):04d}"
        plan.append(Utterance("test", voice, utt_id, text, voice.reading(random.Random(utt_id))))
    for batch in _batches(plan):
        _render_batch(out, batch)
    write_transcripts(out, plan)
    print(f"{len(plan)} utterances in {out / 'test'}")


if __name__ == "__main__":
    main()
