"""How close a training step comes to the CPU's peak: measured fp32 GEMM peak per ISA, every preset's
FLOPs per audio-second from its config, and achieved GFLOP/s of real runs.

- **Peaks**: the machine's, as numpy's BLAS (OpenBLAS) reaches it on a square 2048 fp32 GEMM on
  every core; and MindSpore's own MatMul (what a step's GEMMs run through) in a child process per
  ISA the CPU has (``ONEDNN_MAX_CPU_ISA`` = AVX2, and AVX512_CORE where ``avx512f`` is present): a
  square 1024 GEMM and the shape of ``lean``'s LSTM input GEMM (a batch's frames x 512 x 1024); the
  best of several repeats of each.
- **FLOPs per audio-second** of every preset, counted from its ``ModelConfig`` by
  ``step.forward_flops`` (convs, LSTMs/GRUs, head; training = 3 x forward), at 100 frames a second.
- **Achieved** (``--runs RUN_DIR ...``): each run's steps from its ``metrics.jsonl`` (the padded
  batch shape and step seconds of every step, the first one, which compiles, left out): FLOPs of
  the padded batches over the summed step time, and that as a share of the peak of the ISA the
  step ran at (the convolutions' cap: AVX2 unless the user set ``ONEDNN_MAX_CPU_ISA``).

No run is started here: give it runs made on this machine (e.g. `bench/presets.py`'s).

    python bench/roofline.py [--runs runs/lean runs/zoo] [--out bench/out/roofline.json]
    python bench/roofline.py --report bench/out/roofline.json
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import harness
import numpy as np
from step import forward_flops

FRAMES_PER_SECOND = 100  # the 10-ms hop of every preset's features
#: A training step's FLOPs as a multiple of its forward pass (backward: twice the forward).
TRAIN_FACTOR = 3
#: GEMM shapes (M, K, N) the peak is measured at: square, and lean's LSTM input GEMM for a batch of
#: 8,000 frames subsampled 3x (2,667 rows, 512 inputs: 16 channels x 32 bins, 4 gates x 256).
GEMM_SHAPES = ((1024, 1024, 1024), (2667, 512, 1024))
REPEATS = 20


def isas_of_this_cpu() -> list[str]:
    """The oneDNN ISA caps worth measuring on this CPU."""
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return ["AVX2"] + (["AVX512_CORE"] if "avx512f" in flags else [])


def best_seconds(run) -> float:
    """The shortest of ``REPEATS`` timed calls of ``run``, after one untimed call (which warms up
    the library: oneDNN creates its primitive there)."""
    import time

    run()
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def gemm_worker(spec: dict) -> dict:
    """In a child with ``ONEDNN_MAX_CPU_ISA`` set: the best GFLOP/s of MindSpore's MatMul per shape."""
    import mindspore as ms
    from mindspore import ops

    from ds2stream.runtime import quiet_framework_logs

    quiet_framework_logs()
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    rng = np.random.default_rng(0)
    result = {}
    for m, k, n in GEMM_SHAPES:
        a = ms.Tensor(rng.standard_normal((m, k), dtype=np.float32))
        b = ms.Tensor(rng.standard_normal((k, n), dtype=np.float32))
        result[f"{m}x{k}x{n}"] = 2 * m * k * n / best_seconds(lambda: ops.matmul(a, b).asnumpy()) / 1e9
    return result


