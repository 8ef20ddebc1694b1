//! Tests for scenario files: the documented example, defaults, one test per error class
//! (each checks file, key path and expectation), and the round trips.

use super::*;

/// The example block of SCENARIOS.md, verbatim.
const DOC_EXAMPLE: &str = r#"name = "acks1_leader_crash"            # required; [a-z0-9_-]+
description = "acks=1 can lose acknowledged writes when the leader crashes"
duration_ms = 60000                    # simulated time of the chaos phase (required)
seeds = 100                            # default number of seeds for `run` (default 50)
heal_ms = 30000                        # after chaos: faults stop, all repaired, liveness checked (default 30000)

[expect]
outcome = "violation"                  # "clean" or "violation" (required)
anomalies = ["lost-write"]             # violation: at least one seed must show one of these
                                       # clean: no seed may show any anomaly at all
within_seeds = 100                     # violation: must be found among the first N seeds (default = seeds)
allow = []                             # clean: anomalies that are allowed (e.g. ["redelivery"] for at-least-once)

[cluster]
brokers = 3                            # required, >= 1
controllers = 1                        # size of the controller quorum (default 1)

[cluster.config]                       # broker/topic configs, Kafka's names and defaults
"min.insync.replicas" = 2
"unclean.leader.election.enable" = false
"replica.lag.time.max.ms" = 10000
"log.flush.interval.messages" = 9223372036854775807   # Kafka default: never fsync on append

[behaviour]                            # switches that restore historical Kafka behaviour (all default false)
# "truncate_to_hw_on_become_follower" = true    # see "Behaviour switches" below

[[topics]]
name = "orders"
partitions = 3
replication_factor = 3
# assignment = [[0, 1, 2], [1, 2, 0], [2, 0, 1]]   # optional: replicas per partition, first = preferred leader

[[producers]]
name = "p"                             # instances are p-0, p-1, ...
count = 2
topic = "orders"
messages = 1000                        # per instance; every value is unique
rate_per_sec = 100
keys = 10                              # number of distinct keys; 0 = no key
transactional = false                  # true: messages are sent in transactions
records_per_txn = 10                   # with transactional
abort_probability = 0.0                # with transactional: fraction of transactions aborted on purpose
restart_resend = false                 # after a producer restart, resend every unacknowledged message
[producers.config]                     # producer configs, Kafka's names and defaults
acks = "all"
"enable.idempotence" = true
"max.in.flight.requests.per.connection" = 5

[[consumers]]
name = "c"
count = 2
group = "g1"                           # omit for a standalone consumer that reads every partition
topics = ["orders"]
processing_ms = 1                      # per record; large values make a slow consumer
commit = "auto"                        # auto | sync-after-process | async-after-process | before-process | transactional
[consumers.config]
"isolation.level" = "read_committed"
"enable.auto.commit" = true
"max.poll.interval.ms" = 300000
"session.timeout.ms" = 45000

[nemesis]                              # random faults drawn from the seed during the chaos phase
kinds = ["crash", "partition"]         # see fault kinds below
interval_ms = [2000, 10000]            # time between fault starts, uniform in range
duration_ms = [1000, 5000]             # how long each fault lasts before it is healed
targets = "brokers"                    # brokers | controllers | producers | consumers | leaders | any

[[faults]]                             # scripted faults at exact simulated times
at_ms = 10000
action = "crash"
target = "leader:orders/0"             # resolved once, when the fault starts
duration_ms = 15000                    # optional: heal the same node(s) after this long
                                       # (crash -> restart, kill -> restart, pause -> resume,
                                       #  partition -> repair, hold -> release, skew -> undo)

[network]
latency_ms = [1, 10]                   # one-way latency range
loss = 0.0                             # probability that a link breaks (connections must recover)

[checks]                               # every applicable checker runs unless disabled here
disable = []
"#;

/// The smallest valid scenario; error tests change one thing in it.
const BASE: &str = r#"
name = "t"
duration_ms = 1000

[expect]
outcome = "clean"

[cluster]
brokers = 3

[[topics]]
name = "orders"
partitions = 2
replication_factor = 3

[[producers]]
name = "p"
topic = "orders"

[[consumers]]
name = "c"
group = "g1"
topics = ["orders"]
"#;

fn parse(text: &str) -> Scenario {
    Scenario::parse("s.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn error_of(text: &str) -> ScenarioError {
    match Scenario::parse("s.toml", text) {
        Ok(s) => panic!("expected an error, parsed {s:?}"),
        Err(e) => e,
    }
}

/// Asserts the error names the file, exactly `key`, and an expectation containing `expected`.
fn assert_error(text: &str, key: &str, expected: &str) {
    let e = error_of(text);
    assert_eq!(e.file, "s.toml", "{e}");
    assert_eq!(e.key, key, "{e}");
    assert!(
        e.expected.contains(expected),
        "{e}\n  does not mention: {expected}"
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("s.toml: {key}: expected ")),
        "{shown}"
    );
}

