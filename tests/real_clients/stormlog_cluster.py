"""Starts and stops `stormlog serve` clusters for the real-client tests.

The binary is $STORMLOG_BIN (default: target/release/stormlog under the repository). Every
cluster gets its own data directory and a free block of ports: broker b on port + b,
controller c on port + 100 + c (sim/src/serve.rs).
"""

import os
import random
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("STORMLOG_BIN", str(REPO / "target" / "release" / "stormlog"))

# Quick failure detection and no rebalance delay, so the suite takes minutes, not tens of them.
FAST = [
    "min.insync.replicas=2",
    "group.initial.rebalance.delay.ms=0",
    "offsets.topic.num.partitions=10",
    "transaction.state.log.num.partitions=10",
    "broker.heartbeat.interval.ms=500",
    "broker.session.timeout.ms=3000",
]


def _free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_base_port(brokers, controllers):
    for _ in range(200):
        base = random.randrange(20000, 40000)
        ports = [base + b for b in range(brokers)] + [base + 100 + c for c in range(controllers)]
        if all(_free(p) for p in ports):
            return base
    raise RuntimeError("no free block of ports")


class Node:
    """One `stormlog serve` process: the whole cluster, or one node of it (`--node`)."""

    def __init__(self, args, name, log_dir):
        self.args, self.name, self.log_path = args, name, Path(log_dir) / f"{name}.log"
        self.lines = []
        self.proc = None

    def start(self):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([BIN, *self.args], stdout=subprocess.PIPE, stderr=log, text=True)
        self.lines = []
        threading.Thread(target=self._read, args=(self.proc, log), daemon=True).start()
        return self

    def _read(self, proc, log):
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))
            log.write(line)
            log.flush()

    def wait_for_line(self, text, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.lines} (see {self.log_path})")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not print {text!r} in {timeout} s: {self.lines}")

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def stop(self):
        """Ctrl-C; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            return self.kill(signal.SIGINT)
        return self.proc.returncode if self.proc else None


class Cluster:
    """A cluster from one `stormlog serve` (per_node=False) or one process per node."""

    def __init__(self, data_dir, topics, brokers=3, controllers=1, config=FAST, per_node=False, port=None):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.brokers, self.controllers = brokers, controllers
        self.port = port or free_base_port(brokers, controllers)
        self.bootstrap = ",".join(f"127.0.0.1:{self.port + b}" for b in range(brokers))
        args = ["serve", "--brokers", str(brokers), "--controllers", str(controllers), "--port", str(self.port), "--data-dir", str(self.data_dir)]
        for t in topics:
            args += ["--topic", t]
        for c in config:
            args += ["--config", c]
        self.args = args
        if per_node:
            names = [f"controller-{c}" for c in range(controllers)] + [f"broker-{b}" for b in range(brokers)]
            self.nodes = {n: Node(args + ["--node", n], n, self.data_dir) for n in names}
        else:
            self.nodes = {"serve": Node(args, "serve", self.data_dir)}
        self.per_node = per_node

    def start(self, timeout=90):
        for node in self.nodes.values():
            node.start()
        if self.per_node:
            for node in self.nodes.values():
                node.wait_for_line("stormlog serve:", timeout)
            wait_for_leaders(self.bootstrap, timeout)
        else:
            self.nodes["serve"].wait_for_line("ready", timeout)
        return self

    def stop(self):
        return {name: node.stop() for name, node in self.nodes.items()}


def wait_for_leaders(bootstrap, timeout=90):
    """Until every broker is listed and every partition of every topic has a leader."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    want = len(bootstrap.split(","))
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            md = admin.list_topics(timeout=5)
            if len(md.brokers) == want and md.topics and all(
                t.error is None and all(p.leader >= 0 for p in t.partitions.values()) for t in md.topics.values()
            ):
                return md
        except Exception:
            pass
        time.sleep(0.5)
    raise TimeoutError("partitions without leaders after %d s" % timeout)
