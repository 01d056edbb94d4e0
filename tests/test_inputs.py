"""Inputs made by other tools: Hugging Face parquet files and Lhotse manifests become the same
utterances as the LibriSpeech folders they describe; and shards that Hugging Face `datasets` opens
in place as an audio dataset."""
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import soundfile
from click.testing import CliRunner

from ds2stream.cli import cli
from ds2stream.data.audio import read_audio
from ds2stream.data.shards import ShardOptions, audio_bytes, load_index, read_shard, write_shard_set
from ds2stream.failpoints import ENV as KILL_AT
from testkit.corpora import hf_librispeech_rows, librispeech_tree, write_hf_parquet

RATE = 16000


def rows_by_id(shard_dir):
    summary, _ = load_index(shard_dir)
    return {row["id"]: row for info in summary["shards"] for row in read_shard(shard_dir / info["file"]).to_pylist()}


def test_hf_parquet_shards_as_its_folder_does_with_the_flac_bytes_as_they_are(sample_dir, tmp_path):
    corpus = librispeech_tree(sample_dir / "dev", tmp_path / "ls", per_chapter=6)
    rows = hf_librispeech_rows(corpus)
    flac = rows[0]["audio"]["bytes"]
    (tmp_path / "beside.flac").write_bytes(flac)
    bad = [
        {"id": "9-9-1", "audio": {"bytes": None, "path": None}, "text": "NINE"},  # missing_audio
        {"id": "9-9-2", "audio": {"bytes": b"RIFF0000WAVEjunk", "path": "2.wav"}, "text": "NINE"},  # unreadable
        {"id": None, "audio": {"bytes": flac, "path": "x.flac"}, "text": "NINE"},  # manifest_row
        {"id": "9-9-3", "audio": {"bytes": flac, "path": "3.flac"}, "text": "N1NE"},  # text
        {"id": "9-9-4", "audio": {"bytes": None, "path": "beside.flac"}, "text": "FOUR"},  # read from the path
    ]
    write_hf_parquet(rows + bad, tmp_path / "dev.parquet", row_group_size=8)

    result = CliRunner().invoke(cli, ["shard", str(tmp_path / "dev.parquet"), "--out", str(tmp_path / "hf"),
                                      "--strict", "--shard-size", "0.05"])
    assert result.exit_code == 1 and "4 problems (--strict)" in result.output
    summary, _ = load_index(tmp_path / "hf")
    assert summary["problem_counts"] == {"missing_audio": 1, "unreadable_audio": 1, "manifest_row": 1, "text": 1}
    assert all("dev.parquet:row" in p["message"] for p in summary["problems"])
    from_parquet = rows_by_id(tmp_path / "hf")
    write_shard_set([corpus], tmp_path / "folder", ShardOptions(shard_size_mb=0.05))
    from_folder = rows_by_id(tmp_path / "folder")
    assert from_parquet.pop("9-9-4")["text"] == "FOUR"
    assert from_parquet.keys() == from_folder.keys() and len(from_folder) == len(rows)
    for utt_id, row in from_folder.items():
        assert audio_bytes(from_parquet[utt_id]) == audio_bytes(row)  # the FLAC file, byte for byte
        assert from_parquet[utt_id]["text"] == row["text"] and from_parquet[utt_id]["speaker_id"] == row["speaker_id"]


