//! The partition assignors a consumer group's leader runs between JoinGroup and SyncGroup
//! (KAFKA.md §1.12), and Kafka's ConsumerProtocol encoding of what members send and receive.
//!
//! - **range**: per topic, the subscribed members (by member id) each get a contiguous run of
//!   partitions, the first `n % m` one extra. Co-partitioned topics land together, but the first
//!   members collect the extras of every topic.
//! - **roundrobin**: every partition of every subscribed topic, sorted, is dealt to the members in
//!   turn, skipping members not subscribed to its topic.
//! - **sticky** (KIP-54, eager): as balanced as roundrobin, while keeping as many of the
//!   partitions each member owned in the previous generation as possible.
//!
//! All three are pure functions of their input, so every leader computes the same assignment.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    consumer_protocol_assignment, consumer_protocol_subscription, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::ids::TopicPartition;

#[cfg(test)]
mod tests;

/// A `partition.assignment.strategy` (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Range,
    RoundRobin,
    Sticky,
}

/// One member's JoinGroup metadata, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    pub member_id: String,
    pub topics: Vec<String>,
    /// Partitions the member owned in `generation` (sticky uses these; others ignore them).
    pub owned: Vec<TopicPartition>,
    /// The generation `owned` belongs to, -1 if unknown.
    pub generation: i32,
}

impl Assignor {
    /// The protocol name in JoinGroup: "range", "roundrobin", "sticky" (Kafka's names).
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::Sticky => "sticky",
        }
    }

    /// From a protocol name or Kafka's class name, as `partition.assignment.strategy` takes.
    pub fn from_config_name(s: &str) -> Option<Assignor> {
        let s = s.trim();
        let short = s
            .strip_prefix("org.apache.kafka.clients.consumer.")
            .unwrap_or(s);
        match short {
            "range" | "RangeAssignor" => Some(Assignor::Range),
            "roundrobin" | "RoundRobinAssignor" => Some(Assignor::RoundRobin),
            "sticky" | "StickyAssignor" => Some(Assignor::Sticky),
            _ => None,
        }
    }

    /// Computes the assignment the group leader sends in SyncGroup.
    /// `partitions_per_topic`: partition count of every topic anyone subscribes to (topics missing
    /// from the map are ignored). Returns an entry for EVERY member (possibly empty), partitions
    /// sorted. Member ids must be unique, as the coordinator guarantees.
    pub fn assign(
        self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let subs: Subscriptions = members
            .iter()
            .map(|m| {
                let topics = m.topics.iter().map(String::as_str);
                let known = topics
                    .filter(|t| partitions_per_topic.contains_key(*t))
                    .collect();
                (m.member_id.as_str(), known)
            })
            .collect();
        assert_eq!(
            subs.len(),
            members.len(),
            "duplicate member ids in {members:?}"
        );
        let held = match self {
            Assignor::Range => range(partitions_per_topic, &subs),
            Assignor::RoundRobin => round_robin(partitions_per_topic, &subs),
            Assignor::Sticky => sticky(partitions_per_topic, &subs, members),
        };
        assert_eq!(
            held.len(),
            members.len(),
            "a member is missing from the assignment"
        );
        held.into_iter()
            .map(|(member, tps)| (member.to_string(), tps.into_iter().collect()))
            .collect()
    }
}

/// Member id to the topics it subscribes to that exist.
type Subscriptions<'a> = BTreeMap<&'a str, BTreeSet<&'a str>>;
/// Member id to the partitions it holds; sets keep every member's list sorted.
type Held<'a> = BTreeMap<&'a str, BTreeSet<TopicPartition>>;

fn nobody_holds_anything<'a>(subs: &Subscriptions<'a>) -> Held<'a> {
    subs.keys().map(|&m| (m, BTreeSet::new())).collect()
}

fn partitions_of(topic: &str, count: i32) -> impl Iterator<Item = TopicPartition> + '_ {
    (0..count.max(0)).map(move |p| TopicPartition::new(topic, p))
}

/// Every partition of every topic someone subscribes to, sorted by (topic, partition).
fn subscribed_partitions(
    per_topic: &BTreeMap<String, i32>,
    subs: &Subscriptions,
) -> Vec<TopicPartition> {
    let wanted: BTreeSet<&str> = subs.values().flatten().copied().collect();
    wanted
        .into_iter()
        .flat_map(|t| partitions_of(t, per_topic[t]))
        .collect()
}

