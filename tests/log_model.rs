//! Model test: random operations on a `Log` over a crashing `MemStorage`, checked against a
//! plain vector of the batches the log should hold and how many of them are known durable.
//!
//! After a machine crash the log may keep any whole-batch prefix between the durable prefix and
//! everything appended (torn writes can save unsynced batches); the model adopts what survived.

use std::rc::Rc;

use proptest::prelude::*;
use stormlog::log::{
    build_test_batch, set_base_offset, set_partition_leader_epoch, split_batches, BatchHeader, Log,
    LogConfig, LogError,
};
use stormlog::seam::MemStorage;

const DIR: &str = "topic-3";

#[derive(Debug, Clone)]
enum Op {
    /// Record counts of the batches in one produce request, and the leader epoch.
    AppendLeader(Vec<usize>, i32),
    AppendFollower(usize, i32),
    /// Offset selector (taken modulo LEO + 2, so the end and past it are hit too), max_bytes.
    Read(u16, usize),
    TruncateTo(u16),
    Flush,
    Crash(Option<u64>),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop::collection::vec(1usize..5, 1..4), 0i32..5).prop_map(|(n, e)| Op::AppendLeader(n, e)),
        1 => (1usize..5, 0i32..5).prop_map(|(n, e)| Op::AppendFollower(n, e)),
        3 => (any::<u16>(), 0usize..400).prop_map(|(o, m)| Op::Read(o, m)),
        1 => any::<u16>().prop_map(Op::TruncateTo),
        1 => Just(Op::Flush),
        1 => prop::option::of(any::<u64>()).prop_map(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

fn config() -> impl Strategy<Value = LogConfig> {
    (
        100u64..600,
        0u64..300,
        prop::sample::select(vec![1u64, 4, u64::MAX]),
    )
        .prop_map(
            |(segment_bytes, index_interval_bytes, flush_interval_messages)| LogConfig {
                segment_bytes,
                index_interval_bytes,
                flush_interval_messages,
            },
        )
}

struct Model {
    /// The exact bytes of each batch the log holds, in order.
    batches: Vec<Vec<u8>>,
    /// How many leading batches are durable.
    durable: usize,
    /// Distinguishes payloads so a misplaced batch cannot compare equal.
    next_tag: u64,
}

impl Model {
    fn end_of(batches: &[Vec<u8>]) -> i64 {
        batches
            .last()
            .map_or(0, |b| BatchHeader::parse(b).unwrap().last_offset() + 1)
    }

    fn leo(&self) -> i64 {
        Model::end_of(&self.batches)
    }

    fn durable_end(&self) -> i64 {
        Model::end_of(&self.batches[..self.durable])
    }

    fn producer_batch(&mut self, records: usize) -> Vec<u8> {
        let values: Vec<Vec<u8>> = (0..records)
            .map(|i| format!("tag{}-rec{i}", self.next_tag).into_bytes())
            .collect();
        self.next_tag += 1;
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        build_test_batch(0, &refs)
    }

    /// What `read(from, max_bytes)` must return, or `None` if it must fail as out of range.
    fn read(&self, from: i64, max_bytes: usize) -> Option<Vec<u8>> {
        if from > self.leo() {
            return None;
        }
        let first = self
            .batches
            .iter()
            .position(|b| BatchHeader::parse(b).unwrap().last_offset() >= from);
        let mut out = Vec::new();
        for b in &self.batches[first.unwrap_or(self.batches.len())..] {
            if !out.is_empty() && out.len() + b.len() > max_bytes {
                break;
            }
            out.extend_from_slice(b);
        }
        Some(out)
    }
}

/// Base offsets of concatenated batches: a readable summary for failure messages.
fn base_offsets(bytes: &[u8]) -> Vec<i64> {
    split_batches(bytes)
        .unwrap()
        .iter()
        .map(|(h, _)| h.base_offset)
        .collect()
}

struct Harness {
    mem: MemStorage,
    config: LogConfig,
    log: Log,
    model: Model,
}

impl Harness {
    fn reopen(&mut self) {
        self.log = Log::open(Rc::new(self.mem.clone()), DIR, self.config.clone()).unwrap();
    }

    fn after_append(&mut self) {
        let unflushed = (self.model.leo() - self.model.durable_end()) as u64;
        if unflushed >= self.config.flush_interval_messages {
            self.model.durable = self.model.batches.len();
        }
    }

    fn append_leader(&mut self, counts: &[usize], epoch: i32) {
        let produced: Vec<Vec<u8>> = counts
            .iter()
            .map(|&n| self.model.producer_batch(n))
            .collect();
        let first = self.model.leo();
        let info = self
            .log
            .append_as_leader(&produced.concat(), epoch)
            .unwrap();
        let mut next = first;
        for mut b in produced {
            set_base_offset(&mut b, next);
            set_partition_leader_epoch(&mut b, epoch);
            next = BatchHeader::parse(&b).unwrap().last_offset() + 1;
            self.model.batches.push(b);
        }
        assert_eq!((info.first_offset, info.last_offset), (first, next - 1));
        self.after_append();
    }

    fn append_follower(&mut self, records: usize, epoch: i32) {
        let mut b = self.model.producer_batch(records);
        set_base_offset(&mut b, self.model.leo());
        set_partition_leader_epoch(&mut b, epoch);
        self.log.append_as_follower(&b).unwrap();
        self.model.batches.push(b);
        self.after_append();
    }

    fn read(&self, selector: u16, max_bytes: usize) {
        let from = i64::from(selector) % (self.model.leo() + 2);
        match (
            self.model.read(from, max_bytes),
            self.log.read(from, max_bytes),
        ) {
            (Some(expected), Ok(got)) => assert!(
                got.bytes == expected,
                "read({from}, {max_bytes}): log returned batches {:?}, model {:?}",
                base_offsets(&got.bytes),
                base_offsets(&expected)
            ),
            (None, Err(LogError::OffsetOutOfRange { .. })) => {}
            (expected, got) => panic!("read({from}): model {expected:?}, log {got:?}"),
        }
    }

    fn truncate_to(&mut self, selector: u16) {
        let to = i64::from(selector) % (self.model.leo() + 2);
        self.log.truncate_to(to).unwrap();
        if to < self.model.leo() {
            self.model
                .batches
                .retain(|b| BatchHeader::parse(b).unwrap().last_offset() < to);
            self.model.durable = self.model.batches.len(); // truncation is made durable at once
        }
    }

    fn crash(&mut self, torn_seed: Option<u64>) {
        self.mem.crash(torn_seed);
        self.reopen();
        let survived = self.log.read(0, usize::MAX).unwrap().bytes;
        let kept = split_batches(&survived).unwrap().len();
        assert!(
            self.model.durable <= kept && kept <= self.model.batches.len(),
            "crash kept {kept} batches; durable {}, appended {}",
            self.model.durable,
            self.model.batches.len()
        );
        assert_eq!(
            survived,
            self.model.batches[..kept].concat(),
            "survivors are not a model prefix"
        );
        self.model.batches.truncate(kept);
        self.model.durable = kept;
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::AppendLeader(counts, epoch) => self.append_leader(counts, *epoch),
            Op::AppendFollower(n, epoch) => self.append_follower(*n, *epoch),
            Op::Read(selector, max) => self.read(*selector, *max),
            Op::TruncateTo(selector) => self.truncate_to(*selector),
            Op::Flush => {
                self.log.flush().unwrap();
                self.model.durable = self.model.batches.len();
            }
            Op::Crash(seed) => self.crash(*seed),
            Op::Reopen => {
                self.reopen();
                self.model.durable = self.model.batches.len(); // open vouches for what it read
            }
        }
    }

    fn check(&self, op: &Op) {
        assert_eq!(self.log.log_start_offset(), 0, "after {op:?}");
        assert_eq!(self.log.log_end_offset(), self.model.leo(), "after {op:?}");
        let unflushed = (self.model.leo() - self.model.durable_end()) as u64;
        assert_eq!(self.log.unflushed_messages(), unflushed, "after {op:?}");
        let all = self.log.read(0, usize::MAX).unwrap().bytes;
        assert_eq!(
            all,
            self.model.batches.concat(),
            "log diverged from model after {op:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_log_behaves_like_a_vector_of_batches_with_a_durable_prefix(
        config in config(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mem = MemStorage::new();
        let log = Log::open(Rc::new(mem.clone()), DIR, config.clone()).unwrap();
        let model = Model { batches: Vec::new(), durable: 0, next_tag: 0 };
        let mut h = Harness { mem, config, log, model };
        for op in &ops {
            h.apply(op);
            h.check(op);
        }
    }
}
