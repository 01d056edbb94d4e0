"""Data parallel across two machines: two network namespaces joined by a veth pair, each with its
own address, one msrun per "machine" (1 rank each), the run directory on the filesystem they share.

One scenario serves every test here. Both nodes start training from the demo's model; once
the run has passed its step-2 checkpoint, every process of node 1 is killed (its power cut). Node 0
must stop by itself within a bounded time, saying that a peer was lost. Both nodes are then started
again with ``resume`` and train to the end of the epoch (step 7), where the ranks evaluate the dev
split, each its own share. The ranks end bit-identical, equal to one process replaying the same
global batches, and the dev WER/CER they logged equal one process evaluating the checkpoint.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ds2stream.checkpoint import load_model
from ds2stream.inference.evaluate import evaluate
from ds2stream.pipeline import ShardSet
from ds2stream.runtime import use_graph_mode
from ds2stream.training.distributed import NODE_TIMEOUT
from testkit.machines import TwoMachines, namespaces_forbidden

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("distributed_worker.py")
STEPS = 7  # one epoch of the sample's test split (as in test_distributed.py)
# One epoch: the run ends after the epoch end's dev evaluation and checkpoint (a step limit would
# stop it before them).
OVERRIDES = {"max_frames": 1600, "num_buckets": 3, "checkpoint_every": 2, "warmup_steps": 2,
             "learning_rate": 2e-4, "epochs": 1}
NO_STEP_LIMIT = 10**6
PORT = 8118  # each namespace has its own ports: nothing else on the box can hold this one
# Node 0 stops once the scheduler misses node 1's heartbeats for NODE_TIMEOUT seconds; the rest is
# MindSpore stopping its processes.
STOP_BOUND = NODE_TIMEOUT + 45
TOLERANCE = 1e-6  # as test_distributed.py


def start_nodes(machines: TwoMachines, mode: str, work: Path, options: dict) -> list[subprocess.Popen]:
    task = [WORKER, mode, work / "shards", work / "run", work / "out", NO_STEP_LIMIT, json.dumps(OVERRIDES),
            json.dumps(options)]
    return machines.start_msrun(task, work / f"log-{mode}", PORT, cwd=work)


def logged_steps(run: Path) -> list[dict]:
    metrics = run / "metrics.jsonl"
    lines = (metrics.read_text() if metrics.exists() else "").split("\n")[:-1]  # not a line still being written
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, sample_test_shards, demo_run):
    reason = namespaces_forbidden()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("two-machines")
    (work / "shards").symlink_to(sample_test_shards)
    (work / "out").mkdir()
    demo_out, demo = demo_run
    options = {"dev_shards": str(demo_out / "shards" / "dev"), "pretrained": str(demo.run_dir / "best.ckpt")}
    found = {}
    with TwoMachines() as machines:
        nodes = start_nodes(machines, "train", work, options)
        deadline = time.monotonic() + 600
        while not any(r.get("global_step", 0) >= 3 and "event" not in r for r in logged_steps(work / "run")):
            assert all(node.poll() is None for node in nodes), "a node stopped before the kill"
            assert time.monotonic() < deadline, "the run did not reach step 3"
            time.sleep(0.2)
        machines.power_off(1)
        killed = time.monotonic()
        try:
            output, _ = nodes[0].communicate(timeout=600)
        finally:
            nodes[0].kill()
        found["stop_seconds"] = time.monotonic() - killed
        found["node0"] = (nodes[0].returncode, output)
        found["left"] = machines.processes(0)
        found["steps_before"] = [r["global_step"] for r in logged_steps(work / "run") if "event" not in r]

        nodes = start_nodes(machines, "resume", work, options)
        for node in nodes:
            output, _ = node.communicate(timeout=900)
            if node.returncode != 0:
                logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}"
                                  for p in sorted(work.glob("log-resume/node-*/*.log")))
                pytest.fail(f"resume exited {node.returncode}\n{output[-3000:]}\n{logs}")
    reference = [sys.executable, WORKER, "reference", work / "shards", work / "run", work / "out", STEPS, 2,
                 json.dumps(options)]
    subprocess.run(list(map(str, reference)), check=True, timeout=900, cwd=work)
    return work, found


def trained(out: Path, name: str, statistics: bool = False) -> dict:
    """The parameters a leg ended with: trainable ones and Adam's, or BatchNorm's running statistics."""
    with np.load(out / f"{name}.npz") as saved:
        return {k: saved[k] for k in saved.files if ("moving_" in k) == statistics}


def test_node_0_stops_soon_after_node_1_dies_and_says_a_peer_was_lost(scenario):
    _, found = scenario
    returncode, output = found["node0"]
    assert returncode != 0
    assert found["stop_seconds"] < STOP_BOUND, found["stop_seconds"]
    assert "the cluster lost a node" in output and "--resume" in output, output[-3000:]
    assert found["left"] == []  # no rank left waiting on node 0
    assert 3 <= max(found["steps_before"]) < STEPS


def test_resumed_nodes_hold_identical_parameters_equal_to_one_process(scenario):
    work, _ = scenario
    rank0, rank1 = trained(work / "out", "resume-rank0"), trained(work / "out", "resume-rank1")
    single = trained(work / "out", "reference")
    assert rank0.keys() == rank1.keys() == single.keys() and len(rank0) > 10
    for name in rank0:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
        np.testing.assert_allclose(rank0[name], single[name], rtol=0, atol=TOLERANCE, err_msg=name)
    assert rank0["global_step"] == STEPS
    logged = [r["global_step"] for r in logged_steps(work / "run") if "event" not in r]
    assert logged == list(range(1, STEPS + 1))  # each step once: the steps after the checkpoint, redone


def test_dev_evaluated_in_shares_equals_one_process_on_the_checkpoint(scenario, demo_run):
    work, _ = scenario
    # the ranks' own running statistics (each from its own rows) gave way to rank 0's for the evaluation
    rank0, rank1 = (trained(work / "out", f"resume-rank{r}", statistics=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and len(rank0) >= 4
    for name in rank0:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
    (epoch_end,) = [r for r in logged_steps(work / "run") if r.get("event") == "epoch_end"]
    dev = ShardSet(demo_run[0] / "shards" / "dev")
    use_graph_mode()
    network, _ = load_model(work / "run" / "checkpoints" / f"step-{STEPS:08d}.ckpt")
    report = evaluate(network, dev)
    assert epoch_end["dev_utterances"] == report.utterances == len(dev)
    assert 0 < report.wer < 0.5  # a model that reads: a share evaluated with other weights would show
    assert (epoch_end["dev_wer"], epoch_end["dev_cer"]) == (report.wer, report.cer)
