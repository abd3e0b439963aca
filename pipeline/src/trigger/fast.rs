//! A Kinesis batch read straight from the invocation's bytes.
//!
//! A 10 000-record Kinesis event is about 10 MB of JSON, nearly all of it base64 data. Building a
//! `serde_json::Value` tree of it costs more than processing the records (an allocation per key
//! and string, and as many frees), so a plain Kinesis batch is read here with no tree: strings are
//! found with SIMD `memchr`, borrowed where they have no escapes, and only the fields a record
//! needs are kept. Anything this reader does not recognise as a plain Kinesis batch — another
//! trigger, a tumbling-window event, a field of an unexpected type, malformed JSON — is left to
//! the general path ([`crate::trigger::parse`] over `serde_json`), which reports it properly.

use std::borrow::Cow;

use sluice_processors::decode::find_quote_or_backslash;
use sluice_processors::sniff::GZIP_MAGIC;

use std::ops::Range;

use crate::trigger::{
    BAD_BASE64, IdRanges, Invocation, Item, Kind, KinesisIds, Source, StreamRecord, Work,
};

/// Nesting deeper than this is left to the general path.
const MAX_DEPTH: usize = 64;

/// The records of a plain Kinesis batch, or `None` when `body` is anything else.
pub fn kinesis(body: &[u8]) -> Option<Invocation> {
    let mut p = Reader { b: body, i: 0 };
    p.expect(b'{')?;
    let mut found = None;
    loop {
        let key = p.raw_string()?.0;
        p.expect(b':')?;
        if key != b"Records" || found.is_some() {
            return None;
        }
        found = Some(p.records()?);
        match p.next_byte()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    p.ws();
    let (items, lines) = found.filter(|(i, _)| !i.is_empty())?;
    (p.i == body.len()).then(|| Invocation {
        source: Source::of(Kind::Kinesis),
        work: Work {
            items,
            window: None,
            batch: None,
            fifo: None,
            firehose: None,
            lines: Some(lines),
        },
        error: None,
    })
}

/// `digits[.digits]` (an arrival time: `1763812800.123`) exactly as `str::parse` reads it, when
/// both the digits as one integer and the power of ten are exact in an `f64` (below 2^53, at most
/// 10^22): one IEEE division of two exact values is correctly rounded. Anything else is `None`.
fn plain_decimal(b: &[u8]) -> Option<f64> {
    let (int, frac) = match memchr::memchr(b'.', b) {
        Some(dot) => (&b[..dot], &b[dot + 1..]),
        None => (b, &b[..0]),
    };
    if int.is_empty() || int.len() + frac.len() > 15 || (b.len() > int.len() && frac.is_empty()) {
        return None;
    }
    let mut n: u64 = 0;
    for &c in int.iter().chain(frac) {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(c - b'0');
    }
    // 15 digits are below 2^53, and so is 10^15.
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    Some(n as f64 / POW10[frac.len()])
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

/// One record's fields, as found.
#[derive(Default)]
struct Fields<'a> {
    sequence: Option<Cow<'a, str>>,
    event_id: Option<Cow<'a, str>>,
    partition_key: Option<Cow<'a, str>>,
    arrival: Option<f64>,
    data: Option<&'a [u8]>,
    kinesis_source: bool,
}

/// A value of a record that changes from record to record.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Sequence,
    PartitionKey,
    Data,
    Arrival,
    EventId,
}

/// The last record read field by field, as the bytes between the values that change: in a
/// batch, every record's envelope is the same text but for its sequence number, partition key,
/// data, arrival time and event id. A record whose bytes between those values are exactly the
/// template's is the same JSON with other values in the slots, so it is read by comparing the
/// literal runs whole and reading only the slots — no key is scanned or matched. A record that
/// differs anywhere is read field by field and becomes the template.
#[derive(Default)]
struct Template<'a> {
    /// The literal runs: one before each slot, and one after the last.
    lits: Vec<&'a [u8]>,
    slots: Vec<Slot>,
}

impl<'a> Template<'a> {
    /// Learn from a record read field by field: `record` starts at `at` in the event, and
    /// `slots` are where its changing values were.
    fn learn(&mut self, record: &'a [u8], at: usize, slots: &[(Slot, usize, usize)]) {
        self.lits.clear();
        self.slots.clear();
        let mut from = 0;
        for &(kind, start, end) in slots {
            let (start, end) = (start - at, end - at);
            self.lits.push(&record[from..start]);
            self.slots.push(kind);
            from = end;
        }
        self.lits.push(&record[from..]);
    }

