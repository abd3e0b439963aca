//! Line-oriented text formats: `lines` (a regex with named groups) and the AWS and web-server log
//! presets — `alb`, `cloudfront`, `vpc-flow`, `s3-access`, `clf` — each with its documented field
//! list and types, so a user writes only `format = "alb"`.
//!
//! Each preset's schema is its full documented field list, in order, so it is known at validate time
//! and stable across objects. Formats whose files carry a header naming their fields (CloudFront's
//! `#Fields:`, VPC Flow Logs' first line for custom formats) are mapped by those names; fields the
//! header does not list are null, fields the preset does not know are ignored. Newer log versions
//! append fields; extra trailing fields are ignored. A `-` is null. Lines that do not parse are
//! rejects naming the problem.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use regex::Regex;

use super::lines::{Line, LineBuffer, LineSink, feed_lines, finish_lines};
use super::row::RowBuilder;
use super::{Decoded, Decoder, Origins};
use crate::{DEFAULT_BATCH_ROWS, Error, Reject};

/// A log preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Application Load Balancer access logs.
    Alb,
    /// CloudFront standard (access) logs.
    CloudFront,
    /// VPC Flow Logs, default v2 format or a custom format named by the header line.
    VpcFlow,
    /// S3 server access logs.
    S3Access,
    /// Common and Combined Log Format (Apache, nginx).
    Clf,
}

impl Preset {
    /// The preset named as in `[input] format`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "alb" => Preset::Alb,
            "cloudfront" => Preset::CloudFront,
            "vpc-flow" => Preset::VpcFlow,
            "s3-access" => Preset::S3Access,
            "clf" => Preset::Clf,
            _ => return None,
        })
    }
}

const S: &str = "string";
const I: &str = "int64";
const F: &str = "float64";
const T: &str = "timestamp";

/// ALB access log entries, in order (Elastic Load Balancing User Guide, "Access log entries").
const ALB: &[(&str, &str)] = &[
    ("type", S),
    ("time", T),
    ("elb", S),
    ("client", S),
    ("target", S),
    ("request_processing_time", F),
    ("target_processing_time", F),
    ("response_processing_time", F),
    ("elb_status_code", I),
    ("target_status_code", I),
    ("received_bytes", I),
    ("sent_bytes", I),
    ("request", S),
    ("user_agent", S),
    ("ssl_cipher", S),
    ("ssl_protocol", S),
    ("target_group_arn", S),
    ("trace_id", S),
    ("domain_name", S),
    ("chosen_cert_arn", S),
    ("matched_rule_priority", I),
    ("request_creation_time", T),
    ("actions_executed", S),
    ("redirect_url", S),
    ("error_reason", S),
    ("target_port_list", S),
    ("target_status_code_list", S),
    ("classification", S),
    ("classification_reason", S),
    ("conn_trace_id", S),
];

/// S3 server access log fields, in order (S3 User Guide, "Amazon S3 server access log format").
const S3_ACCESS: &[(&str, &str)] = &[
    ("bucket_owner", S),
    ("bucket", S),
    ("time", T),
    ("remote_ip", S),
    ("requester", S),
    ("request_id", S),
    ("operation", S),
    ("key", S),
    ("request_uri", S),
    ("http_status", I),
    ("error_code", S),
    ("bytes_sent", I),
    ("object_size", I),
    ("total_time", I),
    ("turn_around_time", I),
    ("referer", S),
    ("user_agent", S),
    ("version_id", S),
    ("host_id", S),
    ("signature_version", S),
    ("cipher_suite", S),
    ("authentication_type", S),
    ("host_header", S),
    ("tls_version", S),
    ("access_point_arn", S),
    ("acl_required", S),
];

