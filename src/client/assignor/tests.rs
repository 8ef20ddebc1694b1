use proptest::prelude::*;

use super::*;

const ALL: [Assignor; 3] = [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky];

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn topics(counts: &[(&str, i32)]) -> BTreeMap<String, i32> {
    counts.iter().map(|&(t, n)| (t.to_string(), n)).collect()
}

fn member(id: &str, topics: &[&str]) -> MemberSubscription {
    MemberSubscription {
        member_id: id.to_string(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        owned: Vec::new(),
        generation: -1,
    }
}

fn owning(
    mut m: MemberSubscription,
    owned: &[TopicPartition],
    generation: i32,
) -> MemberSubscription {
    m.owned = owned.to_vec();
    m.generation = generation;
    m
}

fn expect(entries: &[(&str, &[TopicPartition])]) -> BTreeMap<String, Vec<TopicPartition>> {
    entries
        .iter()
        .map(|(m, tps)| (m.to_string(), tps.to_vec()))
        .collect()
}

#[test]
fn names_round_trip_and_kafka_class_names_are_understood() {
    for a in ALL {
        assert_eq!(Assignor::from_config_name(a.name()), Some(a));
    }
    let class =
        |s: &str| Assignor::from_config_name(&format!("org.apache.kafka.clients.consumer.{s}"));
    assert_eq!(class("RangeAssignor"), Some(Assignor::Range));
    assert_eq!(class("RoundRobinAssignor"), Some(Assignor::RoundRobin));
    assert_eq!(class("StickyAssignor"), Some(Assignor::Sticky));
    assert_eq!(class("CooperativeStickyAssignor"), None);
    assert_eq!(Assignor::from_config_name("uniform"), None);
}

#[test]
fn range_matches_the_kafka_javadoc_example() {
    let per_topic = topics(&[("t0", 3), ("t1", 3)]);
    let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
    let got = Assignor::Range.assign(&per_topic, &members);
    let c0 = [tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)];
    assert_eq!(
        got,
        expect(&[("C0", &c0), ("C1", &[tp("t0", 2), tp("t1", 2)])])
    );
}

#[test]
fn round_robin_matches_the_kafka_javadoc_examples() {
    let per_topic = topics(&[("t0", 3), ("t1", 3)]);
    let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
    let got = Assignor::RoundRobin.assign(&per_topic, &members);
    let c0 = [tp("t0", 0), tp("t0", 2), tp("t1", 1)];
    let c1 = [tp("t0", 1), tp("t1", 0), tp("t1", 2)];
    assert_eq!(got, expect(&[("C0", &c0), ("C1", &c1)]));

    let per_topic = topics(&[("t0", 1), ("t1", 2), ("t2", 3)]);
    let members = [
        member("C0", &["t0"]),
        member("C1", &["t0", "t1"]),
        member("C2", &["t0", "t1", "t2"]),
    ];
    let got = Assignor::RoundRobin.assign(&per_topic, &members);
    let c2 = [tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)];
    assert_eq!(
        got,
        expect(&[("C0", &[tp("t0", 0)]), ("C1", &[tp("t1", 0)]), ("C2", &c2)])
    );
}

#[test]
fn sticky_matches_the_kafka_javadoc_example_with_unequal_subscriptions() {
    let per_topic = topics(&[("t0", 1), ("t1", 2), ("t2", 3)]);
    let (c0, c1, c2) = (
        member("C0", &["t0"]),
        member("C1", &["t0", "t1"]),
        member("C2", &["t0", "t1", "t2"]),
    );
    let first = Assignor::Sticky.assign(&per_topic, &[c0, c1.clone(), c2.clone()]);
    let t1 = [tp("t1", 0), tp("t1", 1)];
    let t2 = [tp("t2", 0), tp("t2", 1), tp("t2", 2)];
    assert_eq!(
        first,
        expect(&[("C0", &[tp("t0", 0)]), ("C1", &t1), ("C2", &t2)])
    );

    // C0 leaves: its partition goes to the less loaded C1, nothing else moves.
    let members = [owning(c1, &first["C1"], 1), owning(c2, &first["C2"], 1)];
    let second = Assignor::Sticky.assign(&per_topic, &members);
    assert_eq!(
        second,
        expect(&[
            ("C1", &[tp("t0", 0), tp("t1", 0), tp("t1", 1)]),
            ("C2", &t2)
        ])
    );
}

