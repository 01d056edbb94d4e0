"""Processes and machines for the distributed tests and benches: msrun on loopback, and two
"machines" as network namespaces joined by a veth pair (iproute2, installed by the test set-up)."""
from __future__ import annotations

import contextlib
import shutil
import socket
import sys
from pathlib import Path

from .apt import apt_install


def free_port() -> int:
    """A TCP port free on loopback right now (for msrun's scheduler in tests and benches)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def msrun_node(workers: int, local_workers: int, master_addr: str, master_port: int, node_rank: int,
               log_dir: Path, cluster_time_out: int = 120) -> list[str]:
    """The msrun command (before its task) of node ``node_rank`` in a cluster of ``workers`` ranks
    whose scheduler listens on ``master_addr:master_port`` (node 0's address). msrun is run as a
    module of this interpreter: its console script may be a shell shim."""
    return [sys.executable, "-m", "mindspore.parallel.cluster.run", f"--worker_num={workers}",
            f"--local_worker_num={local_workers}", f"--master_addr={master_addr}",
            f"--master_port={master_port}", f"--node_rank={node_rank}", "--join=True",
            f"--cluster_time_out={cluster_time_out}", f"--log_dir={log_dir}"]


def local_msrun(workers: int, log_dir: Path) -> list[str]:
    """The msrun command (before its task) for ``workers`` ranks on this machine, on a free port."""
    return msrun_node(workers, workers, "127.0.0.1", free_port(), 0, log_dir)


class TwoMachines:
    """Two network namespaces joined by a veth pair: two "machines" on one box, each with its own
    address (``addresses``) and loopback, sharing the filesystem (the run directory and shards are
    then "shared" as on NFS). ``run_in(i, command)`` prefixes a command to run on machine i.
    ``rate_gbit`` shapes each direction of the link with tc's token-bucket filter."""

    def __init__(self, rate_gbit: float | None = None, subnet: str = "10.231.0"):
        import os

        tag = f"{os.getpid() % 100000}"
        self.namespaces = (f"ds2s{tag}a", f"ds2s{tag}b")
        self.links = (f"ds2s{tag}a", f"ds2s{tag}b")  # one veth end in each namespace
        self.addresses = (f"{subnet}.1", f"{subnet}.2")
        self.rate_gbit = rate_gbit

    def run_in(self, machine: int, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[machine], *map(str, command)]

    def start_msrun(self, task: list, log_dir: Path, port: int = 8118, **popen) -> list:
        """``msrun ... TASK`` started on both machines, 1 rank each, node 0's scheduler on ``port``
        (each namespace has its own ports); logs in ``log_dir/node-<i>``. Returns the two Popens."""
        import subprocess

        return [subprocess.Popen(self.run_in(node, [*msrun_node(2, 1, self.addresses[0], port, node,
                                                                 Path(log_dir) / f"node-{node}"), *task]),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
                for node in (0, 1)]

    def __enter__(self) -> "TwoMachines":
        import subprocess

        def ip(*args):
            subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

        try:
            for namespace in self.namespaces:
                ip("netns", "add", namespace)
                ip("-n", namespace, "link", "set", "lo", "up")
            ip("link", "add", self.links[0], "netns", self.namespaces[0], "type", "veth",
               "peer", "name", self.links[1], "netns", self.namespaces[1])
            for namespace, link, address in zip(self.namespaces, self.links, self.addresses):
                ip("-n", namespace, "addr", "add", f"{address}/24", "dev", link)
                ip("-n", namespace, "link", "set", link, "up")
                if self.rate_gbit:
                    # tbf needs a bucket of at least one timer tick of traffic (HZ >= 100)
                    burst = max(int(self.rate_gbit * 1e9 / 8 / 100), 65536)
                    subprocess.run(["ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", link, "root",
                                    "tbf", "rate", f"{self.rate_gbit}gbit", "burst", str(burst),
                                    "latency", "50ms"], check=True, capture_output=True, text=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def processes(self, machine: int) -> list[int]:
        """The process ids running on ``machine``."""
        import subprocess

        found = subprocess.run(["ip", "netns", "pids", self.namespaces[machine]], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def power_off(self, machine: int) -> None:
        """Kill every process of ``machine`` at once (SIGKILL), as when a node dies."""
        import os
        import signal

        for pid in self.processes(machine):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def __exit__(self, *_) -> None:
        import subprocess

        for machine, namespace in enumerate(self.namespaces):
            self.power_off(machine)  # nothing outlives its machine
            # deleting a namespace deletes its end of the veth pair, and with it the other end
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)


def namespaces_forbidden() -> str | None:
    """Why this machine cannot make network namespaces (not root, a container that forbids them),
    or None where it can; iproute2 is installed with apt-get where it is missing."""
    import os
    import subprocess

    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip") or not shutil.which("tc"):
        if not shutil.which("apt-get"):
            return "iproute2 (ip, tc) is not installed"
        apt_install("iproute2")
    probe = f"ds2sprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"this machine forbids network namespaces: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None