    /// The record at the cursor, if it matches the template (`None` leaves the cursor anywhere).
    fn read(&self, p: &mut Reader<'a>) -> Option<Fields<'a>> {
        let (last, lits) = self.lits.split_last()?;
        let mut f = Fields {
            kinesis_source: true,
            ..Fields::default()
        };
        for (lit, slot) in lits.iter().zip(&self.slots) {
            p.literal(lit)?;
            match slot {
                Slot::Sequence => f.sequence = Some(p.string()?),
                Slot::PartitionKey => f.partition_key = Some(p.string()?),
                Slot::Data => f.data = Some(p.base64_string()?),
                Slot::Arrival => f.arrival = Some(p.number()?),
                Slot::EventId => f.event_id = Some(p.string()?),
            }
        }
        p.literal(last)?;
        Some(f)
    }
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn next_byte(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next_byte()? == c).then_some(())
    }

    /// Step over exactly these bytes.
    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(lit)
            .then(|| self.i += lit.len())
    }

    /// The raw bytes of the string at the cursor (between its quotes), and whether it has escapes.
    fn raw_string(&mut self) -> Option<(&'a [u8], bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let mut j = start;
        let mut escaped = false;
        loop {
            let k = find_quote_or_backslash(self.b, j)?;
            if self.b[k] == b'"' {
                self.i = k + 1;
                return Some((&self.b[start..k], escaped));
            }
            escaped = true;
            j = match self.b.get(k + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => k + 2,
                b'u' if self.b.get(k + 2..k + 6)?.iter().all(u8::is_ascii_hexdigit) => k + 6,
                _ => return None,
            };
        }
    }

    /// The bytes of a base64 string, found by its closing quote alone (base64 has no escapes;
    /// decoding checks every byte, so no UTF-8 pass either). A string with an escape in it fails
    /// to decode, and the caller leaves it to the general path.
    fn base64_string(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let end = start + memchr::memchr(b'"', self.b.get(start..)?)?;
        self.i = end + 1;
        Some(&self.b[start..end])
    }

    fn string(&mut self) -> Option<Cow<'a, str>> {
        let (raw, escaped) = self.raw_string()?;
        if escaped {
            // Rare in Kinesis events: let serde_json unescape it exactly.
            let quoted = self.b.get(self.i - raw.len() - 2..self.i)?;
            serde_json::from_slice::<String>(quoted)
                .ok()
                .map(Cow::Owned)
        } else {
            std::str::from_utf8(raw).ok().map(Cow::Borrowed)
        }
    }

    fn number(&mut self) -> Option<f64> {
        self.ws();
        let start = self.i;
        while matches!(
            self.b.get(self.i),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.i += 1;
        }
        let text = &self.b[start..self.i];
        match plain_decimal(text) {
            Some(v) => Some(v),
            None => std::str::from_utf8(text).ok()?.parse().ok(),
        }
    }

    /// Step over any value.
    fn skip(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.raw_string().map(|_| ()),
            open @ (b'{' | b'[') => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                let close = if open == b'{' { b'}' } else { b']' };
                if self.peek()? == close {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    if open == b'{' {
                        self.raw_string()?;
                        self.expect(b':')?;
                    }
                    self.skip(depth + 1)?;
                    match self.next_byte()? {
                        b',' => {}
                        c if c == close => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' | b'f' | b'n' => {
                let word: &[u8] = match self.b[self.i] {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                (self.b.get(self.i..self.i + word.len())? == word).then(|| self.i += word.len())
            }
            _ => self.number().map(|_| ()),
        }
    }

    /// Step over a value that is usually the same string as the last time (`last`): compared
    /// whole with it first (the same bytes are the same complete string token), found afresh
    /// and remembered when it differs.
    fn skip_repeated(&mut self, last: &mut &'a [u8]) -> Option<()> {
        self.ws();
        if !last.is_empty() && self.b[self.i..].starts_with(last) {
            self.i += last.len();
            return Some(());
        }
        let at = self.i;
        self.skip(1)?;
        if self.b.get(at) == Some(&b'"') {
            *last = &self.b[at..self.i];
        }
        Some(())
    }

    /// Members of an object, each handed to `field(reader, key)` with the key's raw bytes (a key
    /// with escapes is left to the general path).
    fn object(&mut self, mut field: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let (key, false) = self.raw_string()? else {
                return None;
            };
            self.expect(b':')?;
            field(self, key)?;
            match self.next_byte()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// One record read field by field. Where each value that changes from record to record was
    /// found goes to `slots` (kind, start, end), for [`Template::learn`].
    fn record(
        &mut self,
        same: &mut [&'a [u8]; 6],
        slots: &mut Vec<(Slot, usize, usize)>,
    ) -> Option<Fields<'a>> {
        let mut f = Fields::default();
        // Reads one value that changes, noting where it was.
        fn slot<'a, T>(
            p: &mut Reader<'a>,
            slots: &mut Vec<(Slot, usize, usize)>,
            kind: Slot,
            read: impl FnOnce(&mut Reader<'a>) -> Option<T>,
        ) -> Option<T> {
            p.ws();
            let at = p.i;
            let v = read(p)?;
            slots.push((kind, at, p.i));
            Some(v)
        }
        self.object(|p, key| match key {
            b"kinesis" => p.object(|p, key| {
                match key {
                    b"sequenceNumber" => {
                        f.sequence = Some(slot(p, slots, Slot::Sequence, Reader::string)?)
                    }
                    b"partitionKey" => {
                        f.partition_key = Some(slot(p, slots, Slot::PartitionKey, Reader::string)?)
                    }
                    b"data" => f.data = Some(slot(p, slots, Slot::Data, Reader::base64_string)?),
                    b"approximateArrivalTimestamp" => {
                        f.arrival = Some(slot(p, slots, Slot::Arrival, Reader::number)?)
                    }
                    b"kinesisSchemaVersion" => p.skip_repeated(&mut same[0])?,
                    _ => p.skip(2)?,
                }
                Some(())
            }),
            b"eventSource" => {
                const KINESIS: &[u8] = b"\"aws:kinesis\"";
                p.ws();
                if p.b[p.i..].starts_with(KINESIS) {
                    p.i += KINESIS.len();
                    f.kinesis_source = true;
                } else {
                    f.kinesis_source = p.string()? == "aws:kinesis";
                }
                Some(())
            }
            b"eventID" => {
                f.event_id = Some(slot(p, slots, Slot::EventId, Reader::string)?);
                Some(())
            }
            b"awsRegion" => p.skip_repeated(&mut same[1]),
            b"eventName" => p.skip_repeated(&mut same[2]),
            b"eventSourceARN" => p.skip_repeated(&mut same[3]),
            b"eventVersion" => p.skip_repeated(&mut same[4]),
            b"invokeIdentityArn" => p.skip_repeated(&mut same[5]),
            _ => p.skip(1),
        })?;
        Some(f)
    }

    /// The records, and the buffer their data was decoded into.
    fn records(&mut self) -> Option<(Vec<Item>, bytes::Bytes)> {
        self.expect(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some((Vec::new(), bytes::Bytes::new()));
        }
        // Every record's data is decoded as soon as it is found (still in cache) into one buffer,
        // each record a slice of it: no allocation per record. Each record's data is followed by
        // a line break (unless it ends with one), so for a line format the whole buffer is the
        // batch's text, decoded without a copy. Base64 is 4 bytes for 3 and every record has an
        // envelope, so the decoded data and its line breaks are fewer bytes than the event: room
        // for all at once (pages not written to are never touched).
        let mut arena: Vec<u8> = Vec::with_capacity(self.b.len());
        // Sequence numbers, shards and keys are ~1/10 of an event whose records carry ~300 bytes.
        let mut ids = KinesisIds::with_capacity(self.b.len() / 8);
        // Per record: its ids' places, its arrival, and its data's place in the arena with what
        // was seen of it there ([`StreamRecord::saw`]).
        type Found = (IdRanges, Option<f64>, Option<(Range<usize>, bool, bool)>);
        // A Kinesis record's envelope is ~550 bytes besides its data.
        let mut found: Vec<Found> = Vec::with_capacity(self.b.len() / 768 + 1);
        // The envelope fields skipped here are the same string in every record of a batch, as a
        // rule: each is compared whole with the one before instead of scanned.
        let mut same: [&'a [u8]; 6] = [b""; 6];
        // The last record read field by field, as literal bytes and the values that change.
        let mut template = Template::default();
        let mut slots = Vec::new();
        loop {
            self.ws();
            let at = self.i;
            let f = match template.read(self) {
                Some(f) => f,
                None => {
                    self.i = at;
                    slots.clear();
                    let f = self.record(&mut same, &mut slots)?;
                    template.learn(&self.b[at..self.i], at, &slots);
                    f
                }
            };
            // Only a complete, ordinary Kinesis record is read here.
            let (true, Some(sequence), Some(b64)) = (f.kinesis_source, &f.sequence, f.data) else {
                return None;
            };
            let start = arena.len();
            let data = match base64_simd::STANDARD.decode_append(b64, &mut arena) {
                Ok(()) => {
                    let span = start..arena.len();
                    let data = &arena[start..];
                    let plain = !crate::kpl::is_aggregated(data) && !data.starts_with(&GZIP_MAGIC);
                    let ends_line = data.last() == Some(&b'\n');
                    if !data.is_empty() && !ends_line {
                        arena.push(b'\n');
                    }
                    Some((span, plain, ends_line))
                }
                // The data string was found by its closing quote alone: one with an escape in it
                // (`\/` is legal JSON for `/`) is the general path's to unescape and decode.
                Err(_) if memchr::memchr(b'\\', b64).is_some() => return None,
                Err(_) => {
                    arena.truncate(start);
                    None
                }
            };
            let place = ids.add(
                sequence,
                f.event_id.as_deref().unwrap_or_default(),
                f.partition_key.as_deref().unwrap_or_default(),
            );
            found.push((place, f.arrival, data));
            match self.next_byte()? {
                b',' => {}
                b']' => break,
                _ => return None,
            }
        }
        let all = ids.finish();
        let arena = bytes::Bytes::from(arena);
        let items = found
            .into_iter()
            .map(|(place, arrival, found)| {
                let data = found
                    .as_ref()
                    .map(|(r, ..)| arena.slice(r.clone()))
                    .ok_or_else(|| BAD_BASE64.to_string());
                let mut rec = StreamRecord::cut(&all, place, arrival, data);
                // An empty payload has nothing to miss in cache (and no line of its own).
                if let Some((_, plain, ends_line)) = found.filter(|(r, ..)| !r.is_empty()) {
                    rec.saw(plain, ends_line);
                }
                Item::Record(rec)
            })
            .collect();
        Some((items, arena))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the general path gives for the same event (which decodes each record on its own).
    fn general(mut p: Invocation) -> Invocation {
        crate::fuzzing::checked_lines(&p).expect("the fast path keeps its buffer");
        p.work.lines = None;
        p
    }

    fn payloads() -> Vec<(String, Vec<u8>)> {
        vec![
            ("a".into(), b"{\"p\":1}".to_vec()),
            ("b\"q".into(), vec![0, 159, 146, 150, 255]),
            ("c".into(), Vec::new()),
        ]
    }

    #[test]
    fn what_the_reader_saw_of_each_payload_is_noted_for_those_bytes_only() {
        let gz = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b"{}\n").unwrap();
            e.finish().unwrap()
        };
        let payloads: Vec<(String, Vec<u8>)> = [
            b"{\"a\":1}".to_vec(),
            b"{\"a\":1}\n{\"a\":2}\n".to_vec(),
            gz,
            crate::kpl::aggregate(&[("k", b"{}")]),
            Vec::new(),
        ]
        .into_iter()
        .map(|d| ("k".to_string(), d))
        .collect();
        let ev = crate::event::kinesis_event("s", &payloads);
        let fast = kinesis(&serde_json::to_vec(&ev).unwrap()).expect("a plain Kinesis batch");
        let seen: Vec<_> = fast
            .work
            .items
            .iter()
            .map(|i| match i {
                Item::Record(r) => r.seen().map(|s| (s.plain, s.ends_line)),
                other => panic!("{other:?}"),
            })
            .collect();
        // Plain without and with a final line break; gzip and an aggregate are not plain; an
        // empty payload has nothing to note.
        assert_eq!(
            seen,
            [
                Some((true, false)),
                Some((true, true)),
                Some((false, false)),
                Some((false, false)),
                None
            ]
        );
        // The note holds for the bytes it was taken of, not for a payload put in their place.
        let Item::Record(mut r) = fast.work.items[0].clone() else {
            unreachable!()
        };
        r.data = Ok(bytes::Bytes::from_static(b"{\"a\":1}\n"));
        assert_eq!(r.seen(), None);
        // Nor for a record made any other way.
        let made = StreamRecord::new("1", "s", "k", None, Ok(bytes::Bytes::from_static(b"x")));
        assert_eq!(made.seen(), None);
    }

    #[test]
    fn reads_what_the_general_path_reads() {
        let ev = crate::event::kinesis_event("s", &payloads());
        for text in [
            serde_json::to_vec(&ev).unwrap(),
            serde_json::to_vec_pretty(&ev).unwrap(),
        ] {
            let fast = kinesis(&text).expect("a plain Kinesis batch");
            assert_eq!(
                crate::fuzzing::checked_lines(&fast).as_deref(),
                Some(&b"{\"p\":1}\n\0\x9f\x92\x96\xff\n"[..])
            );
            assert_eq!(general(fast), crate::trigger::parse(&ev));
        }
        // The real sample AWS documents (and powertools' CloudWatch Logs one), written out here.
        let sample = br#"{"Records":[{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"1","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","data":"SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==","approximateArrivalTimestamp":1545084650.987},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000006:49590338271490256608559692538361571095921575989136588898","eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::123456789012:role/lambda-role","awsRegion":"us-east-2","eventSourceARN":"arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"}]}"#;
        let v: serde_json::Value = serde_json::from_slice(sample).unwrap();
        let fast = kinesis(sample).unwrap();
        assert_eq!(general(fast.clone()), crate::trigger::parse(&v));
        let Item::Record(r) = &fast.work.items[0] else {
            panic!("{fast:?}")
        };
        assert_eq!(r.shard(), "shardId-000000000006");
        assert_eq!(r.data.as_deref().unwrap(), b"Hello, this is a test.");
        assert_eq!(r.arrival, Some(1545084650.987));
    }

    #[test]
    fn records_read_by_template_agree_with_records_read_field_by_field() {
        // Twelve records; then the envelope is changed here and there: a record from another
        // shard and region, fields in another order, extra spaces, an escaped partition key, a
        // missing arrival time, a slot holding a number where a string was. Each record that no
        // longer matches the one before is read field by field and becomes the template.
        let payloads: Vec<(String, Vec<u8>)> = (0..12)
            .map(|i| (format!("pk-{i}"), format!("{{\"n\":{i}}}").into_bytes()))
            .collect();
        let ev = crate::event::kinesis_event("s", &payloads);
        let mut records: Vec<String> = ev["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        records[3] = records[3]
            .replace("us-east-1", "eu-west-1")
            .replace("shardId-000000000000", "shardId-000000000007");
        records[4] = records[4].replace("\"eventName\"", " \"eventName\"");
        let reordered: serde_json::Value = serde_json::from_str(&records[6]).unwrap();
        records[6] = serde_json::to_string_pretty(&reordered).unwrap();
        records[7] = records[7].replace("\"pk-7\"", "\"pk\\u002d7\"");
        records[9] = records[9].replace("\"approximateArrivalTimestamp\":", "\"x\":");
        records[10] = records[10].replace("\"pk-10\"", "\"pk-10 \\\"quoted\\\"\"");
        for (i, want) in [
            (3, "eu-west-1"),
            (4, " \"eventName"),
            (6, "\n"),
            (7, "\\u002d"),
            (9, "\"x\""),
        ] {
            assert!(records[i].contains(want), "{}", records[i]);
        }
        let text = format!("{{\"Records\":[{}]}}", records.join(","));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let fast = kinesis(text.as_bytes()).expect("a plain Kinesis batch");
        assert_eq!(general(fast.clone()), crate::trigger::parse(&v));
        let keys: Vec<String> = fast
            .work
            .items
            .iter()
            .map(|i| match i {
                Item::Record(r) => format!("{}/{}", r.shard(), r.partition_key()),
                _ => panic!("{i:?}"),
            })
            .collect();
        assert_eq!(keys[2], "shardId-000000000000/pk-2");
        assert_eq!(keys[3], "shardId-000000000007/pk-3");
        assert_eq!(keys[7], "shardId-000000000000/pk-7");
        assert_eq!(keys[10], "shardId-000000000000/pk-10 \"quoted\"");
        assert_eq!(keys[11], "shardId-000000000000/pk-11");
        // A slot holding another kind of value is not a Kinesis record this reader reads.
        records[11] = records[11].replace("\"pk-11\"", "11");
        let text = format!("{{\"Records\":[{}]}}", records.join(","));
        assert_eq!(kinesis(text.as_bytes()), None);
    }

    #[test]
    fn plain_decimals_read_as_str_parse_reads_them() {
        let mut cases: Vec<String> = [
            "0",
            "0.0",
            "1763812800",
            "1763812800.0",
            "1763812800.123",
            "1428537600.987654",
            "999999999999999",
            "99999999999999.9",
            "0.000000000000001",
            "123456.789012345",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every split of many digit strings: the division must round as the parser does.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 1_000_000_000_000_000).to_string();
            let dot = (x >> 50) as usize % (digits.len() + 1);
            cases.push(if dot == digits.len() {
                digits
            } else {
                format!("{}.{}", &digits[..dot.max(1)], &digits[dot.max(1)..])
            });
        }
        for c in &cases {
            if let Some(v) = plain_decimal(c.as_bytes()) {
                assert_eq!(v.to_bits(), c.parse::<f64>().unwrap().to_bits(), "{c}");
            }
        }
        // Read: the shapes an arrival time has. Left to the parser: everything else.
        for c in ["1763812800.123", "1", "12.5"] {
            assert!(plain_decimal(c.as_bytes()).is_some(), "{c}");
        }
        for c in [
            "",
            ".5",
            "5.",
            "-1",
            "1e3",
            "1.2.3",
            "1234567890123456",
            "+1",
            "1_0",
        ] {
            assert_eq!(plain_decimal(c.as_bytes()), None, "{c}");
        }
    }

    #[test]
    fn base64_with_an_escaped_slash_goes_to_the_general_path() {
        // "/w==" is 0xff; JSON may write the slash escaped.
        let ev = crate::event::kinesis_event("s", &[("k".into(), vec![0xff])]);
        let text = serde_json::to_string(&ev)
            .unwrap()
            .replace("/w==", "\\/w==");
        assert!(text.contains("\\/w=="));
        assert_eq!(kinesis(text.as_bytes()), None);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let Item::Record(r) = &crate::trigger::parse(&v).work.items[0] else {
            panic!()
        };
        assert_eq!(r.data.as_deref().unwrap(), &[0xff]);
    }

    #[test]
    fn leaves_everything_else_to_the_general_path() {
        let ev = crate::event::kinesis_event("s", &payloads());
        let text = serde_json::to_string(&ev).unwrap();
        for other in [
            // other triggers, windows, empty batches
            serde_json::to_string(&crate::event::sqs_records_event("q", &["x".into()])).unwrap(),
            serde_json::to_string(&crate::event::kinesis_window_events("s", &payloads(), 60, 9)[0])
                .unwrap(),
            "{\"Records\":[]}".into(),
            "{}".into(),
            "[]".into(),
            // odd fields and broken JSON
            text.replacen("\"data\":\"", "\"data\":null,\"x\":\"", 1),
            text.replacen(
                "\"eventSource\":\"aws:kinesis\"",
                "\"eventSource\":\"aws:s3\"",
                1,
            ),
            text[..text.len() - 1].to_string(),
            format!("{text} trailing"),
            text.replacen("[{", "[{\"deep\":".to_string().as_str(), 1) + &"[".repeat(100),
        ] {
            assert_eq!(kinesis(other.as_bytes()), None, "{other:.200}");
        }
        // Bad base64 is the record's own error, as on the general path.
        let bad = text.replacen("eyJwIjoxfQ==", "eyJwIjoxfQ=!", 1);
        let v: serde_json::Value = serde_json::from_str(&bad).unwrap();
        assert_eq!(
            general(kinesis(bad.as_bytes()).unwrap()),
            crate::trigger::parse(&v)
        );
    }

    #[test]
    fn damaged_events_never_panic_and_agree_with_the_general_path() {
        let ev = crate::event::kinesis_event("s", &payloads());
        let text = serde_json::to_vec(&ev).unwrap();
        // Deterministic damage: bytes overwritten, cut, duplicated or removed at many places.
        let mut compared = 0;
        for t in crate::fuzzing::mutations(&text, 3000) {
            // Never a panic; and where the event is JSON, never a disagreement with the general
            // path. (Damage inside a field the fast path skips, such as a control character in
            // `eventSourceARN`, is not looked at: every field it uses is checked.)
            crate::fuzzing::event(&t);
            if kinesis(&t).is_some() && serde_json::from_slice::<serde_json::Value>(&t).is_ok() {
                compared += 1;
            }
        }
        // Much of the damage leaves valid JSON (inside the data, say): those were compared.
        assert!(
            compared > 800,
            "only {compared} damaged events were compared"
        );
    }
}
