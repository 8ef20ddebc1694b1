"""kafka-python (a pure-Python client, written independently of librdkafka) against
`stormlog serve`."""

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def produce_all(bootstrap, topic, values, **config):
    p = KafkaProducer(bootstrap_servers=bootstrap, **config)
    futures = [p.send(topic, key=str(i % 7).encode(), value=v.encode()) for i, v in enumerate(values)]
    p.flush(60)
    acked = [(f.get(timeout=60).partition, f.get(timeout=60).offset, v) for f, v in zip(futures, values)]
    p.close()
    return acked


def read_all(bootstrap, topic, partitions, isolation="read_uncommitted", idle_s=3.0, timeout_s=60):
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    out, last, deadline = [], time.time(), time.time() + timeout_s
    while time.time() - last < idle_s and time.time() < deadline:
        for tp, records in c.poll(timeout_ms=500).items():
            for r in records:
                out.append((tp.partition, r.offset, r.value.decode()))
                last = time.time()
    c.close()
    return out


def test_idempotent_acks_all_produce_is_read_back_once(bootstrap):
    values = [f"v{i}" for i in range(1000)]
    acked = produce_all(bootstrap, "kp_idem", values, acks="all", enable_idempotence=True)
    read = read_all(bootstrap, "kp_idem", 3)
    assert sorted(v for _, _, v in read) == sorted(values)
    by_offset = {(p, o): v for p, o, v in read}
    assert all(by_offset[(p, o)] == v for p, o, v in acked)


def _member(bootstrap, group):
    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10000,
        heartbeat_interval_ms=500,
    )
    c.subscribe(["kp_group"])
    return c


def _poll_into(c, seen):
    for records in c.poll(timeout_ms=200).values():
        seen.extend(r.value.decode() for r in records)


def test_group_with_manual_commits_rebalances_when_a_second_consumer_joins(bootstrap):
    values = [f"g{i}" for i in range(400)]
    produce_all(bootstrap, "kp_group", values[:200], acks="all")
    a, seen = _member(bootstrap, "kp-g"), []
    deadline = time.time() + 60
    while len(set(seen)) < 200 and time.time() < deadline:
        _poll_into(a, seen)
    assert len(set(seen)) == 200
    assert len(a.assignment()) == 4
    a.commit()

    b = _member(bootstrap, "kp-g")
    deadline = time.time() + 60
    while time.time() < deadline and not (a.assignment() and b.assignment() and len(a.assignment()) + len(b.assignment()) == 4):
        _poll_into(a, seen)
        _poll_into(b, seen)
    assert a.assignment() and b.assignment(), "the join rebalanced the partitions over both members"

    produce_all(bootstrap, "kp_group", values[200:], acks="all")
    deadline = time.time() + 60
    while len(set(seen)) < 400 and time.time() < deadline:
        _poll_into(a, seen)
        _poll_into(b, seen)
    assert set(seen) == set(values)
    a.commit()
    b.commit()
    total = sum(a.committed(TopicPartition("kp_group", p)) or 0 for p in range(4))
    a.close()
    b.close()
    assert total == 400


def test_transactions_commit_and_abort_read_back_under_both_isolation_levels(bootstrap):
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="kp-txn")
    p.init_transactions()
    outcomes = {}
    for n, commit in enumerate([True, False, True, False]):
        p.begin_transaction()
        for i in range(20):
            p.send("kp_txn", key=str(i).encode(), value=f"t{n}-{i}".encode())
        p.flush()
        (p.commit_transaction if commit else p.abort_transaction)()
        outcomes[n] = commit
    p.close()
    committed = {f"t{n}-{i}" for n, c in outcomes.items() if c for i in range(20)}
    aborted = {f"t{n}-{i}" for n, c in outcomes.items() if not c for i in range(20)}
    rc = [v for _, _, v in read_all(bootstrap, "kp_txn", 2, isolation="read_committed")]
    assert set(rc) == committed and len(rc) == len(committed)
    ru = [v for _, _, v in read_all(bootstrap, "kp_txn", 2, isolation="read_uncommitted")]
    assert set(ru) == committed | aborted