/// CloudFront standard log fields, in the order of the documented `#Fields:` line, plus
/// `timestamp` (date and time combined, UTC).
const CLOUDFRONT: &[(&str, &str)] = &[
    ("date", "date"),
    ("time", S),
    ("x_edge_location", S),
    ("sc_bytes", I),
    ("c_ip", S),
    ("cs_method", S),
    ("cs_host", S),
    ("cs_uri_stem", S),
    ("sc_status", I),
    ("cs_referer", S),
    ("cs_user_agent", S),
    ("cs_uri_query", S),
    ("cs_cookie", S),
    ("x_edge_result_type", S),
    ("x_edge_request_id", S),
    ("x_host_header", S),
    ("cs_protocol", S),
    ("cs_bytes", I),
    ("time_taken", F),
    ("x_forwarded_for", S),
    ("ssl_protocol", S),
    ("ssl_cipher", S),
    ("x_edge_response_result_type", S),
    ("cs_protocol_version", S),
    ("fle_status", S),
    ("fle_encrypted_fields", S),
    ("c_port", I),
    ("time_to_first_byte", F),
    ("x_edge_detailed_result_type", S),
    ("sc_content_type", S),
    ("sc_content_len", I),
    ("sc_range_start", I),
    ("sc_range_end", I),
    ("timestamp", T),
];

/// VPC Flow Logs fields: the default v2 format first (in its order), then the other documented
/// fields a custom format may name (VPC User Guide, "Flow log records").
const VPC_FLOW: &[(&str, &str)] = &[
    ("version", I),
    ("account_id", S),
    ("interface_id", S),
    ("srcaddr", S),
    ("dstaddr", S),
    ("srcport", I),
    ("dstport", I),
    ("protocol", I),
    ("packets", I),
    ("bytes", I),
    ("start", T),
    ("end", T),
    ("action", S),
    ("log_status", S),
    ("vpc_id", S),
    ("subnet_id", S),
    ("instance_id", S),
    ("tcp_flags", I),
    ("type", S),
    ("pkt_srcaddr", S),
    ("pkt_dstaddr", S),
    ("region", S),
    ("az_id", S),
    ("sublocation_type", S),
    ("sublocation_id", S),
    ("pkt_src_aws_service", S),
    ("pkt_dst_aws_service", S),
    ("flow_direction", S),
    ("traffic_path", I),
    ("ecs_cluster_arn", S),
    ("ecs_cluster_name", S),
    ("ecs_container_instance_arn", S),
    ("ecs_container_instance_id", S),
    ("ecs_container_id", S),
    ("ecs_second_container_id", S),
    ("ecs_service_name", S),
    ("ecs_task_definition_arn", S),
    ("ecs_task_arn", S),
    ("ecs_task_id", S),
    ("reject_reason", S),
];

/// Common Log Format, with Combined's referer and user agent when present; `host` may be an
/// `X-Forwarded-For` list. The request line is also split into method, path and protocol.
const CLF_PATTERN: &str = r#"^(?P<host>.+?) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>(?P<method>[A-Z]+) (?P<path>\S+)(?: (?P<protocol>[^"]*))?|(?:[^"\\]|\\.)*)" (?P<status>\d{3}|-) (?P<bytes>\d+|-)(?: "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<user_agent>(?:[^"\\]|\\.)*)")?"#;

const CLF_TYPES: &[(&str, &str)] = &[("time", T), ("status", I), ("bytes", I)];

fn schema_of(fields: &[(&str, &str)]) -> SchemaRef {
    let fields: Vec<Field> = fields
        .iter()
        .map(|(n, t)| {
            Field::new(
                *n,
                crate::expr::parse_type(t).unwrap_or(DataType::Utf8),
                true,
            )
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// A header field name as a column name: `cs(Host)` → `cs_host`, `x-edge-location` → `x_edge_location`.
fn normalise(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

enum Tokens {
    Regex(Regex),
    /// Space separated; `"quoted"` and `[bracketed]` fields may hold spaces.
    Spaced,
    Tabbed,
}

/// Split a space-separated log line into fields.
fn spaced(line: &str, out: &mut Vec<Option<(usize, usize)>>) -> Result<(), String> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' => i += 1,
            b'"' => {
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None => {
                            return Err(format!(
                                "unterminated quoted field starting at column {}",
                                i + 1
                            ));
                        }
                        Some(b'\\') => j += 2,
                        Some(b'"') => break,
                        Some(_) => j += 1,
                    }
                }
                out.push(Some((i + 1, j.min(b.len()))));
                i = j + 1;
            }
            b'[' => {
                let j = memchr::memchr(b']', &b[i..])
                    .map(|k| i + k)
                    .ok_or_else(|| format!("unterminated [ at column {}", i + 1))?;
                if matches!(b.get(j + 1), None | Some(b' ')) {
                    out.push(Some((i + 1, j)));
                    i = j + 1;
                } else {
                    // `[2001:db8::1]:443` is one plain field.
                    let e = memchr::memchr(b' ', &b[j..]).map_or(b.len(), |k| j + k);
                    out.push(Some((i, e)));
                    i = e;
                }
            }
            _ => {
                let j = memchr::memchr(b' ', &b[i..]).map_or(b.len(), |k| i + k);
                out.push(Some((i, j)));
                i = j;
            }
        }
    }
    Ok(())
}

