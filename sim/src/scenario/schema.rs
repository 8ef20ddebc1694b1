//! The typed form of a scenario file. Every value here has passed validation; the reader
//! (`read.rs`) and the cross-checks (`validate.rs`) are the only ways to build one from text.

use std::collections::BTreeMap;
use std::fmt;

use super::config::ConfigValue;
use super::target::{Peer, Target};

/// Anomaly names, shared by `[expect]`, `expect.allow` and `[checks] disable`.
pub const ANOMALIES: &[&str] = &[
    "lost-write",
    "duplicate",
    "inconsistent-offsets",
    "aborted-read",
    "poll-skip",
    "nonmonotonic-poll",
    "nonmonotonic-send",
    "reorder",
    "unseen",
    "redelivery",
    "lost-delivery",
    "divergent-replicas",
    "multiple-leaders",
    "hw-regression",
    "epoch-regression",
    "committed-offset-regression",
    "no-leader",
    "stuck-lso",
    "group-unstable",
    "stuck-producer",
    "torn-transaction",
    "processing-reorder",
    "fractured-visibility",
];

/// Checks that run only when `[checks] enable` names them (extension): they test a property
/// stronger than Kafka promises, to show that it does not hold.
pub const OPT_IN_CHECKS: &[&str] = &["fractured-visibility"];

/// Switches of `[behaviour]`, each restoring one historical Kafka behaviour.
pub const BEHAVIOURS: &[&str] = &[
    "truncate_to_hw_on_become_follower",
    "single_step_epoch_truncation",
    "isr_join_ignores_epoch_start_offset",
    "hw_advances_below_min_isr",
    "txn_no_partition_verification",
    "txn_same_epoch_across_transactions",
    "producer_resequences_on_out_of_order",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The path used in error messages (as given to `load`/`parse`).
    pub path: String,
    pub name: String,
    pub description: String,
    pub duration_ms: u64,
    pub seeds: u64,
    pub heal_ms: u64,
    pub expect: Expect,
    pub cluster: Cluster,
    pub behaviour: BTreeMap<String, bool>,
    pub topics: Vec<TopicSpec>,
    pub producers: Vec<ProducerSpec>,
    pub consumers: Vec<ConsumerSpec>,
    pub nemesis: Option<Nemesis>,
    pub faults: Vec<FaultSpec>,
    pub network: NetworkSpec,
    pub checks: Checks,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    pub outcome: Outcome,
    pub anomalies: Vec<String>,
    pub within_seeds: Option<u64>,
    pub allow: Vec<String>,
    /// Extension: names of `sometimes` marks that at least one seed must reach, proving the
    /// run got to the interesting state. Resolved by the runner, not here.
    pub marks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub brokers: u32,
    pub controllers: u32,
    pub config: BTreeMap<String, ConfigValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    pub assignment: Option<Vec<Vec<u32>>>,
}