fn subscribers<'a, 's>(
    subs: &'s Subscriptions<'a>,
    topic: &'s str,
) -> impl Iterator<Item = &'a str> + 's {
    subs.iter()
        .filter(move |(_, topics)| topics.contains(topic))
        .map(|(&m, _)| m)
}

fn range<'a>(per_topic: &BTreeMap<String, i32>, subs: &Subscriptions<'a>) -> Held<'a> {
    let mut held = nobody_holds_anything(subs);
    for (topic, &count) in per_topic {
        let takers: Vec<&str> = subscribers(subs, topic).collect();
        if takers.is_empty() {
            continue;
        }
        let mut partitions = partitions_of(topic, count);
        let count = usize::try_from(count).unwrap_or(0);
        let (each, extra) = (count / takers.len(), count % takers.len());
        for (i, member) in takers.into_iter().enumerate() {
            let run = each + usize::from(i < extra);
            held.entry(member)
                .or_default()
                .extend(partitions.by_ref().take(run));
        }
        assert!(
            partitions.next().is_none(),
            "range left partitions of {topic} unassigned"
        );
    }
    held
}

fn round_robin<'a>(per_topic: &BTreeMap<String, i32>, subs: &Subscriptions<'a>) -> Held<'a> {
    let mut held = nobody_holds_anything(subs);
    let ring: Vec<(&str, &BTreeSet<&str>)> = subs.iter().map(|(&m, t)| (m, t)).collect();
    let mut next = 0;
    for tp in subscribed_partitions(per_topic, subs) {
        // Ends within one lap: someone subscribes to every topic in `subscribed_partitions`.
        let lap = (0..ring.len()).map(|i| (next + i) % ring.len());
        let Some(at) = lap
            .into_iter()
            .find(|&i| ring[i].1.contains(tp.topic.as_str()))
        else {
            unreachable!("nobody subscribes to {tp}")
        };
        held.entry(ring[at].0).or_default().insert(tp);
        next = (at + 1) % ring.len();
    }
    held
}

fn sticky<'a>(
    per_topic: &BTreeMap<String, i32>,
    subs: &Subscriptions<'a>,
    members: &'a [MemberSubscription],
) -> Held<'a> {
    let owned = still_owned(per_topic, subs, members);
    let all = subscribed_partitions(per_topic, subs);
    let mut topic_sets = subs.values();
    let first = topic_sets.next();
    if topic_sets.all(|t| Some(t) == first) {
        sticky_with_quotas(&all, subs, &owned)
    } else {
        let mut held = sticky_greedy(&all, subs, &owned);
        balance_by_chains(&mut held, subs, &owned);
        held
    }
}

/// The previously owned partitions each member may keep: it still subscribes to the topic, the
/// partition still exists, and its claim has the highest generation. Two claims at the same
/// highest generation cancel out (Kafka logs "multiple consumers claiming the same partition in
/// the same generation" and invalidates both), so neither member keeps it.
fn still_owned<'a>(
    per_topic: &BTreeMap<String, i32>,
    subs: &Subscriptions<'a>,
    members: &'a [MemberSubscription],
) -> Held<'a> {
    let mut claims: BTreeMap<&TopicPartition, Vec<(i32, &str)>> = BTreeMap::new();
    for m in members {
        let topics = &subs[m.member_id.as_str()];
        let unique: BTreeSet<&TopicPartition> = m.owned.iter().collect();
        for tp in unique {
            let exists = per_topic
                .get(&tp.topic)
                .is_some_and(|&n| (0..n).contains(&tp.partition));
            if exists && topics.contains(tp.topic.as_str()) {
                claims
                    .entry(tp)
                    .or_default()
                    .push((m.generation, m.member_id.as_str()));
            }
        }
    }
    let mut owned = nobody_holds_anything(subs);
    for (tp, mut by) in claims {
        by.sort_unstable_by_key(|&(generation, _)| Reverse(generation));
        if by.len() == 1 || by[0].0 > by[1].0 {
            owned.entry(by[0].1).or_default().insert(tp.clone());
        }
    }
    owned
}