#[test]
fn sticky_keeps_what_survivors_owned_when_a_member_leaves() {
    // StickyAssignor javadoc: C0 [t0p0, t1p1, t3p0], C1 [t0p1, t2p0, t3p1], C2 [t1p0, t2p1]; C1 leaves.
    let per_topic = topics(&[("t0", 2), ("t1", 2), ("t2", 2), ("t3", 2)]);
    let all = ["t0", "t1", "t2", "t3"];
    let c0_before = [tp("t0", 0), tp("t1", 1), tp("t3", 0)];
    let c2_before = [tp("t1", 0), tp("t2", 1)];
    let members = [
        owning(member("C0", &all), &c0_before, 3),
        owning(member("C2", &all), &c2_before, 3),
    ];
    let got = Assignor::Sticky.assign(&per_topic, &members);
    assert_eq!((got["C0"].len(), got["C2"].len()), (4, 4));
    assert!(c0_before.iter().all(|p| got["C0"].contains(p)), "{got:?}");
    assert!(c2_before.iter().all(|p| got["C2"].contains(p)), "{got:?}");
}

#[test]
fn sticky_balances_through_a_chain_when_no_single_move_helps() {
    // A can only take t1, which B holds; B makes room by taking two of C's t2.
    let per_topic = topics(&[("t1", 2), ("t2", 4)]);
    let t2: Vec<TopicPartition> = (0..4).map(|p| tp("t2", p)).collect();
    let members = [
        member("A", &["t1"]),
        owning(member("B", &["t1", "t2"]), &[tp("t1", 0), tp("t1", 1)], 1),
        owning(member("C", &["t2"]), &t2, 1),
    ];
    let got = Assignor::Sticky.assign(&per_topic, &members);
    let (b, c) = ([tp("t2", 0), tp("t2", 1)], [tp("t2", 2), tp("t2", 3)]);
    assert_eq!(
        got,
        expect(&[("A", &[tp("t1", 0), tp("t1", 1)]), ("B", &b), ("C", &c)])
    );
}

#[test]
fn sticky_gives_a_partition_to_the_claim_of_the_highest_generation() {
    let per_topic = topics(&[("t", 2)]);
    let a = owning(member("A", &["t"]), &[tp("t", 0)], 4);
    let b = owning(member("B", &["t"]), &[tp("t", 0)], 5);
    let got = Assignor::Sticky.assign(&per_topic, &[a, b]);
    assert_eq!(got, expect(&[("A", &[tp("t", 1)]), ("B", &[tp("t", 0)])]));
}

#[test]
fn sticky_drops_a_partition_claimed_twice_in_the_same_generation() {
    // Had A's claim on t0 stood, A would keep t0 (the lower of its two) and B get t1.
    let per_topic = topics(&[("t", 2)]);
    let a = owning(member("A", &["t"]), &[tp("t", 0), tp("t", 1)], 5);
    let b = owning(member("B", &["t"]), &[tp("t", 0)], 5);
    let got = Assignor::Sticky.assign(&per_topic, &[a, b]);
    assert_eq!(got, expect(&[("A", &[tp("t", 1)]), ("B", &[tp("t", 0)])]));
}

#[test]
fn sticky_ignores_claims_on_unsubscribed_topics_and_missing_partitions() {
    let per_topic = topics(&[("t", 2), ("u", 2)]);
    let a = owning(
        member("A", &["t"]),
        &[tp("u", 0), tp("u", 1), tp("t", 7)],
        2,
    );
    let b = owning(member("B", &["t", "u"]), &[], 2);
    let got = Assignor::Sticky.assign(&per_topic, &[a, b]);
    assert_eq!(
        got,
        expect(&[
            ("A", &[tp("t", 0), tp("t", 1)]),
            ("B", &[tp("u", 0), tp("u", 1)])
        ])
    );
}

#[test]
fn every_member_gets_an_entry_even_with_nothing_to_take() {
    let per_topic = topics(&[("t", 1)]);
    let members = [
        member("A", &["t"]),
        member("B", &["t"]),
        member("C", &["gone"]),
    ];
    for a in ALL {
        let got = a.assign(&per_topic, &members);
        assert_eq!(
            got,
            expect(&[("A", &[tp("t", 0)]), ("B", &[]), ("C", &[])]),
            "{a:?}"
        );
        assert!(a.assign(&per_topic, &[]).is_empty(), "{a:?}");
    }
}

