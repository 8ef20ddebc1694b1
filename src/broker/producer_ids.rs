//! InitProducerId for idempotent producers (no `transactional.id`): any broker hands out a
//! producer id. Kafka takes blocks of ids from the controller (AllocateProducerIds, recorded in
//! the metadata log); stormlog derives them from the broker epoch instead, which the controller
//! already makes unique per broker incarnation (it is the offset of the registration record):
//! `producer_id = broker_epoch * 2^16 + n` (n < 2^15; the transaction coordinator gets the rest). A restarted broker gets a new epoch, so no id is
//! ever handed out twice, and no extra controller round trip or record is needed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdResponse, ProducerId};

use super::core::BrokerCore;

/// Ids per broker incarnation: the lower half for idempotent producers, the upper half for the
/// transaction coordinator's (new transactional ids and exhausted epochs).
const IDS_PER_EPOCH: i64 = 1 << 16;
const IDEMPOTENT_IDS: i64 = IDS_PER_EPOCH / 2;

impl BrokerCore {
    /// Called once the controller accepted this incarnation's registration.
    pub fn set_broker_epoch(&mut self, epoch: i64) {
        if epoch != self.broker_epoch {
            self.broker_epoch = epoch;
            self.next_producer_id = 0;
            let base = epoch.saturating_mul(IDS_PER_EPOCH);
            self.txns.set_producer_id_block(base.saturating_add(IDEMPOTENT_IDS), base.saturating_add(IDS_PER_EPOCH));
        }
    }

    /// Forgets idle producers (`producer.id.expiration.ms`) on every partition, by the wall
    /// clock, as Kafka's expiration check does every `producer.id.expiration.check.interval.ms`.
    pub fn expire_producers(&mut self, wall_ms: i64) {
        let expiration = self.config.producer_id_expiration_ms;
        for p in self.partitions.values_mut() {
            let n = p.log.remove_expired_producers(wall_ms, expiration);
            if n > 0 {
                self.trace.emit(|| format!("producers-expired {} count={n}", p.tp));
            }
        }
    }

    pub(super) fn handle_init_producer_id(&mut self) -> InitProducerIdResponse {
        let fail = |e: ResponseError| InitProducerIdResponse::default().with_error_code(e.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
        if self.broker_epoch < 0 || self.next_producer_id >= IDEMPOTENT_IDS {
            // Not registered yet (or this incarnation's ids are used up): retriable.
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        let id = self.broker_epoch.saturating_mul(IDS_PER_EPOCH).saturating_add(self.next_producer_id);
        self.next_producer_id += 1;
        self.trace.emit(|| format!("init-producer-id pid={id}"));
        InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0)
    }
}
