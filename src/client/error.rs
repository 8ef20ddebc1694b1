use std::fmt;

/// Why a request did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// Could not connect (refused, unreachable, timed out).
    Connect(String),
    /// The connection broke while a request was in flight: it may or may not have been applied.
    Io(String),
    /// No answer within the request timeout: it may or may not have been applied.
    Timeout,
    /// The peer sent something we cannot decode.
    Protocol(String),
    /// The connection failed before this request was written: it was surely not applied.
    NotSent(String),
}

impl ClientError {
    /// Whether the request may have taken effect (Jepsen's "info" rather than "fail").
    pub fn is_indefinite(&self) -> bool {
        !matches!(self, ClientError::Connect(_) | ClientError::NotSent(_))
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect failed: {e}"),
            ClientError::Io(e) => write!(f, "connection broke: {e}"),
            ClientError::Timeout => write!(f, "request timed out"),
            ClientError::Protocol(e) => write!(f, "protocol error: {e}"),
            ClientError::NotSent(e) => write!(f, "not sent: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}
