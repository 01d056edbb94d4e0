"""Shared fixtures: the bundled FSDD sample (real speech, LibriSpeech layout)."""
from pathlib import Path

import pytest

from ds2stream.data import SAMPLE_DIR
from ds2stream.data.shards import ShardOptions, write_shard_set


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    assert SAMPLE_DIR.is_dir(), f"bundled sample missing at {SAMPLE_DIR}"
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_flacs(sample_dir) -> list[Path]:
    """A few real recordings from different speakers and digits."""
    files = sorted(sample_dir.glob("test/*/*/*.flac"))
    return files[::25]


@pytest.fixture(scope="session")
def sample_test_shards(tmp_path_factory, sample_dir) -> Path:
    """The sample's test split (300 recordings, 6 speakers) as a shard set of several shards."""
    out = tmp_path_factory.mktemp("sample-test") / "shards"
    write_shard_set([sample_dir / "test"], out, ShardOptions(shard_size_mb=0.3), jobs=2)
    return out
