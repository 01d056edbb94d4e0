"""Export a trained model for inference: ``export_model`` writes MindIR with a variable batch and
a variable number of frames (inputs ``features`` [B, 1, num_bins, T] float32 and ``lengths`` [B]
int32; outputs log-probabilities [T_out, B, num_classes] and output lengths [B]); the feature size
comes from the checkpoint's ``FeatureConfig``. No ONNX: MindSpore 2.10 writes an ONNX file for
this model that onnxruntime refuses to load (a shape-inference error on the padding mask), so
ds2stream does not offer it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..checkpoint import load_model
from ..model import open_inputs
from .decoding import DecoderConfig, make_decoder


def export_model(checkpoint: Path, out: Path, decoder: DecoderConfig | None = None) -> Path:
    """Write the checkpoint's network as MindIR (variable batch and frames), plus ``<out>.json``
    with the feature config, label set and model config, and the decoder settings if given (its
    LM copied beside the model as ``<out>.lm.arpa[.gz]``, so that the files travel together)."""
    import mindspore as ms

    if decoder is not None:
        make_decoder(decoder)  # a bad LM fails before anything is written
    network, meta = load_model(checkpoint)
    stem = Path(out).with_suffix("")
    ms.export(network, *open_inputs(network.config), file_name=str(stem), file_format="MINDIR")
    written = stem.with_suffix(".mindir")
    sidecar = {k: meta[k] for k in ("labels", "feature_config", "model_config")}
    if decoder is not None:
        settings = decoder.to_dict()
        if decoder.lm:
            lm_copy = written.with_suffix(".lm" + "".join(Path(decoder.lm).suffixes))
            shutil.copyfile(decoder.lm, lm_copy)
            settings["lm"] = lm_copy.name
        sidecar["decoder"] = settings
    written.with_suffix(".json").write_text(json.dumps(sidecar, indent=1))
    return written
