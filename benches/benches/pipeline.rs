//! Criterion benches, one core, on generated data (deterministic): each decoder by format, each
//! stage alone (filter, select, aggregate, resize, index, Parquet write) named by its input's
//! shape, and the reference workloads end to end through the handler — clickstream NDJSON from an
//! S3 event, the rollup (plain and gzip), a 10 000-record Kinesis batch, JPEG thumbnails, text
//! indexing.
//!
//! `cargo bench -p sluice-benches` prints time per iteration and throughput (MB/s, or records/s).
//! Set `SLUICE_BENCH_MB` to change the clickstream size (default 100).

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_benches::{clickstream_ndjson, count_lines};
use sluice_pipeline::Pipeline;
use sluice_pipeline::run::{Handler, Outcome, Summary};
use sluice_pipeline::store::FsStore;
use sluice_processors::Stage;
use sluice_processors::decode::ndjson::NdjsonDecoder;
use sluice_processors::decode::{Decoded, Decoder, schema_from_types};
use sluice_processors::filter::Filter;

const CONFIG: &str = r#"
name = "bench"
[input]
format = "ndjson"
schema = { ts = "timestamp", user_id = "string", event_type = "string", page = "string", latency_ms = "int64", bytes = "int64" }
[[stage]]
type = "filter"
where = "event_type <> 'view' OR latency_ms > 500"
[output]
uri = "s3://out/bench/"
"#;

/// An in-memory Parquet writer with zstd, as the pipelines write.
fn zstd_writer(schema: &arrow_schema::SchemaRef) -> parquet::arrow::ArrowWriter<Vec<u8>> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    parquet::arrow::ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).expect("writer")
}

/// The clickstream every bench reads: `SLUICE_BENCH_MB` (default 100) MB, generated once.
fn clickstream() -> &'static [u8] {
    static DATA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DATA.get_or_init(|| clickstream_ndjson(input_mb() << 20))
}

/// The six clickstream columns the benches declare.
fn clickstream_schema() -> arrow_schema::SchemaRef {
    schema_from_types([
        ("ts", "timestamp"),
        ("user_id", "string"),
        ("event_type", "string"),
        ("page", "string"),
        ("latency_ms", "int64"),
        ("bytes", "int64"),
    ])
    .expect("schema")
}

/// A pipeline's real handler over a scratch folder (the filesystem store, `bucket/key` files),
/// run on one thread, as a warm Lambda runs it.
struct Scratch {
    dir: tempfile::TempDir,
    handler: Handler,
    rt: tokio::runtime::Runtime,
}

impl Scratch {
    /// `config` (TOML) over a folder holding `files` (`bucket/key`, bytes).
    fn new(config: &str, files: &[(&str, &[u8])]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(FsStore::new(dir.path()));
        let handler = Pipeline::from_toml(config)
            .expect("config")
            .handler(store.clone(), store);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let run = Scratch { dir, handler, rt };
        for (path, bytes) in files {
            run.put(path, bytes);
        }
        run
    }

    fn put(&self, path: &str, bytes: &[u8]) {
        let path = self.dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write input");
    }

    /// The event through the handler, which must succeed: its summary.
    fn handle(&self, event: &serde_json::Value) -> Summary {
        succeeded(self.rt.block_on(self.handler.handle(event)))
    }

    /// The event's bytes through the handler (as the Lambda does), which must succeed.
    fn handle_bytes(&self, event: &[u8]) -> Summary {
        succeeded(self.rt.block_on(self.handler.handle_bytes(event, None)))
    }
}

fn succeeded(Outcome { summary: s, .. }: Outcome) -> Summary {
    assert!(s.error.is_none(), "{:?}", s.error);
    s
}

