"""Shared fixtures: the bundled FSDD sample (real speech, LibriSpeech layout)."""
from pathlib import Path

import pytest

from ds2stream.data import SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    assert SAMPLE_DIR.is_dir(), f"bundled sample missing at {SAMPLE_DIR}"
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_flacs(sample_dir) -> list[Path]:
    """A few real recordings from different speakers and digits."""
    files = sorted(sample_dir.glob("test/*/*/*.flac"))
    return files[::25]
