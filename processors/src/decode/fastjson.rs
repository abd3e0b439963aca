//! A schema-driven JSON object parser that writes straight into Arrow builders.
//!
//! Only the declared columns are decoded; every other field is skipped — but still checked to be
//! valid JSON, so a broken line is rejected whatever field it breaks in. One line is parsed into a
//! row of cells first and appended to the builders only when the whole line is good, so a bad line
//! leaves no trace in the batch. Values are coerced the way `arrow-json` coerces them (numbers in
//! quotes for numeric columns, numbers and booleans as text for string columns, RFC 3339 strings or
//! epoch numbers for timestamps), so both decoders accept the same input.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_buffer::NullBuffer;
use arrow_schema::{ArrowError, DataType, Fields, SchemaRef, TimeUnit};

/// Containers nest at most this deep inside skipped values.
const MAX_DEPTH: usize = 64;

/// Why a line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineError {
    /// Not JSON at all.
    Json(String),
    /// JSON, but not one object.
    NotObject(String),
    /// A value does not fit its column.
    Schema(String),
    /// Not UTF-8.
    Utf8,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::Json(m) => write!(f, "invalid JSON: {m}"),
            LineError::NotObject(m) => f.write_str(m),
            LineError::Schema(m) => write!(f, "does not fit the schema: {m}"),
            LineError::Utf8 => f.write_str("the line is not valid UTF-8"),
        }
    }
}

type Res<T> = Result<T, LineError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    I64,
    I32,
    F64,
    F32,
    Bool,
    Ts,
    Date,
    Struct,
    /// A string column holding the value's JSON text, whatever its shape.
    Json,
}

enum Builder {
    Str(StringBuilder),
    I64(Int64Builder),
    I32(Int32Builder),
    F64(Float64Builder),
    F32(Float32Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    Struct(Vec<bool>),
}

struct Node {
    kind: Kind,
    /// For timestamps: the unit of epoch numbers.
    epoch: super::timestamp::EpochUnit,
    /// Dotted path, for errors.
    path: String,
    data_type: DataType,
    parent: Option<usize>,
    /// For structs: (key, child node), in field order.
    keys: KeyIndex,
    builder: Builder,
}

/// An object's declared keys and their nodes, in field order, found by hash: one multiply and,
/// for a key the schema does not have, mostly an empty slot at once. A scan compared every
/// undeclared key against each declared one, 9% of a rollup whose records carry 22 keys in an
/// order of their own.
#[derive(Default)]
struct KeyIndex {
    /// (key, node), in field order.
    keys: Vec<(Box<[u8]>, usize)>,
    /// Open addressing with linear probing, at most a quarter full: 0 is empty, `i + 1` is
    /// `keys[i]`. The table holds only the schema's keys, so no input makes a probe run longer
    /// than the schema's own clusters.
    slots: Box<[u32]>,
    shift: u32,
}

impl KeyIndex {
    fn new(keys: Vec<(Box<[u8]>, usize)>) -> Self {
        let size = (keys.len() * 4).next_power_of_two().max(8);
        let mut slots = vec![0u32; size].into_boxed_slice();
        let shift = 64 - size.trailing_zeros();
        for (i, (k, _)) in keys.iter().enumerate() {
            let mut s = (key_hash(k) >> shift) as usize;
            while slots[s] != 0 {
                s = (s + 1) & (size - 1);
            }
            // Fields of one Arrow schema number far fewer than u32::MAX.
            slots[s] = u32::try_from(i + 1).unwrap_or(u32::MAX);
        }
        KeyIndex { keys, slots, shift }
    }

    /// The node of `key` (its text, unescaped), if declared.
    #[inline]
    fn get(&self, key: &[u8]) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut s = (key_hash(key) >> self.shift) as usize;
        loop {
            let e = *self.slots.get(s)?;
            let (k, n) = self.keys.get(e.checked_sub(1)? as usize)?;
            if same_short(k, key) {
                return Some(*n);
            }
            s = (s + 1) & mask;
        }
    }

    fn nodes(&self) -> Vec<usize> {
        self.keys.iter().map(|(_, n)| *n).collect()
    }
}

