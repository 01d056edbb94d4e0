"""`ds2stream shard URL` against `ds2stream shard FILE`, one run on this machine: speed, peak
memory at two archive sizes, and utterances lost or duplicated over many injected faults.

The archive is LibriSpeech-shaped real speech (the bundled digits joined to train-clean-100's
lengths), repeated under new speaker ids up to --gigabytes; the URL is served on loopback by the
tests' archive server (a Python thread in this process). Each `shard` runs as its own process
(harness.run: its peak memory is the largest sum of RSS over it and its workers, sampled every
0.1 s; shared pages are counted once per process: an upper bound).

    python bench/remote.py [--gigabytes 2] [--faults 24] [--out bench/out/remote.json]
"""
import argparse
import hashlib
import io
import json
import random
import sys
import tarfile
import tempfile
from pathlib import Path

import harness
import pyarrow.ipc

from ds2stream.data import SAMPLE_DIR
from testkit.archive_server import ArchiveServer, Behaviour
from testkit.corpora import synthetic_librispeech


def build_archive(path: Path, gigabytes: float, work: Path) -> dict:
    """A .tar.gz of ``gigabytes``: one synthetic hour of real speech, copied under new speakers."""
    corpus = synthetic_librispeech(SAMPLE_DIR / "train", work / "one-hour", hours=1.0)
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    one_copy = sum(p.stat().st_size for p in files)
    copies = max(1, round(gigabytes * 1e9 / one_copy))
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for copy in range(copies):
            for file in files:
                parts = file.relative_to(corpus).parts  # train-clean-100/<spk>/<chap>/<name>
                if len(parts) < 4:
                    continue
                speaker = str(int(parts[1]) + 1000 * copy)
                name = parts[3].replace(f"{parts[1]}-", f"{speaker}-", 1)
                data = file.read_bytes()
                if name.endswith(".trans.txt"):
                    data = data.decode().replace(f"{parts[1]}-", f"{speaker}-").encode()
                info = tarfile.TarInfo(f"LibriSpeech/{parts[0]}/{speaker}/{parts[2]}/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return {"copies": copies, "bytes": path.stat().st_size}


def run_shard(source: str, out: Path, jobs: int, *extra: str) -> dict:
    child = harness.run([sys.executable, "-m", "ds2stream.cli", "shard", source, "--out", str(out), "--jobs", str(jobs),
                         *extra])
    summary = json.loads((out / "index.json").read_text())
    return {"seconds": round(child.seconds, 2), "peak_rss_mb": round(child.peak_rss_mb, 1),
            "utterances": summary["utterances"], "hours": round(summary["hours"], 3),
            "retry_lines": (child.stdout + child.stderr).count("retry ")}


def shard_bytes(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.arrow"))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, default=2.0, help="size of the large archive")
    parser.add_argument("--faults", type=int, default=24, help="connections cut at random offsets, one run")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/out/remote.json"))
    args = parser.parse_args()
    report = {"jobs": args.jobs, "runs": []}
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        tmp = Path(tmp)
        archives = {"small": tmp / "small.tar.gz", "large": tmp / "large.tar.gz"}
        report["archives"] = {"small": build_archive(archives["small"], 0.05, tmp / "s"),
                              "large": build_archive(archives["large"], args.gigabytes, tmp / "l")}
        print(json.dumps(report["archives"]))
        with ArchiveServer({p.name: p for p in archives.values()}) as server:
            for size, archive in archives.items():
                for way in ("file", "url"):
                    out = tmp / f"{size}-{way}"
                    source = str(archive) if way == "file" else server.url(archive.name)
                    run = {"archive": size, "way": way, **run_shard(source, out, args.jobs)}
                    run["same_shards_as_file"] = shard_bytes(out) == shard_bytes(tmp / f"{size}-file")
                    report["runs"].append(run)
                    print(json.dumps(run))
            size = report["archives"]["large"]["bytes"]
            cuts = sorted(random.Random(0).sample(range(1, size), args.faults))
            server.behaviour = Behaviour(cuts=list(cuts))
            out = tmp / "large-faults"
            run = {"archive": "large", "way": "url with faults", **run_shard(server.url("large.tar.gz"), out, args.jobs,
                                                                           "--timeout", "5")}
            run["faults_injected"] = server.cuts_done
            ids = {}
            for name in shard_bytes(out):
                if name.startswith("shard-"):
                    with pyarrow.ipc.open_stream(out / name) as reader:
                        for i in reader.read_all().column("id").to_pylist():
                            ids[i] = ids.get(i, 0) + 1
            reference = set()
            for name in shard_bytes(tmp / "large-file"):
                if name.startswith("shard-"):
                    with pyarrow.ipc.open_stream(tmp / "large-file" / name) as reader:
                        reference.update(reader.read_all().column("id").to_pylist())
            run["lost"] = len(reference - set(ids))
            run["duplicated"] = sum(n - 1 for n in ids.values())
            run["same_shards_as_file"] = shard_bytes(out) == shard_bytes(tmp / "large-file")
            report["runs"].append(run)
            print(json.dumps(run))
    by = {(r["archive"], r["way"]): r for r in report["runs"]}
    report["url_speed_vs_file"] = {size: round(by[(size, "file")]["seconds"] / by[(size, "url")]["seconds"], 3)
                                   for size in ("small", "large")}
    harness.save(args.out, report)
    print(json.dumps(report["url_speed_vs_file"]))


if __name__ == "__main__":
    main()