#[test]
fn subscription_is_written_as_version_3_and_reads_back() {
    let topics = vec!["b".to_string(), "a".to_string()];
    let owned = vec![tp("b", 3), tp("a", 1), tp("b", 0)];
    let data = encode_subscription(&topics, &owned, 7);
    assert_eq!(data[..2], [0, 3]);
    let got = decode_subscription("m-1", &data).expect("decodes");
    assert_eq!(got.member_id, "m-1");
    assert_eq!(got.topics, ["a", "b"], "sorted, as Kafka writes them");
    assert_eq!(
        got.owned,
        [tp("a", 1), tp("b", 0), tp("b", 3)],
        "sorted, as Kafka writes them"
    );
    assert_eq!(got.generation, 7);
    let again = encode_subscription(&got.topics, &got.owned, 7);
    assert_eq!(again, data, "one subscription, one encoding");
}

#[test]
fn a_version_0_subscription_has_no_owned_partitions_and_an_unknown_generation() {
    let message =
        ConsumerProtocolSubscription::default().with_topics(vec![StrBytes::from_static_str("t")]);
    let mut data = BytesMut::new();
    data.put_i16(0);
    message.encode(&mut data, 0).expect("encodes");
    let got = decode_subscription("m", &data).expect("decodes");
    assert_eq!(
        got,
        MemberSubscription {
            owned: vec![],
            generation: -1,
            ..member("m", &["t"])
        }
    );
}

#[test]
fn a_version_above_3_is_read_as_version_3() {
    let mut data = BytesMut::from(&encode_assignment(&[tp("t", 0)])[..]);
    data[..2].copy_from_slice(&9i16.to_be_bytes());
    data.put_slice(b"a field from the future");
    assert_eq!(decode_assignment(&data), Ok(vec![tp("t", 0)]));
}