fn with(extra: &str) -> String {
    format!("{BASE}\n{extra}")
}

fn replaced(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

fn fault(body: &str) -> String {
    with(&format!("[[faults]]\n{body}"))
}

#[test]
fn the_documented_example_parses() {
    let s = parse(DOC_EXAMPLE);
    assert_eq!(s.name, "acks1_leader_crash");
    assert_eq!((s.duration_ms, s.seeds, s.heal_ms), (60_000, 100, 30_000));
    assert_eq!(s.expect.outcome, Outcome::Violation);
    assert_eq!(s.expect.anomalies, vec!["lost-write"]);
    assert_eq!(s.expect.within_seeds, Some(100));
    assert_eq!((s.cluster.brokers, s.cluster.controllers), (3, 1));
    let config = &s.cluster.config;
    assert_eq!(config["min.insync.replicas"], ConfigValue::Int(2));
    assert_eq!(
        config["unclean.leader.election.enable"],
        ConfigValue::Bool(false)
    );
    assert_eq!(
        config["log.flush.interval.messages"].as_i64(),
        Some(i64::MAX)
    );
    assert!(s.behaviour.is_empty());
    assert_eq!(s.topics[0].replicas(1, 3), vec![1, 2, 0]);
    let p = &s.producers[0];
    assert_eq!(
        (p.count, p.messages, p.keys, p.rate_per_sec),
        (2, 1000, 10, 100.0)
    );
    assert_eq!(p.config["acks"].as_str(), Some("all"));
    assert_eq!(p.config["enable.idempotence"].as_bool(), Some(true));
    let c = &s.consumers[0];
    assert_eq!(
        (c.group.as_deref(), c.commit, c.processing_ms),
        (Some("g1"), CommitMode::Auto, 1)
    );
    assert_eq!(c.config["isolation.level"].to_string(), "read_committed");
    let nemesis = s.nemesis.as_ref().expect("nemesis");
    assert_eq!(nemesis.kinds, vec![FaultKind::Crash, FaultKind::Partition]);
    assert_eq!(
        (nemesis.interval_ms, nemesis.targets),
        ((2000, 10000), NemesisTargets::Brokers)
    );
    let f = &s.faults[0];
    assert_eq!(
        f.target,
        vec![Target::Leader {
            topic: "orders".into(),
            partition: 0
        }]
    );
    assert_eq!(
        (f.at_ms, f.action, f.duration_ms),
        (10_000, FaultKind::Crash, Some(15_000))
    );
    assert_eq!(
        s.network,
        NetworkSpec {
            latency_ms: (1, 10),
            loss: 0.0
        }
    );
    assert!(s.checks.disable.is_empty());
}

#[test]
fn defaults_are_applied_when_keys_are_omitted() {
    let s = parse(BASE);
    assert_eq!(
        (s.seeds, s.heal_ms, s.description.as_str()),
        (50, 30_000, "")
    );
    assert_eq!(s.expect.within_seeds, None);
    assert_eq!(s.cluster.controllers, 1);
    let p = &s.producers[0];
    assert_eq!(
        (p.count, p.messages, p.rate_per_sec, p.keys),
        (1, 100, 100.0, 0)
    );
    assert_eq!(
        (
            p.transactional,
            p.records_per_txn,
            p.abort_probability,
            p.restart_resend
        ),
        (false, 10, 0.0, false)
    );
    let c = &s.consumers[0];
    assert_eq!(
        (c.count, c.processing_ms, c.commit),
        (1, 0, CommitMode::Auto)
    );
    assert_eq!(s.nemesis, None);
    assert_eq!(s.network, NetworkSpec::default());
    assert_eq!(s.network.latency_ms, (1, 10));
    assert_eq!(s.checks, Checks::default());
}

#[test]
fn nemesis_ranges_and_targets_have_defaults() {
    let s = parse(&with("[nemesis]\nkinds = [\"kill\"]"));
    let n = s.nemesis.expect("nemesis");
    assert_eq!(
        (n.interval_ms, n.duration_ms, n.targets),
        ((2000, 10000), (1000, 5000), NemesisTargets::Brokers)
    );
}

#[test]
fn replicas_follow_round_robin_or_the_explicit_assignment() {
    let s = parse(DOC_EXAMPLE);
    let topic = &s.topics[0];
    assert_eq!(topic.replicas(0, 3), vec![0, 1, 2]);
    assert_eq!(topic.replicas(2, 3), vec![2, 0, 1]);
    let two = TopicSpec {
        replication_factor: 2,
        ..topic.clone()
    };
    assert_eq!(two.replicas(2, 5), vec![2, 3]);
    let text = replaced(
        "replication_factor = 3",
        "replication_factor = 2\nassignment = [[2, 0], [0, 1]]",
    );
    assert_eq!(parse(&text).topics[0].replicas(0, 3), vec![2, 0]);
}

#[test]
fn targets_display_as_the_string_they_were_parsed_from() {
    let forms = [
        "broker-0",
        "controller-2",
        "p-1",
        "my-client-12",
        "leader:orders/0",
        "followers:a.b_c-d/7",
        "controller-leader",
        "coordinator:g1",
        "txn-coordinator:tp-3",
    ];
    for form in forms {
        let target = Target::parse(form).unwrap_or_else(|| panic!("{form} does not parse"));
        assert_eq!(target.to_string(), form);
    }
    assert_eq!(Target::parse("broker-1"), Some(Target::Broker(1)));
    assert_eq!(
        Target::parse("my-client-12"),
        Some(Target::Client {
            name: "my-client".into(),
            index: 12
        })
    );
    for bad in [
        "broker",
        "broker-01",
        "leader:orders",
        "leader:/0",
        "coordinator:",
        "Broker-1",
        "p-x",
    ] {
        assert_eq!(Target::parse(bad), None, "{bad}");
    }
}

#[test]
fn fault_kinds_display_their_kebab_case_names() {
    assert_eq!(FaultKind::PartitionOneway.to_string(), "partition-oneway");
    assert_eq!(FaultKind::DiskLoss.to_string(), "disk-loss");
    for name in FaultKind::NAMES {
        assert_eq!(
            FaultKind::from_name(name).map(|k| k.to_string()).as_deref(),
            Some(*name)
        );
    }
    assert_eq!(
        CommitMode::SyncAfterProcess.to_string(),
        "sync-after-process"
    );
}

#[test]
fn the_documented_example_round_trips_through_to_toml() {
    let s = parse(DOC_EXAMPLE);
    assert_eq!(parse(&s.to_toml()), s);
}

#[test]
fn a_scenario_using_every_optional_key_round_trips_through_to_toml() {
    let text = r#"
name = "every-key"
description = "quotes \" and\nnewlines"
duration_ms = 5000
seeds = 7
heal_ms = 0
[expect]
outcome = "clean"
allow = ["redelivery"]
marks = ["unclean_election"]
[cluster]
brokers = 3
controllers = 3
[cluster.config]
"min.insync.replicas" = 2
"some.custom.ratio" = 0.25
[behaviour]
hw_advances_below_min_isr = true
[[topics]]
name = "t.1"
partitions = 2
replication_factor = 2
assignment = [[0, 1], [2, 0]]
[[producers]]
name = "tp"
count = 2
topic = "t.1"
rate_per_sec = 12.5
transactional = true
abort_probability = 0.1
[producers.config]
acks = -1
[[consumers]]
name = "solo"
topics = ["t.1"]
[[consumers]]
name = "c"
group = "g"
topics = ["t.1"]
commit = "transactional"
output_topic = "t.1"
[nemesis]
kinds = ["partition-oneway", "disk-loss"]
interval_ms = [10, 20]
duration_ms = [5, 5]
targets = "any"
[[faults]]
at_ms = 0
action = "partition"
target = ["broker-0", "controller-leader"]
peer = "servers"
duration_ms = 100
[[faults]]
at_ms = 1
action = "partition-oneway"
target = "followers:t.1/1"
peer = ["coordinator:g", "txn-coordinator:tp-1"]
[[faults]]
at_ms = 2
action = "skew"
target = "c-0"
by_ms = -300
[[faults]]
at_ms = 3
action = "repair"
[[faults]]
at_ms = 4
action = "hold-request"
target = "txn-coordinator:tp-1"
peer = "tp-1"
api = "EndTxn"
duration_ms = 2000
[network]
latency_ms = [0, 0]
loss = 0.01
[checks]
disable = ["reorder"]
"#;
    let s = parse(text);
    assert_eq!(
        s.producers[0].config["acks"],
        ConfigValue::Str("all".into())
    );
    assert_eq!(
        s.faults[1].peer,
        Some(Peer::Targets(vec![
            Target::Coordinator { group: "g".into() },
            Target::TxnCoordinator {
                producer: "tp".into(),
                index: 1
            },
        ]))
    );
    let again = parse(&s.to_toml());
    assert_eq!(again, s, "\n{}", s.to_toml());
}

#[test]
fn a_missing_file_is_reported_with_its_path() {
    let e = Scenario::load(std::path::Path::new("/nonexistent/x.toml")).unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.key.as_str()),
        ("/nonexistent/x.toml", "")
    );
    assert!(
        e.to_string()
            .starts_with("/nonexistent/x.toml: expected a readable file"),
        "{e}"
    );
}

