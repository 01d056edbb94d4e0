"""Inference: a checkpoint or MindIR -> text. Imports nothing from ``training``.

  ``decoding``    DecoderConfig; greedy decoding (the native kernel), or the beam search;
  ``beam``        CTC prefix beam search, with a word n-gram LM by shallow fusion;
  ``lm``          word n-gram LMs: Kneser-Ney estimation, ARPA files;
  ``align``       word times from the CTC alignment of a transcript;
  ``evaluate``    the eval loop over a shard set (WER/CER from ``error_rates``), the LM weights' search;
  ``export``      a checkpoint -> MindIR with variable batch and frames, and its .json;
  ``transcribe``  audio files -> text, whole or streamed;
  ``stream``      chunked inference of a forward-only model, state carried across chunks;
  ``endpoint``    where a stream that stays open ends an utterance (the rules), and its segments;
  ``serve``       an HTTP API, a WebSocket stream and a page (``web/``) over ``transcribe``.
"""
