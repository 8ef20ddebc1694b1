use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// The APIs and version ranges this broker really implements, and only those: a client that
/// sees a range here may use any version in it.
///
/// The upper bounds stop where a version changes behaviour we do not implement yet: Produce 13
/// and Fetch 13 address topics by id; Metadata 13 adds an error code we do not set.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ApiVersions, 0, 3),
];

/// The supported `(min, max)` for `key`, if the broker serves it at all.
pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS.iter().find(|(k, _, _)| *k == key).map(|(_, lo, hi)| (*lo, *hi))
}

/// The ApiVersions answer: our table, with `error_code` set by the caller when needed.
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
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
        for (key, lo, hi) in SUPPORTED_APIS {
            let codec = key.valid_versions();
            assert!(codec.min <= *lo && *hi <= codec.max, "{key:?} {lo}..={hi} vs {codec:?}");
        }
    }
}