/// Equal subscriptions: each member gets floor or ceil of total/members. The ceil quotas go to
/// the members that own the most, then everyone keeps what its quota allows, so only the excess
/// and the partitions of departed members move.
fn sticky_with_quotas<'a>(
    all: &[TopicPartition],
    subs: &Subscriptions<'a>,
    owned: &Held<'a>,
) -> Held<'a> {
    let mut by_owned: Vec<&str> = subs.keys().copied().collect();
    by_owned.sort_by_key(|m| (Reverse(owned[m].len()), *m));
    let (floor, extra) = (
        all.len() / by_owned.len().max(1),
        all.len() % by_owned.len().max(1),
    );
    let quota: BTreeMap<&str, usize> = by_owned
        .iter()
        .enumerate()
        .map(|(i, &m)| (m, floor + usize::from(i < extra)))
        .collect();
    let mut held: Held = owned
        .iter()
        .map(|(&m, tps)| (m, tps.iter().take(quota[m]).cloned().collect()))
        .collect();
    let taken: BTreeSet<&TopicPartition> = held.values().flatten().collect();
    let free: Vec<TopicPartition> = all
        .iter()
        .filter(|tp| !taken.contains(tp))
        .cloned()
        .collect();
    // Deal the rest round-robin over the members still under quota, so a newcomer gets a spread
    // of topics rather than one topic's run.
    let ring: Vec<&str> = subs.keys().copied().collect();
    let mut next = 0;
    for tp in free {
        let lap = (0..ring.len()).map(|i| (next + i) % ring.len());
        let Some(at) = lap
            .into_iter()
            .find(|&i| held[ring[i]].len() < quota[ring[i]])
        else {
            unreachable!("quotas add up to the partition count, yet nobody can take {tp}")
        };
        held.entry(ring[at]).or_default().insert(tp);
        next = (at + 1) % ring.len();
    }
    held
}

/// Different subscriptions: keep every valid owned partition, then hand out the rest, the
/// partitions with the fewest possible takers first, each to its least loaded subscriber.
fn sticky_greedy<'a>(
    all: &[TopicPartition],
    subs: &Subscriptions<'a>,
    owned: &Held<'a>,
) -> Held<'a> {
    let mut held = owned.clone();
    let taken: BTreeSet<&TopicPartition> = owned.values().flatten().collect();
    let mut free: Vec<&TopicPartition> = all.iter().filter(|tp| !taken.contains(tp)).collect();
    free.sort_by_key(|tp| (subscribers(subs, &tp.topic).count(), *tp));
    for tp in free {
        let least_loaded = subscribers(subs, &tp.topic).min_by_key(|m| (held[m].len(), *m));
        let Some(taker) = least_loaded else {
            unreachable!("nobody subscribes to {tp}")
        };
        held.entry(taker).or_default().insert(tp.clone());
    }
    held
}

/// One partition changing hands on a chain of moves.
struct Hop<'a> {
    tp: TopicPartition,
    from: &'a str,
    to: &'a str,
}

/// Applies chains `a → b → … → z` (each member hands one partition to the next, which subscribes
/// to its topic) where z holds at least two fewer than a, until none is left. Only the ends'
/// counts change, and Σ count² drops with every chain, so this ends; without any such chain no
/// transfer can make the counts more even. Shortest chains first, so the fewest partitions move.
fn balance_by_chains<'a>(held: &mut Held<'a>, subs: &Subscriptions<'a>, owned: &Held<'a>) {
    let total: usize = held.values().map(BTreeSet::len).sum();
    for _ in 0..=total * total {
        let mut sources: Vec<&str> = held.keys().copied().collect();
        sources.sort_by_key(|m| (Reverse(held[m].len()), *m));
        let Some(chain) = sources
            .into_iter()
            .find_map(|s| shortest_chain(s, held, subs, owned))
        else {
            return;
        };
        for hop in chain {
            let moved = held.entry(hop.from).or_default().remove(&hop.tp);
            assert!(moved, "{} does not hold {}", hop.from, hop.tp);
            held.entry(hop.to).or_default().insert(hop.tp);
        }
    }
    panic!("sticky balancing did not converge within {total}² chains: {held:?}");
}