#[test]
fn load_reads_a_file_from_disk() {
    let path = std::env::temp_dir().join(format!("stormlog-scenario-{}.toml", std::process::id()));
    std::fs::write(&path, BASE).expect("write");
    let s = Scenario::load(&path).expect("load");
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(s.path, path.display().to_string());
}

#[test]
fn invalid_toml_is_reported_with_line_and_column() {
    let e = error_of("name = \"t\"\nduration_ms = = 3\n");
    assert_eq!((e.file.as_str(), e.key.as_str()), ("s.toml", ""));
    assert!(e.expected.starts_with("valid TOML"), "{e}");
    assert!(e.expected.contains("line 2"), "{e}");
}

#[test]
fn an_unknown_top_level_key_is_an_error() {
    assert_error(
        &replaced("duration_ms", "duraton_ms"),
        "duraton_ms",
        "a known key, one of: name,",
    );
}

#[test]
fn an_unknown_key_in_an_array_of_tables_names_its_index() {
    let text = with("[[producers]]\nname = \"q\"\ntopic = \"orders\"\nrate_per_sc = 5");
    assert_error(&text, "producers[1].rate_per_sc", "rate_per_sec");
}

#[test]
fn an_unknown_key_in_a_section_is_an_error() {
    assert_error(
        &with("[network]\nlatency = [1, 2]"),
        "network.latency",
        "latency_ms",
    );
}

