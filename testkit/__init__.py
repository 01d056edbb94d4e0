"""What the tests and the benches build their inputs and drive ds2stream with, kept out of the
installed package: LibriSpeech-shaped corpora from real audio (``corpora``, and the
``make_librispeech_like`` tool), streaming models built in seconds (``models``), constructed CTC
log-probabilities (``log_probs``), an archive server, ``ds2stream serve`` in a process of its own,
msrun machines, a headless browser, and the Debian packages they need.

Importable from a checkout: pytest puts its root on the path (``pythonpath`` in pyproject.toml),
``bench/harness.py`` does the same for the benches.
"""
