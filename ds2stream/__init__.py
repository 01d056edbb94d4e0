"""ds2stream: DeepSpeech2 on LibriSpeech with MindSpore, fast on a CPU.

Data flows one way, one package or module per stage:
  data (audio, text, sources, shards) -> features -> pipeline -> model -> checkpoint
  -> training | inference (decoding, evaluate, export, transcribe) -> cli
"""
__version__ = "0.1.0"