#[test]
fn a_wrong_type_names_what_was_found() {
    let text = replaced("name = \"p\"", "name = \"p\"\ncount = \"three\"");
    assert_error(
        &text,
        "producers[0].count",
        "an integer >= 1, found string \"three\"",
    );
}

#[test]
fn a_section_that_is_not_a_table_is_an_error() {
    assert_error(
        &replaced("duration_ms = 1000", "duration_ms = 1000\nnetwork = 3"),
        "network",
        "a table, found integer 3",
    );
}

#[test]
fn the_name_must_be_lowercase_letters_digits_dashes_and_underscores() {
    assert_error(
        &replaced("name = \"t\"", "name = \"Big Name\""),
        "name",
        "[a-z0-9_-]+, found string \"Big Name\"",
    );
}

#[test]
fn duration_ms_is_required() {
    assert_error(
        &replaced("duration_ms = 1000", ""),
        "duration_ms",
        "an integer >= 1, but the key is missing",
    );
}

#[test]
fn duration_ms_must_be_positive() {
    assert_error(
        &replaced("duration_ms = 1000", "duration_ms = 0"),
        "duration_ms",
        "an integer >= 1, found integer 0",
    );
}

#[test]
fn the_expected_outcome_is_required() {
    assert_error(
        &replaced("outcome = \"clean\"", ""),
        "expect.outcome",
        "\"clean\" or \"violation\", but the key is missing",
    );
}

#[test]
fn the_expected_outcome_is_clean_or_violation() {
    assert_error(
        &replaced("\"clean\"", "\"dirty\""),
        "expect.outcome",
        "found string \"dirty\"",
    );
}

#[test]
fn a_violation_needs_at_least_one_anomaly() {
    assert_error(
        &replaced("\"clean\"", "\"violation\""),
        "expect.anomalies",
        "at least one anomaly name",
    );
}

#[test]
fn a_clean_outcome_lists_no_anomalies() {
    assert_error(
        &replaced("\"clean\"", "\"clean\"\nanomalies = [\"duplicate\"]"),
        "expect.anomalies",
        "use expect.allow",
    );
}

#[test]
fn within_seeds_cannot_exceed_seeds() {
    let text = replaced(
        "\"clean\"",
        "\"violation\"\nanomalies = [\"lost-write\"]\nwithin_seeds = 60",
    );
    assert_error(
        &text,
        "expect.within_seeds",
        "an integer <= seeds (50), found integer 60",
    );
}

#[test]
fn anomaly_names_must_be_known() {
    let text = replaced(
        "\"clean\"",
        "\"violation\"\nanomalies = [\"lost-write\", \"lost-writes\"]",
    );
    assert_error(
        &text,
        "expect.anomalies[1]",
        "an anomaly name, one of: lost-write,",
    );
    assert_error(
        &replaced("\"clean\"", "\"clean\"\nallow = [\"typo\"]"),
        "expect.allow[0]",
        "found string \"typo\"",
    );
    assert_error(
        &with("[checks]\ndisable = [\"nope\"]"),
        "checks.disable[0]",
        "an anomaly name",
    );
}

