"""Files -> shards: reading audio, the label set and text normalisation, the inputs ``ds2stream
shard`` reads, and Arrow shard sets.

  ``audio``       any file libsndfile reads -> int16 mono samples; resampling;
  ``text``        the label set (its one home) and transcript normalisation;
  ``sources``     LibriSpeech folders, .tar.gz streams, zoo CSV manifests -> utterances or problems;
  ``hf_parquet``  Hugging Face parquet files of LibriSpeech, as a source;
  ``lhotse``      Lhotse manifests (supervisions or cuts), as a source;
  ``inputs``      which source reads an input;
  ``remote``      archives over HTTP(S), resumed across dropped connections, checksummed;
  ``shards``      utterances -> an Arrow shard set with a length index, resumable; it stores the
                  features when asked, and their config: the one module here that imports ``features``;
  ``zoo``         the model zoo's data preparation (flac -> wav, manifests), for comparison.
"""
from pathlib import Path

#: The bundled subset of the Free Spoken Digit Dataset (CC BY-SA 4.0), in LibriSpeech layout.
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample" / "fsdd"
