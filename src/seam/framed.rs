use std::io;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::protocol::{FrameDecoder, REQUEST_BYTES_MAX};

use super::network::BoxStream;

/// A connected stream read and written as Kafka frames (`int32 size` then the bytes). Every
/// write is flushed: one simulator sends nothing until flush.
pub struct FramedStream {
    stream: BoxStream,
    decoder: FrameDecoder,
    buf: Vec<u8>,
}

impl FramedStream {
    pub fn new(stream: BoxStream) -> FramedStream {
        FramedStream { stream, decoder: FrameDecoder::new(REQUEST_BYTES_MAX), buf: vec![0u8; 64 * 1024] }
    }

    /// The next whole frame (without its size prefix); None when the peer closed the stream.
    /// A frame of impossible size is an error: the caller drops the connection.
    pub async fn read_frame(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if let Some(frame) = self.decoder.next_frame().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))? {
                return Ok(Some(frame));
            }
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.decoder.push(&self.buf[..n]);
        }
    }

    /// Writes an encoded frame (size prefix included) and flushes it.
    pub async fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.stream.write_all(frame).await?;
        self.stream.flush().await
    }
}
