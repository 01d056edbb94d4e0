"""ds2stream shard: folders, archives and zoo csv manifests -> Arrow shards, bad input, resume."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from ds2stream.cli import cli
from ds2stream.data.audio import read_audio
from ds2stream.data.shards import ShardOptions, audio_bytes, load_index, read_shard, write_shard_set
from ds2stream.data.sources import parse_transcripts
from ds2stream.data.zoo import prepare_zoo_manifest
from ds2stream.features import spectrogram
from testkit.corpora import format_1_copy, librispeech_archive, librispeech_tree


def all_rows(shard_dir):
    summary, _ = load_index(shard_dir)
    rows = []
    for info in summary["shards"]:
        rows.extend(read_shard(shard_dir / info["file"]).to_pylist())
    return rows


def source_utterances(corpus):
    """{id: (flac bytes, transcript)} straight from a LibriSpeech folder."""
    out = {}
    for transcript in corpus.rglob("*.trans.txt"):
        texts, _ = parse_transcripts(transcript.read_text().splitlines(), str(transcript))
        for utt_id, text in texts.items():
            out[utt_id] = ((transcript.parent / f"{utt_id}.flac").read_bytes(), text)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_dir):
    return librispeech_tree(sample_dir / "test", tmp_path_factory.mktemp("ls"), per_chapter=3)


def test_folder_round_trip_keeps_every_utterance_byte_for_byte(corpus, tmp_path):
    out = tmp_path / "shards"
    summary = write_shard_set([corpus], out, ShardOptions(shard_size_mb=0.05), jobs=2)
    source = source_utterances(corpus)
    rows = all_rows(out)
    assert len(source) == 6 * 10 * 3 == len(rows) == summary["utterances"]
    assert {r["id"] for r in rows} == set(source)
    for row in rows:
        flac, text = source[row["id"]]
        assert audio_bytes(row) == flac and row["text"] == text
        samples, rate = read_audio(flac)
        assert row["num_samples"] == len(samples) and row["sample_rate"] == rate == 16000
        assert row["speaker_id"] == int(row["id"].split("-")[0])
        assert row["chapter_id"] == int(row["id"].split("-")[1])
    assert len(summary["shards"]) > 1 and summary["problems"] == []
    assert summary["speakers"] == [9101, 9102, 9103, 9104, 9105, 9106]
    assert sum(summary["duration_histogram"]["counts"]) == len(rows)
    for info in summary["shards"]:
        assert hashlib.sha256((out / info["file"]).read_bytes()).hexdigest() == info["sha256"]
    # the length index alone gives every length, without opening audio
    _, index = load_index(out)
    by_id = {r["id"]: r for r in rows}
    for entry in index.to_pylist():
        row = read_shard(out / summary["shards"][entry["shard"]]["file"]).slice(entry["row"], 1).to_pylist()[0]
        assert row["id"] == entry["id"]
        assert entry["num_samples"] == by_id[entry["id"]]["num_samples"]
        assert entry["num_chars"] == len(by_id[entry["id"]]["text"])
    assert not (out / "progress.json").exists()


def test_any_folder_level_works(corpus, tmp_path):
    speaker = corpus / "dev-clean" / "9102"
    write_shard_set([speaker], tmp_path / "one", ShardOptions())
    assert {r["id"].split("-")[0] for r in all_rows(tmp_path / "one")} == {"9102"}


def test_archive_is_read_as_a_stream_and_equals_the_folder(corpus, tmp_path):
    archive = librispeech_archive(corpus, tmp_path / "dev-clean.tar.gz")
    write_shard_set([archive], tmp_path / "from_tar", ShardOptions())
    write_shard_set([corpus], tmp_path / "from_dir", ShardOptions())
    from_tar = sorted(all_rows(tmp_path / "from_tar"), key=lambda r: r["id"])
    from_dir = sorted(all_rows(tmp_path / "from_dir"), key=lambda r: r["id"])
    assert len(from_tar) == 180 and from_tar == from_dir
    assert not any(p.suffix == ".flac" for p in tmp_path.rglob("*") if "from_tar" in str(p))


def test_zoo_csv_manifest_of_wav_files(corpus, tmp_path):
    csv_path = prepare_zoo_manifest(corpus, tmp_path / "zoo")
    summary = write_shard_set([csv_path], tmp_path / "from_csv", ShardOptions())
    rows = {r["id"]: r for r in all_rows(tmp_path / "from_csv")}
    source = source_utterances(corpus)
    assert summary["utterances"] == len(source) == len(rows)
    for utt_id, (flac, text) in source.items():
        assert rows[utt_id]["text"] == text  # the zoo wrote lower case; normalised back
        assert audio_bytes(rows[utt_id])[:4] == b"fLaC"  # wav re-encoded losslessly
        np.testing.assert_array_equal(read_audio(audio_bytes(rows[utt_id]))[0], read_audio(flac)[0])


def test_same_input_gives_identical_shards(corpus, tmp_path):
    digests = []
    for name, jobs in (("a", 1), ("b", 2)):
        summary = write_shard_set([corpus], tmp_path / name, ShardOptions(shard_size_mb=0.05), jobs=jobs)
        digests.append([s["sha256"] for s in summary["shards"]])
    assert digests[0] == digests[1]


def test_pcm16_and_features(corpus, tmp_path):
    speaker = corpus / "dev-clean" / "9101"
    write_shard_set([speaker], tmp_path / "pcm", ShardOptions(audio_format="pcm16", with_features=True))
    for row in all_rows(tmp_path / "pcm"):
        samples = np.frombuffer(audio_bytes(row), dtype="<i2")
        assert len(samples) == row["num_samples"]
        features = np.frombuffer(row["features"], dtype=np.float16).reshape(161, row["num_frames"])
        np.testing.assert_allclose(features, spectrogram(samples), atol=2e-2, rtol=2e-3)


def test_duration_filters_are_counted(corpus, tmp_path):
    summary = write_shard_set([corpus], tmp_path / "f", ShardOptions(min_duration=0.4, max_duration=0.6))
    rows = all_rows(tmp_path / "f")
    assert all(0.4 <= r["duration"] <= 0.6 for r in rows)
    assert len(rows) + sum(summary["filtered"].values()) == 180
    assert summary["filtered"]["below_min_duration"] > 0 and summary["filtered"]["above_max_duration"] > 0


def test_duplicate_ids_are_kept_once_and_reported(corpus, tmp_path):
    speaker = corpus / "dev-clean" / "9103"
    summary = write_shard_set([speaker, corpus], tmp_path / "d", ShardOptions())
    assert summary["utterances"] == 180
    assert summary["problem_counts"] == {"duplicate_id": 30}


# ---------------------------------------------------------------- bad input

@pytest.fixture()
def bad_corpus(tmp_path, sample_dir):
    corpus = librispeech_tree(sample_dir / "test", tmp_path / "bad", per_chapter=2)
    chapter = corpus / "dev-clean" / "9101" / "101"
    good, _ = read_audio(chapter / "9101-101-0000.flac")
    flac = (chapter / "9101-101-0001.flac").read_bytes()
    (chapter / "9101-101-0001.flac").write_bytes(flac[: len(flac) // 2])  # truncated
    (chapter / "9101-101-0007.flac").write_bytes(b"")  # empty file
    (chapter / "9101-101-0008.flac").write_bytes(os.urandom(3000))  # corrupt
    soundfile.write(chapter / "9101-101-0009.flac", good[::2], 8000)  # 8 kHz
    soundfile.write(chapter / "9101-101-0010.flac", np.stack([good, good], 1), 16000)  # stereo
    soundfile.write(chapter / "9101-101-0011.flac", good, 16000)  # audio with no transcript line
    soundfile.write(chapter / "9101-101-0012.flac", good, 16000)  # text with digits
    soundfile.write(chapter / "9101-101-0013.flac", good[:100], 16000)  # shorter than a window
    with open(chapter / "9101-101.trans.txt", "a") as handle:
        handle.write("9101-101-0006 TRANSCRIPT WITH NO AUDIO\n")
        for n in (7, 8, 9, 10):
            handle.write(f"9101-101-{n:04d} ONE\n")
        handle.write("9101-101-0012 ONE 2 3\n")
        handle.write("9101-101-0013 ONE\n")
    return corpus


EXPECTED_BAD = {
    "unreadable_audio": {"9101-101-0001", "9101-101-0008"},
    "empty_audio": {"9101-101-0007"},
    "sample_rate": {"9101-101-0009"},
    "channels": {"9101-101-0010"},
    "missing_transcript": {"9101-101-0011"},
    "missing_audio": {"9101-101-0006"},
    "text": {"9101-101-0012"},
    "too_short": {"9101-101-0013"},
}


def test_each_bad_input_is_named_counted_and_kept_out(bad_corpus, tmp_path):
    summary = write_shard_set([bad_corpus], tmp_path / "s", ShardOptions(), jobs=2)
    ids = {r["id"] for r in all_rows(tmp_path / "s")}
    assert summary["problem_counts"] == {k: len(v) for k, v in EXPECTED_BAD.items()}
    for kind, bad_ids in EXPECTED_BAD.items():
        named = [p for p in summary["problems"] if p["kind"] == kind]
        for bad_id in bad_ids:
            assert bad_id not in ids
            assert any(bad_id in p["message"] for p in named), (kind, bad_id, named)
    # every good utterance is there: 60 chapters x 2, less the one truncated in place
    assert len(ids) == 119
    assert any("sox" in p["message"] for p in summary["problems"] if p["kind"] == "sample_rate")


def test_strict_exits_non_zero_but_keeps_the_good_shards(bad_corpus, tmp_path):
    args = ["shard", str(bad_corpus), "--out", str(tmp_path / "s"), "--strict", "--jobs", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "problems (--strict)" in result.output
    assert load_index(tmp_path / "s")[0]["utterances"] == 119
    info = CliRunner().invoke(cli, ["info", "--shards", str(tmp_path / "s"), "--problems"])
    assert info.exit_code == 0 and "[sample_rate]" in info.output and "119 utterances" in info.output


def test_truncated_archive_keeps_what_came_before(corpus, tmp_path):
    archive = librispeech_archive(corpus, tmp_path / "full.tar.gz")
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    summary = write_shard_set([cut], tmp_path / "s", ShardOptions())
    assert summary["problem_counts"].get("archive") == 1
    assert "cut.tar.gz" in [p for p in summary["problems"] if p["kind"] == "archive"][0]["message"]
    assert 60 < summary["utterances"] < 180
    source = source_utterances(corpus)
    for row in all_rows(tmp_path / "s"):
        assert audio_bytes(row) == source[row["id"]][0]


def test_csv_rows_pointing_at_missing_files(corpus, tmp_path):
    csv_path = prepare_zoo_manifest(corpus / "dev-clean" / "9104", tmp_path / "zoo")
    lines = csv_path.read_text().splitlines()
    lines.insert(3, f"{tmp_path}/nowhere.wav,{tmp_path}/nowhere.txt")
    lines.insert(5, "only-one-column")
    csv_path.write_text("\n".join(lines) + "\n")
    summary = write_shard_set([csv_path], tmp_path / "s", ShardOptions())
    assert summary["utterances"] == 30
    assert summary["problem_counts"] == {"missing_file": 1, "csv_row": 1}
    assert "nowhere.wav" in summary["problems"][0]["message"]


def test_a_csv_header_row_is_passed_over_not_reported(corpus, tmp_path):
    csv_path = prepare_zoo_manifest(corpus / "dev-clean" / "9104", tmp_path / "zoo")
    csv_path.write_text("wav_path,txt_path\n" + csv_path.read_text())
    result = CliRunner().invoke(cli, ["shard", str(csv_path), "--out", str(tmp_path / "s"), "--strict"])
    assert result.exit_code == 0, result.output
    assert load_index(tmp_path / "s")[0]["utterances"] == 30


def test_unknown_input_kind_and_foreign_out_dir_are_clear_errors(corpus, tmp_path):
    stray = tmp_path / "notes.txt"
    stray.write_text("x")
    result = CliRunner().invoke(cli, ["shard", str(stray), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "notes.txt" in result.output
    write_shard_set([corpus / "dev-clean" / "9105"], tmp_path / "s", ShardOptions())
    result = CliRunner().invoke(cli, ["shard", str(corpus), "--out", str(tmp_path / "s")])
    assert result.exit_code == 1 and "not empty" in result.output


def test_inputs_that_give_no_utterance_are_an_error_that_says_why(corpus, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no speech here")
    runner = CliRunner()
    result = runner.invoke(cli, ["shard", str(tmp_path / "notes"), "--out", str(tmp_path / "a")])
    assert result.exit_code == 1 and f"none found in {tmp_path / 'notes'}; ds2stream reads" in result.output
    result = runner.invoke(cli, ["shard", str(corpus), "--out", str(tmp_path / "b"), "--min-duration", "60"])
    assert result.exit_code == 1 and "all 180 were left out by --min-duration/--max-duration" in result.output
    (tmp_path / "mixed").mkdir()  # utterances outside the filter, and a transcript line with no audio
    shutil.copytree(corpus / "dev-clean", tmp_path / "mixed" / "dev-clean")
    transcript = next((tmp_path / "mixed").rglob("*.trans.txt"))
    transcript.write_text(transcript.read_text() + f"{transcript.name.split('.')[0]}-9999 NINE\n")
    result = runner.invoke(cli, ["shard", str(tmp_path / "mixed"), "--out", str(tmp_path / "c"),
                                 "--min-duration", "60"])
    assert result.exit_code == 1 and "were left out by --min-duration/--max-duration and the other 1 had a problem" \
        in result.output


# ---------------------------------------------------------------- resume after kill -9

def test_kill_minus_nine_then_rerun_completes_the_set_exactly(sample_dir, tmp_path):
    corpus = librispeech_tree(sample_dir / "train", tmp_path / "ls", per_chapter=12)
    command = [sys.executable, "-m", "ds2stream.cli", "shard", str(corpus), "--out", str(tmp_path / "killed"),
               "--shard-size", "0.02", "--jobs", "1", "--features"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = tmp_path / "killed" / "progress.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and len(json.loads(journal.read_text())["shards"]) >= 3:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "index.json").exists(), "the run finished before it could be killed"
    assert subprocess.run(command, capture_output=True).returncode == 0

    reference = write_shard_set([corpus], tmp_path / "whole", ShardOptions(shard_size_mb=0.02, with_features=True))
    resumed = load_index(tmp_path / "killed")[0]
    assert [s["sha256"] for s in resumed["shards"]] == [s["sha256"] for s in reference["shards"]]
    ids = [r["id"] for r in all_rows(tmp_path / "killed")]
    assert len(ids) == len(set(ids)) == 6 * 10 * 12 == resumed["utterances"]


def test_a_format_1_shard_set_ipc_files_with_audio_as_bytes_is_still_read_sample_for_sample(sample_dir, tmp_path):
    import pyarrow as pa

    from ds2stream.pipeline import ShardSet

    corpus = librispeech_tree(sample_dir / "dev", tmp_path / "ls", per_chapter=4)
    write_shard_set([corpus], tmp_path / "v2", ShardOptions(shard_size_mb=0.05))
    old, new = ShardSet(format_1_copy(tmp_path / "v2", tmp_path / "v1")), ShardSet(tmp_path / "v2")
    assert len(old) == len(new) > 4
    assert read_shard(tmp_path / "v1" / old.summary["shards"][0]["file"]).schema.field("audio").type == pa.binary()
    for position in range(len(new)):
        got, want = old.samples(position), new.samples(position)
        assert got[1] == want[1]
        np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("broken", ["shard-000000.arrow", "index.arrow", "index.json"])
def test_a_corrupt_shard_file_is_one_error_line_naming_it(corpus, tmp_path, broken):
    out = tmp_path / "s"
    write_shard_set([corpus], out, ShardOptions())
    data = (out / broken).read_bytes()
    (out / broken).write_bytes(data[: len(data) // 2])  # a copy cut short
    result = CliRunner().invoke(cli, ["lm", str(out), "--out", str(tmp_path / "lm.arpa")])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and broken in errors[0] and "shard the data again" in errors[0], result.output