#[test]
fn every_truncation_of_a_valid_encoding_is_an_error() {
    let subscription = encode_subscription(&["t".to_string()], &[tp("t", 0)], 1);
    for len in 0..subscription.len() {
        assert!(
            decode_subscription("m", &subscription[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
    let assignment = encode_assignment(&[tp("t", 0), tp("u", 1)]);
    for len in 0..assignment.len() {
        assert!(
            decode_assignment(&assignment[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn a_huge_array_count_is_an_error_not_an_allocation() {
    // Version 0, then topics: i32::MAX elements.
    let data = [0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1, b'a'];
    let err = decode_subscription("m", &data).expect_err("rejected");
    assert!(err.contains("2147483647"), "{err}");
    // One assigned topic whose partition array claims i32::MAX elements.
    let data = [
        0, 3, 0, 0, 0, 1, 0, 1, b'a', 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0,
    ];
    assert!(decode_assignment(&data).is_err());
    assert!(
        decode_subscription("m", &[0xff, 0xff]).is_err(),
        "negative version"
    );
}

/// A random group: partition counts of topics t0.., and per member the topic subset (bitmask)
/// plus claims on (topic index, partition) at a generation. Claims may name topics the member
/// does not subscribe to, or partitions and topics that do not exist.
type Group = (Vec<i32>, Vec<(u8, Vec<(usize, i32)>, i32)>);

fn group() -> impl Strategy<Value = Group> {
    let member = (
        0u8..16,
        prop::collection::vec((0..5usize, 0..14i32), 0..6),
        -1..3i32,
    );
    (
        prop::collection::vec(1..=12i32, 1..=4),
        prop::collection::vec(member, 1..=6),
    )
}

fn topics_named(counts: &[i32]) -> BTreeMap<String, i32> {
    counts
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("t{i}"), n))
        .collect()
}

fn build(group: &Group) -> (BTreeMap<String, i32>, Vec<MemberSubscription>) {
    let (counts, members) = group;
    let per_topic = topics_named(counts);
    let members = members
        .iter()
        .enumerate()
        .map(|(i, (mask, claims, generation))| MemberSubscription {
            member_id: format!("m{i}"),
            topics: (0..counts.len())
                .filter(|t| mask & (1 << t) != 0)
                .map(|t| format!("t{t}"))
                .collect(),
            owned: claims
                .iter()
                .map(|&(t, p)| tp(&format!("t{t}"), p))
                .collect(),
            generation: *generation,
        })
        .collect();
    (per_topic, members)
}

fn owners(
    assignment: &BTreeMap<String, Vec<TopicPartition>>,
) -> BTreeMap<&TopicPartition, Vec<&str>> {
    let mut owners: BTreeMap<&TopicPartition, Vec<&str>> = BTreeMap::new();
    for (m, tps) in assignment {
        for p in tps {
            owners.entry(p).or_default().push(m);
        }
    }
    owners
}

fn count_spread(assignment: &BTreeMap<String, Vec<TopicPartition>>) -> usize {
    let counts = assignment.values().map(Vec::len);
    counts.clone().max().unwrap_or(0) - counts.min().unwrap_or(0)
}

/// Partitions whose owner differs between two assignments (counting those whose owner left).
fn moved(
    before: &BTreeMap<String, Vec<TopicPartition>>,
    after: &BTreeMap<String, Vec<TopicPartition>>,
) -> usize {
    let (before, after) = (owners(before), owners(after));
    before
        .iter()
        .filter(|(p, m)| after.get(*p) != Some(*m))
        .count()
}

/// The fewest moves any balanced assignment of `total` partitions over `members` needs, starting
/// from `kept_counts` (what each surviving member owned): at most `total % members` members may
/// hold one more than the floor, and it is cheapest to let the largest owners be those.
fn fewest_moves(kept_counts: &[usize], departed: usize, total: usize, members: usize) -> usize {
    let mut kept = kept_counts.to_vec();
    kept.sort_unstable_by(|a, b| b.cmp(a));
    let floor = total / members;
    let excess: usize = kept
        .iter()
        .enumerate()
        .map(|(i, &k)| k.saturating_sub(floor + usize::from(i < total % members)))
        .sum();
    departed + excess
}

proptest! {
    #[test]
    fn every_subscribed_partition_has_exactly_one_owner_and_that_owner_subscribes(g in group()) {
        let (per_topic, members) = build(&g);
        let wanted: BTreeSet<&String> = members.iter().flat_map(|m| &m.topics).collect();
        let expected: Vec<TopicPartition> =
            wanted.iter().flat_map(|&t| (0..per_topic[t]).map(move |p| tp(t, p))).collect();
        for a in ALL {
            let got = a.assign(&per_topic, &members);
            let ids: Vec<&String> = got.keys().collect();
            prop_assert_eq!(ids, members.iter().map(|m| &m.member_id).collect::<Vec<_>>(), "{:?}", a);
            let owners = owners(&got);
            let owned: Vec<TopicPartition> = owners.keys().copied().cloned().collect();
            prop_assert_eq!(&owned, &expected, "{:?}", a);
            for (p, who) in owners {
                prop_assert_eq!(who.len(), 1, "{:?}: {} owned by {:?}", a, p, who);
                let m = members.iter().find(|m| m.member_id == who[0]).expect("a member");
                prop_assert!(m.topics.contains(&p.topic), "{:?}: {} given to {}", a, p, m.member_id);
            }
            for tps in got.values() {
                prop_assert!(tps.windows(2).all(|w| w[0] < w[1]), "{:?}: unsorted {:?}", a, tps);
            }
        }
    }

    /// Range balances each topic on its own: its first members take the extra of every topic
    /// (the RangeAssignor javadoc example is 4 against 2), so across topics only the others are
    /// within one.
    #[test]
    fn equal_subscriptions_give_counts_within_one(g in group()) {
        let (per_topic, mut members) = build(&g);
        for m in &mut members {
            m.topics = per_topic.keys().cloned().collect();
        }
        for a in [Assignor::RoundRobin, Assignor::Sticky] {
            let got = a.assign(&per_topic, &members);
            prop_assert!(count_spread(&got) <= 1, "{:?}: {:?}", a, got);
        }
        let range = Assignor::Range.assign(&per_topic, &members);
        for topic in per_topic.keys() {
            let of_topic: BTreeMap<String, Vec<TopicPartition>> = range
                .iter()
                .map(|(m, tps)| (m.clone(), tps.iter().filter(|p| &p.topic == topic).cloned().collect()))
                .collect();
            prop_assert!(count_spread(&of_topic) <= 1, "Range, {}: {:?}", topic, range);
        }
    }

    #[test]
    fn sticky_leaves_no_partition_a_less_loaded_subscriber_could_take(g in group()) {
        let (per_topic, members) = build(&g);
        let got = Assignor::Sticky.assign(&per_topic, &members);
        for (giver, tps) in &got {
            for p in tps {
                for taker in members.iter().filter(|m| m.topics.contains(&p.topic)) {
                    prop_assert!(got[&taker.member_id].len() + 2 > tps.len(),
                        "{} could go from {} to {}: {:?}", p, giver, taker.member_id, got);
                }
            }
        }
    }

    #[test]
    fn sticky_rerun_with_the_same_members_moves_nothing(g in group()) {
        let (per_topic, mut members) = build(&g);
        let first = Assignor::Sticky.assign(&per_topic, &members);
        for m in &mut members {
            m.owned = first[&m.member_id].clone();
            m.generation = 3;
        }
        prop_assert_eq!(Assignor::Sticky.assign(&per_topic, &members), first);
    }

    #[test]
    fn sticky_moves_only_what_departures_and_balance_require(
        counts in prop::collection::vec(1..=12i32, 1..=4),
        initial in 1..=6usize,
        changes in prop::collection::vec((0u8..64, 0..3usize), 1..4),
    ) {
        let per_topic = topics_named(&counts);
        let all: Vec<&str> = per_topic.keys().map(String::as_str).collect();
        let total = counts.iter().sum::<i32>() as usize;
        let mut ids: Vec<String> = (0..initial).map(|n| format!("m{n}")).collect();
        let members: Vec<MemberSubscription> = ids.iter().map(|id| member(id, &all)).collect();
        let mut before = Assignor::Sticky.assign(&per_topic, &members);
        for (generation, (leave_mask, joins)) in (1usize..).zip(changes) {
            // The i-th member leaves if bit i % 6 is set; newcomers are numbered by generation.
            let stays = |(i, _): &(usize, String)| leave_mask & (1 << (i % 6)) == 0;
            ids = ids.into_iter().enumerate().filter(stays).map(|(_, id)| id).collect();
            let joins = if ids.is_empty() { joins.max(1) } else { joins };
            ids.extend((0..joins).map(|j| format!("m{}", generation * 100 + j)));
            let members: Vec<MemberSubscription> = ids
                .iter()
                .map(|id| owning(member(id, &all), before.get(id).map_or(&[], |v| v), generation as i32))
                .collect();
            let after = Assignor::Sticky.assign(&per_topic, &members);
            let kept: Vec<usize> = ids.iter().map(|id| before.get(id).map_or(0, Vec::len)).collect();
            let departed = total - kept.iter().sum::<usize>();
            prop_assert_eq!(moved(&before, &after), fewest_moves(&kept, departed, total, ids.len()),
                "{:?} -> {:?}", before, after);
            prop_assert!(count_spread(&after) <= 1, "{:?}", after);
            before = after;
        }
    }

    #[test]
    fn subscription_and_assignment_survive_encode_then_decode(
        topics in prop::collection::vec("[a-z.]{1,12}", 0..5),
        owned in prop::collection::vec(("[a-z]{1,3}", 0..100i32), 0..8),
        generation in -1..1000i32,
    ) {
        let owned: Vec<TopicPartition> = owned.into_iter().map(|(t, p)| tp(&t, p)).collect();
        let sub = decode_subscription("m", &encode_subscription(&topics, &owned, generation));
        let mut expected = MemberSubscription { topics, owned: owned.clone(), generation, ..member("m", &[]) };
        expected.topics.sort();
        expected.owned.sort();
        prop_assert_eq!(sub, Ok(expected));
        // An assignment is grouped by topic on the wire; within a topic the order is kept.
        let mut grouped = owned.clone();
        grouped.sort_by(|a, b| a.topic.cmp(&b.topic));
        prop_assert_eq!(decode_assignment(&encode_assignment(&owned)), Ok(grouped));
    }

    #[test]
    fn decoding_random_bytes_never_panics(
        data in prop::collection::vec(any::<u8>(), 0..64),
        version in 0..5i16,
    ) {
        let _ = decode_subscription("m", &data);
        let _ = decode_assignment(&data);
        // With a plausible version, garbage reaches the message decoder too.
        let mut framed = version.to_be_bytes().to_vec();
        framed.extend_from_slice(&data);
        let _ = decode_subscription("m", &framed);
        let _ = decode_assignment(&framed);
    }
}