/// Settings for [`LogDecoder`].
#[derive(Debug, Clone)]
pub struct LogDecoderBuilder {
    kind: Kind,
    batch_rows: usize,
    max_line_bytes: usize,
}

/// The `clf` pattern, compiled once for the process. A decoder is built for every object, and
/// compiling this pattern was most of the cost of building one (twice per build: the schema, then
/// the tokens); a clone shares the compiled program.
fn clf_regex() -> Result<&'static Regex, Error> {
    static CLF: std::sync::LazyLock<Result<Regex, String>> =
        std::sync::LazyLock::new(|| Regex::new(CLF_PATTERN).map_err(|e| e.to_string()));
    CLF.as_ref().map_err(|e| Error::Schema(e.clone()))
}

#[derive(Debug, Clone)]
enum Kind {
    Preset(Preset),
    Pattern {
        regex: Regex,
        /// The declared columns, with their metadata (a timestamp's epoch unit).
        declared: Vec<Field>,
    },
}

impl LogDecoderBuilder {
    /// A decoder for a preset.
    pub fn preset(p: Preset) -> Self {
        Self {
            kind: Kind::Preset(p),
            batch_rows: DEFAULT_BATCH_ROWS,
            max_line_bytes: super::ndjson::DEFAULT_MAX_LINE_BYTES,
        }
    }

    /// A `lines` decoder: each named group of `pattern` is a column, typed by `types` where listed
    /// (otherwise string). Lines that do not match are rejects.
    pub fn pattern(pattern: &str, types: &[(String, DataType)]) -> Result<Self, Error> {
        let fields: Vec<Field> = types
            .iter()
            .map(|(n, t)| Field::new(n, t.clone(), true))
            .collect();
        Self::pattern_fields(pattern, &fields)
    }

    /// As [`Self::pattern`], typed by declared fields: their metadata counts (a
    /// `timestamp(ms)` column reads an epoch number as milliseconds).
    pub fn pattern_fields(pattern: &str, declared: &[Field]) -> Result<Self, Error> {
        let regex = crate::pattern::compile(pattern, "`pattern`").map_err(Error::Schema)?;
        let names: Vec<&str> = regex.capture_names().flatten().collect();
        if names.is_empty() {
            return Err(Error::Schema(
                "`pattern` has no named groups; name each column like (?P<status>\\d+)".into(),
            ));
        }
        for t in declared.iter().map(Field::name) {
            if !names.contains(&t.as_str()) {
                return Err(Error::Schema(format!(
                    "schema column `{t}` is not a named group of `pattern` (groups: {})",
                    names.join(", ")
                )));
            }
        }
        Ok(Self {
            kind: Kind::Pattern {
                regex,
                declared: declared.to_vec(),
            },
            batch_rows: DEFAULT_BATCH_ROWS,
            max_line_bytes: super::ndjson::DEFAULT_MAX_LINE_BYTES,
        })
    }