#[test]
fn brokers_are_required_and_at_least_one() {
    assert_error(
        &replaced("brokers = 3", ""),
        "cluster.brokers",
        "an integer >= 1, but the key is missing",
    );
    assert_error(
        &replaced("brokers = 3", "brokers = 0"),
        "cluster.brokers",
        "an integer >= 1, found integer 0",
    );
}

#[test]
fn controllers_are_at_least_one() {
    assert_error(
        &replaced("brokers = 3", "brokers = 3\ncontrollers = 0"),
        "cluster.controllers",
        "an integer >= 1",
    );
}

#[test]
fn well_known_config_keys_are_type_checked() {
    let cluster = |line: &str| {
        replaced(
            "brokers = 3",
            &format!("brokers = 3\n[cluster.config]\n{line}"),
        )
    };
    assert_error(
        &cluster("\"min.insync.replicas\" = 0"),
        "cluster.config.\"min.insync.replicas\"",
        "an integer >= 1, found integer 0",
    );
    assert_error(
        &cluster("\"unclean.leader.election.enable\" = \"no\""),
        "cluster.config.\"unclean.leader.election.enable\"",
        "a boolean, found string \"no\"",
    );
    let producer = |line: &str| {
        replaced(
            "topic = \"orders\"",
            &format!("topic = \"orders\"\n[producers.config]\n{line}"),
        )
    };
    assert_error(
        &producer("acks = \"most\""),
        "producers[0].config.acks",
        "one of: \"all\", \"1\", \"0\", -1, 0, 1",
    );
    assert_error(
        &producer("ack = 1"),
        "producers[0].config.ack",
        "a Kafka config name (dotted, like \"linger.ms\", or one of: acks, retries)",
    );
    let consumer = |line: &str| with(&format!("[consumers.config]\n{line}"));
    assert_error(
        &consumer("\"isolation.level\" = \"serializable\""),
        "consumers[0].config.\"isolation.level\"",
        "one of: \"read_committed\", \"read_uncommitted\"",
    );
}

#[test]
fn unknown_dotted_config_keys_are_stored_as_given() {
    let text = with("[consumers.config]\n\"client.rack\" = \"r1\"\n\"fetch.max.bytes\" = 5");
    let s = parse(&text);
    assert_eq!(s.consumers[0].config["client.rack"].as_str(), Some("r1"));
    assert_eq!(s.consumers[0].config["fetch.max.bytes"].as_i64(), Some(5));
}

#[test]
fn acks_is_normalized_to_kafka_strings() {
    for (given, stored) in [
        ("\"all\"", "all"),
        ("-1", "all"),
        ("\"-1\"", "all"),
        ("1", "1"),
        ("\"0\"", "0"),
    ] {
        let text = replaced(
            "topic = \"orders\"",
            &format!("topic = \"orders\"\n[producers.config]\nacks = {given}"),
        );
        assert_eq!(
            parse(&text).producers[0].config["acks"].as_str(),
            Some(stored),
            "{given}"
        );
    }
}

#[test]
fn behaviour_switches_must_be_known_booleans() {
    assert_error(
        &with("[behaviour]\nold_bug = true"),
        "behaviour.old_bug",
        "a behaviour switch, one of:",
    );
    assert_error(
        &with("[behaviour]\nhw_advances_below_min_isr = 1"),
        "behaviour.hw_advances_below_min_isr",
        "a boolean, found integer 1",
    );
}

#[test]
fn topic_names_are_unique() {
    assert_error(
        &with("[[topics]]\nname = \"orders\"\nreplication_factor = 1"),
        "topics[1].name",
        "not already used by topics[0]",
    );
}

#[test]
fn partitions_are_at_least_one() {
    assert_error(
        &replaced("partitions = 2", "partitions = 0"),
        "topics[0].partitions",
        "an integer >= 1, found integer 0",
    );
}

#[test]
fn replication_factor_cannot_exceed_brokers() {
    assert_error(
        &replaced("replication_factor = 3", "replication_factor = 4"),
        "topics[0].replication_factor",
        "replication_factor 4 > brokers 3",
    );
}

