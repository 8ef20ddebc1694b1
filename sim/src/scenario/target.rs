//! Fault targets in their string form (`broker-1`, `leader:orders/0`, ...). Parsing here is
//! syntax only; whether a target names something that exists is `validate.rs`'s job.

use std::fmt;

/// The accepted forms, quoted in error messages.
pub(crate) const TARGET_FORMS: &str = "broker-N, controller-N, <producer or consumer>-N, \
    leader:<topic>/<partition>, followers:<topic>/<partition>, controller-leader, \
    coordinator:<group> or txn-coordinator:<producer>-N";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Broker(u32),
    Controller(u32),
    /// A producer or consumer instance `<name>-<index>`.
    Client {
        name: String,
        index: u32,
    },
    /// The partition's leader at the moment the fault starts.
    Leader {
        topic: String,
        partition: u32,
    },
    /// All replicas of the partition except its leader, when the fault starts.
    Followers {
        topic: String,
        partition: u32,
    },
    ControllerLeader,
    Coordinator {
        group: String,
    },
    TxnCoordinator {
        producer: String,
        index: u32,
    },
}

/// The other side of a partition.
#[derive(Debug, Clone, PartialEq)]
pub enum Peer {
    Targets(Vec<Target>),
    /// Every broker and controller not in `target`.
    Servers,
    /// Every other node.
    All,
}

impl Target {
    /// Parses the string form; `None` when it matches none of the forms.
    pub fn parse(text: &str) -> Option<Target> {
        if text == "controller-leader" {
            return Some(Target::ControllerLeader);
        }
        if let Some(rest) = text.strip_prefix("leader:") {
            let (topic, partition) = topic_partition(rest)?;
            return Some(Target::Leader {
                topic: topic.to_string(),
                partition,
            });
        }
        if let Some(rest) = text.strip_prefix("followers:") {
            let (topic, partition) = topic_partition(rest)?;
            return Some(Target::Followers {
                topic: topic.to_string(),
                partition,
            });
        }
        if let Some(group) = text.strip_prefix("coordinator:") {
            return (!group.is_empty()).then(|| Target::Coordinator {
                group: group.to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix("txn-coordinator:") {
            let (producer, index) = instance(rest)?;
            return Some(Target::TxnCoordinator {
                producer: producer.to_string(),
                index,
            });
        }
        let (name, index) = instance(text)?;
        Some(match name {
            "broker" => Target::Broker(index),
            "controller" => Target::Controller(index),
            _ => Target::Client {
                name: name.to_string(),
                index,
            },
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Broker(n) => write!(f, "broker-{n}"),
            Target::Controller(n) => write!(f, "controller-{n}"),
            Target::Client { name, index } => write!(f, "{name}-{index}"),
            Target::Leader { topic, partition } => write!(f, "leader:{topic}/{partition}"),
            Target::Followers { topic, partition } => write!(f, "followers:{topic}/{partition}"),
            Target::ControllerLeader => f.write_str("controller-leader"),
            Target::Coordinator { group } => write!(f, "coordinator:{group}"),
            Target::TxnCoordinator { producer, index } => {
                write!(f, "txn-coordinator:{producer}-{index}")
            }
        }
    }
}

/// Names of scenarios, producers and consumers: `[a-z0-9_-]+`.
pub(crate) fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Kafka's legal topic names: `[a-zA-Z0-9._-]+`, at most 249 characters, not `.` or `..`.
pub(crate) fn is_topic_name(text: &str) -> bool {
    let legal = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-';
    !text.is_empty() && text.len() <= 249 && text != "." && text != ".." && text.bytes().all(legal)
}

/// `<name>-<index>`, split at the last dash so names may contain dashes themselves.
fn instance(text: &str) -> Option<(&str, u32)> {
    let (name, digits) = text.rsplit_once('-')?;
    is_name(name).then_some(())?;
    Some((name, index(digits)?))
}

fn topic_partition(text: &str) -> Option<(&str, u32)> {
    let (topic, digits) = text.rsplit_once('/')?;
    is_topic_name(topic).then_some(())?;
    Some((topic, index(digits)?))
}

/// A decimal index without leading zeros, so that parse and Display are inverses.
fn index(digits: &str) -> Option<u32> {
    let canonical = digits == "0" || !digits.starts_with('0');
    if digits.is_empty() || !canonical || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
