"""Shared fixtures: the bundled FSDD sample (real speech, LibriSpeech layout), and one demo run
(sharded, trained, evaluated) for every test that needs a trained model."""
import contextlib
import fcntl
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ds2stream.data import SAMPLE_DIR
from ds2stream.data.shards import ShardOptions, write_shard_set
from testkit.browser import ensure_chromium

#: Files that train the most, started first and in this order so that the two workers end
#: together (pytest-xdist hands out whole files in collection order, ``--no-loadscope-reorder`` in
#: pyproject.toml, and gives a worker its next file when two tests of its current one are left:
#: test_faults' worker then takes test_distributed, test_train's worker the short files).
START_FIRST = ("test_faults.py", "test_train.py", "test_distributed.py")
#: Of the files that need the demo's model, the longest first: the two-machine scenario (3 minutes,
#: much of it waiting for a lost node to be noticed) goes to the first worker free, the other
#: worker runs the rest beside it instead of idling at the end.
DEMO_FIRST = ("test_two_machines.py",)


def needs_demo(item) -> bool:
    """Whether a test uses the demo's trained model (directly or through another fixture)."""
    return "demo_run" in item.fixturenames


def pytest_collection_modifyitems(config, items):
    """Files with a test that needs the demo's trained model go last: until the demo run (started
    before the first test) ends, both workers run the others instead of one of them waiting."""
    demo_files = {item.path for item in items if needs_demo(item)}

    def rank(item):
        name = item.path.name
        first = DEMO_FIRST if item.path in demo_files else START_FIRST
        return item.path in demo_files, first.index(name) if name in first else len(first)

    items.sort(key=rank)  # stable: files keep their collection order otherwise


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


DEMO_PROCESS = Path(__file__).with_name("demo_process.py")
DEMO_TIMEOUT = 1800  # seconds a test waits for the demo run (it takes 4-8 minutes beside the suite)


def install_chromium_quietly():
    with contextlib.suppress(Exception):
        ensure_chromium()


def session_folder(tmp_path_factory) -> Path:
    """A folder every process of this test session sees: under pytest-xdist each worker's basetemp
    is a folder of the session's own."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


class SharedDemo:
    """One demo run (sharded, trained, evaluated) for every test of the session that needs a trained
    model: in a process of its own, started before the first test rather than when a worker first
    reaches a test that needs it (it is the suite's longest path), read by every worker."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.result, self.failed = folder / "demo.pickle", folder / "demo.failed"
        self.pid, self.log = folder / "demo.pid", folder / "demo.log"

    def start(self) -> None:
        with open(self.folder / "demo.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.pid.exists():  # another worker started it
                return
            with open(self.log, "wb") as log:
                process = subprocess.Popen([sys.executable, str(DEMO_PROCESS), str(self.folder)], stdout=log,
                                           stderr=subprocess.STDOUT)
            threading.Thread(target=process.wait, daemon=True).start()  # reaped: its pid goes when it ends
            self.pid.write_text(str(process.pid))
        # The browser test's chromium (apt-get where missing) installs while the demo trains. The
        # browser test checks it again and reports failures.
        threading.Thread(target=install_chromium_quietly, daemon=True).start()

    def wait(self):
        self.start()
        deadline = time.monotonic() + DEMO_TIMEOUT
        while not self.result.exists():
            if self.failed.exists():
                pytest.fail(f"the demo run failed:\n{self.failed.read_text()[-3000:]}")
            if not self._running() and not self.result.exists():
                pytest.fail(f"the demo process ended without a result; its output:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no demo result after {DEMO_TIMEOUT} s; its output:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)
        return pickle.loads(self.result.read_bytes())

    def _running(self) -> bool:
        try:
            os.kill(int(self.pid.read_text()), 0)
        except ProcessLookupError:
            return False
        return True


@pytest.fixture(scope="session", autouse=True)
def demo_started_early(request, tmp_path_factory):
    """Starts the demo run before the first test, if a collected test needs it."""
    if any(needs_demo(item) for item in request.session.items):
        SharedDemo(session_folder(tmp_path_factory)).start()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """(the demo's output folder, its DemoResult): one run for the whole test session."""
    return SharedDemo(session_folder(tmp_path_factory)).wait()
