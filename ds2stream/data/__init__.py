"""Files -> shards: reading audio, the label set and text normalisation, LibriSpeech sources
(folders, archives, zoo CSV), and Arrow shard sets.

  ``audio``    any file libsndfile reads -> int16 mono samples; resampling;
  ``text``     the label set (its one home) and transcript normalisation;
  ``sources``  LibriSpeech folders, .tar.gz streams, zoo CSV manifests -> utterances or problems;
  ``shards``   utterances -> an Arrow shard set with a length index, resumable;
  ``zoo``      the model zoo's data preparation (flac -> wav, manifests), for comparison.
"""
from pathlib import Path

#: The bundled subset of the Free Spoken Digit Dataset (CC BY-SA 4.0), in LibriSpeech layout.
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample" / "fsdd"
