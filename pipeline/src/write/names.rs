//! Output names: deterministic functions of the sources, so a retry overwrites instead of
//! duplicating; Hive partition values escaped.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// What Hive escapes in partition values.
const HIVE: &AsciiSet = &CONTROLS
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'\'')
    .add(b'*')
    .add(b'/')
    .add(b':')
    .add(b'=')
    .add(b'?')
    .add(b'\\')
    .add(b'{')
    .add(b'[')
    .add(b']')
    .add(b'^');

/// Hive's folder name for null partition values.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Longest partition value kept whole in a folder name, in bytes once escaped. A longer value is
/// cut at a character boundary and ends in `~` and a digest of the whole value, so two long
/// values stay apart and the folder name stays well inside every limit (255 bytes per name on
/// local disks, 1 024 per S3 key).
pub const MAX_PARTITION_VALUE_BYTES: usize = 128;

/// A partition value as it appears in its folder name: Hive-escaped; the literal text of
/// [`NULL_PARTITION`] escaped further (`%5F_HIVE_DEFAULT_PARTITION__`), so it never lands beside
/// the nulls; cut with a digest past [`MAX_PARTITION_VALUE_BYTES`].
pub(crate) fn partition_value(v: &str, path: &mut String) {
    let escaped: String = if v == NULL_PARTITION {
        format!("%5F{}", &v[1..])
    } else {
        utf8_percent_encode(v, HIVE).collect()
    };
    if escaped.len() <= MAX_PARTITION_VALUE_BYTES {
        path.push_str(&escaped);
        return;
    }
    // Whole characters, each escaped, while they fit before `~` and the 16-digit digest.
    let budget = MAX_PARTITION_VALUE_BYTES - 17;
    let mut used = 0;
    let mut one = [0u8; 4];
    for c in v.chars() {
        let part: String = utf8_percent_encode(c.encode_utf8(&mut one), HIVE).collect();
        if used + part.len() > budget {
            break;
        }
        used += part.len();
        path.push_str(&part);
    }
    path.push('~');
    path.push_str(&digest(&[v]));
}

/// The deterministic base name of everything written for one source object:
/// `{file stem}-{16 hex digits of sha256(bucket, key, version or etag)}`.
pub fn base_name(bucket: &str, key: &str, version: Option<&str>) -> String {
    named(key, &digest(&[bucket, key, version.unwrap_or("")]))
}

/// The base name of an invocation's single output (an aggregate over all its objects): the first
/// object's stem, how many others there were, and a digest of every (bucket, key, version).
pub fn invocation_name<'a>(
    objects: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>)>,
) -> String {
    let objects: Vec<_> = objects.into_iter().collect();
    match objects.as_slice() {
        [] => digest(&[]),
        [(b, k, v)] => base_name(b, k, *v),
        [(_, first, _), rest @ ..] => {
            let parts: Vec<&str> = objects
                .iter()
                .flat_map(|(b, k, v)| [*b, *k, v.unwrap_or("")])
                .collect();
            named(
                first,
                &format!("and-{}-more-{}", rest.len(), digest(&parts)),
            )
        }
    }
}

/// The base name of a Kinesis batch's outputs: `{shard}-{first sequence}`. Not its last: Lambda
/// may deliver a failed batch again with more records or fewer (another batch size, a bisected
/// batch), and the redelivery must replace what the first delivery published, not add a second
/// file holding the same records. Parts that are not plain ids are replaced by a digest.
pub fn stream_name(shard: &str, first: &str) -> String {
    plain_name(&[shard, first])
}

/// The base name of a Kinesis tumbling window's result: `{shard}-window-{start}` (the start in
/// compact ISO 8601, `20261122T120000Z`), so the window's last invocation, redelivered, overwrites.
pub fn window_name(shard: &str, start: &str) -> String {
    let compact: String = start.chars().filter(|c| *c != '-' && *c != ':').collect();
    plain_name(&[shard, "window", &compact])
}

/// `parts` joined by `-` when each is a plain id (at most 128 of `[A-Za-z0-9_-]`), else
/// `batch-{digest}`.
fn plain_name(parts: &[&str]) -> String {
    let plain = |p: &str| {
        !p.is_empty()
            && p.len() <= 128
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    };
    if parts.iter().all(|p| plain(p)) {
        parts.join("-")
    } else {
        format!("batch-{}", digest(parts))
    }
}

/// 16 hex digits of sha256 over length-prefixed parts (so `("ab","c")` and `("a","bc")` differ).
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `{stem of key's file name}-{suffix}`: letters and digits kept, runs of anything else one `-`.
fn named(key: &str, suffix: &str) -> String {
    let file = key.rsplit('/').next().unwrap_or(key);
    let stem = file.split('.').next().unwrap_or(file);
    let mut clean = String::new();
    for c in stem.chars() {
        if c.is_alphanumeric() || c == '_' {
            clean.push(c);
        } else if !clean.is_empty() && !clean.ends_with('-') {
            clean.push('-');
        }
        if clean.chars().count() >= 64 {
            break;
        }
    }
    let clean = clean.trim_end_matches('-');
    if clean.is_empty() {
        suffix.to_string()
    } else {
        format!("{clean}-{suffix}")
    }
}