/// A hash of a key's bytes read as at most two words (keys differing only in their middle
/// collide, and probing tells them apart).
#[inline]
fn key_hash(k: &[u8]) -> u64 {
    // The lengths matched are those the words fit in.
    let w8 = |at| u64::from_le_bytes(word(k, at).unwrap_or_default());
    let w4 = |at| u64::from(u32::from_le_bytes(word(k, at).unwrap_or_default()));
    let n = k.len();
    let x = match n {
        8.. => w8(0) ^ w8(n - 8).rotate_left(31),
        4..=7 => w4(0) | w4(n - 4) << 32,
        1..=3 => u64::from(k[0]) | u64::from(k[n / 2]) << 8 | u64::from(k[n - 1]) << 16,
        0 => 0,
    };
    (x ^ (n as u64) << 56).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Missing,
    Null,
    Present,
    /// Byte range of the value text in the line.
    Text(u32, u32),
    /// Byte range in the unescape arena.
    Owned(u32, u32),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// A key as a line had it (raw bytes and closing quote), and its node if the schema has one.
type SeenKey = (Vec<u8>, Option<usize>);

/// Parses lines into builders for one schema.
pub(crate) struct FastDecoder {
    schema: SchemaRef,
    nodes: Vec<Node>,
    /// Top-level keys.
    root: KeyIndex,
    cells: Vec<Cell>,
    live: Vec<bool>,
    arena: String,
    rows: usize,
    /// Each object's keys as the last line had them (with their closing quote), in order, with
    /// their nodes (indexed by [`seen_index`]): lines of a file mostly repeat
    /// their keys in the same order, so the key expected next is compared whole instead of
    /// scanned and looked up.
    seen: Vec<Vec<SeenKey>>,
    /// Per object (indexed like `seen`): lines left on which its keys are not predicted. An
    /// object whose keys missed their prediction more often than not on a line (records whose
    /// keys come in an order of their own) is looked up by hash only for the next
    /// [`QUIET_LINES`] lines, then predicted again on one: relearning a missed prediction
    /// copies the key, work lost when the next line's order is another.
    quiet: Vec<u8>,
}

/// See `FastDecoder::quiet`.
const QUIET_LINES: u8 = 31;

/// Field metadata marking a string column that holds raw JSON text (declared type `json`).
pub const JSON_METADATA: &str = "sluice.json";

fn is_json(f: &arrow_schema::Field) -> bool {
    f.metadata().contains_key(JSON_METADATA)
}

fn kind_of_field(f: &arrow_schema::Field) -> Option<Kind> {
    if is_json(f) && f.data_type() == &DataType::Utf8 {
        return Some(Kind::Json);
    }
    kind_of(f.data_type())
}

fn kind_of(dt: &DataType) -> Option<Kind> {
    Some(match dt {
        DataType::Utf8 => Kind::Str,
        DataType::Int64 => Kind::I64,
        DataType::Int32 => Kind::I32,
        DataType::Float64 => Kind::F64,
        DataType::Float32 => Kind::F32,
        DataType::Boolean => Kind::Bool,
        DataType::Timestamp(TimeUnit::Microsecond, _) => Kind::Ts,
        DataType::Date32 => Kind::Date,
        DataType::Struct(fields) if fields.iter().all(|f| kind_of_field(f).is_some()) => {
            Kind::Struct
        }
        _ => return None,
    })
}

impl FastDecoder {
    /// A decoder for `schema`, or `None` when it has a type this parser does not handle.
    pub(crate) fn new(schema: &SchemaRef, capacity: usize) -> Option<Self> {
        let mut d = FastDecoder {
            schema: schema.clone(),
            nodes: Vec::new(),
            root: KeyIndex::default(),
            cells: Vec::new(),
            live: Vec::new(),
            arena: String::new(),
            rows: 0,
            seen: Vec::new(),
            quiet: Vec::new(),
        };
        let mut root = Vec::new();
        for f in schema.fields() {
            let id = d.add(f.name().clone(), f, None, capacity)?;
            root.push((f.name().as_bytes().into(), id));
        }
        d.root = KeyIndex::new(root);
        d.cells = vec![Cell::Missing; d.nodes.len()];
        d.live = vec![true; d.nodes.len()];
        d.seen = vec![Vec::new(); d.nodes.len() + 1];
        d.quiet = vec![0; d.nodes.len() + 1];
        Some(d)
    }

    fn add(
        &mut self,
        path: String,
        field: &arrow_schema::Field,
        parent: Option<usize>,
        cap: usize,
    ) -> Option<usize> {
        let dt = field.data_type();
        let kind = kind_of_field(field)?;
        let builder = match kind {
            Kind::Str | Kind::Json => Builder::Str(StringBuilder::with_capacity(cap, cap * 16)),
            Kind::I64 => Builder::I64(Int64Builder::with_capacity(cap)),
            Kind::I32 => Builder::I32(Int32Builder::with_capacity(cap)),
            Kind::F64 => Builder::F64(Float64Builder::with_capacity(cap)),
            Kind::F32 => Builder::F32(Float32Builder::with_capacity(cap)),
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(cap)),
            Kind::Ts => Builder::Ts(
                TimestampMicrosecondBuilder::with_capacity(cap).with_data_type(dt.clone()),
            ),
            Kind::Date => Builder::Date(Date32Builder::with_capacity(cap)),
            Kind::Struct => Builder::Struct(Vec::with_capacity(cap)),
        };
        let id = self.nodes.len();
        self.nodes.push(Node {
            kind,
            epoch: super::timestamp::EpochUnit::of(field),
            path: path.clone(),
            data_type: dt.clone(),
            parent,
            keys: KeyIndex::default(),
            builder,
        });
        if let DataType::Struct(fields) = dt {
            let mut keys = Vec::new();
            for f in fields {
                let child = self.add(format!("{path}.{}", f.name()), f, Some(id), cap)?;
                keys.push((f.name().as_bytes().into(), child));
            }
            self.nodes[id].keys = KeyIndex::new(keys);
        }
        Some(id)
    }

    /// Rows buffered.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// Parse one line; on success its row is buffered, on failure nothing is.
    pub(crate) fn push_line(&mut self, line: &[u8]) -> Res<()> {
        // SIMD validation: on ASCII-heavy lines, several times the speed of `std::str::from_utf8`.
        let text = simdutf8::basic::from_utf8(line).map_err(|_| LineError::Utf8)?;
        let b = text.as_bytes();
        self.cells.iter_mut().for_each(|c| *c = Cell::Missing);
        self.arena.clear();
        let i = ws(b, 0);
        match b.get(i) {
            Some(b'{') => {}
            _ => {
                // Valid JSON that is not an object, or not JSON at all.
                return match skip_value(b, i, 0).map(|e| ws(b, e)) {
                    Ok(e) if e == b.len() => Err(LineError::NotObject(
                        "expected a JSON object, found another JSON value".into(),
                    )),
                    _ => Err(LineError::Json(format!(
                        "expected a JSON object, found {}",
                        show(b, i)
                    ))),
                };
            }
        }
        let end = self.object(text, i + 1, None)?;
        let end = ws(b, end);
        if end != b.len() {
            return Err(if b[end] == b'{' {
                LineError::NotObject("expected one JSON object on the line, found more".into())
            } else {
                LineError::Json(format!(
                    "unexpected {} after the object at column {}",
                    show(b, end),
                    end + 1
                ))
            });
        }
        self.commit(text);
        Ok(())
    }

    /// Parse object members after `{`; `owner` is the struct node (None: the root).
    fn object(&mut self, text: &str, mut i: usize, owner: Option<usize>) -> Res<usize> {
        let b = text.as_bytes();
        i = ws(b, i);
        if b.get(i) == Some(&b'}') {
            return Ok(i + 1);
        }
        let at = seen_index(owner);
        let quiet = self.quiet.get(at).copied().unwrap_or(0);
        let guess = quiet == 0;
        if !guess {
            self.quiet[at] = quiet - 1;
        }
        // Keys this line can hit: a fresh object predicts nothing, and misses nothing.
        let predictable = self.seen.get(at).map_or(0, Vec::len);
        let (mut position, mut hits) = (0, 0);
        loop {
            if b.get(i) != Some(&b'"') {
                return Err(LineError::Json(format!(
                    "expected a field name, found {} at column {}",
                    show(b, i),
                    i + 1
                )));
            }
            let known = if guess {
                self.predicted(b, i, at, position)
            } else {
                None
            };
            let (end, node) = match known {
                Some(known) => {
                    hits += 1;
                    known
                }
                None => self.key(b, i, owner, guess.then_some(position))?,
            };
            position += 1;
            i = ws(b, end + 1);
            if b.get(i) != Some(&b':') {
                return Err(LineError::Json(format!(
                    "expected `:`, found {} at column {}",
                    show(b, i),
                    i + 1
                )));
            }
            i = ws(b, i + 1);
            i = match node {
                Some(n) if self.cells[n] == Cell::Missing => self.value(text, i, n)?,
                // Unknown fields, and repeats of a field (the first one wins), are skipped.
                _ => skip_value(b, i, 0)?,
            };
            i = ws(b, i);
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(b'}') => {
                    if guess && 2 * hits < position.min(predictable) {
                        self.quiet[at] = QUIET_LINES;
                    }
                    return Ok(i + 1);
                }
                _ => {
                    return Err(LineError::Json(format!(
                        "expected `,` or `}}`, found {} at column {}",
                        show(b, i),
                        i + 1
                    )));
                }
            }
        }
    }

    /// The key at the quote at `i` when it is the one the last line had at this `position` of
    /// this object: (its closing quote, its node). A key with no escapes followed by a quote is
    /// exactly those bytes.
    #[inline]
    fn predicted(
        &self,
        b: &[u8],
        i: usize,
        at: usize,
        position: usize,
    ) -> Option<(usize, Option<usize>)> {
        let (key, node) = self.seen.get(at)?.get(position)?;
        // The key is kept with its closing quote.
        let end = i + key.len();
        same_short(b.get(i + 1..end + 1)?, key).then_some((end, *node))
    }

    /// The key at the quote at `i`, scanned and looked up: (its closing quote, its node). With a
    /// `position`, it is remembered as this object's key there for the next line.
    fn key(
        &mut self,
        b: &[u8],
        i: usize,
        owner: Option<usize>,
        position: Option<usize>,
    ) -> Res<(usize, Option<usize>)> {
        let (start, end, escaped) = string_end(b, i)?;
        let key: std::borrow::Cow<'_, [u8]> = if escaped {
            let mut tmp = String::new();
            unescape(&b[start..end], &mut tmp)?;
            std::borrow::Cow::Owned(tmp.into_bytes())
        } else {
            std::borrow::Cow::Borrowed(&b[start..end])
        };
        let keys = match owner {
            None => &self.root,
            Some(n) => &self.nodes[n].keys,
        };
        let node = keys.get(&key);
        let Some(position) = position else {
            return Ok((end, node));
        };
        let seen = &mut self.seen[seen_index(owner)];
        if escaped {
            // An escaped key is not predicted (its bytes are not its text), nor any after it.
            seen.truncate(position);
        } else if let Some((key, n)) = seen.get_mut(position) {
            // Relearned in place, and the keys after it kept (a prediction is only ever taken
            // when a line's bytes equal it): a file whose key order changes from line to line
            // allocates nothing here. Dropping them made every key of such a line an allocation
            // and a free, 14% of a batch of records with 22 keys in their own orders.
            key.clear();
            key.extend_from_slice(&b[start..=end]);
            *n = node;
        } else if seen.len() == position {
            seen.push((b[start..=end].to_vec(), node));
        }
        Ok((end, node))
    }

    fn mismatch(&self, n: usize, b: &[u8], i: usize) -> LineError {
        let node = &self.nodes[n];
        let want = match node.kind {
            Kind::Str => "a string",
            Kind::I64 | Kind::I32 => "an integer",
            Kind::F64 | Kind::F32 => "a number",
            Kind::Bool => "true or false",
            Kind::Ts => super::timestamp::EXPECTED,
            Kind::Date => "a date",
            Kind::Struct => "an object",
            Kind::Json => "a JSON value",
        };
        let end = skip_value(b, i, 0).unwrap_or(b.len()).min(i + 60);
        let found = String::from_utf8_lossy(&b[i..end]);
        LineError::Schema(format!(
            "field '{}' expects {want}, found {found}",
            node.path
        ))
    }

    /// Parse a value for node `n` at `i`.
    fn value(&mut self, text: &str, i: usize, n: usize) -> Res<usize> {
        let b = text.as_bytes();
        let kind = self.nodes[n].kind;
        match b.get(i) {
            Some(b'n') => {
                let e = literal(b, i, b"null")?;
                self.cells[n] = Cell::Null;
                return Ok(e);
            }
            None => return Err(LineError::Json("unexpected end of line".into())),
            _ => {}
        }
        let c = b[i];
        match kind {
            Kind::Json => {
                let end = skip_value(b, i, 0)?;
                self.cells[n] = Cell::Text(i as u32, end as u32);
                Ok(end)
            }
            Kind::Struct => {
                if c != b'{' {
                    return Err(self.mismatch(n, b, i));
                }
                self.cells[n] = Cell::Present;
                self.object(text, i + 1, Some(n))
            }
            Kind::Bool => {
                let (e, v) = match c {
                    b't' => (literal(b, i, b"true")?, true),
                    b'f' => (literal(b, i, b"false")?, false),
                    _ => return Err(self.mismatch(n, b, i)),
                };
                self.cells[n] = Cell::Bool(v);
                Ok(e)
            }
            _ => {
                // A string or a bare scalar.
                let (start, end, next, quoted, escaped) = if c == b'"' {
                    let (s, e, esc) = string_end(b, i)?;
                    (s, e, e + 1, true, esc)
                } else if c == b'-' || c.is_ascii_digit() {
                    let e = number_end(b, i)?;
                    (i, e, e, false, false)
                } else if c == b't' || c == b'f' {
                    let e = literal(b, i, if c == b't' { b"true" } else { b"false" })?;
                    if kind != Kind::Str {
                        return Err(self.mismatch(n, b, i));
                    }
                    (i, e, e, false, false)
                } else if c == b'{' || c == b'[' {
                    skip_value(b, i, 0)?;
                    return Err(self.mismatch(n, b, i));
                } else {
                    return Err(LineError::Json(format!(
                        "expected a value, found {} at column {}",
                        show(b, i),
                        i + 1
                    )));
                };
                let owned;
                let raw: &str = if escaped {
                    let at = self.arena.len();
                    unescape(&b[start..end], &mut self.arena)?;
                    owned = (at, self.arena.len());
                    &self.arena[owned.0..owned.1]
                } else {
                    owned = (0, 0);
                    // Both ends are at ASCII bytes of a validated line, so this slice is cheap.
                    // (Not `ok_or(LineError::Utf8)`: its unused error was dropped through a call
                    // for every value, 1.4% of the reference rollup.)
                    match text.get(start..end) {
                        Some(raw) => raw,
                        None => return Err(LineError::Utf8),
                    }
                };
                let cell = match kind {
                    Kind::Str => {
                        if escaped {
                            Cell::Owned(owned.0 as u32, owned.1 as u32)
                        } else {
                            Cell::Text(start as u32, end as u32)
                        }
                    }
                    Kind::I64 | Kind::I32 => match parse_int(raw) {
                        Some(v) if kind == Kind::I64 || i32::try_from(v).is_ok() => Cell::Int(v),
                        _ => return Err(self.mismatch(n, b, i)),
                    },
                    // A number too large for its type (1e39 for a float32, 1e400 for a
                    // float64) is a mismatch, never an `inf` that only looks read; "NaN" and
                    // "Infinity" spelled out are values.
                    Kind::F64 | Kind::F32 => match raw.parse::<f64>() {
                        Ok(v) if !out_of_range(v, kind == Kind::F32, raw) => Cell::Float(v),
                        _ => return Err(self.mismatch(n, b, i)),
                    },
                    Kind::Ts => {
                        // One rule with every other format: text is RFC 3339 or an epoch
                        // number, a number an epoch count (unit by magnitude or declared).
                        let unit = self.nodes[n].epoch;
                        let v = if quoted {
                            parse_timestamp_micros(raw)
                                .or_else(|| super::timestamp::epoch_micros(raw, unit))
                        } else {
                            super::timestamp::epoch_micros(raw, unit)
                        };
                        match v {
                            Some(v) => Cell::Int(v),
                            None => return Err(self.mismatch(n, b, i)),
                        }
                    }
                    Kind::Date => {
                        let v = if quoted {
                            parse_date(raw).map(i64::from)
                        } else {
                            parse_int(raw)
                        };
                        match v.and_then(|v| i32::try_from(v).ok()) {
                            Some(v) => Cell::Int(i64::from(v)),
                            None => return Err(self.mismatch(n, b, i)),
                        }
                    }
                    Kind::Bool | Kind::Struct | Kind::Json => return Err(self.mismatch(n, b, i)),
                };
                self.cells[n] = cell;
                Ok(next)
            }
        }
    }

    fn commit(&mut self, text: &str) {
        for n in 0..self.nodes.len() {
            let parent_live = self.nodes[n].parent.is_none_or(|p| self.live[p]);
            let cell = self.cells[n];
            let live = parent_live && !matches!(cell, Cell::Missing | Cell::Null);
            self.live[n] = live;
            let node = &mut self.nodes[n];
            match &mut node.builder {
                Builder::Struct(v) => v.push(live),
                Builder::Str(bd) => match (live, cell) {
                    (true, Cell::Text(s, e)) => bd.append_value(&text[s as usize..e as usize]),
                    (true, Cell::Owned(s, e)) => {
                        bd.append_value(&self.arena[s as usize..e as usize])
                    }
                    _ => bd.append_null(),
                },
                Builder::I64(bd) => bd.append_option(int(live, cell)),
                Builder::I32(bd) => bd.append_option(int(live, cell).map(|v| v as i32)),
                Builder::Ts(bd) => bd.append_option(int(live, cell)),
                Builder::Date(bd) => bd.append_option(int(live, cell).map(|v| v as i32)),
                Builder::F64(bd) => bd.append_option(float(live, cell)),
                Builder::F32(bd) => bd.append_option(float(live, cell).map(|v| v as f32)),
                Builder::Bool(bd) => bd.append_option(match (live, cell) {
                    (true, Cell::Bool(v)) => Some(v),
                    _ => None,
                }),
            }
        }
        self.rows += 1;
    }

    fn finish_node(&mut self, n: usize) -> Result<ArrayRef, ArrowError> {
        let children = self.nodes[n].keys.nodes();
        if let Builder::Struct(valid) = &mut self.nodes[n].builder {
            let valid = std::mem::take(valid);
            let fields = match &self.nodes[n].data_type {
                DataType::Struct(f) => f.clone(),
                _ => Fields::empty(),
            };
            let arrays = children
                .iter()
                .map(|c| self.finish_node(*c))
                .collect::<Result<Vec<_>, _>>()?;
            let nulls = NullBuffer::from(valid);
            return Ok(Arc::new(StructArray::try_new(fields, arrays, Some(nulls))?));
        }
        Ok(match &mut self.nodes[n].builder {
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::F32(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Ts(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Struct(_) => unreachable!("handled above"),
        })
    }

    /// The buffered rows as a batch.
    pub(crate) fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows == 0 {
            return Ok(None);
        }
        let roots = self.root.nodes();
        let arrays = roots
            .into_iter()
            .map(|n| self.finish_node(n))
            .collect::<Result<Vec<_>, _>>()?;
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays).map(Some)
    }
}

