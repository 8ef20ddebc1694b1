//! Requests a broker's core sends to other brokers: transaction markers from a transaction
//! coordinator to partition leaders (WriteTxnMarkers), and a partition leader's question to a
//! transaction coordinator before a transaction's first write (AddPartitionsToTxn, verify
//! only; KIP-890). The core queues them with a token; the shell sends them and hands each
//! answer back with `on_outbound_reply`. Sans-IO like the rest of the core.

use kafka_protocol::messages::{ApiKey, RequestKind};

use crate::ids::BrokerId;

/// One request for the shell to send.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub token: u64,
    pub to: BrokerId,
    pub api_key: ApiKey,
    pub version: i16,
    pub body: RequestKind,
    pub timeout_ms: u64,
}
