//! A bounds-checked big-endian reader for the records stormlog decodes itself (Kafka's
//! internal-topic keys and values): every error names what was being read and where.

use bytes::Bytes;

/// A bounds-checked cursor: every read says what it was reading when the input ran out.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], String> {
        if self.remaining() < n {
            return Err(format!("{}: {field} needs {n} bytes at {}, {} left", self.what, self.pos, self.remaining()));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn i8(&mut self, field: &str) -> Result<i8, String> {
        let b = self.take(1, field)?;
        Ok(i8::from_be_bytes([b[0]]))
    }

    pub(crate) fn i16(&mut self, field: &str) -> Result<i16, String> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self, field: &str) -> Result<i32, String> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i64(&mut self, field: &str) -> Result<i64, String> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub(crate) fn nullable_string(&mut self, field: &str) -> Result<Option<String>, String> {
        let len = self.i16(field)?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(format!("{}: {field} has length {len}", self.what));
        }
        let raw = self.take(len as usize, field)?;
        let s = std::str::from_utf8(raw).map_err(|e| format!("{}: {field} is not UTF-8: {e}", self.what))?;
        Ok(Some(s.to_string()))
    }

    pub(crate) fn string(&mut self, field: &str) -> Result<String, String> {
        self.nullable_string(field)?.ok_or_else(|| format!("{}: {field} is null", self.what))
    }

    pub(crate) fn bytes(&mut self, field: &str) -> Result<Bytes, String> {
        let len = self.i32(field)?;
        if len < 0 {
            return Err(format!("{}: {field} has length {len}", self.what));
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize, field)?))
    }

    pub(crate) fn finish(&self) -> Result<(), String> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(format!("{}: {n} trailing bytes", self.what)),
        }
    }
}
