//! Splitting a byte stream into lines, in bounded memory.
//!
//! Lines end at `\n` (a trailing `\r` is removed); the last line may lack its newline. A line longer
//! than the limit is reported as [`Line::TooLong`] with its length and first 4 KiB, without ever
//! being held whole.

use crate::Error;

/// One line, numbered from 1.
pub(crate) enum Line<'a> {
    /// A line within the limit.
    Text(u64, &'a [u8]),
    /// A line over the limit: its number, full length, the limit, and its first bytes.
    TooLong(u64, usize, usize, &'a [u8]),
}

/// A decoder that consumes lines: it owns a [`LineBuffer`] and handles each line it yields.
pub(crate) trait LineSink {
    /// The decoder's line buffer.
    fn line_buffer(&mut self) -> &mut LineBuffer;
    /// Handle one line.
    fn on_line(&mut self, line: Line<'_>, out: &mut super::Decoded) -> Result<(), Error>;
}

/// Feed `buf` to a sink's line buffer, handing every completed line to the sink. The buffer is
/// moved out while it runs so the sink can be borrowed mutably for each line.
pub(crate) fn feed_lines<S: LineSink>(
    sink: &mut S,
    buf: &[u8],
    out: &mut super::Decoded,
) -> Result<(), Error> {
    let mut lines = std::mem::take(sink.line_buffer());
    let r = lines.feed(buf, &mut |l| sink.on_line(l, out));
    *sink.line_buffer() = lines;
    r
}

/// End of input for a sink: hand over the last line if it had no newline.
pub(crate) fn finish_lines<S: LineSink>(
    sink: &mut S,
    out: &mut super::Decoded,
) -> Result<(), Error> {
    let mut lines = std::mem::take(sink.line_buffer());
    let r = lines.finish(&mut |l| sink.on_line(l, out));
    *sink.line_buffer() = lines;
    r
}

/// Carries a partial line between chunks.
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    partial: Vec<u8>,
    partial_len: usize,
    line_no: u64,
    max: usize,
}

impl LineBuffer {
    pub(crate) fn new(max_line_bytes: usize) -> Self {
        Self {
            max: max_line_bytes.max(1),
            ..Self::default()
        }
    }

    fn emit(
        no: u64,
        line: &[u8],
        len: usize,
        max: usize,
        f: &mut dyn FnMut(Line<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if len > max {
            f(Line::TooLong(
                no,
                len,
                max,
                &line[..line.len().min(crate::REJECT_RAW_BYTES)],
            ))
        } else {
            f(Line::Text(no, line.strip_suffix(b"\r").unwrap_or(line)))
        }
    }

    /// Feed bytes; `f` is called for every line completed by them.
    pub(crate) fn feed(
        &mut self,
        mut buf: &[u8],
        f: &mut dyn FnMut(Line<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        while let Some(nl) = memchr::memchr(b'\n', buf) {
            let (line, rest) = (&buf[..nl], &buf[nl + 1..]);
            buf = rest;
            self.line_no += 1;
            if self.partial_len == 0 {
                Self::emit(self.line_no, line, line.len(), self.max, f)?;
            } else {
                let len = self.partial_len + line.len();
                let room = if len > self.max {
                    crate::REJECT_RAW_BYTES.saturating_sub(self.partial.len())
                } else {
                    line.len()
                };
                self.partial
                    .extend_from_slice(&line[..line.len().min(room)]);
                let whole = std::mem::take(&mut self.partial);
                self.partial_len = 0;
                Self::emit(self.line_no, &whole, len, self.max, f)?;
                self.partial = whole;
                self.partial.clear();
                if self.partial.capacity() > self.max.max(1 << 16) {
                    self.partial.shrink_to(1 << 16);
                }
            }
        }
        if !buf.is_empty() {
            self.partial_len += buf.len();
            if self.partial_len <= self.max {
                self.partial.extend_from_slice(buf);
            } else {
                // Over the limit: keep only what a reject shows.
                let room = crate::REJECT_RAW_BYTES
                    .saturating_sub(self.partial.len().min(crate::REJECT_RAW_BYTES));
                self.partial.truncate(crate::REJECT_RAW_BYTES);
                self.partial.extend_from_slice(&buf[..buf.len().min(room)]);
                self.partial.shrink_to(crate::REJECT_RAW_BYTES);
            }
        }
        Ok(())
    }

    /// End of input: emit the last line if it had no newline.
    pub(crate) fn finish(
        &mut self,
        f: &mut dyn FnMut(Line<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if self.partial_len > 0 {
            self.line_no += 1;
            let whole = std::mem::take(&mut self.partial);
            let len = std::mem::take(&mut self.partial_len);
            Self::emit(self.line_no, &whole, len, self.max, f)?;
        }
        Ok(())
    }

    /// Held bytes (for tests of the memory bound).
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.partial.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> Vec<String> {
        let mut lb = LineBuffer::new(max);
        let mut out = Vec::new();
        let mut f = |l: Line<'_>| {
            out.push(match l {
                Line::Text(n, t) => format!("{n}:{}", String::from_utf8_lossy(t)),
                Line::TooLong(n, len, max, head) => format!("{n}:long {len}>{max} {}", head.len()),
            });
            Ok(())
        };
        for c in chunks {
            lb.feed(c, &mut f).unwrap();
        }
        lb.finish(&mut f).unwrap();
        out
    }

    #[test]
    fn splits_across_chunks_and_bounds_long_lines() {
        assert_eq!(
            split(&[b"a\r\nb", b"c\n\nd"], 10),
            ["1:a", "2:bc", "3:", "4:d"]
        );
        let big = vec![b'x'; 5000];
        let got = split(&[b"ok\n", &big, &big, b"\nend"], 100);
        assert_eq!(got, ["1:ok", "2:long 10000>100 4096", "3:end"]);
        let got = split(&[&big], 100);
        assert_eq!(got, ["1:long 5000>100 4096"]);
    }
}
