//! Kafka's own wire protocol: length-prefixed frames, request and response codecs (through the
//! `kafka-protocol` crate), and the table of API versions this broker really implements.
//!
//! Everything here is sans-IO: bytes in, bytes out. It never touches a socket, a clock or a log.

mod codec;
mod frame;
pub(crate) mod reader;
mod versions;

pub use codec::{encode_batch_v2, 
    decode_request, decode_request_for, decode_response, encode_request, encode_response, DecodedRequest, WireError,
};
pub use frame::{FrameDecoder, FrameError, REQUEST_BYTES_MAX};
pub use versions::{
    api_versions_response, api_versions_response_for, supported_range, supported_range_in, ApiTable, CONTROLLER_APIS, SUPPORTED_APIS,
};
