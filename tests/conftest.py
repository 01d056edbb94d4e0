"""Shared fixtures: the bundled FSDD sample (real speech, LibriSpeech layout), and one demo run
(sharded, trained, evaluated) for every test that needs a trained model."""
import contextlib
import fcntl
import os
import pickle
import threading
from pathlib import Path

import pytest

from ds2stream.data import SAMPLE_DIR
from ds2stream.data.shards import ShardOptions, write_shard_set
from ds2stream.demo import run_demo
from ds2stream.testing import ensure_chromium


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


def install_chromium_quietly():
    with contextlib.suppress(Exception):
        ensure_chromium()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """One demo run for the whole test session: under pytest-xdist each worker is its own session,
    so the first worker to ask trains it (under a file lock) and the others read its result."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # no xdist: this process is the session
        return _demo(tmp_path_factory.mktemp("demo") / "demo")
    shared = tmp_path_factory.getbasetemp().parent  # the session's folder, above each worker's
    with open(shared / "demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = shared / "demo.pickle"
        if saved.exists():
            return pickle.loads(saved.read_bytes())
        found = _demo(shared / "demo")
        saved.write_bytes(pickle.dumps(found))
        return found


def _demo(out: Path):
    # The browser test's chromium (apt-get where missing) installs while the demo trains: the
    # training leaves part of a core idle. The browser test checks it again and reports failures.
    threading.Thread(target=install_chromium_quietly, daemon=True).start()
    return out, run_demo(out, progress=False, log=lambda *_: None)
