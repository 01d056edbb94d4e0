"""Export a trained model for inference: ``export_model`` writes MindIR with a variable batch and
a variable number of frames (inputs ``features`` [B, 1, num_bins, T] float32 and ``lengths`` [B]
int32; outputs log-probabilities [T_out, B, num_classes] and output lengths [B]); the feature size
comes from the checkpoint's ``FeatureConfig``. No ONNX: MindSpore 2.10 writes an ONNX file for
this model that onnxruntime refuses to load (a shape-inference error on the padding mask), so
ds2stream does not offer it.

A forward-only model (the ``stream`` preset) also gets its streaming stages, each a MindIR with
open batch and frames (``<out>.stream-conv1.mindir`` ..., ``<out>.stream-rnn.mindir``: the RNN
layers from a state, state out) and the lookahead and classifier weights (``<out>.stream-head.npz``),
named in the sidecar's ``"stream"``: ``transcribe --stream`` and ``serve`` run streams from them.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

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
    if not network.config.bidirectional:
        sidecar["stream"] = export_stream_stages(network, meta, stem)
    written.with_suffix(".json").write_text(json.dumps(sidecar, indent=1))
    return written


def export_stream_stages(network, meta: dict, stem: Path) -> dict:
    """The streaming stages of a forward-only network beside ``stem``; their file names."""
    import mindspore as ms

    from ..features import FeatureConfig
    from .stream import HEAD_PARAMETERS, StreamingModel

    model = StreamingModel.from_network(network, network.config, FeatureConfig.from_dict(meta["feature_config"]))
    names = {"convs": [], "rnn": f"{stem.name}.stream-rnn.mindir", "head": f"{stem.name}.stream-head.npz"}
    for i, stage in enumerate(model.convs, 1):
        ms.export(stage, *stage.get_inputs(), file_name=str(stem.with_name(f"{stem.name}.stream-conv{i}")),
                  file_format="MINDIR")
        names["convs"].append(f"{stem.name}.stream-conv{i}.mindir")
    ms.export(model.rnn, *model.rnn.get_inputs(), file_name=str(stem.with_name(f"{stem.name}.stream-rnn")),
              file_format="MINDIR")
    head = dict(zip(HEAD_PARAMETERS, (model.lookahead, model.classifier)))
    np.savez(stem.with_name(names["head"]), **{name: value for name, value in head.items() if value is not None})
    return names