fn int(live: bool, c: Cell) -> Option<i64> {
    match (live, c) {
        (true, Cell::Int(v)) => Some(v),
        _ => None,
    }
}

fn float(live: bool, c: Cell) -> Option<f64> {
    match (live, c) {
        (true, Cell::Float(v)) => Some(v),
        (true, Cell::Int(v)) => Some(v as f64),
        _ => None,
    }
}

/// Where an object's remembered keys are in `FastDecoder::seen`: the root's at 0, struct node
/// `n`'s at `n + 1`.
#[inline]
fn seen_index(owner: Option<usize>) -> usize {
    owner.map_or(0, |n| n + 1)
}

/// `a == b`, for the short slices keys are: two overlapping word compares instead of a call.
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8),
        4..=7 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        // 1 to 3 bytes: the first, middle and last are all of them.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        _ => a == b,
    }
}

/// `W` bytes of `s` from `at`, if there are.
#[inline]
fn word<const W: usize>(s: &[u8], at: usize) -> Option<[u8; W]> {
    s.get(at..at + W)?.try_into().ok()
}

#[inline]
fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(c) = b.get(i) {
        if !matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            break;
        }
        i += 1;
    }
    i
}

fn show(b: &[u8], i: usize) -> String {
    match b.get(i) {
        None => "the end of the line".into(),
        Some(_) => {
            let s = String::from_utf8_lossy(&b[i..b.len().min(i + 24)]);
            format!("`{}`", s.chars().take(20).collect::<String>())
        }
    }
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Res<usize> {
    if b.len() >= i + word.len() && &b[i..i + word.len()] == word {
        Ok(i + word.len())
    } else {
        Err(LineError::Json(format!(
            "expected `{}`, found {} at column {}",
            String::from_utf8_lossy(word),
            show(b, i),
            i + 1
        )))
    }
}

/// The first `"` or `\\` at or after `j`. Most JSON strings are short keys, ids and words, found
/// eight bytes at a time in the first 32 (SWAR: a byte equal to the target becomes zero after the
/// XOR, and the subtract-and-mask trick flags the lowest zero byte exactly); past those, a long
/// one (a user agent, a URL, base64) is searched on with SIMD `memchr2`.
#[inline]
pub fn find_quote_or_backslash(b: &[u8], j: usize) -> Option<usize> {
    let near = b.len().min(j.saturating_add(32));
    match find_near(b.get(..near)?, j) {
        Some(k) => Some(k),
        None => memchr::memchr2(b'"', b'\\', b.get(near..)?).map(|k| near + k),
    }
}

#[inline]
fn find_near(b: &[u8], mut j: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    #[inline]
    fn zero_bytes(y: u64) -> u64 {
        y.wrapping_sub(LO) & !y & HI
    }
    while let Some(chunk) = b.get(j..j + 8) {
        let Ok(arr) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(arr);
        let m = zero_bytes(x ^ (LO * u64::from(b'"'))) | zero_bytes(x ^ (LO * u64::from(b'\\')));
        if m != 0 {
            return Some(j + (m.trailing_zeros() / 8) as usize);
        }
        j += 8;
    }
    b[j.min(b.len())..]
        .iter()
        .position(|c| *c == b'"' || *c == b'\\')
        .map(|k| j + k)
}

/// The string starting at the quote at `i`: (content start, content end, has escapes).
#[inline]
fn string_end(b: &[u8], i: usize) -> Res<(usize, usize, bool)> {
    let start = i + 1;
    let mut j = start;
    let mut escaped = false;
    loop {
        let p = match find_quote_or_backslash(b, j) {
            Some(p) => p,
            None => {
                return Err(LineError::Json(format!(
                    "unterminated string starting at column {}",
                    i + 1
                )));
            }
        };
        if b[p] == b'"' {
            return Ok((start, p, escaped));
        }
        escaped = true;
        match b.get(p + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j = p + 2,
            Some(b'u') if b.len() >= p + 6 && b[p + 2..p + 6].iter().all(u8::is_ascii_hexdigit) => {
                j = p + 6
            }
            _ => {
                return Err(LineError::Json(format!(
                    "invalid escape at column {}",
                    p + 1
                )));
            }
        }
    }
}

fn number_end(b: &[u8], i: usize) -> Res<usize> {
    let mut j = i;
    if b.get(j) == Some(&b'-') {
        j += 1;
    }
    let d0 = j;
    while b.get(j).is_some_and(u8::is_ascii_digit) {
        j += 1;
    }
    if j == d0 {
        return Err(LineError::Json(format!(
            "invalid number at column {}",
            i + 1
        )));
    }
    if b.get(j) == Some(&b'.') {
        j += 1;
        let f0 = j;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j == f0 {
            return Err(LineError::Json(format!(
                "invalid number at column {}",
                i + 1
            )));
        }
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let e0 = j;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j == e0 {
            return Err(LineError::Json(format!(
                "invalid number at column {}",
                i + 1
            )));
        }
    }
    Ok(j)
}

/// Skip any JSON value at `i`, checking its syntax.
fn skip_value(b: &[u8], i: usize, depth: usize) -> Res<usize> {
    match b.get(i) {
        Some(b'"') => string_end(b, i).map(|(_, e, _)| e + 1),
        Some(b'-' | b'0'..=b'9') => number_end(b, i),
        Some(b't') => literal(b, i, b"true"),
        Some(b'f') => literal(b, i, b"false"),
        Some(b'n') => literal(b, i, b"null"),
        Some(open @ (b'{' | b'[')) => {
            if depth >= MAX_DEPTH {
                return Err(LineError::Json(format!(
                    "nested deeper than {MAX_DEPTH} levels"
                )));
            }
            let close = if *open == b'{' { b'}' } else { b']' };
            let mut j = ws(b, i + 1);
            if b.get(j) == Some(&close) {
                return Ok(j + 1);
            }
            loop {
                if *open == b'{' {
                    if b.get(j) != Some(&b'"') {
                        return Err(LineError::Json(format!(
                            "expected a field name, found {} at column {}",
                            show(b, j),
                            j + 1
                        )));
                    }
                    j = ws(b, string_end(b, j)?.1 + 1);
                    if b.get(j) != Some(&b':') {
                        return Err(LineError::Json(format!(
                            "expected `:`, found {} at column {}",
                            show(b, j),
                            j + 1
                        )));
                    }
                    j = ws(b, j + 1);
                }
                j = ws(b, skip_value(b, j, depth + 1)?);
                match b.get(j) {
                    Some(b',') => j = ws(b, j + 1),
                    Some(c) if *c == close => return Ok(j + 1),
                    _ => {
                        return Err(LineError::Json(format!(
                            "expected `,` or `{}`, found {} at column {}",
                            close as char,
                            show(b, j),
                            j + 1
                        )));
                    }
                }
            }
        }
        _ => Err(LineError::Json(format!(
            "expected a value, found {} at column {}",
            show(b, i),
            i + 1
        ))),
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| u32::from_str_radix(s, 16).ok())
}

/// Decode JSON string escapes (already syntax-checked) into `out`.
fn unescape(raw: &[u8], out: &mut String) -> Res<()> {
    let bad = || LineError::Json("invalid escape in a string".into());
    let mut i = 0;
    while i < raw.len() {
        let Some(k) = memchr::memchr(b'\\', &raw[i..]) else {
            out.push_str(std::str::from_utf8(&raw[i..]).map_err(|_| LineError::Utf8)?);
            break;
        };
        out.push_str(std::str::from_utf8(&raw[i..i + k]).map_err(|_| LineError::Utf8)?);
        let p = i + k;
        let c = *raw.get(p + 1).ok_or_else(bad)?;
        i = p + 2;
        match c {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let hi = raw.get(p + 2..p + 6).and_then(hex4).ok_or_else(bad)?;
                i = p + 6;
                let ch = if (0xD800..0xDC00).contains(&hi) {
                    // A surrogate pair: \uD83D\uDE00.
                    let lo = (raw.get(p + 6..p + 8) == Some(b"\\u"))
                        .then(|| raw.get(p + 8..p + 12).and_then(hex4))
                        .flatten()
                        .filter(|lo| (0xDC00..0xE000).contains(lo))
                        .ok_or_else(|| {
                            LineError::Json("unpaired surrogate in a \\u escape".into())
                        })?;
                    i = p + 12;
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                } else {
                    char::from_u32(hi)
                };
                out.push(
                    ch.ok_or_else(|| LineError::Json("unpaired surrogate in a \\u escape".into()))?,
                );
            }
            _ => return Err(bad()),
        }
    }
    Ok(())
}