/// Breadth-first from `source`; each hop moves, preferably, a partition its giver did not own
/// before (handing it on costs no stickiness).
fn shortest_chain<'a>(
    source: &'a str,
    held: &Held<'a>,
    subs: &Subscriptions<'a>,
    owned: &Held<'a>,
) -> Option<Vec<Hop<'a>>> {
    let most = held[source].len().checked_sub(2)?;
    let mut reached: BTreeMap<&str, Hop> = BTreeMap::new();
    let mut queue = VecDeque::from([source]);
    while let Some(giver) = queue.pop_front() {
        for (&taker, topics) in subs {
            if taker == source || reached.contains_key(taker) {
                continue;
            }
            let movable = held[giver]
                .iter()
                .filter(|tp| topics.contains(tp.topic.as_str()));
            let Some(tp) = movable.min_by_key(|tp| (owned[giver].contains(*tp), *tp)) else {
                continue;
            };
            reached.insert(
                taker,
                Hop {
                    tp: tp.clone(),
                    from: giver,
                    to: taker,
                },
            );
            if held[taker].len() <= most {
                return Some(walk_back(reached, taker, source));
            }
            queue.push_back(taker);
        }
    }
    None
}

fn walk_back<'a>(
    mut reached: BTreeMap<&'a str, Hop<'a>>,
    end: &'a str,
    source: &str,
) -> Vec<Hop<'a>> {
    let mut chain = Vec::new();
    let mut at = end;
    while at != source {
        let Some(hop) = reached.remove(at) else {
            unreachable!("{at} reached without a hop")
        };
        at = hop.from;
        chain.push(hop);
    }
    chain
}

/// The ConsumerProtocol version written; reads accept 0..=3 and, like Kafka's
/// `ConsumerProtocol.checkSubscriptionVersion`, parse any higher version as this one.
const PROTOCOL_VERSION: i16 = 3;

/// Kafka's ConsumerProtocolSubscription, as JoinGroup protocol metadata: the i16 version, then
/// the message at that version (rack_id None, no user data). Topics and owned partitions are
/// sorted, as Kafka does, so the same subscription is always the same bytes (the coordinator
/// compares them to decide whether a rejoining member changed its metadata).
pub fn encode_subscription(topics: &[String], owned: &[TopicPartition], generation: i32) -> Bytes {
    let mut topics = topics.to_vec();
    topics.sort();
    let mut owned = owned.to_vec();
    owned.sort();
    let owned = by_topic(&owned).into_iter().map(|(topic, partitions)| {
        consumer_protocol_subscription::TopicPartition::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)
    });
    let message = ConsumerProtocolSubscription::default()
        .with_topics(topics.into_iter().map(StrBytes::from_string).collect())
        .with_owned_partitions(owned.collect())
        .with_generation_id(generation);
    framed(&message)
}

/// Reads a subscription of any version (above 3 as 3); errors say what was wrong.
pub fn decode_subscription(member_id: &str, data: &[u8]) -> Result<MemberSubscription, String> {
    let (version, mut body) = unframed(data, "subscription")?;
    let message = check_subscription_counts(body, version)
        .and_then(|()| {
            ConsumerProtocolSubscription::decode(&mut body, version).map_err(|e| e.to_string())
        })
        .map_err(|e| format!("malformed v{version} subscription of {member_id}: {e}"))?;
    let owned = message
        .owned_partitions
        .iter()
        .flat_map(|t| flattened(&t.topic, &t.partitions));
    Ok(MemberSubscription {
        member_id: member_id.to_string(),
        topics: message.topics.iter().map(|t| t.to_string()).collect(),
        owned: owned.collect(),
        generation: message.generation_id,
    })
}

/// Kafka's ConsumerProtocolAssignment, as SyncGroup assignment bytes: the i16 version, then the
/// message at that version (no user data).
pub fn encode_assignment(partitions: &[TopicPartition]) -> Bytes {
    let assigned = by_topic(partitions).into_iter().map(|(topic, partitions)| {
        consumer_protocol_assignment::TopicPartition::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)
    });
    framed(&ConsumerProtocolAssignment::default().with_assigned_partitions(assigned.collect()))
}