    /// Rows per batch.
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Longest accepted line.
    pub fn with_max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes.max(1);
        self
    }

    /// The schema the decoder emits.
    pub fn schema(&self) -> SchemaRef {
        match &self.kind {
            Kind::Preset(Preset::Alb) => schema_of(ALB),
            Kind::Preset(Preset::S3Access) => schema_of(S3_ACCESS),
            Kind::Preset(Preset::CloudFront) => schema_of(CLOUDFRONT),
            Kind::Preset(Preset::VpcFlow) => schema_of(VPC_FLOW),
            Kind::Preset(Preset::Clf) => {
                let Ok(re) = clf_regex() else {
                    return Arc::new(Schema::empty());
                };
                let cols: Vec<Field> = CLF_TYPES
                    .iter()
                    .map(|(n, t)| {
                        Field::new(
                            *n,
                            crate::expr::parse_type(t).unwrap_or(DataType::Utf8),
                            true,
                        )
                    })
                    .collect();
                pattern_schema(re, &cols)
            }
            Kind::Pattern { regex, declared } => pattern_schema(regex, declared),
        }
    }

    /// The decoder.
    pub fn build(self) -> Result<LogDecoder, Error> {
        let schema = self.schema();
        let rows = RowBuilder::new(
            schema.clone(),
            matches!(self.kind, Kind::Preset(_)),
            self.batch_rows,
        )?;
        let n = schema.fields().len();
        let (tokens, preset) = match &self.kind {
            Kind::Preset(Preset::Alb | Preset::S3Access | Preset::VpcFlow) => (
                Tokens::Spaced,
                match &self.kind {
                    Kind::Preset(p) => Some(*p),
                    _ => None,
                },
            ),
            Kind::Preset(Preset::CloudFront) => (Tokens::Tabbed, Some(Preset::CloudFront)),
            Kind::Preset(Preset::Clf) => (Tokens::Regex(clf_regex()?.clone()), Some(Preset::Clf)),
            Kind::Pattern { regex, .. } => (Tokens::Regex(regex.clone()), None),
        };
        // Positional presets map field i to column i; header-driven ones remap when a header arrives.
        let map: Vec<Option<usize>> = match preset {
            Some(Preset::CloudFront) => (0..n - 1).map(Some).collect(),
            Some(Preset::VpcFlow) => (0..14).map(Some).collect(),
            _ => (0..n).map(Some).collect(),
        };
        Ok(LogDecoder {
            lines: LineBuffer::new(self.max_line_bytes),
            rows,
            tokens,
            preset,
            map,
            batch_rows: self.batch_rows,
            spans: Vec::new(),
            fields: Vec::new(),
            // Enough fields to be the format at all; newer versions append more, older have fewer.
            seen_data: false,
            origins: Origins::default(),
            min_fields: match preset {
                Some(Preset::Alb) => 12,
                Some(Preset::S3Access) => 17,
                Some(Preset::VpcFlow) => 14,
                _ => 0,
            },
        })
    }
}

