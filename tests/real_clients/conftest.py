import pytest

from stormlog_cluster import Cluster

TOPICS = [
    "conf_idem:3:3",
    "conf_group:4:3",
    "conf_txn:2:3",
    "kp_idem:3:3",
    "kp_group:4:3",
    "kp_txn:2:3",
    "kcat:2:3",
]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """One 3-broker cluster from `stormlog serve` for the client tests; stopped with Ctrl-C."""
    c = Cluster(tmp_path_factory.mktemp("serve"), TOPICS).start()
    yield c
    codes = c.stop()
    assert codes == {"serve": 0}, f"stormlog serve did not stop cleanly on Ctrl-C: {codes}"


@pytest.fixture
def bootstrap(cluster):
    return cluster.bootstrap
