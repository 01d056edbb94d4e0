"""Helper of conftest.py (not a test): the test session's one demo run, in a process of its own.

    python demo_process.py FOLDER

Runs ``ds2stream demo``'s job into ``FOLDER/demo`` and writes ``FOLDER/demo.pickle`` (the pair
``(FOLDER/demo, DemoResult)``) when it is done, or ``FOLDER/demo.failed`` (the traceback).
"""
import pickle
import sys
import traceback
from pathlib import Path


def main(folder: Path) -> None:
    from ds2stream.demo import run_demo
    from ds2stream.runtime import quiet_framework_logs

    quiet_framework_logs()
    out = folder / "demo"
    try:
        found = (out, run_demo(out, progress=False, log=lambda *_: None))
    except BaseException:
        (folder / "demo.failed").write_text(traceback.format_exc())
        raise
    partial = folder / "demo.pickle.partial"
    partial.write_bytes(pickle.dumps(found))
    partial.rename(folder / "demo.pickle")  # whole or absent: the tests poll for it


if __name__ == "__main__":
    main(Path(sys.argv[1]))
