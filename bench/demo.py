"""The README's main job as a user runs it: `ds2stream demo`, timed as a whole process, repeated.

Each run is `ds2stream demo --out DIR` in a process of its own (shard, train, evaluate: everything
but the install); its test scores and stage seconds come from the DIR/demo.json the demo writes.
Training is deterministic on one CPU, so the runs' scores agree and their times show the noise.

    python bench/demo.py [--runs 3] [--out docs/results/demo.json]
    python bench/demo.py --report docs/results/demo.json     # the table
"""
import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import harness

from ds2stream.demo import RESULT_FILE


def measure(runs: int) -> dict:
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "demo"
            child = harness.run([shutil.which("ds2stream") or sys.exit("ds2stream is not installed"), "demo",
                                 "--out", str(out)])
            result = json.loads((out / RESULT_FILE).read_text())
        results.append({**result, "wall_seconds": round(child.seconds, 1), "peak_rss_mb": round(child.peak_rss_mb)})
        print(f"run {len(results)}: WER {result['test']['wer']:.2%}, CER {result['test']['cer']:.2%}, "
              f"{child.seconds:.0f} s", flush=True)
    return {"runs": results}


def report(data: dict) -> str:
    """The markdown table: one row a run."""
    lines = ["| run | test WER | test CER | shard (s) | train (s) | eval (s) | whole process (s) | peak RSS |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for number, run in enumerate(data["runs"], 1):
        stages = run["stage_seconds"]
        lines.append(f"| {number} | {run['test']['wer']:.2%} | {run['test']['cer']:.2%} | {stages['shard']:.1f} | "
                     f"{stages['train']:.1f} | {stages['eval']:.1f} | {run['wall_seconds']:.0f} | "
                     f"{run['peak_rss_mb'] / 1000:.1f} GB |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/out/demo.json"))
    parser.add_argument("--report", type=Path, help="print the table of this JSON and stop")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return
    harness.save(args.out, measure(args.runs))
    print(report(json.loads(args.out.read_text())))


if __name__ == "__main__":
    main()