/// Reads an assignment of any version (above 3 as 3); errors say what was wrong.
pub fn decode_assignment(data: &[u8]) -> Result<Vec<TopicPartition>, String> {
    let (version, mut body) = unframed(data, "assignment")?;
    let message = check_assignment_counts(body)
        .and_then(|()| {
            ConsumerProtocolAssignment::decode(&mut body, version).map_err(|e| e.to_string())
        })
        .map_err(|e| format!("malformed v{version} assignment: {e}"))?;
    Ok(message
        .assigned_partitions
        .iter()
        .flat_map(|t| flattened(&t.topic, &t.partitions))
        .collect())
}

/// Partitions grouped by topic as the wire carries them; within a topic the order is kept.
fn by_topic(partitions: &[TopicPartition]) -> BTreeMap<&str, Vec<i32>> {
    let mut grouped: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        grouped
            .entry(tp.topic.as_str())
            .or_default()
            .push(tp.partition);
    }
    grouped
}

fn flattened<'a>(
    topic: &'a TopicName,
    partitions: &'a [i32],
) -> impl Iterator<Item = TopicPartition> + 'a {
    partitions
        .iter()
        .map(move |&p| TopicPartition::new(topic.to_string(), p))
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn framed<M: Encodable>(message: &M) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(PROTOCOL_VERSION);
    // Fails only for a string over i16::MAX bytes, which no valid topic name is.
    if let Err(e) = message.encode(&mut buf, PROTOCOL_VERSION) {
        panic!("ConsumerProtocol message does not encode: {e}");
    }
    buf.freeze()
}

/// Splits off the version header.
fn unframed<'d>(data: &'d [u8], what: &str) -> Result<(i16, &'d [u8]), String> {
    let Some((header, body)) = data.split_first_chunk::<2>() else {
        return Err(format!(
            "{what} of {} bytes has no version header",
            data.len()
        ));
    };
    let version = i16::from_be_bytes(*header);
    if version < 0 {
        return Err(format!("{what} version {version} is negative"));
    }
    Ok((version.min(PROTOCOL_VERSION), body))
}

// kafka-protocol reserves room for an array's declared length before reading any element, so a
// garbage count near 2^31 aborts the process on allocation. These walk the layout first and
// reject counts the remaining bytes cannot hold; the crate then decodes for real.

fn check_subscription_counts(mut body: &[u8], version: i16) -> Result<(), String> {
    let buf = &mut body;
    array(buf, 2, skip_string)?; // topics
    let user_data_len = i32::from_be_bytes(take(buf)?);
    skip(buf, usize::try_from(user_data_len).unwrap_or(0))?;
    if version >= 1 {
        array(buf, 6, skip_topic_partitions)?; // owned_partitions
    }
    Ok(())
}

fn check_assignment_counts(mut body: &[u8]) -> Result<(), String> {
    array(&mut body, 6, skip_topic_partitions) // assigned_partitions
}

fn skip_topic_partitions(buf: &mut &[u8]) -> Result<(), String> {
    skip_string(buf)?;
    array(buf, 4, |b| skip(b, 4))
}

/// An i32 count then the elements, each at least `element_bytes_min` long.
fn array(
    buf: &mut &[u8],
    element_bytes_min: usize,
    element: impl Fn(&mut &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let count = i32::from_be_bytes(take(buf)?);
    // A null or negative count allocates nothing; the decoder rejects it.
    let Ok(count) = usize::try_from(count) else {
        return Ok(());
    };
    if count.saturating_mul(element_bytes_min) > buf.len() {
        return Err(format!(
            "array of {count} elements in the {} bytes left",
            buf.len()
        ));
    }
    (0..count).try_for_each(|_| element(buf))
}

fn skip_string(buf: &mut &[u8]) -> Result<(), String> {
    let len = i16::from_be_bytes(take(buf)?);
    skip(buf, usize::try_from(len).unwrap_or(0))
}

fn skip(buf: &mut &[u8], n: usize) -> Result<(), String> {
    let rest = buf
        .get(n..)
        .ok_or_else(|| format!("{n} bytes wanted, {} left", buf.len()))?;
    *buf = rest;
    Ok(())
}

fn take<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], String> {
    let (head, rest) = buf
        .split_first_chunk::<N>()
        .ok_or_else(|| format!("{N} bytes wanted, {} left", buf.len()))?;
    *buf = rest;
    Ok(*head)
}
