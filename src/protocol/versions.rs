use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// A node's served APIs: (key, min version, max version).
pub type ApiTable = &'static [(ApiKey, i16, i16)];

/// The APIs and version ranges this broker really implements, and only those: a client that
/// sees a range here may use any version in it.
///
/// The upper bounds stop where a version changes behaviour we do not implement yet: Produce 13
/// and Fetch 13 address topics by id; Metadata 13 adds an error code we do not set.
pub const SUPPORTED_APIS: ApiTable = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 4, 9),
    (ApiKey::SyncGroup, 3, 5),
    (ApiKey::Heartbeat, 3, 4),
    (ApiKey::LeaveGroup, 3, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::TxnOffsetCommit, 0, 4),
];

/// What a controller serves: the other voters run the quorum (Vote, BeginQuorumEpoch,
/// EndQuorumEpoch, Fetch); brokers register, heartbeat, report ISR changes and fetch the
/// metadata log (as KRaft observers).
pub const CONTROLLER_APIS: ApiTable = &[
    (ApiKey::Vote, 0, 0),
    (ApiKey::BeginQuorumEpoch, 0, 0),
    (ApiKey::EndQuorumEpoch, 0, 0),
    (ApiKey::BrokerRegistration, 0, 4),
    (ApiKey::BrokerHeartbeat, 0, 1),
    (ApiKey::AlterPartition, 2, 3),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ApiVersions, 0, 3),
];

/// The supported `(min, max)` for `key` in `apis`, if it is served at all.
pub fn supported_range_in(apis: ApiTable, key: ApiKey) -> Option<(i16, i16)> {
    apis.iter().find(|(k, _, _)| *k == key).map(|(_, lo, hi)| (*lo, *hi))
}

/// The broker's supported `(min, max)` for `key`.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    supported_range_in(SUPPORTED_APIS, key)
}

/// The ApiVersions answer for a broker, with `error_code` set by the caller when needed.
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    api_versions_response_for(SUPPORTED_APIS, error_code)
}

/// The ApiVersions answer listing `apis`.
pub fn api_versions_response_for(apis: ApiTable, error_code: i16) -> ApiVersionsResponse {
    let api_keys = apis
        .iter()
        .map(|(k, lo, hi)| {
            ApiVersion::default().with_api_key(*k as i16).with_min_version(*lo).with_max_version(*hi)
        })
        .collect();
    ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(api_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_range_is_one_the_codec_can_encode() {
        for (key, lo, hi) in SUPPORTED_APIS.iter().chain(CONTROLLER_APIS) {
            let codec = key.valid_versions();
            assert!(codec.min <= *lo && *hi <= codec.max, "{key:?} {lo}..={hi} vs {codec:?}");
        }
    }
}