/// True when `v`, read from `raw`, is infinite only because the number is too large for a
/// float64 (or, `narrow`, for a float32): `raw` does not spell out an infinity.
pub(crate) fn out_of_range(v: f64, narrow: bool, raw: &str) -> bool {
    let overflows = v.is_infinite() || narrow && v.is_finite() && (v as f32).is_infinite();
    overflows && !raw.bytes().any(|c| c == b'i' || c == b'I')
}

/// An integer, also from a float with no fractional part (`3.0`) or in quotes.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if !digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit) {
        let v = digits
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
        return Some(if neg { -v } else { v });
    }
    if let Ok(v) = s.parse::<i64>() {
        return Some(v);
    }
    let f = s.parse::<f64>().ok()?;
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// `YYYY-MM-DD` → days since the epoch.
pub(crate) fn parse_date(s: &str) -> Option<i32> {
    date_days(s.as_bytes())
}

fn date_days(b: &[u8]) -> Option<i32> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    i32::try_from(days_from_civil(y, m, d)).ok()
}

/// An RFC 3339 / ISO 8601 timestamp as microseconds since the epoch (UTC); without an offset the
/// time is taken as UTC. Common shapes are parsed directly, anything else by arrow's parser.
pub(crate) fn parse_timestamp_micros(s: &str) -> Option<i64> {
    fast_timestamp(s.as_bytes())
        .or_else(|| {
            // Microseconds, not nanoseconds: a nanosecond count only reaches 1677-2262, and
            // `1000-01-01` or `9999-12-31` are timestamps of the calendar too.
            arrow_cast::parse::string_to_datetime(&chrono::Utc, s)
                .ok()
                .map(|t| t.timestamp_micros())
        })
        .and_then(super::timestamp::in_range)
}