fn pattern_schema(re: &Regex, declared: &[Field]) -> SchemaRef {
    let fields: Vec<Field> = re
        .capture_names()
        .flatten()
        .map(|n| match declared.iter().find(|f| f.name() == n) {
            Some(f) => f.clone().with_nullable(true),
            None => Field::new(n, DataType::Utf8, true),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Decodes a line format into batches.
pub struct LogDecoder {
    lines: LineBuffer,
    rows: RowBuilder,
    tokens: Tokens,
    preset: Option<Preset>,
    /// Field position → column.
    map: Vec<Option<usize>>,
    batch_rows: usize,
    spans: Vec<Option<(usize, usize)>>,
    fields: Vec<Option<(usize, usize)>>,
    min_fields: usize,
    /// A data line has been read (headers only come first).
    seen_data: bool,
    /// The line of each row since the last batch was emitted.
    origins: Origins,
}

impl std::fmt::Debug for LogDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogDecoder")
            .field("preset", &self.preset)
            .finish()
    }
}

impl LogDecoder {
    /// Remap columns from header field names.
    fn header(&mut self, names: &[&str]) {
        let schema = self.rows.schema().clone();
        self.map = names
            .iter()
            .map(|n| schema.index_of(&normalise(n)).ok())
            .collect();
        if self.preset == Some(Preset::VpcFlow) {
            self.min_fields = names.len();
        }
    }

    fn handle_line(&mut self, line: Line<'_>, out: &mut Decoded) -> Result<(), Error> {
        let (no, raw) = match line {
            Line::Text(no, raw) => (no, raw),
            Line::TooLong(no, len, max, head) => {
                out.rejects.push(Reject::new(
                    no,
                    format!("line is {len} bytes, longer than max_line_bytes ({})", max),
                    head,
                ));
                return Ok(());
            }
        };
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            out.rejects
                .push(Reject::new(no, "the line is not valid UTF-8", raw));
            return Ok(());
        };
        // Headers.
        match self.preset {
            Some(Preset::CloudFront) if text.starts_with('#') => {
                if let Some(f) = text.strip_prefix("#Fields:") {
                    let names: Vec<&str> = f.split_whitespace().collect();
                    self.header(&names);
                }
                return Ok(());
            }
            Some(Preset::VpcFlow) if !self.seen_data => {
                // The header line that starts S3-delivered files: every token a field name.
                let names: Vec<&str> = text.split_whitespace().collect();
                let schema = self.rows.schema();
                if names.iter().all(|n| schema.index_of(&normalise(n)).is_ok()) {
                    self.header(&names);
                    return Ok(());
                }
            }
            _ => {}
        }
        self.seen_data = true;
        self.spans.clear();
        let res = match &self.tokens {
            Tokens::Spaced => spaced(text, &mut self.spans),
            Tokens::Tabbed => {
                let mut start = 0;
                for (i, c) in text.bytes().enumerate() {
                    if c == b'\t' {
                        self.spans.push(Some((start, i)));
                        start = i + 1;
                    }
                }
                self.spans.push(Some((start, text.len())));
                Ok(())
            }
            Tokens::Regex(re) => match re.captures(text) {
                Some(c) => {
                    for name in re.capture_names().flatten() {
                        self.spans.push(c.name(name).map(|m| (m.start(), m.end())));
                    }
                    Ok(())
                }
                None => Err(match self.preset {
                    Some(Preset::Clf) => {
                        "the line is not in Common or Combined Log Format".to_string()
                    }
                    _ => "the line does not match `pattern`".to_string(),
                }),
            },
        };
        if let Err(reason) = res {
            out.rejects.push(Reject::new(no, reason, raw));
            return Ok(());
        }
        let ncols = self.rows.schema().fields().len();
        self.fields.clear();
        self.fields.resize(ncols, None);
        if self.spans.len() < self.min_fields {
            out.rejects.push(Reject::new(
                no,
                format!(
                    "the line has {} fields; this format needs at least {}",
                    self.spans.len(),
                    self.min_fields
                ),
                raw,
            ));
            return Ok(());
        }
        for (pos, span) in self.spans.iter().enumerate() {
            if let Some(Some(col)) = self.map.get(pos) {
                self.fields[*col] = *span;
            }
        }
        let mut derived = None;
        if self.preset == Some(Preset::CloudFront) {
            let get = |i: usize| {
                self.fields
                    .get(i)
                    .copied()
                    .flatten()
                    .map(|(s, e)| &text[s..e])
            };
            if let (Some(d), Some(t)) = (get(0), get(1)) {
                derived = Some(format!("{d}T{t}Z"));
            }
        }
        let mut values: Vec<Option<&str>> = self
            .fields
            .iter()
            .map(|f| f.map(|(s, e)| &text[s..e]))
            .collect();
        if let Some(d) = &derived {
            values[ncols - 1] = Some(d.as_str());
        }
        match self.rows.push(&values) {
            Ok(()) => {
                self.origins.push(no, raw);
                if self.rows.len() >= self.batch_rows {
                    self.emit(out)?;
                }
            }
            Err(reason) => out.rejects.push(Reject::new(
                no,
                format!("does not fit the schema: {reason}"),
                raw,
            )),
        }
        Ok(())
    }

    fn emit(&mut self, out: &mut Decoded) -> Result<(), Error> {
        if let Some(b) = self
            .rows
            .flush()
            .map_err(|e| Error::arrow("decoding log lines", e))?
        {
            out.emit(b, Some(self.origins.take()));
        }
        self.origins.clear();
        Ok(())
    }
}

impl LineSink for LogDecoder {
    fn line_buffer(&mut self) -> &mut LineBuffer {
        &mut self.lines
    }

    fn on_line(&mut self, line: Line<'_>, out: &mut Decoded) -> Result<(), Error> {
        self.handle_line(line, out)
    }
}

impl Decoder for LogDecoder {
    fn decode(&mut self, buf: &[u8], out: &mut Decoded) -> Result<(), Error> {
        feed_lines(self, buf, out)
    }

    fn finish(&mut self, out: &mut Decoded) -> Result<(), Error> {
        finish_lines(self, out)?;
        self.emit(out)
    }

