"""ds2stream: DeepSpeech2 on LibriSpeech with MindSpore, fast on a CPU.

Data flows one way, one package or module per stage (tests/test_layout.py holds the table):
  data (audio, text, sources, ...) -> features -> data.shards -> pipeline -> model -> checkpoint
  -> error_rates -> inference (decoding, evaluate, export, transcribe, serve, ...)
  -> training (its dev evaluation is inference's) -> presets -> demo -> cli
"""
__version__ = "0.1.0"