fn fast_timestamp(b: &[u8]) -> Option<i64> {
    if b.len() < 19
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let days = i64::from(date_days(&b[..10])?);
    let (h, mi, se) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let f0 = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = &b[f0..i];
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        let mut v = digits(frac)?;
        for _ in frac.len()..6 {
            v *= 10;
        }
        for _ in 6..frac.len() {
            v /= 10;
        }
        micros = v;
    }
    let offset_secs = match &b[i..] {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            let v = oh * 3600 + om * 60;
            if *sign == b'+' { v } else { -v }
        }
        _ => return None,
    };
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};

    fn schema() -> SchemaRef {
        crate::decode::schema_from_types([
            ("s", "string"),
            ("n", "int64"),
            ("f", "float64"),
            ("b", "bool"),
            ("t", "timestamp"),
            ("d", "date"),
            ("g.c", "string"),
            ("g.lat", "float64"),
        ])
        .unwrap()
    }

    #[test]
    fn decodes_declared_fields_and_skips_the_rest() {
        let mut d = FastDecoder::new(&schema(), 8).unwrap();
        let lines: [&[u8]; 4] = [
            br#"{"s":"a\"b\u00e9\ud83d\ude00","n":-42,"x":{"deep":[1,{"y":null}]},"f":1.5e2,"b":true,"t":"2026-11-22T10:00:00.123456Z","d":"2026-11-22","g":{"c":"DE","lat":52.5,"zz":[]}}"#,
            br#"  {"n":"7","s":12,"t":1763805600000000,"g":null}  "#,
            br#"{"s":true,"t":"2026-11-22 12:00:00+02:00","f":"2.5","g":{"c":null}}"#,
            br#"{}"#,
        ];
        for l in lines {
            d.push_line(l).unwrap();
        }
        let b = d.flush().unwrap().unwrap();
        assert_eq!(b.num_rows(), 4);
        let s = b.column(0).as_string::<i32>();
        assert_eq!(s.value(0), "a\"bé😀");
        assert_eq!(s.value(1), "12");
        assert_eq!(s.value(2), "true");
        assert!(s.is_null(3));
        let n = b.column(1).as_primitive::<Int64Type>();
        assert_eq!((n.value(0), n.value(1)), (-42, 7));
        let t = b.column(4).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(
            t.value(0),
            crate::expr::parse_timestamp("2026-11-22T10:00:00.123456Z").unwrap()
        );
        assert_eq!(t.value(1), 1_763_805_600_000_000);
        assert_eq!(
            t.value(2),
            crate::expr::parse_timestamp("2026-11-22T10:00:00Z").unwrap()
        );
        let g = b.column(6).as_struct();
        assert!(g.is_valid(0) && g.is_null(1) && g.is_valid(2) && g.is_null(3));
        assert_eq!(g.column(0).as_string::<i32>().value(0), "DE");
        assert!(g.column(0).is_null(2));
    }

    #[test]
    fn json_columns_keep_any_value_as_its_text() {
        let schema =
            crate::decode::schema_from_types([("p", "json"), ("q.r", "json"), ("n", "int64")])
                .unwrap();
        let mut d = FastDecoder::new(&schema, 4).unwrap();
        d.push_line(br#"{"p":{"bucketName":"b","key":["x",{"y":null}]},"q":{"r":"s\"t"},"n":1}"#)
            .unwrap();
        d.push_line(br#"{"p":null,"q":{"r":12.5}}"#).unwrap();
        assert!(d.push_line(br#"{"p":{"broken":}"#).is_err());
        let b = d.flush().unwrap().unwrap();
        let p = b.column(0).as_string::<i32>();
        assert_eq!(p.value(0), r#"{"bucketName":"b","key":["x",{"y":null}]}"#);
        assert!(p.is_null(1));
        let r = b.column(1).as_struct().column(0).as_string::<i32>();
        assert_eq!((r.value(0), r.value(1)), (r#""s\"t""#, "12.5"));
    }

    #[test]
    fn short_compares_see_a_difference_at_every_byte() {
        for n in 0..=24 {
            let a: Vec<u8> = (0..n as u8).map(|i| b'a' + i).collect();
            assert!(same_short(&a, &a.clone()), "{n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_short(&a, &b), "{n} {at}");
            }
            assert!(!same_short(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    #[test]
    fn keys_remembered_from_the_last_line_never_change_what_a_line_gives() {
        // Predicting each key from the last line is a cache: every line must decode as it does
        // with a fresh decoder — whatever order, prefix, escape, repeat or break comes next.
        let lines: [&[u8]; 15] = [
            br#"{"s":"a","n":1,"g":{"c":"x","lat":1.5},"x":0}"#,
            br#"{"s":"b","n":2,"g":{"c":"y","lat":2.5},"x":0}"#,
            br#"{"n":3,"s":"c","g":{"lat":3.5,"c":"z"}}"#,
            br#"{"ss":"not s","s":"d","nn":4,"n":5}"#,
            br#"{"s":"e","n":6,"g":{"c":"w","lat":4.5},"x":0}"#,
            br#"{"s\u0000":"escaped other","\u0073":"escaped s","n":7}"#,
            br#"{"s\u0000":"escaped other","\u0073":"escaped s again","n":8}"#,
            br#"{"s":"f","s":"second s","n":9,"n":10}"#,
            br#"{"s":"g","n":"eleven"}"#,
            br#"{"s":"h","n":12,"g":{"c":"v","lat":5.5},"x":0"#,
            br#"{"s":"i","n":13,"g":{"c":"u","lat":6.5},"x":0}"#,
            br#"{"s":"j","n":14,"g":{"c":"t","lat"#,
            // Orders that change from line to line: the keys after a miss are still predicted.
            br#"{"x":0,"n":15,"s":"k","g":{"lat":7.5,"c":"s"}}"#,
            br#"{"g":{"c":"r","lat":8.5},"n":16,"x":0,"s":"l"}"#,
            br#"{"n":17,"x":0,"s":"m"}"#,
        ];
        let mut one = FastDecoder::new(&schema(), 16).unwrap();
        let mut fresh_batches = Vec::new();
        for line in lines {
            let mut fresh = FastDecoder::new(&schema(), 1).unwrap();
            let want = fresh.push_line(line);
            assert_eq!(
                one.push_line(line),
                want,
                "{}",
                String::from_utf8_lossy(line)
            );
            fresh_batches.extend(fresh.flush().unwrap());
        }
        let got = one.flush().unwrap().unwrap();
        let want = arrow_select::concat::concat_batches(&schema(), &fresh_batches).unwrap();
        assert_eq!(got, want);
        assert_eq!(got.num_rows(), 12);
        let s = got.column(0).as_string::<i32>();
        let n = got.column(1).as_primitive::<Int64Type>();
        let rows: Vec<_> = (0..12).map(|r| (s.value(r), n.value(r))).collect();
        assert_eq!(
            rows,
            [
                ("a", 1),
                ("b", 2),
                ("c", 3),
                ("d", 5),
                ("e", 6),
                ("escaped s", 7),
                ("escaped s again", 8),
                ("f", 9),
                ("i", 13),
                ("k", 15),
                ("l", 16),
                ("m", 17)
            ]
        );
    }

    #[test]
    fn declared_keys_are_found_by_hash_and_no_other() {
        // Keys of every length, some sharing their first and last eight bytes (the hash reads
        // only those, so they collide and probing tells them apart).
        let declared: Vec<Vec<u8>> = [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "abcdefg",
            "abcdefgh",
            "abcdefgh_1_abcdefgh",
            "abcdefgh_2_abcdefgh",
            "abcdefgh__3__abcdefgh",
            "ts",
            "user_id",
            "é",
        ]
        .iter()
        .map(|k| k.as_bytes().to_vec())
        .collect();
        let index = KeyIndex::new(
            declared
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone().into_boxed_slice(), i * 10))
                .collect(),
        );
        for (i, k) in declared.iter().enumerate() {
            assert_eq!(index.get(k), Some(i * 10), "{}", String::from_utf8_lossy(k));
        }
        // Every one-byte change, truncation and extension of a declared key is another key.
        for k in &declared {
            for at in 0..k.len() {
                let mut other = k.clone();
                other[at] ^= 0x01;
                if !declared.contains(&other) {
                    assert_eq!(index.get(&other), None, "{other:?}");
                }
            }
            for other in [
                k[..k.len().saturating_sub(1)].to_vec(),
                [k.as_slice(), b"x"].concat(),
            ] {
                if !declared.contains(&other) {
                    assert_eq!(index.get(&other), None, "{other:?}");
                }
            }
        }
        assert_eq!(KeyIndex::new(Vec::new()).get(b"a"), None);
        assert_eq!(KeyIndex::default().get(b"a"), None);
    }

    #[test]
    fn lines_whose_keys_come_in_an_order_of_their_own_decode_as_a_fresh_decoder_does() {
        // Past a line that mostly misses its predictions, keys are looked up by hash only for a
        // while, then predicted again: every line still decodes as with a fresh decoder.
        let fields: [&str; 9] = [
            r#""s":"v""#,
            r#""n":1"#,
            r#""g":{"lat":2.5,"zz":[1],"c":"x"}"#,
            r#""x":{"y":[1,2,{"z":null}]}"#,
            r#""f":0.5"#,
            r#""u":"ünïcödé ✓""#,
            r#""t":"2026-11-22T10:00:00Z""#,
            r#""b":true"#,
            r#""d":"2026-11-22""#,
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut one = FastDecoder::new(&schema(), 256).unwrap();
        let mut fresh_batches = Vec::new();
        for line_no in 0..200 {
            let mut order: Vec<&str> = fields.to_vec();
            // Runs of lines in one order, and runs in shuffled orders.
            if (line_no / 40) % 2 == 1 {
                for i in (1..order.len()).rev() {
                    order.swap(i, (next() % (i as u64 + 1)) as usize);
                }
            }
            let line = format!("{{{}}}", order.join(","));
            let mut fresh = FastDecoder::new(&schema(), 1).unwrap();
            let want = fresh.push_line(line.as_bytes());
            assert_eq!(one.push_line(line.as_bytes()), want, "{line}");
            fresh_batches.extend(fresh.flush().unwrap());
        }
        let got = one.flush().unwrap().unwrap();
        let want = arrow_select::concat::concat_batches(&schema(), &fresh_batches).unwrap();
        assert_eq!(got.num_rows(), 200);
        assert_eq!(got, want);
        let b = got.column(3).as_boolean();
        assert!((0..200).all(|r| b.value(r)));
    }

    #[test]
    fn bad_lines_leave_no_trace() {
        let mut d = FastDecoder::new(&schema(), 8).unwrap();
        let cases: [(&[u8], &str); 12] = [
            (
                br#"{"n":"slow"}"#,
                "field 'n' expects an integer, found \"slow\"",
            ),
            (br#"{"n":1.5}"#, "field 'n' expects an integer"),
            (
                br#"{"g":{"lat":"north"}}"#,
                "field 'g.lat' expects a number",
            ),
            (br#"{"g":5}"#, "field 'g' expects an object"),
            (br#"{"s":{"a":1}}"#, "field 's' expects a string"),
            (br#"{"t":"yesterday"}"#, "field 't' expects a timestamp"),
            (br#"{"d":"2026-02-30"}"#, "field 'd' expects a date"),
            (br#"{"n":1,"x":[1,2}"#, "invalid JSON"),
            (br#"{"n":1"#, "invalid JSON"),
            (br#"[1,2]"#, "expected a JSON object"),
            (br#"{"n":1}{"n":2}"#, "found more"),
            (b"{\"s\":\"\xff\"}", "not valid UTF-8"),
        ];
        for (line, want) in cases {
            let e = d.push_line(line).unwrap_err().to_string();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(line));
        }
        assert_eq!(d.len(), 0);
        d.push_line(br#"{"n":3}"#).unwrap();
        let b = d.flush().unwrap().unwrap();
        assert_eq!(b.num_rows(), 1);
        assert_eq!(b.column(1).as_primitive::<Int64Type>().value(0), 3);
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(
            d.push_line(deep.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("nested deeper")
        );
    }

    #[test]
    fn finds_the_first_quote_or_backslash_at_any_offset() {
        for len in 0..100 {
            for at in 0..len {
                for c in [b'"', b'\\'] {
                    let mut v = vec![b'a'; len];
                    v[at] = c;
                    if at + 3 < len {
                        v[at + 3] = b'"';
                    }
                    assert_eq!(find_quote_or_backslash(&v, 0), Some(at), "{len} {at}");
                    assert_eq!(find_quote_or_backslash(&v, at), Some(at));
                }
            }
            assert_eq!(find_quote_or_backslash(&vec![0xffu8; len], 0), None);
        }
    }

    #[test]
    fn timestamps_agree_with_chrono() {
        for s in [
            "2026-11-22T10:00:00Z",
            "2024-02-29T23:59:59.999999Z",
            "1969-12-31T23:59:59.5Z",
            "2026-11-22T10:00:00-07:00",
            "2026-11-22T10:00:00.123456789+05:30",
        ] {
            let want = chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_micros();
            assert_eq!(fast_timestamp(s.as_bytes()), Some(want), "{s}");
        }
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(11017));
    }
}