def blas_peak() -> float:
    """GFLOP/s of numpy's BLAS on a square 2048 fp32 GEMM, best of ``REPEATS``: the machine's reach."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2048, 2048), dtype=np.float32) for _ in range(2))
    return 2 * 2048 ** 3 / best_seconds(lambda: a @ b) / 1e9


def measure_peaks() -> dict:
    """{ISA: {shape: GFLOP/s, "peak": the best}} for every ISA cap this CPU has."""
    peaks = {}
    for isa in isas_of_this_cpu():
        shapes = harness.call(__file__, "gemm_worker", {}, env={**os.environ, "ONEDNN_MAX_CPU_ISA": isa})
        shapes = {k: v for k, v in shapes.items() if "x" in k}
        peaks[isa] = {**{k: round(v, 1) for k, v in shapes.items()}, "peak": round(max(shapes.values()), 1)}
    return peaks


def preset_flops() -> dict:
    """{preset: forward and training GFLOPs per audio-second}, from each preset's model config."""
    import dataclasses

    from ds2stream.features import FeatureConfig
    from ds2stream.presets import PRESETS

    seconds, result = 10.0, {}
    for name, preset in PRESETS.items():
        features = preset.train.features or FeatureConfig()  # None: the shards' own, linear by default
        model = dataclasses.replace(preset.model, num_bins=features.num_bins)  # as the trainer does
        forward = forward_flops(model, 1, int(seconds * FRAMES_PER_SECOND)) / seconds / 1e9
        result[name] = {"forward_gflop_per_audio_second": forward,
                        "train_gflop_per_audio_second": TRAIN_FACTOR * forward}
    return result


def achieved(run_dir: Path) -> dict:
    """A run's FLOPs over its summed step time, from the padded batch shape of every step."""
    from ds2stream.model import ModelConfig

    config = ModelConfig.from_dict(json.loads((run_dir / "config.json").read_text())["model_config"])
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [s for s in steps if "shape" in s and "step_seconds" in s][1:]  # the first step compiles
    if not steps:
        raise SystemExit(f"{run_dir}: no timed steps in metrics.jsonl")
    flops = sum(TRAIN_FACTOR * forward_flops(config, s["shape"][0], s["shape"][-1]) for s in steps)
    seconds = sum(s["step_seconds"] for s in steps)
    audio = sum(s["audio_seconds"] for s in steps)
    return {"steps": len(steps), "step_seconds": seconds, "audio_seconds_per_step_second": audio / seconds,
            "gflops": flops / seconds / 1e9, "padded_gflop_per_audio_second": flops / audio / 1e9}


def report(result: dict) -> str:
    isa = result["step_isa"]
    peak = result["peaks"][isa]["peak"]
    shapes = [s for s in result["peaks"][isa] if s != "peak"]
    blas = result["blas_peak"]
    lines = [f"CPU: {result['machine']['cpu']}", "", f"numpy's BLAS, square 2048 GEMM: {blas:.1f} GFLOP/s", "",
             "| ISA cap | " + " | ".join(f"GEMM {s} GFLOP/s" for s in shapes) + " | peak |",
             "|---|" + "---:|" * len(result["peaks"][isa])]
    for name, shapes in result["peaks"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in shapes.values()) + " |")
    lines += ["", "| preset | forward GFLOP per audio-s | training GFLOP per audio-s |", "|---|---:|---:|"]
    for name, flops in result["presets"].items():
        lines.append(f"| `{name}` | {flops['forward_gflop_per_audio_second']:.3f} | "
                     f"{flops['train_gflop_per_audio_second']:.3f} |")
    if result["runs"]:
        lines += ["", f"| run | steps | audio-s per step-s | GFLOP per audio-s (padded) | GFLOP/s | "
                      f"% of MindSpore's {isa} MatMul | % of the BLAS peak |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, run in result["runs"].items():
            lines.append(f"| {name} | {run['steps']} | {run['audio_seconds_per_step_second']:.1f} | "
                         f"{run['padded_gflop_per_audio_second']:.3f} | {run['gflops']:.1f} | "
                         f"{run['gflops'] / peak:.0%} | {run['gflops'] / blas:.0%} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="run folders made on this machine")
    parser.add_argument("--out", type=Path, default=Path("bench/out/roofline.json"))
    parser.add_argument("--report", type=Path, help="print the tables of an earlier result")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return
    result = {"blas_peak": round(blas_peak(), 1), "peaks": measure_peaks(), "presets": preset_flops(),
              "step_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "AVX2"),
              "runs": {str(run): achieved(run) for run in args.runs}}
    harness.save(args.out, result)
    print(report(json.loads(args.out.read_text())))


if __name__ == "__main__":
    main()
