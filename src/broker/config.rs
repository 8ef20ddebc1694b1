use crate::group::GroupConfig;
use crate::log::LogConfig;
use crate::replication::ReplicationRules;

/// Broker and topic configuration, with Kafka's defaults. The harness maps Kafka's key names
/// (`min.insync.replicas`, ...) onto these fields.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `min.insync.replicas` (default 1)
    pub min_insync_replicas: usize,
    /// `replica.lag.time.max.ms` (default 30000)
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms` (default 500)
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.backoff.ms` (default 1000): how long a partition whose fetch failed waits
    pub replica_fetch_backoff_ms: u64,
    /// `replica.fetch.max.bytes` (default 1 MiB)
    pub replica_fetch_max_bytes: usize,
    /// `message.max.bytes` (default 1048588)
    pub message_max_bytes: usize,
    /// `request.timeout.ms` used by the replica fetcher's own requests (default 30000)
    pub replica_socket_timeout_ms: u64,
    /// `log.flush.interval.messages`, `log.segment.bytes`, `log.index.interval.bytes`
    pub log: LogConfig,
    /// Behaviour switch `hw_advances_below_min_isr`.
    pub hw_advances_below_min_isr: bool,
    /// Behaviour switch `isr_join_ignores_epoch_start_offset`.
    pub isr_join_ignores_epoch_start_offset: bool,
    /// Behaviour switch `truncate_to_hw_on_become_follower` (before KIP-101).
    pub truncate_to_hw_on_become_follower: bool,
    /// Behaviour switch `single_step_epoch_truncation` (before KIP-279).
    pub single_step_epoch_truncation: bool,
    /// `broker.heartbeat.interval.ms` (default 2000)
    pub heartbeat_interval_ms: u64,
    /// `replica.high.watermark.checkpoint.interval.ms` (default 5000)
    pub hw_checkpoint_interval_ms: u64,
    /// `producer.id.expiration.ms` (default 1 day)
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms` (default 10 min)
    pub producer_id_expiration_check_interval_ms: u64,
    /// `group.initial.rebalance.delay.ms`, `group.{min,max}.session.timeout.ms`,
    /// `offsets.topic.num.partitions`
    pub group: GroupConfig,
    /// `transaction.state.log.num.partitions`, `transaction.max.timeout.ms`,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`, and the transaction
    /// version (switch `txn_same_epoch_across_transactions` turns version 2 off)
    pub txn: crate::txn::TxnConfig,
    /// `transaction.partition.verification.enable` (default true, KIP-890 part 1); the switch
    /// `txn_no_partition_verification` turns it off
    pub txn_partition_verification: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_backoff_ms: 1_000,
            replica_fetch_max_bytes: 1024 * 1024,
            message_max_bytes: 1_048_588,
            replica_socket_timeout_ms: 30_000,
            log: LogConfig::default(),
            hw_advances_below_min_isr: false,
            isr_join_ignores_epoch_start_offset: false,
            truncate_to_hw_on_become_follower: false,
            single_step_epoch_truncation: false,
            heartbeat_interval_ms: 2_000,
            hw_checkpoint_interval_ms: 5_000,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            group: GroupConfig::default(),
            txn: crate::txn::TxnConfig::default(),
            txn_partition_verification: true,
        }
    }
}

impl BrokerConfig {
    pub fn replication_rules(&self) -> ReplicationRules {
        ReplicationRules {
            lag_time_max_ms: self.replica_lag_time_max_ms,
            min_insync_replicas: self.min_insync_replicas,
            hw_advances_below_min_isr: self.hw_advances_below_min_isr,
        }
    }
}
