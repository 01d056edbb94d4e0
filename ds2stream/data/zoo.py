"""The model zoo's DeepSpeech2 recipe, reproduced where ds2stream is measured against it.

``prepare_zoo_manifest`` is the seed's data preparation: every flac decoded and written again as
wav, one transcript file per utterance, a json manifest, then a ``wav_path,txt_path`` csv. The
benchmarks time it against ``ds2stream shard``, and the tests use its csv as an input format.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import soundfile

from .sources import Problem, SourceItem, iter_folder


def prepare_zoo_manifest(librispeech_dir: Path, out_dir: Path) -> Path:
    """flac -> wav and transcript -> txt under out_dir/{wav,txt}; json and csv manifests.

    :return: the csv manifest's path.
    """
    out_dir = Path(out_dir)
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    (out_dir / "txt").mkdir(parents=True, exist_ok=True)
    entries = []
    for item in iter_folder(Path(librispeech_dir)):
        if isinstance(item, Problem):
            continue
        assert isinstance(item, SourceItem)
        samples, rate = soundfile.read(item.audio_path, dtype="int16")
        wav_path = out_dir / "wav" / f"{item.id}.wav"
        txt_path = out_dir / "txt" / f"{item.id}.txt"
        soundfile.write(wav_path, samples, rate, subtype="PCM_16")
        txt_path.write_text(item.transcript.lower() + "\n")
        entries.append({"wav_path": str(wav_path), "txt_path": str(txt_path),
                         "duration": len(samples) / rate})
    (out_dir / "manifest.json").write_text(json.dumps(entries))
    csv_path = out_dir / "manifest.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        for entry in json.loads((out_dir / "manifest.json").read_text()):
            writer.writerow([entry["wav_path"], entry["txt_path"]])
    os.sync()
    return csv_path