#[test]
fn an_assignment_has_one_valid_row_per_partition() {
    let assign = |rows: &str| {
        replaced(
            "replication_factor = 3",
            &format!("replication_factor = 2\nassignment = {rows}"),
        )
    };
    assert_error(
        &assign("[[0, 1]]"),
        "topics[0].assignment",
        "(2 rows), found 1 rows",
    );
    assert_error(
        &assign("[[0, 1], [1]]"),
        "topics[0].assignment[1]",
        "replication_factor (2) broker ids, found 1",
    );
    assert_error(
        &assign("[[0, 3], [1, 2]]"),
        "topics[0].assignment[0][1]",
        "a broker id < 3 (cluster.brokers), found integer 3",
    );
    assert_error(
        &assign("[[0, 1], [2, 2]]"),
        "topics[0].assignment[1][1]",
        "not already in this row, found integer 2 again",
    );
    assert_error(
        &assign("[[0, \"1\"], [1, 2]]"),
        "topics[0].assignment",
        "a list of lists of broker ids",
    );
}

#[test]
fn client_names_are_unique_across_producers_and_consumers() {
    assert_error(
        &replaced("name = \"c\"", "name = \"p\""),
        "consumers[0].name",
        "not already used by producers[0].name",
    );
}

#[test]
fn client_names_cannot_look_like_node_names() {
    assert_error(
        &replaced("name = \"p\"", "name = \"broker\""),
        "producers[0].name",
        "cannot be mistaken for a node",
    );
    assert_error(
        &replaced("name = \"c\"", "name = \"controller-1\""),
        "consumers[0].name",
        "cannot be mistaken for a node",
    );
}

#[test]
fn clients_use_declared_topics() {
    assert_error(
        &replaced("topic = \"orders\"", "topic = \"order\""),
        "producers[0].topic",
        "a topic declared in [[topics]] (orders), found \"order\"",
    );
    assert_error(
        &replaced("topics = [\"orders\"]", "topics = [\"orders\", \"x\"]"),
        "consumers[0].topics[1]",
        "found \"x\"",
    );
    assert_error(
        &replaced("topics = [\"orders\"]", "topics = []"),
        "consumers[0].topics",
        "a non-empty list",
    );
}

#[test]
fn counts_are_at_least_one() {
    assert_error(
        &replaced("group = \"g1\"", "group = \"g1\"\ncount = 0"),
        "consumers[0].count",
        "an integer >= 1, found integer 0",
    );
}

#[test]
fn rates_are_positive_and_probabilities_between_zero_and_one() {
    let producer =
        |line: &str| replaced("topic = \"orders\"", &format!("topic = \"orders\"\n{line}"));
    assert_error(
        &producer("rate_per_sec = 0"),
        "producers[0].rate_per_sec",
        "a number > 0, found integer 0",
    );
    assert_error(
        &producer("transactional = true\nabort_probability = 1.5"),
        "producers[0].abort_probability",
        "between 0 and 1, found float 1.5",
    );
    assert_error(
        &producer("abort_probability = 0.5"),
        "producers[0].abort_probability",
        "0 unless transactional = true",
    );
    assert_error(
        &with("[network]\nloss = 1.0"),
        "network.loss",
        "a number >= 0 and < 1, found float 1",
    );
}

#[test]
fn records_per_txn_is_at_least_one() {
    let text = replaced(
        "topic = \"orders\"",
        "topic = \"orders\"\nrecords_per_txn = 0",
    );
    assert_error(
        &text,
        "producers[0].records_per_txn",
        "an integer >= 1, found integer 0",
    );
}

#[test]
fn kafka_client_config_conflicts_are_rejected() {
    let producer = |lines: &str| {
        replaced(
            "topic = \"orders\"",
            &format!("topic = \"orders\"\n{lines}"),
        )
    };
    let text = producer("transactional = true\n[producers.config]\nacks = 1");
    assert_error(
        &text,
        "producers[0].config.acks",
        "\"all\" (required by transactional = true), found string \"1\"",
    );
    let text = producer("transactional = true\n[producers.config]\n\"enable.idempotence\" = false");
    assert_error(
        &text,
        "producers[0].config.\"enable.idempotence\"",
        "true (a transactional producer is idempotent)",
    );
    let text = with("[consumers.config]\n\"enable.auto.commit\" = false");
    assert_error(
        &text,
        "consumers[0].config.\"enable.auto.commit\"",
        "true when commit = \"auto\"",
    );
    let text = replaced("group = \"g1\"\n", "commit = \"sync-after-process\"\n");
    assert_error(&text, "consumers[0].commit", "commits need a group");
}

#[test]
fn faults_start_before_the_end_of_the_chaos_phase() {
    assert_error(
        &fault("at_ms = 1000\naction = \"crash\"\ntarget = \"broker-0\""),
        "faults[0].at_ms",
        "an integer < duration_ms (1000), found integer 1000",
    );
}

#[test]
fn fault_actions_must_be_known() {
    assert_error(
        &fault("at_ms = 1\naction = \"explode\"\ntarget = \"broker-0\""),
        "faults[0].action",
        "a fault kind, one of: crash,",
    );
}