    fn flush(&mut self, out: &mut Decoded) -> Result<(), Error> {
        self.emit(out)
    }

    fn keep_origins(&mut self, keep: bool) {
        self.origins.keep(keep);
    }

    fn schema(&self) -> Option<SchemaRef> {
        Some(self.rows.schema().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
    use arrow_array::{Array, RecordBatch};

    fn run(b: LogDecoderBuilder, text: &str) -> (RecordBatch, Vec<Reject>) {
        let mut d = b.build().unwrap();
        let mut out = Decoded::default();
        // Feed in awkward pieces to cross chunk boundaries.
        for chunk in text.as_bytes().chunks(37) {
            d.decode(chunk, &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        let schema = d.schema().unwrap();
        let batch = arrow_select::concat::concat_batches(&schema, &out.batches).unwrap();
        (batch, out.rejects)
    }

    fn s<'a>(b: &'a RecordBatch, col: &str, row: usize) -> Option<&'a str> {
        let a = b.column_by_name(col).unwrap().as_string::<i32>();
        a.is_valid(row).then(|| a.value(row))
    }

    fn i(b: &RecordBatch, col: &str, row: usize) -> Option<i64> {
        let a = b.column_by_name(col).unwrap().as_primitive::<Int64Type>();
        a.is_valid(row).then(|| a.value(row))
    }

    fn ts(b: &RecordBatch, col: &str, row: usize) -> i64 {
        b.column_by_name(col)
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .value(row)
    }

    fn at(s: &str) -> i64 {
        crate::expr::parse_timestamp(s).unwrap()
    }

    #[test]
    fn alb_lines_old_and_new() {
        let text = concat!(
            "https 2026-11-22T10:23:00.186641Z app/shop-lb/50dc6c495c0c9188 192.0.2.39:2817 10.0.0.1:80 0.086 0.048 0.037 200 200 0 57 \"GET https://shop.example.com:443/cart?id=7 HTTP/1.1\" \"curl/8.4.0\" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/shop/73e2d6bc24d8a067 \"Root=1-58337281-1d84f3d73c47ec4e58577259\" \"shop.example.com\" \"arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012\" 1 2026-11-22T10:22:48.364000Z \"authenticate,forward\" \"-\" \"-\" \"10.0.0.1:80\" \"200\" \"-\" \"-\" TID_1234abcd\n",
            "http 2026-11-22T10:24:00.000000Z app/shop-lb/50dc6c495c0c9188 [2001:db8::1]:5612 - -1 -1 -1 460 - 120 0 \"GET http://shop.example.com:80/ HTTP/1.1\" \"Mozilla/5.0 (X11; Linux x86_64)\" - - - \"-\" \"-\" \"-\" 0 2026-11-22T10:23:59.000000Z \"-\" \"-\" \"-\" \"-\" \"-\" \"-\" \"-\"\n",
            "this is not an alb line\n",
        );
        let (b, rejects) = run(LogDecoderBuilder::preset(Preset::Alb), text);
        assert_eq!(b.num_rows(), 2);
        assert_eq!(ts(&b, "time", 0), at("2026-11-22T10:23:00.186641Z"));
        assert_eq!(
            s(&b, "request", 0),
            Some("GET https://shop.example.com:443/cart?id=7 HTTP/1.1")
        );
        assert_eq!(
            s(&b, "user_agent", 1),
            Some("Mozilla/5.0 (X11; Linux x86_64)")
        );
        assert_eq!(s(&b, "client", 1), Some("[2001:db8::1]:5612"));
        assert_eq!(
            (i(&b, "elb_status_code", 1), i(&b, "target_status_code", 1)),
            (Some(460), None)
        );
        assert_eq!(
            b.column_by_name("request_processing_time")
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(1),
            -1.0
        );
        assert_eq!(s(&b, "target", 1), None);
        assert_eq!(s(&b, "redirect_url", 0), None);
        assert_eq!(s(&b, "actions_executed", 0), Some("authenticate,forward"));
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].position, 3);
    }

