use bytes::{Buf, Bytes, BytesMut};

/// Kafka's `socket.request.max.bytes` default: a frame larger than this closes the connection.
pub const REQUEST_BYTES_MAX: usize = 100 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The size prefix is negative or larger than the limit.
    BadSize { size: i64, limit: usize },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadSize { size, limit } => {
                write!(f, "frame size {size} is outside 0..={limit}")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Splits a byte stream into Kafka frames (`int32 size` then `size` bytes).
///
/// Fed whatever the socket produced; yields whole frames only, so a peer that sends half a
/// frame and stops leaves nothing half-parsed.
pub struct FrameDecoder {
    buf: BytesMut,
    size_max: usize,
}

impl FrameDecoder {
    pub fn new(size_max: usize) -> Self {
        FrameDecoder { buf: BytesMut::new(), size_max }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame (without its size prefix), if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if size < 0 || size as usize > self.size_max {
            return Err(FrameError::BadSize { size: size as i64, limit: self.size_max });
        }
        let size = size as usize;
        if self.buf.len() < 4 + size {
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(size).freeze()))
    }

    /// Bytes received but not yet part of a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_pushes_come_out_whole() {
        let mut d = FrameDecoder::new(1024);
        d.push(&[0, 0, 0, 3, b'a']);
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(&[b'b', b'c', 0, 0, 0, 1, b'z']);
        assert_eq!(d.next_frame().unwrap().unwrap().as_ref(), b"abc");
        assert_eq!(d.next_frame().unwrap().unwrap().as_ref(), b"z");
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn a_negative_or_oversized_frame_is_an_error() {
        let mut d = FrameDecoder::new(10);
        d.push(&[0xff, 0xff, 0xff, 0xff]);
        assert!(d.next_frame().is_err());
        let mut d = FrameDecoder::new(10);
        d.push(&[0, 0, 0, 11]);
        assert_eq!(d.next_frame(), Err(FrameError::BadSize { size: 11, limit: 10 }));
    }
}