#[test]
fn fault_targets_must_parse() {
    assert_error(
        &fault("at_ms = 1\naction = \"crash\"\ntarget = \"leader:orders\""),
        "faults[0].target",
        "a target (broker-N",
    );
    assert_error(
        &fault("at_ms = 1\naction = \"crash\"\ntarget = [\"broker-0\", 3]"),
        "faults[0].target[1]",
        "found integer 3",
    );
    assert_error(
        &fault("at_ms = 1\naction = \"crash\"\ntarget = []"),
        "faults[0].target",
        "a non-empty list of targets",
    );
    assert_error(
        &fault("at_ms = 1\naction = \"crash\""),
        "faults[0].target",
        "required for crash",
    );
}

#[test]
fn fault_targets_must_name_nodes_that_exist() {
    let target = |t: &str| fault(&format!("at_ms = 1\naction = \"pause\"\ntarget = {t}"));
    assert_error(
        &target("\"broker-3\""),
        "faults[0].target",
        "broker-N with N < 3 (cluster.brokers), found \"broker-3\"",
    );
    assert_error(
        &target("[\"broker-0\", \"controller-1\"]"),
        "faults[0].target[1]",
        "controller-N with N < 1",
    );
    assert_error(
        &target("\"p-1\""),
        "faults[0].target",
        "p-N with N < 1 (producers[0].count)",
    );
    assert_error(
        &target("\"q-0\""),
        "faults[0].target",
        "no producer or consumer is named \"q\"",
    );
    assert_error(
        &target("\"leader:payments/0\""),
        "faults[0].target",
        "a topic declared in [[topics]] (orders)",
    );
    assert_error(
        &target("\"followers:orders/2\""),
        "faults[0].target",
        "a partition < 2 (topics[0].partitions)",
    );
    assert_error(
        &target("\"coordinator:g2\""),
        "faults[0].target",
        "a group some consumer uses (g1)",
    );
    assert_error(
        &target("\"txn-coordinator:p-0\""),
        "faults[0].target",
        "transactional producer",
    );
    assert_error(
        &target("\"txn-coordinator:c-0\""),
        "faults[0].target",
        "no producer is named \"c\"",
    );
}

#[test]
fn disk_loss_targets_servers_only() {
    assert_error(
        &fault("at_ms = 1\naction = \"disk-loss\"\ntarget = \"c-0\""),
        "faults[0].target",
        "a server",
    );
}

#[test]
fn peer_is_only_for_partitions_and_must_resolve() {
    assert_error(
        &fault("at_ms = 1\naction = \"crash\"\ntarget = \"broker-0\"\npeer = \"all\""),
        "faults[0].peer",
        "no peer for crash",
    );
    assert_error(
        &fault("at_ms = 1\naction = \"partition\"\ntarget = \"broker-0\"\npeer = \"broker-9\""),
        "faults[0].peer",
        "found \"broker-9\"",
    );
    assert_error(
        &fault("at_ms = 1\naction = \"partition\"\ntarget = \"broker-0\"\npeer = \"everyone\""),
        "faults[0].peer",
        "a target (",
    );
}

#[test]
fn api_is_required_for_hold_request_and_only_for_it_and_names_a_kafka_api() {
    assert_error(
        &fault("at_ms = 1\naction = \"hold-request\"\ntarget = \"broker-0\"\npeer = \"p-0\""),
        "faults[0].api",
        "required for hold-request",
    );
    assert_error(
        &fault("at_ms = 1\naction = \"hold-request\"\ntarget = \"broker-0\"\npeer = \"p-0\"\napi = \"EndTransaction\""),
        "faults[0].api",
        "found \"EndTransaction\"",
    );
    assert_error(
        &fault("at_ms = 1\naction = \"crash\"\ntarget = \"broker-0\"\napi = \"Produce\""),
        "faults[0].api",
        "no api for crash",
    );
    assert_error(
        &fault("at_ms = 1\naction = \"hold-request\"\ntarget = \"p-0\"\napi = \"Produce\""),
        "faults[0].target",
        "a broker (hold-request acts on the requests a broker receives)",
    );
    let s = parse(&fault("at_ms = 1\naction = \"hold-request\"\ntarget = \"broker-0\"\npeer = \"p-0\"\napi = \"Produce\"\nduration_ms = 5"));
    assert_eq!(s.faults[0].action.healed_by(), Some(FaultKind::ReleaseRequest));
    assert_eq!(crate::scenario::api_key("EndTxn"), Some(26));
    assert_eq!(crate::scenario::api_key("Produce"), Some(0));
}

