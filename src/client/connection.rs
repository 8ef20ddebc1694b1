use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use crate::protocol::{decode_response, encode_request};
use crate::seam::{FramedStream, Network};

use super::error::ClientError;

/// One connection to a broker, one request at a time (Kafka answers a connection in order).
pub struct Connection {
    stream: FramedStream,
    next_correlation_id: i32,
    client_id: String,
    pub addr: String,
}

impl Connection {
    pub async fn connect(net: &dyn Network, addr: &str, client_id: &str, timeout_ms: u64) -> Result<Connection, ClientError> {
        let stream = match tokio::time::timeout(Duration::from_millis(timeout_ms), net.connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(ClientError::Connect(format!("{addr}: {e}"))),
            Err(_) => return Err(ClientError::Connect(format!("{addr}: timed out"))),
        };
        Ok(Connection {
            stream: FramedStream::new(stream),
            next_correlation_id: 0,
            client_id: client_id.to_string(),
            addr: addr.to_string(),
        })
    }

    /// Sends a request and waits for its response. After an error the connection is unusable.
    pub async fn request(&mut self, api_key: ApiKey, version: i16, body: RequestKind, timeout_ms: u64) -> Result<ResponseKind, ClientError> {
        let correlation_id = self.send(api_key, version, &body).await?;
        let read = tokio::time::timeout(Duration::from_millis(timeout_ms), self.read_frame());
        let frame = read.await.map_err(|_| ClientError::Timeout)??;
        let (got, resp) = decode_response(api_key, version, frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if got != correlation_id {
            return Err(ClientError::Protocol(format!("correlation id {got}, expected {correlation_id}")));
        }
        Ok(resp)
    }

    /// Sends a request that gets no response (acks=0 produce).
    pub async fn send_only(&mut self, api_key: ApiKey, version: i16, body: RequestKind) -> Result<(), ClientError> {
        self.send(api_key, version, &body).await.map(|_| ())
    }

    async fn send(&mut self, api_key: ApiKey, version: i16, body: &RequestKind) -> Result<i32, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(api_key, version, correlation_id, &self.client_id, body)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.stream.write_frame(&frame).await.map_err(|e| ClientError::Io(e.to_string()))?;
        Ok(correlation_id)
    }

    async fn read_frame(&mut self) -> Result<bytes::Bytes, ClientError> {
        match self.stream.read_frame().await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(ClientError::Io("connection closed by peer".into())),
            Err(e) => Err(ClientError::Io(e.to_string())),
        }
    }
}
