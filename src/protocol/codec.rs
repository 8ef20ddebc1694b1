use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{
    decode_request_header_from_buffer, encode_request_header_into_buffer, Decodable, Encodable,
    StrBytes,
};

use super::versions::{supported_range_in, ApiTable, SUPPORTED_APIS};

/// Why a frame could not be turned into a request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Too short to hold a request header.
    Truncated,
    /// An API key this broker does not serve.
    UnsupportedApi(i16),
    /// A known API at a version outside the advertised range.
    UnsupportedVersion { api_key: i16, version: i16, correlation_id: i32 },
    /// The bytes do not decode as the message they claim to be.
    Malformed(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Truncated => write!(f, "frame too short for a request header"),
            WireError::UnsupportedApi(k) => write!(f, "unsupported api key {k}"),
            WireError::UnsupportedVersion { api_key, version, .. } => {
                write!(f, "api key {api_key} version {version} is not supported")
            }
            WireError::Malformed(m) => write!(f, "malformed message: {m}"),
        }
    }
}

impl std::error::Error for WireError {}

/// A request taken off the wire.
#[derive(Debug)]
pub struct DecodedRequest {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
}

/// Decodes one request frame (without its size prefix) for a broker.
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, WireError> {
    decode_request_for(frame, SUPPORTED_APIS)
}

/// Decodes one request frame against a node's own API table.
pub fn decode_request_for(frame: Bytes, apis: ApiTable) -> Result<DecodedRequest, WireError> {
    if frame.len() < 8 {
        return Err(WireError::Truncated);
    }
    let key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(key_raw).map_err(|_| WireError::UnsupportedApi(key_raw))?;
    let (lo, hi) = supported_range_in(apis, api_key).ok_or(WireError::UnsupportedApi(key_raw))?;
    if version < lo || version > hi {
        return Err(WireError::UnsupportedVersion { api_key: key_raw, version, correlation_id });
    }
    let mut buf = frame;
    let header = decode_request_header_from_buffer(&mut buf)
        .map_err(|e| WireError::Malformed(format!("request header: {e}")))?;
    let body = RequestKind::decode(api_key, &mut buf, version)
        .map_err(|e| WireError::Malformed(format!("{api_key:?} v{version}: {e}")))?;
    Ok(DecodedRequest { header, api_key, body })
}

/// Encodes a response frame, size prefix included.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, WireError> {
    // ApiVersions answers always use header v0, so that a client that sent a version we
    // reject can still read the error and the versions we do support.
    let header_version = match api_key {
        ApiKey::ApiVersions => 0,
        _ => api_key.response_header_version(version),
    };
    let mut out = BytesMut::new();
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, header_version)
        .map_err(|e| WireError::Malformed(format!("response header: {e}")))?;
    body.encode(&mut out, version)
        .map_err(|e| WireError::Malformed(format!("{api_key:?} v{version} response: {e}")))?;
    finish_frame(out)
}

/// Encodes a request frame, size prefix included.
pub fn encode_request(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &RequestKind,
) -> Result<Bytes, WireError> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut out = BytesMut::new();
    out.put_i32(0);
    encode_request_header_into_buffer(&mut out, &header)
        .map_err(|e| WireError::Malformed(format!("request header: {e}")))?;
    body.encode(&mut out, version)
        .map_err(|e| WireError::Malformed(format!("{api_key:?} v{version} request: {e}")))?;
    finish_frame(out)
}

/// Decodes a response frame (without its size prefix); returns its correlation id too.
pub fn decode_response(
    api_key: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<(i32, ResponseKind), WireError> {
    let header_version = match api_key {
        ApiKey::ApiVersions => 0,
        _ => api_key.response_header_version(version),
    };
    let mut buf = frame;
    let header = ResponseHeader::decode(&mut buf, header_version)
        .map_err(|e| WireError::Malformed(format!("response header: {e}")))?;
    let body = ResponseKind::decode(api_key, &mut buf, version)
        .map_err(|e| WireError::Malformed(format!("{api_key:?} v{version} response: {e}")))?;
    Ok((header.correlation_id, body))
}

fn finish_frame(mut out: BytesMut) -> Result<Bytes, WireError> {
    let size = i32::try_from(out.len() - 4)
        .map_err(|_| WireError::Malformed("frame larger than i32::MAX".into()))?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(out.freeze())
}

/// One uncompressed v2 record batch holding `records` (the offsets in them are deltas).
pub fn encode_batch_v2(records: &[kafka_protocol::records::Record]) -> Bytes {
    use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encoding uncompressed records cannot fail");
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};

    fn strip(frame: Bytes) -> Bytes {
        frame.slice(4..)
    }

    #[test]
    fn a_request_round_trips_through_the_codec() {
        let body = RequestKind::Metadata(MetadataRequest::default().with_topics(None));
        let frame = encode_request(ApiKey::Metadata, 9, 42, "c", &body).unwrap();
        let req = decode_request(strip(frame)).unwrap();
        assert_eq!(req.header.correlation_id, 42);
        assert_eq!(req.api_key, ApiKey::Metadata);
        assert!(matches!(req.body, RequestKind::Metadata(_)));
    }

    #[test]
    fn an_unadvertised_version_is_rejected_with_its_correlation_id() {
        let body = RequestKind::ApiVersions(ApiVersionsRequest::default());
        let frame = encode_request(ApiKey::ApiVersions, 4, 7, "c", &body).unwrap();
        let err = decode_request(strip(frame)).unwrap_err();
        assert_eq!(
            err,
            WireError::UnsupportedVersion { api_key: 18, version: 4, correlation_id: 7 }
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [&b""[..], b"\x00\x03\x00\x09\x00\x00\x00\x01\xff", b"\x7f\x7f\x00\x00\x00\x00\x00\x00"] {
            assert!(decode_request(Bytes::copy_from_slice(junk)).is_err());
        }
    }
}

