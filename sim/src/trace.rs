//! The run's trace: one line per event (sim time, node, event), hashed so that two runs of one
//! seed can be compared in one number, and diffed to the first line where they part.

use sha2::{Digest, Sha256};

#[derive(Debug, Default, Clone)]
pub struct Trace {
    lines: Vec<String>,
}

impl Trace {
    pub fn record(&mut self, time_ms: u64, node: &str, event: &str) {
        self.lines.push(format!("{time_ms:>9} {node} {event}"));
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The first 16 hex digits of the SHA-256 of every line.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for l in &self.lines {
            h.update(l.as_bytes());
            h.update(b"\n");
        }
        h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    pub fn to_text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}

/// The first line (1-based) where two traces differ, with both sides.
pub fn first_difference<'a>(a: &'a Trace, b: &'a Trace) -> Option<(usize, Option<&'a str>, Option<&'a str>)> {
    let n = a.lines.len().max(b.lines.len());
    (0..n).find_map(|i| {
        let (x, y) = (a.lines.get(i).map(String::as_str), b.lines.get(i).map(String::as_str));
        (x != y).then_some((i + 1, x, y))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_traces_hash_alike_and_have_no_difference() {
        let mut a = Trace::default();
        a.record(1, "broker-0", "append orders/0 0..=0");
        let b = a.clone();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(first_difference(&a, &b), None);
    }

    #[test]
    fn the_first_diverging_line_is_named() {
        let mut a = Trace::default();
        let mut b = Trace::default();
        a.record(1, "n", "x");
        b.record(1, "n", "x");
        a.record(2, "n", "y");
        b.record(3, "n", "y");
        assert_ne!(a.hash(), b.hash());
        let (line, _, _) = first_difference(&a, &b).unwrap();
        assert_eq!(line, 2);
    }
}