fn input_mb() -> usize {
    std::env::var("SLUICE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn stages(c: &mut Criterion) {
    let data = clickstream();
    let schema = clickstream_schema();
    let mut g = c.benchmark_group("ndjson clickstream (6 of 11 fields)");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut d = NdjsonDecoder::builder().with_schema(schema.clone()).build();
            let mut out = Decoded::default();
            let mut rows = 0;
            for chunk in data.chunks(1 << 20) {
                d.decode(chunk, &mut out).expect("decode");
                rows += out.batches.drain(..).map(|b| b.num_rows()).sum::<usize>();
            }
            d.finish(&mut out).expect("finish");
            rows + out.batches.iter().map(|b| b.num_rows()).sum::<usize>()
        })
    });
    g.bench_function("decode → filter → parquet zstd (memory)", |b| {
        b.iter(|| {
            let mut d = NdjsonDecoder::builder().with_schema(schema.clone()).build();
            let mut f =
                Filter::new("event_type <> 'view' OR latency_ms > 500", &schema).expect("filter");
            let mut w = zstd_writer(&schema);
            let mut out = Decoded::default();
            let mut kept = Vec::new();
            let mut step =
                |out: &mut Decoded,
                 kept: &mut Vec<_>,
                 w: &mut parquet::arrow::ArrowWriter<Vec<u8>>| {
                    for b in out.batches.drain(..) {
                        f.push(b, kept).expect("filter");
                        for k in kept.drain(..) {
                            w.write(&k).expect("write");
                        }
                    }
                };
            for chunk in data.chunks(1 << 20) {
                d.decode(chunk, &mut out).expect("decode");
                step(&mut out, &mut kept, &mut w);
            }
            d.finish(&mut out).expect("finish");
            step(&mut out, &mut kept, &mut w);
            w.into_inner().expect("close").len()
        })
    });
    g.finish();
}

fn end_to_end(c: &mut Criterion) {
    let data = clickstream();
    let records = count_lines(data);
    let run = Scratch::new(CONFIG, &[("in/clickstream/part-0.ndjson", data)]);
    let event = sluice_pipeline::event::s3_event(vec![sluice_pipeline::event::s3_record(
        "in",
        "clickstream/part-0.ndjson",
        data.len() as u64,
        "etag",
    )]);
    let mut g = c.benchmark_group("handler: S3 event → fs store → NDJSON → filter → Parquet");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function(format!("{} MB, {records} records", data.len() >> 20), |b| {
        b.iter(|| run.handle(&event).records_out)
    });
    g.finish();
}

/// Builds a fresh decoder for one iteration.
type MakeDecoder = Box<dyn Fn() -> Box<dyn Decoder>>;

/// Decode throughput per input format, ~32 MB each (`SLUICE_BENCH_MB` scales it too).
fn formats(c: &mut Criterion) {
    use sluice_processors::decode::aws::cloudtrail_schema;
    use sluice_processors::decode::csv::CsvDecoderBuilder;
    use sluice_processors::decode::jsondoc::JsonRecordsDecoder;
    use sluice_processors::decode::logs::{LogDecoderBuilder, Preset};
    let mb = (input_mb() / 3).max(1) << 20;
    let cases: Vec<(&str, Vec<u8>, MakeDecoder)> = vec![
        (
            "alb",
            sluice_benches::alb_log(mb),
            Box::new(|| Box::new(LogDecoderBuilder::preset(Preset::Alb).build().expect("alb"))),
        ),
        (
            "vpc-flow",
            sluice_benches::vpc_flow_log(mb),
            Box::new(|| {
                Box::new(
                    LogDecoderBuilder::preset(Preset::VpcFlow)
                        .build()
                        .expect("vpc"),
                )
            }),
        ),
        (
            "csv (typed)",
            sluice_benches::orders_csv(mb),
            Box::new(|| {
                let schema = schema_from_types([
                    ("order_id", "int64"),
                    ("customer", "string"),
                    ("amount", "float64"),
                    ("currency", "string"),
                    ("placed_at", "timestamp"),
                    ("express", "bool"),
                ])
                .expect("schema");
                Box::new(CsvDecoderBuilder::default().with_schema(schema).build())
            }),
        ),
        (
            "cloudtrail (json Records)",
            sluice_benches::cloudtrail_json(mb),
            Box::new(|| {
                Box::new(JsonRecordsDecoder::new(
                    "Records",
                    NdjsonDecoder::builder().with_schema(cloudtrail_schema()),
                    4 << 20,
                ))
            }),
        ),
    ];
    let mut g = c.benchmark_group("decode by format");
    g.sample_size(10);
    for (name, data, make) in &cases {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut d = make();
                let mut out = Decoded::default();
                let mut rows = 0;
                for chunk in data.chunks(1 << 20) {
                    d.decode(chunk, &mut out).expect("decode");
                    rows += out.batches.drain(..).map(|b| b.num_rows()).sum::<usize>();
                    assert!(out.rejects.is_empty(), "{:?}", out.rejects.first());
                }
                d.finish(&mut out).expect("finish");
                rows + out.batches.iter().map(|b| b.num_rows()).sum::<usize>()
            })
        });
    }
    g.finish();
}

