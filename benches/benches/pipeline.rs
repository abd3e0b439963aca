//! NDJSON decode → filter → Parquet, per core, on ~100 MB of generated clickstream.
//!
//! `cargo bench -p sluice-benches` prints time per iteration and throughput (MB/s and records/s
//! for the two groups). Set `SLUICE_BENCH_MB` to change the input size.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_benches::{clickstream_ndjson, count_lines};
use sluice_pipeline::Pipeline;
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

fn input_mb() -> usize {
    std::env::var("SLUICE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn stages(c: &mut Criterion) {
    let data = clickstream_ndjson(input_mb() << 20);
    let schema = schema_from_types([
        ("ts", "timestamp"),
        ("user_id", "string"),
        ("event_type", "string"),
        ("page", "string"),
        ("latency_ms", "int64"),
        ("bytes", "int64"),
    ])
    .expect("schema");
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
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut w =
                parquet::arrow::ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))
                    .expect("writer");
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
    let data = clickstream_ndjson(input_mb() << 20);
    let records = count_lines(&data);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("in/clickstream/part-0.ndjson");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, &data).expect("write input");
    let pipeline = Pipeline::from_toml(CONFIG).expect("config");
    let store = Arc::new(FsStore::new(dir.path()));
    let handler = pipeline.handler(store.clone(), store);
    let event = sluice_pipeline::event::s3_event(vec![sluice_pipeline::event::s3_record(
        "in",
        "clickstream/part-0.ndjson",
        data.len() as u64,
        "etag",
    )]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("handler: S3 event → fs store → NDJSON → filter → Parquet");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function(format!("{} MB, {records} records", data.len() >> 20), |b| {
        b.iter(|| {
            let (s, _) = rt.block_on(handler.handle(&event));
            assert!(s.error.is_none(), "{:?}", s.error);
            s.records_out
        })
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
    let data = clickstream_ndjson(input_mb() << 20);
    let records = count_lines(&data);
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("in/clickstream/part-0.ndjson");
    std::fs::create_dir_all(plain.parent().expect("parent")).expect("mkdir");
    std::fs::write(&plain, &data).expect("write");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&data).expect("gzip");
    std::fs::write(
        dir.path().join("in/clickstream/part-0.ndjson.gz"),
        gz.finish().expect("gzip"),
    )
    .expect("write");
    let pipeline = Pipeline::from_toml(ROLLUP).expect("config");
    let store = Arc::new(FsStore::new(dir.path()));
    let handler = pipeline.handler(store.clone(), store);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("rollup: NDJSON → filter → group by page, 1m → Parquet");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    for key in ["clickstream/part-0.ndjson", "clickstream/part-0.ndjson.gz"] {
        let event = sluice_pipeline::event::s3_event(vec![sluice_pipeline::event::s3_record(
            "in", key, 0, "etag",
        )]);
        g.bench_function(
            format!("{key} ({} MB, {records} records)", data.len() >> 20),
            |b| {
                b.iter(|| {
                    let (s, _) = rt.block_on(handler.handle(&event));
                    assert!(s.error.is_none(), "{:?}", s.error);
                    s.records_out
                })
            },
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
            sluice_pipeline::output::parquet_file(t)
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

criterion_group!(benches, stages, end_to_end, formats, rollup, index);
criterion_main!(benches);
