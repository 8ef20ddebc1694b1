"""Crash safety in real mode: one process per node; a broker is SIGKILLed during an acks=all,
RF=3, min.insync.replicas=2 produce load from librdkafka, restarted, and later serves as leader;
every acknowledged record is read back."""

import threading
import time

from confluent_kafka import Producer

from stormlog_cluster import Cluster, wait_for_leaders
from test_confluent_kafka import read_all

TOPIC, PARTITIONS = "crash", 3


class Load:
    """An idempotent acks=all producer sending until stopped; remembers what was acknowledged."""

    def __init__(self, bootstrap):
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 2, "message.timeout.ms": 120000})
        self.acked, self.failed, self.sent = [], [], 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_delivery(self, err, msg):
        (self.failed if err else self.acked).append(str(err) if err else msg.value().decode())

    def _run(self):
        while not self.stop.is_set():
            self.p.produce(TOPIC, key=str(self.sent % 10).encode(), value=f"r{self.sent}".encode(), on_delivery=self._on_delivery)
            self.sent += 1
            self.p.poll(0.001)
        self.p.flush(120)

    def wait_acked(self, n, timeout=60):
        deadline = time.time() + timeout
        while len(self.acked) < n and time.time() < deadline:
            time.sleep(0.05)
        assert len(self.acked) >= n, f"only {len(self.acked)} of {n} acknowledged after {timeout} s"


def isr_of(bootstrap, broker):
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(TOPIC, timeout=5)
    return [p.id for p in md.topics[TOPIC].partitions.values() if broker in p.isrs]


def wait_in_all_isrs(bootstrap, broker, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if len(isr_of(bootstrap, broker)) == PARTITIONS:
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"broker {broker} did not rejoin every ISR of {TOPIC}")


def test_sigkill_of_a_broker_under_acks_all_load_loses_no_acknowledged_record(tmp_path):
    cluster = Cluster(tmp_path, [f"{TOPIC}:{PARTITIONS}:3"], per_node=True).start()
    try:
        load = Load(cluster.bootstrap)
        load.thread.start()
        load.wait_acked(2000)
        # broker-1 leads partition 1 and follows 0 and 2.
        assert cluster.nodes["broker-1"].kill() == -9
        killed_at = len(load.acked)
        load.wait_acked(killed_at + 2000)
        cluster.nodes["broker-1"].start().wait_for_line("stormlog serve:")
        wait_in_all_isrs(cluster.bootstrap, 1)
        load.wait_acked(len(load.acked) + 2000)
        # Now make the restarted broker's log matter: kill another leader, so partitions it led
        # move, possibly to broker-1, and read everything back from whoever leads now.
        assert cluster.nodes["broker-0"].kill() == -9
        load.wait_acked(len(load.acked) + 1000)
        load.stop.set()
        load.thread.join(150)
        wait_for_leaders(",".join(cluster.bootstrap.split(",")[1:]))
        assert load.failed == [], load.failed[:5]
        read = read_all(cluster.bootstrap, TOPIC, PARTITIONS)
        values = [v for _, _, v in read]
        missing = set(load.acked) - set(values)
        assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
        assert len(values) == len(set(values)), "an idempotent producer's records are not duplicated"
        print(f"acknowledged {len(load.acked)}, read {len(values)}, killed broker-1 after {killed_at} acks")
    finally:
        cluster.stop()
