"""Export a trained model for inference: ``export_model`` writes MindIR with a variable batch and
a variable number of frames (inputs ``features`` [B, 1, num_bins, T] float32 and ``lengths`` [B]
int32; outputs log-probabilities [T_out, B, num_classes] and output lengths [B]); the feature size
comes from the checkpoint's ``FeatureConfig``. No ONNX: MindSpore 2.10 writes an ONNX file for
this model that onnxruntime refuses to load (a shape-inference error on the padding mask), so
ds2stream does not offer it.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..checkpoint import load_model
from ..features import FeatureConfig


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
