"""`stormlog serve` stops cleanly on Ctrl-C and, started again on the same data directory,
serves what it had acknowledged."""

from stormlog_cluster import Cluster
from test_confluent_kafka import produce_all, read_all


def test_a_restarted_cluster_recovers_acknowledged_records_from_disk(tmp_path):
    cluster = Cluster(tmp_path, ["kept:2:3"]).start()
    try:
        values = [f"kept-{i}" for i in range(500)]
        produce_all(cluster.bootstrap, "kept", values, acks="all", **{"enable.idempotence": True})
    finally:
        assert cluster.stop() == {"serve": 0}, "Ctrl-C stops serve with exit code 0"
    again = Cluster(tmp_path, ["kept:2:3"], port=cluster.port).start()
    try:
        read = [v for _, _, v in read_all(again.bootstrap, "kept", 2)]
        assert sorted(read) == sorted(values)
    finally:
        assert again.stop() == {"serve": 0}
