"""Inference: a checkpoint or MindIR -> text. Imports nothing from ``training``.

  ``decoding``    CTC greedy decoding (the native kernel);
  ``evaluate``    WER/CER and the eval loop over a shard set;
  ``export``      a checkpoint -> MindIR with variable batch and frames, and its .json;
  ``transcribe``  audio files -> text.
"""
