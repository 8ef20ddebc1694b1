"""librdkafka (through confluent-kafka) against `stormlog serve`."""

import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def produce_all(bootstrap, topic, values, **config):
    p = Producer({"bootstrap.servers": bootstrap, **config})
    acked, errors = [], []

    def on_delivery(err, msg):
        (errors if err else acked).append((err, msg) if err else (msg.partition(), msg.offset(), msg.value().decode()))

    for i, v in enumerate(values):
        p.produce(topic, key=str(i % 7).encode(), value=v.encode(), on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(60) == 0, "messages still queued after 60 s"
    assert errors == [], errors
    return acked


def read_all(bootstrap, topic, partitions, isolation="read_uncommitted", idle_s=3.0, timeout_s=60):
    """Every record of the topic from the beginning, read until nothing new for idle_s."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time()}", "enable.auto.commit": False, "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, last, deadline = [], time.time(), time.time() + timeout_s
    while time.time() - last < idle_s and time.time() < deadline:
        for m in c.consume(100, 0.5):
            if m.error():
                raise KafkaException(m.error())
            out.append((m.partition(), m.offset(), m.value().decode()))
            last = time.time()
    c.close()
    return out


def test_idempotent_acks_all_produce_is_read_back_once_in_order(bootstrap):
    values = [f"v{i}" for i in range(2000)]
    acked = produce_all(bootstrap, "conf_idem", values, **{"enable.idempotence": True, "acks": "all", "linger.ms": 5})
    assert sorted(v for _, _, v in acked) == sorted(values)
    read = read_all(bootstrap, "conf_idem", 3)
    assert sorted(v for _, _, v in read) == sorted(values), "every acknowledged record, once"
    by_offset = {(p, o): v for p, o, v in read}
    assert all(by_offset[(p, o)] == v for p, o, v in acked), "each record where its acknowledgement said"
    for part in range(3):
        mine = [int(v[1:]) for p, _, v in sorted(read) if p == part]
        keys = {}
        for n in mine:
            keys.setdefault(n % 7, []).append(n)
        assert all(ns == sorted(ns) for ns in keys.values()), "per key, in send order"


def _group_consumer(bootstrap, group):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
    })


def _poll_into(c, seen, timeout=0.2):
    for m in c.consume(50, timeout):
        if m.error():
            raise KafkaException(m.error())
        seen.append(m.value().decode())


def test_group_with_manual_commits_rebalances_when_a_second_consumer_joins(bootstrap):
    values = [f"g{i}" for i in range(400)]
    produce_all(bootstrap, "conf_group", values[:200], acks="all")
    a, seen = _group_consumer(bootstrap, "conf-g"), []
    a.subscribe(["conf_group"])
    deadline = time.time() + 60
    while len(set(seen)) < 200 and time.time() < deadline:
        _poll_into(a, seen)
    assert len(set(seen)) == 200, f"first member read {len(set(seen))} of 200"
    assert len(a.assignment()) == 4, "alone, the first member owns every partition"
    a.commit(asynchronous=False)

    b = _group_consumer(bootstrap, "conf-g")
    b.subscribe(["conf_group"])
    deadline = time.time() + 60
    while time.time() < deadline and not (a.assignment() and b.assignment() and len(a.assignment()) + len(b.assignment()) == 4):
        _poll_into(a, seen)
        _poll_into(b, seen)
    assert a.assignment() and b.assignment(), "the join rebalanced the partitions over both members"
    assert {tp.partition for tp in a.assignment()} | {tp.partition for tp in b.assignment()} == {0, 1, 2, 3}

    produce_all(bootstrap, "conf_group", values[200:], acks="all")
    deadline = time.time() + 60
    while len(set(seen)) < 400 and time.time() < deadline:
        _poll_into(a, seen)
        _poll_into(b, seen)
    assert set(seen) == set(values)
    a.commit(asynchronous=False)
    b.commit(asynchronous=False)
    committed = a.committed([TopicPartition("conf_group", p) for p in range(4)], timeout=10)
    total = sum(tp.offset for tp in committed)
    a.close()
    b.close()
    assert total == 400, f"committed offsets {[(tp.partition, tp.offset) for tp in committed]} cover all 400 records"


def test_transactions_commit_and_abort_read_back_under_both_isolation_levels(bootstrap):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "conf-txn"})
    p.init_transactions(30)
    outcomes = {}
    for n, commit in enumerate([True, False, True, False, True]):
        p.begin_transaction()
        for i in range(20):
            p.produce("conf_txn", key=str(i).encode(), value=f"t{n}-{i}".encode())
        p.flush(30)
        (p.commit_transaction if commit else p.abort_transaction)(30)
        outcomes[n] = commit
    committed = {f"t{n}-{i}" for n, c in outcomes.items() if c for i in range(20)}
    aborted = {f"t{n}-{i}" for n, c in outcomes.items() if not c for i in range(20)}

    rc = [v for _, _, v in read_all(bootstrap, "conf_txn", 2, isolation="read_committed")]
    assert set(rc) == committed and len(rc) == len(committed), "read_committed: committed transactions whole, once"
    ru = [v for _, _, v in read_all(bootstrap, "conf_txn", 2, isolation="read_uncommitted")]
    assert set(ru) == committed | aborted, "read_uncommitted also returns the aborted records"
