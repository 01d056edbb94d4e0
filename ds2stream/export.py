"""Export a trained model for inference, and run inference on audio files.

``export_model`` writes MindIR with a variable batch and a variable number of frames (inputs
``features`` [B, 1, num_bins, T] float32 and ``lengths`` [B] int32; outputs log-probabilities
[T_out, B, num_classes] and output lengths [B]); the feature size comes from the checkpoint's
``FeatureConfig``. No ONNX: MindSpore 2.10 writes an ONNX file for this model that onnxruntime
refuses to load (a shape-inference error on the padding mask), so ds2stream does not offer it.
``Transcriber`` turns audio files into text from a checkpoint or a MindIR file, through the same
features and the same greedy decoder as ``ds2stream eval``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .audio import read_audio, resample
from .evaluate import transcribe_batch
from .features import FeatureConfig, spectrogram
from .train import check_meta, load_model


def export_model(checkpoint: Path, out: Path) -> Path:
    """Write the checkpoint's network as MindIR (variable batch and frames), plus ``<out>.json``
    with the feature config, label set and model config."""
    import mindspore as ms

    network, meta = load_model(checkpoint)
    features = FeatureConfig.from_dict(meta["feature_config"])
    inputs = (ms.Tensor(shape=[None, 1, features.num_bins, None], dtype=ms.float32),
              ms.Tensor(shape=[None], dtype=ms.int32))
    stem = Path(out).with_suffix("")
    ms.export(network, *inputs, file_name=str(stem), file_format="MINDIR")
    written = stem.with_suffix(".mindir")
    sidecar = {k: meta[k] for k in ("labels", "feature_config", "model_config")}
    written.with_suffix(".json").write_text(json.dumps(sidecar, indent=1))
    return written


class Transcriber:
    """Audio files -> text, from a ds2stream checkpoint (.ckpt) or an exported MindIR (.mindir)."""

    def __init__(self, model_path: Path):
        import mindspore as ms

        model_path = Path(model_path)
        if model_path.suffix == ".mindir":
            sidecar = model_path.with_suffix(".json")
            if not sidecar.is_file():
                raise ValueError(f"{model_path}: its {sidecar.name} (feature config, labels) is missing")
            try:
                meta = json.loads(sidecar.read_text())
                check_meta(meta, model_path)
                features = FeatureConfig.from_dict(meta["feature_config"])
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{sidecar}: not a ds2stream model description ({err})") from None
            try:
                self.network = ms.nn.GraphCell(ms.load(str(model_path)))
            except (ValueError, RuntimeError, OSError) as err:
                raise ValueError(f"{model_path}: not a readable MindIR file ({' '.join(str(err).split())[:200]})") \
                    from None
            self._probe(model_path, sidecar, features)
        else:
            self.network, meta = load_model(model_path)
        self.features = FeatureConfig.from_dict(meta["feature_config"])

    def _probe(self, model_path: Path, sidecar: Path, features: FeatureConfig) -> None:
        """Run the MindIR once on silence shaped as the sidecar says: a model exported with another
        feature config fails here, with a message, instead of on the user's first file."""
        try:
            transcribe_batch(self.network, np.zeros((1, 1, features.num_bins, 64), np.float32), np.array([64]))
        except RuntimeError as err:
            raise ValueError(f"{model_path} does not take the {features.num_bins}-bin features that {sidecar.name} "
                             f"describes: the two come from different exports "
                             f"({' '.join(str(err).split('C++ Call Stack')[0].split())[:160]})") from None

    def transcribe_samples(self, samples: np.ndarray, rate: int) -> str:
        """The same features and decoder as ``ds2stream eval`` (``evaluate.transcribe_batch``)."""
        spect = spectrogram(resample(samples, rate, self.features.sample_rate), self.features)
        return transcribe_batch(self.network, spect[None, None], np.array([spect.shape[1]]))[0]

    def transcribe_file(self, path: Path) -> str:
        samples, rate = read_audio(path)
        return self.transcribe_samples(samples, rate)