def test_hf_parquet_shard_killed_after_its_first_shard_finishes_with_the_same_bytes(sample_dir, tmp_path):
    corpus = librispeech_tree(sample_dir / "dev", tmp_path / "ls", per_chapter=6)
    write_hf_parquet(hf_librispeech_rows(corpus), tmp_path / "dev.parquet", row_group_size=8)
    command = [sys.executable, "-m", "ds2stream.cli", "shard", str(tmp_path / "dev.parquet"), "--out",
               str(tmp_path / "killed"), "--shard-size", "0.05", "--jobs", "2"]
    env = {k: v for k, v in os.environ.items() if k != KILL_AT}
    assert subprocess.run(command, env={**env, KILL_AT: "shard_written:1"}, capture_output=True).returncode == -9
    assert subprocess.run(command, env=env, capture_output=True).returncode == 0
    reference = write_shard_set([tmp_path / "dev.parquet"], tmp_path / "whole", ShardOptions(shard_size_mb=0.05))
    resumed = load_index(tmp_path / "killed")[0]
    assert len(reference["shards"]) > 1
    assert [s["sha256"] for s in resumed["shards"]] == [s["sha256"] for s in reference["shards"]]
    # A folder of parquet files, as Hugging Face downloads them: the files in name order.
    rows = hf_librispeech_rows(corpus)
    download = tmp_path / "librispeech_asr" / "data" / "validation"
    download.mkdir(parents=True)
    write_hf_parquet(rows[: len(rows) // 2], download / "validation-00000-of-00002.parquet")
    write_hf_parquet(rows[len(rows) // 2:], download / "validation-00001-of-00002.parquet")
    folder = write_shard_set([tmp_path / "librispeech_asr"], tmp_path / "from-folder", ShardOptions(shard_size_mb=0.05))
    assert [s["sha256"] for s in folder["shards"]] == [s["sha256"] for s in reference["shards"]]


def write_jsonl_gz(path, entries):
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry) + "\n")


def recording(recording_id, source, num_samples, channels=(0,), kind="file"):
    return {"id": recording_id, "sources": [{"type": kind, "channels": list(channels), "source": source}],
            "sampling_rate": RATE, "num_samples": num_samples, "duration": num_samples / RATE,
            "channel_ids": list(channels)}


def supervision(sup_id, recording_id, start, samples, channel=0, text="ONE TWO"):
    return {"id": sup_id, "recording_id": recording_id, "start": start, "duration": samples / RATE,
            "channel": channel, "text": text, "speaker": "s1"}


def test_lhotse_supervisions_and_cuts_are_cut_exactly_from_long_and_two_channel_recordings(sample_flacs, tmp_path,
                                                                                             monkeypatch):
    a, b, c = (read_audio(path)[0] for path in sample_flacs[:3])
    gap = np.zeros(RATE // 5, dtype=np.int16)
    long = np.concatenate([gap, a, gap, b, gap])  # one recording, two utterances in it
    soundfile.write(tmp_path / "long.flac", long, RATE)
    width = max(len(a), len(c))
    two = np.stack([np.pad(a, (0, width - len(a))), np.pad(c, (0, width - len(c)))], axis=1)
    soundfile.write(tmp_path / "two.wav", two, RATE, subtype="PCM_16")  # speaker a left, speaker c right
    (tmp_path / "whole.flac").write_bytes(sample_flacs[2].read_bytes())
    b_start = (2 * len(gap) + len(a)) / RATE
    recordings = [recording("long", "long.flac", len(long)), recording("two", "two.wav", width, (0, 1)),
                  recording("whole", "whole.flac", len(c)), recording("unheard", "whole.flac", len(c)),
                  recording("web", "https://example.org/x.flac", len(c), kind="url"),
                  recording("whole", "long.flac", len(long))]  # duplicate_id: the first "whole" stays
    supervisions = [supervision("long-a", "long", len(gap) / RATE, len(a)),
                    supervision("long-b", "long", b_start, len(b)),
                    supervision("two-left", "two", 0.0, len(a), channel=0),
                    supervision("two-right", "two", 0.0, len(c), channel=1),
                    supervision("whole-c", "whole", 0.0, len(c)),
                    supervision("past-end", "long", len(long) / RATE - 0.1, RATE),  # span
                    supervision("lost", "nowhere", 0.0, RATE),  # missing_audio
                    supervision("web-x", "web", 0.0, RATE)]  # manifest_row; "unheard": missing_transcript
    write_jsonl_gz(tmp_path / "demo_recordings_dev.jsonl.gz", recordings)
    write_jsonl_gz(tmp_path / "demo_supervisions_dev.jsonl.gz", supervisions)
    expected = {"long-a": a, "long-b": b, "two-left": a, "two-right": c, "whole-c": c}

    monkeypatch.chdir(tmp_path.parent)  # relative paths: from the manifest's folder when not from here
    summary = write_shard_set([tmp_path / "demo_supervisions_dev.jsonl.gz"], tmp_path / "sup")
    assert summary["problem_counts"] == {"span": 1, "missing_audio": 1, "manifest_row": 1, "missing_transcript": 1,
                                         "duplicate_id": 1}
    rows = rows_by_id(tmp_path / "sup")
    assert rows.keys() == expected.keys()
    for utt_id, samples in expected.items():
        np.testing.assert_array_equal(read_audio(audio_bytes(rows[utt_id]))[0], samples, err_msg=utt_id)
    assert audio_bytes(rows["whole-c"]) == sample_flacs[2].read_bytes()  # a whole file is kept as it is

    # The same as cuts: a window of the long recording (supervision starts count from the cut's).
    cut_start = len(gap) / 2 / RATE
    cuts = [{"id": "cut-long", "start": cut_start, "duration": len(long) / RATE - cut_start, "channel": 0,
             "type": "MonoCut", "recording": recordings[0],
             "supervisions": [{**s, "start": s["start"] - cut_start} for s in supervisions[:2]]},
            {"id": "cut-two", "start": 0.0, "duration": width / RATE, "channel": [0, 1], "type": "MultiCut",
             "recording": recordings[1], "supervisions": supervisions[2:4]},
            {"id": "mix", "type": "MixedCut", "tracks": []},  # manifest_row
            {"id": "empty", "start": 0.0, "duration": 1.0, "channel": 0, "type": "MonoCut",
             "recording": recordings[2], "supervisions": []}]  # missing_transcript
    write_jsonl_gz(tmp_path / "demo_cuts_dev.jsonl.gz", cuts)
    summary = write_shard_set([tmp_path / "demo_cuts_dev.jsonl.gz"], tmp_path / "cuts")
    assert summary["problem_counts"] == {"manifest_row": 1, "missing_transcript": 1}
    rows = rows_by_id(tmp_path / "cuts")
    assert rows.keys() == {"long-a", "long-b", "two-left", "two-right"}
    for utt_id, row in rows.items():
        np.testing.assert_array_equal(read_audio(audio_bytes(row))[0], expected[utt_id], err_msg=utt_id)


def test_a_recordings_manifest_alone_or_a_supervisions_manifest_without_one_is_refused_by_name(tmp_path):
    write_jsonl_gz(tmp_path / "x_recordings_a.jsonl.gz", [recording("r", "r.flac", RATE)])
    write_jsonl_gz(tmp_path / "x_supervisions_b.jsonl.gz", [supervision("s", "r", 0.0, RATE)])
    runner = CliRunner()
    result = runner.invoke(cli, ["shard", str(tmp_path / "x_recordings_a.jsonl.gz"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "has no transcripts; give its supervisions manifest" in result.output
    result = runner.invoke(cli, ["shard", str(tmp_path / "x_supervisions_b.jsonl.gz"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "x_recordings_b.jsonl.gz" in result.output
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    result = runner.invoke(cli, ["shard", str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "bad.parquet: not a readable parquet file" in result.output


def test_lhotse_reads_each_channel_of_a_recording_from_its_own_source_and_refuses_a_span_of_channels(
        sample_flacs, tmp_path):
    a, b, c = (read_audio(path)[0] for path in sample_flacs[:3])
    width = max(len(a), len(b), len(c))
    three = np.stack([np.pad(x, (0, width - len(x))) for x in (a, b, c)], axis=1)
    soundfile.write(tmp_path / "three.wav", three, RATE, subtype="PCM_16")  # a, b, c on channels 0, 1, 2
    soundfile.write(tmp_path / "left.flac", np.pad(b, (0, width - len(b))), RATE)
    soundfile.write(tmp_path / "right.flac", np.pad(c, (0, width - len(c))), RATE)
    one_file = recording("three", "three.wav", width, (0, 1, 2))
    # one recording, one mono file per channel (as Lhotse writes an array's microphones)
    two_files = {**recording("pair", "left.flac", width), "channel_ids": [0, 1],
                 "sources": [{"type": "file", "channels": [0], "source": "left.flac"},
                             {"type": "file", "channels": [1], "source": "right.flac"}]}
    supervisions = [supervision("three-0", "three", 0.0, len(a), channel=0),
                    supervision("three-2", "three", 0.0, len(c), channel=2),
                    supervision("pair-1", "pair", 0.0, len(c), channel=1),
                    supervision("pair-0", "pair", 0.0, len(b), channel=0),
                    supervision("both", "three", 0.0, len(a), channel=[0, 1]),  # manifest_row: a span of channels
                    supervision("three-5", "three", 0.0, len(a), channel=5)]  # manifest_row: no such channel
    write_jsonl_gz(tmp_path / "mics_recordings_dev.jsonl.gz", [one_file, two_files])
    write_jsonl_gz(tmp_path / "mics_supervisions_dev.jsonl.gz", supervisions)
    summary = write_shard_set([tmp_path / "mics_supervisions_dev.jsonl.gz"], tmp_path / "shards")
    assert summary["problem_counts"] == {"manifest_row": 2}
    messages = sorted(problem["message"] for problem in summary["problems"])
    assert "supervision both spans channels [0, 1]" in messages[0] and "no source for channel 5" in messages[1]
    rows = rows_by_id(tmp_path / "shards")
    expected = {"three-0": a, "three-2": c, "pair-1": c, "pair-0": b}
    assert rows.keys() == expected.keys()
    for utt_id, samples in expected.items():
        np.testing.assert_array_equal(read_audio(audio_bytes(rows[utt_id]))[0], samples, err_msg=utt_id)


def test_an_unreadable_lhotse_manifest_is_refused_by_name_and_a_truncated_one_keeps_what_was_read(
        sample_flacs, tmp_path):
    samples = read_audio(sample_flacs[0])[0]
    soundfile.write(tmp_path / "long.flac", np.tile(samples, 40), RATE)
    step = len(samples) / RATE
    write_jsonl_gz(tmp_path / "cut_recordings_dev.jsonl.gz", [recording("long", "long.flac", 40 * len(samples))])
    whole = [supervision(f"long-{i:02d}", "long", i * step, len(samples), text="TRUNCATED " * 60) for i in range(40)]
    write_jsonl_gz(tmp_path / "whole_supervisions_dev.jsonl.gz", whole)
    packed = (tmp_path / "whole_supervisions_dev.jsonl.gz").read_bytes()
    (tmp_path / "cut_supervisions_dev.jsonl.gz").write_bytes(packed[: len(packed) // 2])  # a copy cut short
    (tmp_path / "garbled_supervisions_dev.jsonl.gz").write_bytes(b"not gzip at all " * 8)
    runner = CliRunner()
    refused = runner.invoke(cli, ["shard", str(tmp_path / "garbled_supervisions_dev.jsonl.gz"),
                                  "--out", str(tmp_path / "garbled")])
    assert refused.exit_code == 2 and "Traceback" not in refused.output, refused.output
    assert "garbled_supervisions_dev.jsonl.gz: not a readable Lhotse manifest" in refused.output
    cut = runner.invoke(cli, ["shard", str(tmp_path / "cut_supervisions_dev.jsonl.gz"), "--out", str(tmp_path / "cut")])
    assert cut.exit_code == 0 and "Traceback" not in cut.output, cut.output
    summary, _ = load_index(tmp_path / "cut")
    assert summary["problem_counts"] == {"unreadable_manifest": 1}
    assert "cut_supervisions_dev.jsonl.gz: unreadable or truncated" in summary["problems"][0]["message"]
    rows = rows_by_id(tmp_path / "cut")
    assert 0 < len(rows) < len(whole)  # the supervisions before the cut, each whole
    assert sorted(rows) == [f"long-{i:02d}" for i in range(len(rows))]
    for utt_id in sorted(rows):
        np.testing.assert_array_equal(read_audio(audio_bytes(rows[utt_id]))[0], samples, err_msg=utt_id)


def test_hugging_face_datasets_opens_a_shard_in_place_as_an_audio_dataset(sample_test_shards):
    import datasets

    summary, _ = load_index(sample_test_shards)
    shard = sample_test_shards / summary["shards"][0]["file"]
    dataset = datasets.Dataset.from_file(str(shard))
    assert dataset.cache_files == [{"filename": str(shard)}]  # memory-mapped where it lies, not copied
    assert dataset.features["audio"] == datasets.Audio(sampling_rate=RATE)
    stored = read_shard(shard).to_pylist()
    table = dataset.with_format("arrow")[:]
    assert table.num_rows == len(stored) == summary["shards"][0]["rows"]
    assert table.column("id").to_pylist() == [row["id"] for row in stored]
    for got, row in zip(table.column("audio").to_pylist(), stored):
        assert got["bytes"] == audio_bytes(row) and got["path"] == f"{row['id']}.flac"
        assert read_audio(got["bytes"])[0].shape[0] == row["num_samples"]