    #[test]
    fn s3_access_lines_with_brackets_and_quotes() {
        let text = concat!(
            "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be amzn-s3-demo-bucket [22/Nov/2026:00:00:38 +0000] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE REST.GET.OBJECT photos/cat+dog.jpg \"GET /amzn-s3-demo-bucket/photos/cat%2Bdog.jpg HTTP/1.1\" 200 - 113 113 7 - \"-\" \"S3Console/0.4, aws-internal/3\" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader amzn-s3-demo-bucket.s3.us-west-1.amazonaws.com TLSv1.2 - Yes \n",
            "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be amzn-s3-demo-bucket [22/Nov/2026:00:00:39 +0000] 192.0.2.3 - A1206F460EXAMPLE REST.GET.BUCKETPOLICY - \"GET /amzn-s3-demo-bucket?policy HTTP/1.1\" 404 NoSuchBucketPolicy 297 - 38 - \"-\" \"S3Console/0.4\"\n",
        );
        let (b, rejects) = run(LogDecoderBuilder::preset(Preset::S3Access), text);
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(b.num_rows(), 2);
        assert_eq!(ts(&b, "time", 0), at("2026-11-22T00:00:38Z"));
        assert_eq!(s(&b, "key", 0), Some("photos/cat+dog.jpg"));
        assert_eq!(
            s(&b, "user_agent", 0),
            Some("S3Console/0.4, aws-internal/3")
        );
        assert_eq!(
            (
                i(&b, "http_status", 1),
                s(&b, "error_code", 1),
                i(&b, "object_size", 1)
            ),
            (Some(404), Some("NoSuchBucketPolicy"), None)
        );
        assert_eq!(s(&b, "acl_required", 0), Some("Yes"));
        assert_eq!(s(&b, "tls_version", 1), None);
    }

    #[test]
    fn cloudfront_follows_its_fields_header() {
        let text = "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) time-taken\n2026-11-22\t21:02:31\tLAX1\t392\t2001:db8::9\tGET\td111111abcdef8.cloudfront.net\t/index.html\t200\t-\tMozilla/5.0%20(Windows%20NT%2010.0)\t0.001\t\n2026-11-22\t21:02:32\tLAX1\tbig\t192.0.2.1\tGET\td111111abcdef8.cloudfront.net\t/a\t200\t-\t-\t0.002\n";
        let (b, rejects) = run(LogDecoderBuilder::preset(Preset::CloudFront), text);
        assert_eq!(b.num_rows(), 1);
        assert_eq!(ts(&b, "timestamp", 0), at("2026-11-22T21:02:31Z"));
        assert_eq!(i(&b, "sc_bytes", 0), Some(392));
        assert_eq!(s(&b, "cs_host", 0), Some("d111111abcdef8.cloudfront.net"));
        assert_eq!(s(&b, "c_ip", 0), Some("2001:db8::9"));
        assert_eq!(s(&b, "x_edge_request_id", 0), None);
        assert_eq!(rejects.len(), 1);
        assert!(
            rejects[0]
                .reason
                .contains("column 'sc_bytes' expects an integer, found \"big\""),
            "{}",
            rejects[0].reason
        );
    }

