"""What every bench shares, so that every figure carries where it came from.

``machine()``  the CPU (model, family and model numbers, cores, the vector extensions that matter
               here and oneDNN's cap), memory, Python, MindSpore, the commit and the date;
``run()``      a command in a process of its own: its wall seconds and its peak memory (the
               largest sum of RSS over it and its workers, sampled every 0.1 s, or the largest
               single process the kernel saw, whichever is larger), its output kept or logged;
``call()``     a function of a bench script run that way (its own MindSpore, its own peak memory):
               ``call(bench/step.py, "seed_worker", spec)`` runs ``seed_worker(spec)`` in a child
               and returns its JSON result with the child's seconds and peak memory;
``save()``     a report as JSON, with ``machine()`` and the command that made it.

    python bench/harness.py        # prints machine()
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
# The benches run from a checkout, on its testkit (corpora, servers, machines): importing the
# harness, as every bench does first, makes it importable. Appended: an installed ds2stream wins.
sys.path.append(str(REPOSITORY))


def cpu_summary() -> str:
    """The CPU every figure is from: model name, cores, and the vector extensions that matter here."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    vector = [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f in flags]
    return (f"{fields.get('model name', platform.processor())} (family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}), {os.cpu_count()} cores, {' '.join(vector)}")


def _commit() -> str | None:
    try:
        head = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPOSITORY), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}{' with local changes' if dirty else ''}"


#: The commit a bench runs, read when it starts: the tree may move while a long bench runs.
STARTED_AT_COMMIT = _commit()


def machine() -> dict:
    """Where a figure was measured."""
    try:
        import mindspore
        mindspore_version = mindspore.__version__
    except ImportError:
        mindspore_version = None
    memory = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0) if Path("/proc/meminfo").exists() else 0
    # ds2stream caps oneDNN at AVX2 when it loads its model (ds2stream/model.py) unless this is set.
    return {"cpu": cpu_summary(), "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "AVX2"),
            "memory_gb": round(memory / 2**20, 1), "python": platform.python_version(), "mindspore": mindspore_version,
            "commit": STARTED_AT_COMMIT,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


@dataclasses.dataclass
class Child:
    returncode: int
    seconds: float
    peak_rss_mb: float
    stdout: str = ""
    stderr: str = ""


def run(command: list[str], *, env: dict | None = None, log: Path | None = None, capture: bool = True,
        check: bool = True) -> Child:
    """``command`` in a process of its own; its output appended to ``log``, else captured (in the
    Child), else (``capture=False``) shown as it comes."""
    import psutil

    started = time.perf_counter()
    with open(log, "a") if log else tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        streams = {"stdout": out, "stderr": subprocess.STDOUT if log else err} if log or capture else {}
        process = subprocess.Popen(command, env={**os.environ, **(env or {})}, **streams)
        watched, peak = psutil.Process(process.pid), 0
        while True:
            try:
                tree = [watched, *watched.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.1)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, with its resource usage
        # The kernel's figure: the largest single process of the tree (sampling can miss a spike).
        child = Child(process.returncode, time.perf_counter() - started, max(peak, usage.ru_maxrss * 1024) / 1e6)
        if capture and not log:
            out.seek(0)
            err.seek(0)
            child.stdout, child.stderr = out.read(), err.read()
    if check and child.returncode != 0:
        where = f"see {log}" if log else child.stderr[-3000:] if capture else "its output is above"
        raise SystemExit(f"{' '.join(map(str, command[:4]))} ... failed (exit {child.returncode}): {where}")
    return child


def call(script: Path | str, function: str, spec: dict, *, env: dict | None = None, log: Path | None = None) -> dict:
    """``function(spec)`` of the bench script ``script``, in a child process (its output appended
    to ``log``, else shown); its JSON result, with ``seconds`` and ``peak_rss_mb`` of the child."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        child = run([sys.executable, __file__, "--call", str(script), function, json.dumps(spec), result.name],
                    env=env, log=log, capture=False)
        return {**json.loads(Path(result.name).read_text()), "seconds": round(child.seconds, 2),
                "peak_rss_mb": round(child.peak_rss_mb, 1)}


def _called(script: str, function: str, spec: str, result: str) -> None:
    """In the child: import the bench script as a module and run the function."""
    sys.path.insert(0, str(Path(script).resolve().parent))
    loaded = importlib.util.spec_from_file_location(Path(script).stem, script)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    value = getattr(module, function)(json.loads(spec))
    Path(result).write_text(json.dumps(value if value is not None else {}))


def save(path: Path | str, report: dict) -> None:
    """``report`` as JSON at ``path`` (its folder made), with the machine and the command beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    command = ["python", os.path.relpath(sys.argv[0], REPOSITORY) if sys.argv[0] else "?", *sys.argv[1:]]
    path.write_text(json.dumps({"machine": machine(), "command": " ".join(command), **report}, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--call"]:
        _called(*sys.argv[2:6])
    else:
        print(json.dumps(machine(), indent=1))