#[test]
fn expected_marks_must_exist_in_the_code() {
    assert_error(
        &replaced("outcome = \"clean\"", "outcome = \"clean\"\nmarks = [\"isr_shrunk\", \"isr_shrank\"]"),
        "expect.marks[1]",
        "a coverage mark of the code, one of: isr_shrunk",
    );
}

/// Every `sometimes!` in the system code is listed in `observe::marks::ALL`, so that a
/// scenario can name it (a mark missing there would be refused, one listed but gone never hit).
#[test]
fn every_mark_in_the_code_is_known_and_every_known_mark_is_in_the_code() {
    let mut found = std::collections::BTreeSet::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../src"))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split("sometimes!(\"").skip(1) {
                    found.insert(part.split('"').next().unwrap().to_string());
                }
            }
        }
    }
    let known: std::collections::BTreeSet<String> = stormlog::observe::marks::ALL.iter().map(|m| m.to_string()).collect();
    assert_eq!(found, known);
}

#[test]
fn opt_in_checks_must_be_enabled_to_be_expected() {
    assert_error(
        &with("[checks]\nenable = [\"lost-write\"]"),
        "checks.enable[0]",
        "an opt-in check, one of: fractured-visibility",
    );
    let expect_it = replaced("outcome = \"clean\"", "outcome = \"violation\"\nanomalies = [\"fractured-visibility\"]");
    assert_error(&expect_it, "expect.anomalies", "is an opt-in check: add it to [checks] enable");
    let s = parse(&format!("{expect_it}\n[checks]\nenable = [\"fractured-visibility\"]"));
    assert_eq!(s.checks.enable, vec!["fractured-visibility".to_string()]);
    assert_eq!(parse(&s.to_toml()), s);
}

#[test]
fn by_ms_is_required_for_skew_and_only_for_skew() {
    assert_error(
        &fault("at_ms = 1\naction = \"skew\"\ntarget = \"broker-0\""),
        "faults[0].by_ms",
        "required for skew",
    );
    assert_error(
        &fault("at_ms = 1\naction = \"crash\"\ntarget = \"broker-0\"\nby_ms = 5"),
        "faults[0].by_ms",
        "no by_ms for crash",
    );
}

#[test]
fn a_fault_duration_is_positive_and_only_for_faults_that_heal() {
    assert_error(
        &fault("at_ms = 1\naction = \"crash\"\ntarget = \"broker-0\"\nduration_ms = 0"),
        "faults[0].duration_ms",
        "an integer >= 1, found integer 0",
    );
    assert_error(
        &fault("at_ms = 1\naction = \"restart\"\ntarget = \"broker-0\"\nduration_ms = 5"),
        "faults[0].duration_ms",
        "no duration_ms for restart",
    );
}

#[test]
fn nemesis_kinds_are_a_non_empty_list_of_faults() {
    assert_error(
        &with("[nemesis]\nkinds = []"),
        "nemesis.kinds",
        "a non-empty list of fault kinds",
    );
    assert_error(
        &with("[nemesis]\nkinds = [\"repair\"]"),
        "nemesis.kinds",
        "found array [\"repair\"]",
    );
    assert_error(
        &with("[nemesis]\ntargets = \"brokers\""),
        "nemesis.kinds",
        "but the key is missing",
    );
    assert_error(
        &with("[nemesis]\nkinds = [\"crash\"]\ntargets = \"nodes\""),
        "nemesis.targets",
        "one of: brokers, controllers",
    );
}

#[test]
fn nemesis_ranges_are_positive_and_ordered() {
    let nemesis = |range: &str| {
        with(&format!(
            "[nemesis]\nkinds = [\"crash\"]\ninterval_ms = {range}"
        ))
    };
    assert_error(
        &nemesis("[0, 10]"),
        "nemesis.interval_ms",
        "a range [lo, hi] of integers with 1 <= lo <= hi, found array [0, 10]",
    );
    assert_error(&nemesis("[10, 5]"), "nemesis.interval_ms", "1 <= lo <= hi");
    assert_error(&nemesis("[10]"), "nemesis.interval_ms", "a range [lo, hi]");
}

#[test]
fn network_latency_range_is_ordered() {
    assert_error(
        &with("[network]\nlatency_ms = [10, 1]"),
        "network.latency_ms",
        "0 <= lo <= hi, found array [10, 1]",
    );
}

#[test]
fn errors_display_file_key_and_expectation() {
    let e = ScenarioError::new(
        "a.toml",
        "producers[1].rate_per_sec",
        "a number > 0, found integer 0",
    );
    assert_eq!(
        e.to_string(),
        "a.toml: producers[1].rate_per_sec: expected a number > 0, found integer 0"
    );
    let whole = ScenarioError::new("a.toml", "", "a readable file");
    assert_eq!(whole.to_string(), "a.toml: expected a readable file");
}