    #[test]
    fn vpc_flow_default_and_custom_formats() {
        let text = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK\n2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA\n2 123456789010 eni-1235b8ca123456789 2001:db8:1234:a100:8d6e:3477:df66:f105 2001:db8:1234:a102:3304:8879:34cf:4071 34892 22 6 54 8855 1477913708 1477913820 ACCEPT OK\n2 123456789010 truncated\n";
        let (b, rejects) = run(LogDecoderBuilder::preset(Preset::VpcFlow), text);
        assert_eq!(b.num_rows(), 3);
        assert_eq!(ts(&b, "start", 0), 1_418_530_010_000_000);
        assert_eq!(
            (
                i(&b, "srcport", 1),
                s(&b, "action", 1),
                s(&b, "log_status", 1)
            ),
            (None, None, Some("NODATA"))
        );
        assert_eq!(
            s(&b, "srcaddr", 2),
            Some("2001:db8:1234:a100:8d6e:3477:df66:f105")
        );
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].position, 5);

        let custom = "instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr tcp-flags\ni-01234567890123456 eni-1111aaaa2222bbbb3 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5 19\n";
        let (b, rejects) = run(LogDecoderBuilder::preset(Preset::VpcFlow), custom);
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(
            (
                s(&b, "instance_id", 0),
                s(&b, "pkt_dstaddr", 0),
                i(&b, "tcp_flags", 0)
            ),
            (Some("i-01234567890123456"), Some("203.0.113.5"), Some(19))
        );
        assert_eq!(i(&b, "version", 0), None);
    }

    #[test]
    fn clf_and_combined_with_forwarded_lists_and_empty_requests() {
        let text = concat!(
            "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326\n",
            "10.0.0.2, 10.0.0.1, 127.0.0.1 - - [22/Nov/2026:11:05:07 +0100] \"GET /ocelot?q=\\\"x\\\" HTTP/1.1\" 200 571 \"-\" \"Mozilla/5.0 (Macintosh; rv:49.0) Gecko/20100101 Firefox/49.0\"\n",
            "2001:db8::1 - - [22/Nov/2026:09:48:40 +0200] \"\" 400 0 \"-\" \"-\"\n",
            "garbage\n",
        );
        let (b, rejects) = run(LogDecoderBuilder::preset(Preset::Clf), text);
        assert_eq!(b.num_rows(), 3);
        assert_eq!(ts(&b, "time", 0), at("2000-10-10T20:55:36Z"));
        assert_eq!(
            (
                s(&b, "user", 0),
                s(&b, "method", 0),
                s(&b, "path", 0),
                s(&b, "protocol", 0)
            ),
            (
                Some("frank"),
                Some("GET"),
                Some("/apache_pb.gif"),
                Some("HTTP/1.0")
            )
        );
        assert_eq!(s(&b, "referer", 0), None);
        assert_eq!(s(&b, "host", 1), Some("10.0.0.2, 10.0.0.1, 127.0.0.1"));
        assert_eq!(
            s(&b, "user_agent", 1),
            Some("Mozilla/5.0 (Macintosh; rv:49.0) Gecko/20100101 Firefox/49.0")
        );
        assert_eq!(
            (s(&b, "request", 2), s(&b, "method", 2), i(&b, "status", 2)),
            (Some(""), None, Some(400))
        );
        assert_eq!(rejects.len(), 1);
        assert!(rejects[0].reason.contains("Common or Combined"));
    }

    #[test]
    fn lines_with_a_pattern_and_types() {
        let b = LogDecoderBuilder::pattern(
            r"^(?P<level>[A-Z]+) (?P<ms>\d+) (?P<msg>.*)$",
            &[("ms".into(), DataType::Int64)],
        )
        .unwrap();
        let (b, rejects) = run(
            b,
            "INFO 12 started\nWARN 7 slow: disk\nnot matching\nERROR x oops\n",
        );
        assert_eq!(b.num_rows(), 2);
        assert_eq!(
            (s(&b, "level", 1), i(&b, "ms", 1), s(&b, "msg", 1)),
            (Some("WARN"), Some(7), Some("slow: disk"))
        );
        let pos: Vec<u64> = rejects.iter().map(|r| r.position).collect();
        assert_eq!(pos, vec![3, 4]);
        assert!(
            LogDecoderBuilder::pattern("(a)", &[])
                .unwrap_err()
                .to_string()
                .contains("no named groups")
        );
        assert!(LogDecoderBuilder::pattern("(?P<a>x", &[]).is_err());
        assert!(
            LogDecoderBuilder::pattern("(?P<a>x)", &[("b".into(), DataType::Int64)])
                .unwrap_err()
                .to_string()
                .contains("not a named group")
        );
    }

    #[test]
    fn lines_longer_than_the_limit_are_rejects() {
        let long = format!(
            "2 1 eni {}\n2 123456789010 eni-1 1.1.1.1 2.2.2.2 1 2 6 1 1 1418530010 1418530070 ACCEPT OK\n",
            "x".repeat(3 << 20)
        );
        let (b, rejects) = run(
            LogDecoderBuilder::preset(Preset::VpcFlow).with_max_line_bytes(1 << 20),
            &long,
        );
        assert_eq!(b.num_rows(), 1);
        assert!(
            rejects[0]
                .reason
                .contains("longer than max_line_bytes (1048576)"),
            "{}",
            rejects[0].reason
        );
    }
}