const ROLLUP: &str = include_str!("../peers/rollup.toml");

/// The reference rollup (filter, group by page and minute, five measures, zstd Parquet), plain and
/// gzip, through the real handler.
fn rollup(c: &mut Criterion) {
    use std::io::Write;
    let data = clickstream();
    let records = count_lines(data);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let run = Scratch::new(
        ROLLUP,
        &[
            ("in/clickstream/part-0.ndjson", data),
            ("in/clickstream/part-0.ndjson.gz", &gz),
        ],
    );
    let mut g = c.benchmark_group("rollup: NDJSON → filter → group by page, 1m → Parquet");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    for key in ["clickstream/part-0.ndjson", "clickstream/part-0.ndjson.gz"] {
        let event = sluice_pipeline::event::s3_event(vec![sluice_pipeline::event::s3_record(
            "in", key, 0, "etag",
        )]);
        g.bench_function(
            format!("{key} ({} MB, {records} records)", data.len() >> 20),
            |b| b.iter(|| run.handle(&event).records_out),
        );
    }
    g.finish();
}

/// 10 000 short documents, half English, half Chinese (~200 bytes each), deterministic.
fn documents() -> Vec<(String, String)> {
    const EN: &[&str] = &[
        "the",
        "harbour",
        "tide",
        "train",
        "fast",
        "report",
        "quarterly",
        "numbers",
        "committee",
        "reviewed",
        "weather",
        "river",
        "bridge",
        "market",
        "prices",
        "rose",
        "fell",
        "city",
        "council",
        "voted",
        "new",
        "library",
        "opens",
        "monday",
        "storm",
        "warning",
        "issued",
        "for",
        "coast",
        "schools",
        "closed",
        "after",
        "snow",
        "team",
        "won",
        "final",
    ];
    const ZH: &[&str] = &[
        "北京",
        "上海",
        "天气",
        "今天",
        "明天",
        "高铁",
        "很快",
        "市场",
        "价格",
        "上涨",
        "下跌",
        "委员会",
        "报告",
        "季度",
        "数据",
        "图书馆",
        "开放",
        "学校",
        "因为",
        "大雪",
        "关闭",
        "球队",
        "赢得",
        "决赛",
        "我们",
        "来到",
        "清华大学",
        "研究",
        "人工智能",
        "发展",
        "城市",
        "交通",
        "新闻",
        "发布",
        "警告",
        "沿海",
        "地区",
        "河流",
        "桥梁",
        "。",
        "，",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    (0..10_000)
        .map(|i| {
            let mut text = String::new();
            while text.len() < 200 {
                if i % 2 == 0 {
                    text.push_str(EN[next(EN.len())]);
                    text.push(' ');
                } else {
                    text.push_str(ZH[next(ZH.len())]);
                }
            }
            (format!("s3://docs/{i}.txt#1"), text)
        })
        .collect()
}

/// Tokenize, index and write the `terms` and `docs` Parquet files, as the index stage does.
fn index_docs(docs: &[&(String, String)]) -> usize {
    use sluice_processors::index::TermIndexBuilder;
    let mut b = TermIndexBuilder::default();
    for (doc, text) in docs {
        b.add(doc, "text", text);
    }
    let (terms, docs) = b.finish().expect("index");
    [terms, docs]
        .iter()
        .map(|t| {
            sluice_pipeline::write::parquet_file(t)
                .expect("parquet")
                .len()
        })
        .sum()
}

fn index(c: &mut Criterion) {
    let all = documents();
    let mixed: Vec<&(String, String)> = all.iter().collect();
    let chinese: Vec<&(String, String)> = all.iter().skip(1).step_by(2).collect();
    sluice_processors::tokenize::Tokenizer::default().terms("热身"); // load jieba's dictionary
    let mut g = c.benchmark_group("index: tokenize → term index → Parquet");
    g.sample_size(10);
    for (name, docs) in [
        ("10 000 documents, half English, half Chinese", &mixed),
        ("5 000 Chinese documents", &chinese),
    ] {
        let bytes: usize = docs.iter().map(|d| d.1.len()).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(format!("{name} ({:.1} MB)", bytes as f64 / 1e6), |b| {
            b.iter(|| index_docs(docs))
        });
    }
    g.finish();
}

/// Each stage alone on the same decoded batches (the clickstream decoded once, in 8 192-row
/// batches), named by what goes in.
fn per_stage(c: &mut Criterion) {
    use sluice_processors::aggregate::{Aggregate, DEFAULT_MAX_GROUPS, Window, parse_every};
    use sluice_processors::select::Select;
    let data = clickstream();
    let schema = clickstream_schema();
    let mut d = NdjsonDecoder::builder().with_schema(schema.clone()).build();
    let mut out = Decoded::default();
    d.decode(data, &mut out).expect("decode");
    d.finish(&mut out).expect("finish");
    let batches = out.batches;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let shape = format!("{rows} rows × 6 columns");
    let run = |stage: &mut dyn Stage| {
        let mut out = Vec::new();
        let mut n = 0;
        for b in &batches {
            stage.push(b.clone(), &mut out).expect("push");
            n += out.drain(..).map(|b| b.num_rows()).sum::<usize>();
        }
        stage.finish(&mut out).expect("finish");
        n + out.iter().map(|b| b.num_rows()).sum::<usize>()
    };
    let mut g = c.benchmark_group("per stage, decoded clickstream");
    g.sample_size(10);
    g.throughput(Throughput::Elements(rows as u64));
    g.bench_function(format!("filter: 2 comparisons, OR ({shape})"), |b| {
        b.iter(|| {
            let mut f =
                Filter::new("event_type <> 'view' OR latency_ms > 500", &schema).expect("filter");
            run(&mut f)
        })
    });
    let columns: Vec<(String, String)> = [
        ("day", "date(ts)"),
        ("ts", "ts"),
        ("user_id", "user_id"),
        ("page", "lower(page)"),
        ("slow", "latency_ms > 500"),
        ("kb", "round(bytes / 1024.0, 1)"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    g.bench_function(format!("select: 6 expressions ({shape})"), |b| {
        b.iter(|| run(&mut Select::new(&columns, &schema).expect("select")))
    });
    let measures: Vec<(String, String)> = [
        ("hits", "count(*)"),
        ("bytes", "sum(bytes)"),
        ("avg_latency", "avg(latency_ms)"),
        ("max_latency", "max(latency_ms)"),
        ("users", "count_distinct(user_id)"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let window = Window {
        column: "ts".into(),
        every_micros: parse_every("1m").expect("every"),
    };
    g.bench_function(
        format!("aggregate: by page and 1-minute window, 5 measures ({shape})"),
        |b| {
            b.iter(|| {
                let mut a = Aggregate::new(
                    &["page".to_string()],
                    Some(&window),
                    &measures,
                    DEFAULT_MAX_GROUPS,
                    &schema,
                )
                .expect("aggregate");
                run(&mut a)
            })
        },
    );
    g.bench_function(format!("parquet write, zstd ({shape})"), |b| {
        b.iter(|| {
            let mut w = zstd_writer(&schema);
            for b in &batches {
                w.write(b).expect("write");
            }
            w.into_inner().expect("close").len()
        })
    });
    g.finish();
}

/// The reference Kinesis workload: a 10 000-record batch of clickstream JSON, as the invocation's
/// bytes (event parsing included), through the reference rollup to Parquet.
fn kinesis_batch(c: &mut Criterion) {
    let data = clickstream_ndjson(4 << 20);
    let payloads: Vec<(String, Vec<u8>)> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .take(10_000)
        .enumerate()
        .map(|(i, l)| (format!("user-{}", i % 64), l.to_vec()))
        .collect();
    let event = serde_json::to_vec(&sluice_pipeline::event::kinesis_event("clicks", &payloads))
        .expect("event");
    let run = Scratch::new(ROLLUP, &[]);
    let mut g = c.benchmark_group("kinesis batch → filter → rollup → Parquet");
    g.sample_size(20);
    g.throughput(Throughput::Elements(payloads.len() as u64));
    g.bench_function(
        format!(
            "{} records, {:.1} MB event",
            payloads.len(),
            event.len() as f64 / 1e6
        ),
        |b| b.iter(|| run.handle_bytes(&event).records_in),
    );
    g.finish();
}

/// The resize stage on its own and the reference thumbnail workload end to end: a 12 MP and a
/// 2 MP JPEG (q92, made here from generated pixels) → widths 1024, 512, 128 as JPEG q80.
fn thumbnails(c: &mut Criterion) {
    use sluice_processors::resize::{OutputFormat, ResizeOptions, Variant, renditions};
    let jpeg = |w: u32, h: u32| {
        let opts = ResizeOptions {
            variants: vec![Variant {
                name: "src".into(),
                width: Some(w),
                height: None,
                fit: Default::default(),
            }],
            format: OutputFormat::Jpeg,
            quality: 92,
            ..Default::default()
        };
        let (_, mut r) = renditions(&sluice_benches::photo_bmp(w, h, 7), &opts).expect("jpeg");
        r.remove(0).bytes
    };
    let photos = [("12 MP", jpeg(4000, 3000)), ("2 MP", jpeg(1920, 1080))];
    let opts = ResizeOptions {
        variants: [1024, 512, 128]
            .iter()
            .map(|&w| Variant {
                name: format!("w{w}"),
                width: Some(w),
                height: None,
                fit: Default::default(),
            })
            .collect(),
        format: OutputFormat::Jpeg,
        quality: 80,
        ..Default::default()
    };
    let run = Scratch::new(
        r#"
name = "thumbs"
[input]
format = "image"
[[stage]]
type = "resize"
format = "jpeg"
quality = 80
variants = [{ name = "w1024", width = 1024 }, { name = "w512", width = 512 }, { name = "w128", width = 128 }]
[output]
uri = "s3://out/thumbs/"
"#,
        &[],
    );
    let mut g = c.benchmark_group("thumbnails: JPEG → 1024/512/128 JPEG q80");
    g.sample_size(10);
    for (name, bytes) in &photos {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(
            format!("resize stage, {name} ({} kB)", bytes.len() >> 10),
            |b| b.iter(|| renditions(bytes, &opts).expect("renditions").1.len()),
        );
        let key = format!("{}.jpg", name.replace(' ', ""));
        run.put(&format!("photos/{key}"), bytes);
        let event = sluice_pipeline::event::s3_event(vec![sluice_pipeline::event::s3_record(
            "photos",
            &key,
            bytes.len() as u64,
            "etag",
        )]);
        g.bench_function(format!("handler, S3 event, {name}"), |b| {
            b.iter(|| run.handle(&event).outputs.len())
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    stages,
    per_stage,
    end_to_end,
    formats,
    rollup,
    kinesis_batch,
    thumbnails,
    index
);
criterion_main!(benches);