impl TopicSpec {
    /// Replicas of `partition`, preferred leader first: the explicit assignment, else Kafka's
    /// round robin `[(p + i) % brokers for i in 0..rf]`.
    pub fn replicas(&self, partition: u32, brokers: u32) -> Vec<u32> {
        assert!(
            partition < self.partitions,
            "partition {partition} of {}",
            self.name
        );
        assert!(
            brokers >= self.replication_factor,
            "rf {} > brokers {brokers}",
            self.replication_factor
        );
        if let Some(rows) = &self.assignment {
            return rows[partition as usize].clone();
        }
        (0..self.replication_factor)
            .map(|i| (partition + i) % brokers)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProducerSpec {
    pub name: String,
    pub count: u32,
    pub topic: String,
    pub messages: u64,
    pub rate_per_sec: f64,
    pub keys: u32,
    pub transactional: bool,
    pub records_per_txn: u32,
    pub abort_probability: f64,
    pub restart_resend: bool,
    pub config: BTreeMap<String, ConfigValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSpec {
    pub name: String,
    pub count: u32,
    pub group: Option<String>,
    pub topics: Vec<String>,
    pub processing_ms: u64,
    pub commit: CommitMode,
    /// 0: records are processed in the polling loop; N: handed to N worker tasks (by key), and
    /// the loop polls again at once.
    pub threads: u32,
    /// When the instances start, in simulated ms (default 0).
    pub start_ms: u64,
    /// With `commit = "transactional"`: the topic each processed record is written to, in the
    /// same transaction as the consumed offsets (consume-transform-produce).
    pub output_topic: Option<String>,
    /// Extension, with `commit = "transactional"`: the fraction of transactions the
    /// application aborts on purpose.
    pub abort_probability: f64,
    /// Extension, with `commit = "transactional"`: after an abort the application seeks back to
    /// the committed offsets (default); `false` keeps polling from where it was (KAFKA-17582).
    pub rewind_on_abort: bool,
    pub config: BTreeMap<String, ConfigValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Nemesis {
    pub kinds: Vec<FaultKind>,
    pub interval_ms: (u64, u64),
    pub duration_ms: (u64, u64),
    pub targets: NemesisTargets,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub at_ms: u64,
    pub action: FaultKind,
    /// Empty only for `repair` / `release` without a target, meaning every link.
    pub target: Vec<Target>,
    pub peer: Option<Peer>,
    pub duration_ms: Option<u64>,
    pub by_ms: Option<i64>,
    /// Extension, for `hold-request`: the Kafka API (`"EndTxn"`, `"Produce"`, ...) whose
    /// request is held.
    pub api: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    pub latency_ms: (u64, u64),
    pub loss: f64,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            latency_ms: (1, 10),
            loss: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checks {
    pub disable: Vec<String>,
    /// Extension: opt-in checks (`OPT_IN_CHECKS`) to run.
    pub enable: Vec<String>,
}

/// Gives an enum its scenario-file names: `name`, `from_name`, `NAMES` and `Display`.
macro_rules! named {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant's name in scenario files, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some($ty::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Clean,
    Violation,
}
named!(Outcome { Clean => "clean", Violation => "violation" });

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CommitMode {
    Auto,
    SyncAfterProcess,
    AsyncAfterProcess,
    BeforeProcess,
    Transactional,
}
named!(CommitMode {
    Auto => "auto",
    SyncAfterProcess => "sync-after-process",
    AsyncAfterProcess => "async-after-process",
    BeforeProcess => "before-process",
    Transactional => "transactional",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NemesisTargets {
    Brokers,
    Controllers,
    Producers,
    Consumers,
    Leaders,
    Any,
}
named!(NemesisTargets {
    Brokers => "brokers",
    Controllers => "controllers",
    Producers => "producers",
    Consumers => "consumers",
    Leaders => "leaders",
    Any => "any",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    Crash,
    Kill,
    Restart,
    Pause,
    Resume,
    Partition,
    Repair,
    PartitionOneway,
    Isolate,
    Hold,
    Release,
    Skew,
    DiskLoss,
    HoldRequest,
    ReleaseRequest,
}
named!(FaultKind {
    Crash => "crash",
    Kill => "kill",
    Restart => "restart",
    Pause => "pause",
    Resume => "resume",
    Partition => "partition",
    Repair => "repair",
    PartitionOneway => "partition-oneway",
    Isolate => "isolate",
    Hold => "hold",
    Release => "release",
    Skew => "skew",
    DiskLoss => "disk-loss",
    HoldRequest => "hold-request",
    ReleaseRequest => "release-request",
});

impl FaultKind {
    /// The action that ends this fault after `duration_ms`; `None` for actions that are
    /// themselves heals or instantaneous. Skew heals by undoing itself.
    pub fn healed_by(self) -> Option<FaultKind> {
        use FaultKind::*;
        match self {
            Crash | Kill => Some(Restart),
            Pause => Some(Resume),
            Partition | PartitionOneway | Isolate => Some(Repair),
            Hold => Some(Release),
            HoldRequest => Some(ReleaseRequest),
            Skew => Some(Skew),
            Restart | Resume | Repair | Release | DiskLoss | ReleaseRequest => None,
        }
    }

    /// Whether the action cuts links between two sides, so `peer` means something.
    pub fn takes_peer(self) -> bool {
        matches!(self, FaultKind::Partition | FaultKind::PartitionOneway | FaultKind::HoldRequest)
    }

    /// Heal verbs undo a fault; the nemesis draws faults and heals them itself.
    pub fn is_heal(self) -> bool {
        matches!(
            self,
            FaultKind::Resume | FaultKind::Repair | FaultKind::Release | FaultKind::ReleaseRequest
        )
    }
}
