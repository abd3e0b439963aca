//! Kinesis Producer Library (KPL) record aggregation: many user records packed into one Kinesis
//! record, as the KPL and `aws-kinesis-agg` write them.
//!
//! The format (public, from the KPL's `aggregation-format.md`): the magic bytes `F3 89 9A C2`, a
//! protobuf `AggregatedRecord`, then the 16-byte MD5 of that protobuf body.
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! ```
//!
//! The protobuf is read by hand (three messages, four wire types): a record that claims to be
//! aggregated but is truncated, fails its checksum or breaks the schema is an error with a reason,
//! never a panic, and never more user records than bytes.

use md5::{Digest, Md5};

/// The four bytes every aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST: usize = 16;

/// One user record out of an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord<'a> {
    /// Its partition key (from the aggregate's table).
    pub partition_key: &'a str,
    /// Its explicit hash key, when the producer set one.
    pub explicit_hash_key: Option<&'a str>,
    /// The payload.
    pub data: &'a [u8],
}

/// True when `data` starts with the aggregation magic (it may still be malformed).
pub fn is_aggregated(data: &[u8]) -> bool {
    data.len() >= MAGIC.len() && data[..MAGIC.len()] == MAGIC
}

/// The user records of an aggregated record, in order (their sub-sequence numbers are their
/// indexes). `Err` says why the record cannot be read.
pub fn deaggregate(data: &[u8]) -> Result<Vec<UserRecord<'_>>, String> {
    if !is_aggregated(data) {
        return Err("not a KPL aggregated record (no magic bytes)".into());
    }
    if data.len() < MAGIC.len() + DIGEST {
        return Err(format!(
            "KPL aggregated record is truncated ({} bytes, shorter than magic and checksum)",
            data.len()
        ));
    }
    let body = &data[MAGIC.len()..data.len() - DIGEST];
    let want = &data[data.len() - DIGEST..];
    if Md5::digest(body).as_slice() != want {
        return Err("KPL aggregated record fails its MD5 checksum (corrupt or truncated)".into());
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut hash_keys: Vec<&str> = Vec::new();
    let mut raw: Vec<(u64, Option<u64>, &[u8])> = Vec::new();
    let mut r = Reader { b: body, i: 0 };
    while !r.done() {
        let (field, wire) = r.tag()?;
        match (field, wire) {
            (1, 2) => keys.push(r.text("partition key")?),
            (2, 2) => hash_keys.push(r.text("explicit hash key")?),
            (3, 2) => raw.push(record(r.bytes()?)?),
            _ => r.skip(wire)?,
        }
    }
    raw.into_iter()
        .enumerate()
        .map(|(n, (pk, ehk, data))| {
            let partition_key = usize::try_from(pk)
                .ok()
                .and_then(|i| keys.get(i))
                .copied()
                .ok_or_else(|| {
                    format!(
                        "user record {n} names partition key {pk}, but the table has {}",
                        keys.len()
                    )
                })?;
            let explicit_hash_key = match ehk {
                None => None,
                Some(i) => Some(
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| hash_keys.get(i))
                        .copied()
                        .ok_or_else(|| {
                            format!(
                                "user record {n} names explicit hash key {i}, but the table has {}",
                                hash_keys.len()
                            )
                        })?,
                ),
            };
            Ok(UserRecord {
                partition_key,
                explicit_hash_key,
                data,
            })
        })
        .collect()
}

/// One `Record` message: (partition key index, explicit hash key index, data).
fn record(b: &[u8]) -> Result<(u64, Option<u64>, &[u8]), String> {
    let mut r = Reader { b, i: 0 };
    let (mut pk, mut ehk, mut data) = (None, None, None);
    while !r.done() {
        let (field, wire) = r.tag()?;
        match (field, wire) {
            (1, 0) => pk = Some(r.varint()?),
            (2, 0) => ehk = Some(r.varint()?),
            (3, 2) => data = Some(r.bytes()?),
            _ => r.skip(wire)?,
        }
    }
    match (pk, data) {
        (Some(pk), Some(data)) => Ok((pk, ehk, data)),
        _ => Err("a user record lacks its partition key index or data".into()),
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.b.get(self.i) else {
                return Err("KPL record is truncated inside a number".into());
            };
            self.i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("KPL record has a number longer than 10 bytes".into())
    }

    fn tag(&mut self) -> Result<(u64, u8), String> {
        let t = self.varint()?;
        Ok((t >> 3, (t & 7) as u8))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.i.checked_add(l))
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("KPL record field claims {len} bytes past its end"))?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    fn text(&mut self, what: &str) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|_| format!("KPL {what} is not UTF-8"))
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            w => Err(format!("KPL record has an unknown protobuf wire type {w}")),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), String> {
        if self.i + n > self.b.len() {
            return Err("KPL record is truncated".into());
        }
        self.i += n;
        Ok(())
    }
}

/// Pack user records as the KPL does (for `sluice event kinesis --kpl` and tests).
pub fn aggregate(records: &[(&str, &[u8])]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn field(out: &mut Vec<u8>, n: u64, bytes: &[u8]) {
        varint(out, (n << 3) | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut body = Vec::new();
    let mut recs = Vec::new();
    for (key, data) in records {
        let idx = match keys.iter().position(|k| k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                keys.len() - 1
            }
        };
        let mut r = Vec::new();
        varint(&mut r, 1 << 3);
        varint(&mut r, idx as u64);
        field(&mut r, 3, data);
        recs.push(r);
    }
    for k in &keys {
        field(&mut body, 1, k.as_bytes());
    }
    for r in &recs {
        field(&mut body, 3, r);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_the_checksum() {
        let packed = aggregate(&[("a", b"one"), ("b", b"two"), ("a", b"")]);
        let recs = deaggregate(&packed).unwrap();
        assert_eq!(
            recs.iter()
                .map(|r| (r.partition_key, r.data))
                .collect::<Vec<_>>(),
            vec![("a", &b"one"[..]), ("b", b"two"), ("a", b"")]
        );
        let mut bad = packed.clone();
        bad[6] ^= 1;
        assert!(deaggregate(&bad).unwrap_err().contains("MD5"));
        assert!(
            deaggregate(&packed[..packed.len() - 1])
                .unwrap_err()
                .contains("MD5 checksum")
        );
        assert!(deaggregate(&MAGIC).unwrap_err().contains("truncated"));
        assert!(!is_aggregated(b"{\"a\":1}"));
    }

    #[test]
    fn malformed_bodies_with_a_valid_checksum_are_errors_not_panics() {
        // Hand-made bodies, each wrapped with a correct MD5 so the protobuf reader is what refuses.
        let wrap = |body: &[u8]| {
            let mut out = MAGIC.to_vec();
            out.extend_from_slice(body);
            out.extend_from_slice(&Md5::digest(body));
            out
        };
        for (body, why) in [
            (&[0x1a, 0x05, 0x08][..], "past its end"),
            (&[0x1a, 0x02, 0x08, 0x00][..], "lacks"),
            (
                &[0x1a, 0x04, 0x08, 0x03, 0x1a, 0x00][..],
                "names partition key 3",
            ),
            (&[0x0b][..], "wire type 3"),
            (&[0xff; 11][..], "longer than 10 bytes"),
        ] {
            let err = deaggregate(&wrap(body)).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        // Every prefix and every one-byte corruption of a real aggregate is handled.
        let packed = aggregate(&[("k", b"{\"x\":1}"), ("k2", b"y")]);
        for n in 0..packed.len() {
            let _ = deaggregate(&packed[..n]);
            let mut m = packed.clone();
            m[n] = m[n].wrapping_add(1);
            let _ = deaggregate(&m);
        }
    }
}
