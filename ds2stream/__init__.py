"""ds2stream: DeepSpeech2 on LibriSpeech with MindSpore, fast on a CPU.

Data flows one way, one module per stage:
  text / audio -> features -> shards -> pipeline -> model -> train / evaluate / export -> cli
"""
__version__ = "0.1.0"
