use super::*;

const GOOD: &str = r#"
name = "clicks"

[input]
format = "ndjson"
keys = ["logs/**/*.ndjson.gz"]
schema = { ts = "timestamp", page = "string", latency_ms = "int64" }

[[stage]]
type = "filter"
where = "latency_ms > 500"

[[stage]]
type = "select"
columns = { page = "page", day = "date(ts)" }

[output]
uri = "s3://out/clicks/"
partition_by = ["day"]

[rejects]
uri = "s3://out/rejects/"
"#;

fn check(text: &str) -> Result<Plan, ConfigError> {
    Plan::from_str(Path::new("p.toml"), text)
}

#[test]
fn an_unknown_stage_type_names_the_types_there_are() {
    let e = check(&GOOD.replace("type = \"select\"", "type = \"selekt\"")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("stage[1].type"), "{e}");
    assert!(e.to_string().contains("unknown variant `selekt`"), "{e}");
    assert!(
        e.to_string().contains("`resize`") && e.to_string().contains("`index`"),
        "{e}"
    );
    assert!(!e.to_string().contains("not in this build"), "{e}");
}

/// Issue 27: each of these passed `validate` and then lost data or wrote where it should not.
#[test]
fn settings_that_cannot_work_are_refused_naming_the_key() {
    let cases: [(String, &str, &str); 9] = [
        (
            GOOD.replace(
                "format = \"ndjson\"",
                "format = \"ndjson\"\nmax_line_bytes = 0",
            ),
            "input.max_line_bytes",
            "at least 1",
        ),
        (
            GOOD.replace(
                "partition_by = [\"day\"]",
                "partition_by = [\"day\"]\nmax_open_partitions = 0",
            ),
            "output.max_open_partitions",
            "at least 1",
        ),
        (
            GOOD.replace("uri = \"s3://out/rejects/\"", "uri = \"s3://out/clicks/\""),
            "rejects.uri",
            "is the output location",
        ),
        (
            GOOD.replace(
                "uri = \"s3://out/rejects/\"",
                "uri = \"s3://out/clicks/day=x/\"",
            ),
            "rejects.uri",
            "lies inside the output location",
        ),
        (
            GOOD.replace("uri = \"s3://out/clicks/\"\n", "uri = \"out/c\"\n")
                .replace("uri = \"s3://out/rejects/\"", "uri = \"./out/c/\""),
            "rejects.uri",
            "is the output location",
        ),
        (
            GOOD.replace("s3://out/clicks/", "s3://out//clicks/"),
            "output.uri",
            "an empty folder (`//`)",
        ),
        (
            GOOD.replace("s3://out/rejects/", "s3://out/../rejects/"),
            "rejects.uri",
            "a `..` folder",
        ),
        (
            GOOD.replace("day = \"date(ts)\"", "\"../../evil\" = \"date(ts)\"")
                .replace(
                    "partition_by = [\"day\"]",
                    "partition_by = [\"../../evil\"]",
                ),
            "output.partition_by[0]",
            "names a folder level",
        ),
        (
            GOOD.replace("day = \"date(ts)\"", "\"a=b\" = \"date(ts)\"")
                .replace("partition_by = [\"day\"]", "partition_by = [\"a=b\"]"),
            "output.partition_by[0]",
            "names a folder level",
        ),
    ];
    for (text, key, says) in cases {
        let e = check(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.to_string().contains(says), "{e}");
        assert!(e.line.is_some(), "{e}");
    }
    // Beside each other is fine, and so is a hidden folder inside (readers of the output
    // skip `_` and `.` folders, as they skip its `_index/`), or the output inside the rejects.
    for rejects in [
        "s3://out/clicks-rejects/",
        "s3://out/clicks/_rejects/",
        "s3://out/",
    ] {
        check(&GOOD.replace("s3://out/rejects/", rejects)).unwrap();
    }
}

/// Issue 39: what a newcomer met. `[stage]` said "invalid type: map, expected a sequence";
/// the plan printed `Auto` and `Ndjson`, called a kinesis:// output "Parquet (zstd)", and
/// showed "error: unknown column `_shard`" with exit 0; `encryption` on a local folder was
/// accepted; messages said "a int64".
#[test]
fn what_a_newcomer_meets_says_what_to_do() {
    let e = check(
            "name = \"x\"\n[input]\nformat = \"ndjson\"\n[stage]\ntype = \"filter\"\nwhere = \"a > 1\"\n[output]\nuri = \"out/\"\n",
        )
        .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("stage"), "{e}");
    assert!(e.to_string().contains("write `[[stage]]`"), "{e}");

    let plan = check(GOOD).unwrap().to_string();
    assert!(plan.contains("compression auto"), "{plan}");
    assert!(
        plan.contains("output   parquet (zstd) → s3://out/clicks/"),
        "{plan}"
    );
    let ndjson = check(&GOOD.replace("partition_by = [\"day\"]", "format = \"ndjson\""))
        .unwrap()
        .to_string();
    assert!(ndjson.contains("output   ndjson (none)"), "{ndjson}");
    let kinesis = check(
        &GOOD
            .replace("uri = \"s3://out/clicks/\"", "uri = \"kinesis://clicks\"")
            .replace("partition_by = [\"day\"]\n", ""),
    )
    .unwrap()
    .to_string();
    assert!(
        kinesis.contains("output   one JSON record per row → kinesis://clicks"),
        "{kinesis}"
    );

    let streamed = check(&GOOD.replace(
        "columns = { page = \"page\", day = \"date(ts)\" }",
        "columns = { page = \"page\", day = \"date(ts)\", shard = \"_shard\" }",
    ))
    .unwrap()
    .to_string();
    assert!(!streamed.contains("error"), "{streamed}");
    assert!(
        streamed.contains("+ _shard from the trigger: Kinesis and SQS batches"),
        "{streamed}"
    );
    assert!(streamed.contains("shard string"), "{streamed}");

    let e = check(&GOOD.replace(
        "uri = \"s3://out/clicks/\"\n",
        "uri = \"out/clicks/\"\nencryption = \"sse-s3\"\n",
    ))
    .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("output.encryption"), "{e}");
    assert!(e.to_string().contains("is not in S3"), "{e}");

    let e = check(&GOOD.replace("latency_ms > 500", "latency_ms || 'x' = 'x' AND -page = 1"))
        .unwrap_err();
    assert!(
        e.to_string().contains("cannot negate a string value"),
        "{e}"
    );
    let e =
        check(&GOOD.replace("where = \"latency_ms > 500\"", "where = \"latency_ms\"")).unwrap_err();
    assert!(e.to_string().contains("but this is an int64"), "{e}");
}

#[test]
fn metrics_dimensions_and_namespace_are_checked() {
    let base = "name = \"m\"\n[input]\nformat = \"text\"\n[output]\nuri = \"s3://o/p/\"\n";
    let p = check(base).unwrap();
    assert_eq!(p.config.metrics, MetricsConfig::default());
    let p = check(&format!(
            "{base}[metrics]\nnamespace = \"Team/Etl\"\ndimensions = [[\"pipeline\", \"trigger\"], [\"function\"]]\n"
        ))
        .unwrap();
    assert_eq!(p.config.metrics.namespace, "Team/Etl");
    let e = check(&format!(
        "{base}[metrics]\ndimensions = [[\"pipeline\"], [\"trigger\", \"shard\"]]\n"
    ))
    .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("metrics.dimensions[1][1]"), "{e}");
    assert_eq!(e.line, Some(7), "{e}");
    assert!(e.to_string().contains("`shard` is not a dimension"), "{e}");
    let e = check(&format!("{base}[metrics]\nnamespace = \"AWS/Lambda\"\n")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("metrics.namespace"), "{e}");
    let e = check(&format!("{base}[metrics]\nnamspace = \"x\"\n")).unwrap_err();
    assert!(e.to_string().contains("namspace"), "{e}");
}

#[test]
fn kinesis_outputs_are_checked_like_the_rest() {
    let k = GOOD.replace(
        "uri = \"s3://out/clicks/\"\npartition_by = [\"day\"]",
        "uri = \"kinesis://clicks-out\"\npartition_key = \"page\"",
    );
    let p = check(&k).unwrap();
    assert_eq!(
        p.output,
        Destination::Kinesis {
            stream: "clicks-out".into()
        }
    );
    let e = check(&k.replace("partition_key = \"page\"", "partition_key = \"pgae\"")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("output.partition_key"), "{e}");
    assert_eq!(e.line, Some(19), "{e}");
    assert!(e.message.contains("unknown column `pgae`"), "{e}");
    let e = check(&k.replace("partition_key = \"page\"", "partition_by = [\"day\"]")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("output.partition_by"), "{e}");
    let e = check(&k.replace("partition_key = \"page\"", "format = \"parquet\"")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("output.format"), "{e}");
    let e = check(&k.replace("s3://out/rejects/", "kinesis://rejects")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("rejects.uri"), "{e}");
    let e =
        check(&GOOD.replace("partition_by = [\"day\"]", "partition_key = \"page\"")).unwrap_err();
    assert!(e.message.contains("only a kinesis:// output"), "{e}");
    assert!(check(&k.replace("kinesis://clicks-out", "kinesis://")).is_err());
}

#[test]
fn resolves_a_good_config() {
    let p = check(GOOD).unwrap();
    let printed = p.to_string();
    assert!(printed.contains("→ page string, day date"), "{printed}");
    assert!(p.key_selected("logs/2026/11/a.ndjson.gz"));
    assert!(!p.key_selected("logs/a.csv"));
    assert!(!p.key_selected("other/a.ndjson.gz"));
    assert!(p.warnings.is_empty());
}

#[test]
fn errors_name_file_line_and_key() {
    let e = check(&GOOD.replace("keys =", "kyes =")).unwrap_err();
    assert_eq!(e.line, Some(6), "{e}");
    assert!(
        e.to_string()
            .starts_with("p.toml:6: `input.kyes`: unknown field `kyes`, expected one of"),
        "{e}"
    );

    let e = check(&GOOD.replace("latency_ms > 500", "latncy_ms > 500")).unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(11), Some("stage[0].where")),
        "{e}"
    );
    assert!(e.message.contains("unknown column `latncy_ms`"), "{e}");

    let e = check(&GOOD.replace("\"date(ts)\"", "\"date(page + 1)\"")).unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(15), Some("stage[1].columns.day")),
        "{e}"
    );

    let e = check(&GOOD.replace("type = \"select\"", "type = \"aggregat\"")).unwrap_err();
    assert!(
        e.message
            .contains("expected one of `filter`, `select`, `aggregate`"),
        "{e}"
    );
    assert_eq!(e.line, Some(14), "{e}");

    let e = check(&GOOD.replace("\"int64\"", "\"integer64\"")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("input.schema"), "{e}");
    assert!(e.message.contains("valid types"), "{e}");

    let e =
        check(&GOOD.replace("partition_by = [\"day\"]", "partition_by = [\"dya\"]")).unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(19), Some("output.partition_by[0]")),
        "{e}"
    );

    let e = check(&GOOD.replace("s3://out/clicks/", "gs://out/clicks/")).unwrap_err();
    assert!(e.message.contains("not supported"), "{e}");

    let e = check("name = \"x\"\n[input\nformat = 1").unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.starts_with("not valid TOML"), "{e}");

    let e = check(&GOOD.replace("where =", "wher =")).unwrap_err();
    assert_eq!(e.line, Some(11), "{e}");
    assert!(
        e.message.contains("unknown field `wher`, expected `where`"),
        "{e}"
    );

    let e = check(&GOOD.replace("format = \"ndjson\"", "format = \"xml\"")).unwrap_err();
    assert!(
        e.message.contains(
            "unknown format `xml`; this build reads: ndjson, json, csv, parquet, lines, alb"
        ),
        "{e}"
    );
}

#[test]
fn server_side_encryption_is_checked_where_it_is_written() {
    let with = |extra: &str| {
        GOOD.replace(
            "partition_by = [\"day\"]\n",
            &format!("partition_by = [\"day\"]\n{extra}"),
        )
    };
    let p = check(&with(
        "encryption = \"sse-kms\"\nkms_key_id = \"alias/etl\"\n",
    ))
    .unwrap();
    assert_eq!(p.config.output.encryption, Some(Encryption::SseKms));
    assert_eq!(p.config.output.kms_key_id.as_deref(), Some("alias/etl"));
    let p = check(&with("encryption = \"sse-s3\"\n")).unwrap();
    assert_eq!(p.config.output.encryption, Some(Encryption::SseS3));
    // A key without SSE-KMS, an empty key, and an unknown kind: file, line and key named.
    for (extra, line, key, says) in [
        (
            "kms_key_id = \"alias/etl\"\n",
            20,
            "output.kms_key_id",
            "sse-kms",
        ),
        (
            "encryption = \"sse-s3\"\nkms_key_id = \"k\"\n",
            21,
            "output.kms_key_id",
            "sse-kms",
        ),
        (
            "encryption = \"sse-kms\"\nkms_key_id = \"\"\n",
            21,
            "output.kms_key_id",
            "empty",
        ),
        ("encryption = \"aes\"\n", 20, "output.encryption", "sse-s3"),
    ] {
        let e = check(&with(extra)).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(line), Some(key)), "{e}");
        assert!(e.message.contains(says), "{e}");
    }
}

#[test]
fn refuses_the_recursive_invocation_trap() {
    let text = GOOD
        .replace("s3://out/clicks/", "s3://in/logs/out/")
        .replace("keys = [\"logs/**/*.ndjson.gz\"]", "keys = [\"logs/**\"]");
    let e = check(&text).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("output.uri"), "{e}");
    assert!(e.message.contains("trigger the function again"), "{e}");
    // Same prefix but a glob that cannot match what is written is fine.
    assert!(check(&GOOD.replace("s3://out/clicks/", "s3://in/logs/out/")).is_ok());
    // No keys at all: allowed with a warning, guarded at run time.
    let p = check(&GOOD.replace("keys = [\"logs/**/*.ndjson.gz\"]", "")).unwrap();
    assert!(p.warnings[0].contains("keys is empty"));
    assert!(p.output.contains("out", "clicks/day=x/a.parquet"));
}

/// Issue 28: the writers read a typed [`FileSpec`], not `[output] compression` as text; the
/// check refuses what the format cannot take, naming what it can.
#[test]
fn output_compression_is_typed_by_the_check() {
    let with = |format: &str, compression: Option<&str>| {
        let extra = compression.map_or(String::new(), |c| format!("compression = \"{c}\"\n"));
        check(&GOOD.replace(
            "partition_by = [\"day\"]\n",
            &format!("partition_by = [\"day\"]\nformat = \"{format}\"\n{extra}"),
        ))
    };
    for (format, compression, encoding, ext) in [
        (
            "parquet",
            None,
            Encoding::Parquet(ParquetCodec::Zstd),
            "parquet",
        ),
        (
            "parquet",
            Some("snappy"),
            Encoding::Parquet(ParquetCodec::Snappy),
            "parquet",
        ),
        (
            "parquet",
            Some("none"),
            Encoding::Parquet(ParquetCodec::None),
            "parquet",
        ),
        ("ndjson", None, Encoding::Ndjson { gzip: false }, "ndjson"),
        (
            "ndjson",
            Some("gzip"),
            Encoding::Ndjson { gzip: true },
            "ndjson.gz",
        ),
    ] {
        let p = with(format, compression).unwrap();
        assert_eq!(p.files.encoding, encoding);
        assert_eq!(p.files.encoding.extension(), ext);
        assert_eq!(p.files.partition_by, ["day"]);
    }
    let e = with("ndjson", Some("zstd")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("output.compression"), "{e}");
    assert!(
        e.to_string()
            .ends_with("`zstd` is not valid for this format; use one of: none, gzip"),
        "{e}"
    );
    let e = with("parquet", Some("gzip")).unwrap_err();
    assert!(
        e.to_string().ends_with("use one of: zstd, snappy, none"),
        "{e}"
    );
}

/// GOOD with `[output]` as an Iceberg table with `extra` settings.
fn table(extra: &str) -> String {
    GOOD.replace(
        "partition_by = [\"day\"]",
        &format!("format = \"iceberg\"\ntable = \"analytics.clicks\"\n{extra}"),
    )
}

#[cfg(feature = "iceberg")]
#[test]
fn a_table_commits_directly_or_through_a_queue() {
    let queued = |q: &str| {
        check(&table(&format!("commit = \"queue\"\nqueue = \"{q}\"")))
            .expect("plan")
            .files
            .table
            .expect("a table")
            .commit
    };
    let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/clicks-commits";
    assert_eq!(queued(url), CommitMode::Queue(url.into()));
    assert_eq!(
        queued("clicks-commits"),
        CommitMode::Queue("clicks-commits".into())
    );
    let direct = check(&table("commit = \"direct\"")).expect("plan");
    assert_eq!(direct.files.table.expect("t").commit, CommitMode::Direct);
}

#[cfg(feature = "iceberg")]
#[test]
fn an_iceberg_output_is_checked_and_typed() {
    let p = check(&table(
        "partition = [\"identity(day)\", \"bucket(16, page)\"]",
    ))
    .expect("plan");
    let t = p.files.table.expect("a table");
    assert_eq!(t.ident(), "analytics.clicks");
    assert_eq!(t.catalog, CatalogSpec::Sqlite("catalog.db".into()));
    assert_eq!(t.target_file_bytes, 128 << 20);
    assert_eq!(t.commit, CommitMode::Direct);
    let fields: Vec<(String, String)> = t
        .partition
        .iter()
        .map(|f| (f.transform.clone(), f.column.clone()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("identity".to_string(), "day".to_string()),
            ("bucket[16]".to_string(), "page".to_string())
        ]
    );
    assert_eq!(
        check(&table("catalog = \"sqlite:/var/tmp/c.db\""))
            .expect("plan")
            .files
            .table
            .expect("t")
            .catalog,
        CatalogSpec::Sqlite("/var/tmp/c.db".into())
    );
    let glue = check(&table("catalog = \"glue\"")).expect("plan");
    assert_eq!(glue.files.table.expect("t").catalog, CatalogSpec::Glue);
}

#[cfg(feature = "iceberg")]
#[test]
fn a_rest_catalog_signs_for_the_service_its_aws_host_names_unless_told() {
    let rest = |extra: &str| {
        check(&table(extra))
            .expect("plan")
            .files
            .table
            .expect("t")
            .catalog
    };
    let s3tables = "catalog = \"rest+https://s3tables.eu-west-1.amazonaws.com/iceberg/\"\n\
                    warehouse = \"arn:aws:s3tables:eu-west-1:111122223333:bucket/lake\"";
    assert_eq!(
        rest(s3tables),
        CatalogSpec::Rest(RestSpec {
            uri: "https://s3tables.eu-west-1.amazonaws.com/iceberg".into(),
            warehouse: Some("arn:aws:s3tables:eu-west-1:111122223333:bucket/lake".into()),
            sigv4: Some("s3tables".into()),
        })
    );
    let glue = rest("catalog = \"rest+https://glue.us-east-1.amazonaws.com/iceberg\"");
    assert!(matches!(glue, CatalogSpec::Rest(r) if r.sigv4.as_deref() == Some("glue")));
    let polaris = rest("catalog = \"rest+http://polaris:8181/api/catalog\"");
    assert!(matches!(polaris, CatalogSpec::Rest(r) if r.sigv4.is_none() && r.warehouse.is_none()));
    let gateway = rest(
        "catalog = \"rest+https://abc.execute-api.us-east-1.amazonaws.com/prod\"\nsigv4 = \"execute-api\"",
    );
    assert!(matches!(gateway, CatalogSpec::Rest(r) if r.sigv4.as_deref() == Some("execute-api")));
    let unsigned = rest(&format!("{s3tables}\nsigv4 = \"none\""));
    assert!(matches!(unsigned, CatalogSpec::Rest(r) if r.sigv4.is_none()));
    for (extra, key, says) in [
        (
            "catalog = \"glue\"\nwarehouse = \"x\"",
            "output.warehouse",
            "REST catalog's setting",
        ),
        (
            "sigv4 = \"s3tables\"",
            "output.sigv4",
            "REST catalog's setting",
        ),
        (
            "catalog = \"rest+https://\"",
            "output.catalog",
            "names no host",
        ),
        (
            "catalog = \"rest+https://h/\"\nsigv4 = \"\"",
            "output.sigv4",
            "names no service",
        ),
    ] {
        let e = check(&table(extra)).expect_err(key);
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.to_string().contains(says), "{key}: {e}");
    }
    let stray = GOOD.replace("partition_by = [\"day\"]", "warehouse = \"w\"");
    let e = check(&stray).expect_err("stray");
    assert_eq!(e.key.as_deref(), Some("output.warehouse"), "{e}");
}

#[cfg(feature = "iceberg")]
#[test]
fn a_bad_table_setting_names_its_key_and_the_fix() {
    let cases = [
        (
            table("partition = [\"hour(day)\"]"),
            "output.partition[0]",
            "does not take",
        ),
        (
            table("partition = [\"day(nope)\"]"),
            "output.partition[0]",
            "columns are: page, day",
        ),
        (
            table("partition = [\"bucket(x, page)\"]"),
            "output.partition[0]",
            "positive whole number",
        ),
        (
            table("partition = [\"month(day\"]"),
            "output.partition[0]",
            "not a partition transform",
        ),
        (
            table("catalog = \"mysql://x\""),
            "output.catalog",
            "sqlite:FILE, glue or rest+https",
        ),
        (
            table("catalog = \"glue\"").replace("analytics.clicks", "Analytics.clicks"),
            "output.table",
            "not a Glue table name",
        ),
        (
            table("catalog = \"glue\"").replace("s3://out/clicks/", "/tmp/lake/"),
            "output.uri",
            "keeps its files in S3",
        ),
        (
            table("target_file_bytes = 10"),
            "output.target_file_bytes",
            "at least 1048576",
        ),
        (
            table("partition_by = [\"day\"]"),
            "output.partition_by",
            "partition spec",
        ),
        (
            table("").replace("table = \"analytics.clicks\"", "table = \"clicks\""),
            "output.table",
            "namespace.name",
        ),
        (
            table("").replace("table = \"analytics.clicks\"\n", ""),
            "output.format",
            "add table = ",
        ),
        (
            GOOD.replace("partition_by = [\"day\"]", "table = \"a.b\""),
            "output.table",
            "format = \"iceberg\"",
        ),
        (
            GOOD.replace("partition_by = [\"day\"]", "commit = \"queue\""),
            "output.commit",
            "format = \"iceberg\"",
        ),
        (
            table("commit = \"queue\""),
            "output.commit",
            "name it with queue = ",
        ),
        (
            table("queue = \"commits\""),
            "output.queue",
            "commit = \"queue\"",
        ),
        (
            table("commit = \"later\""),
            "output.commit",
            "not a commit mode",
        ),
        (
            table("commit = \"queue\"\nqueue = \"my queue\""),
            "output.queue",
            "not an SQS queue",
        ),
    ];
    for (text, key, says) in cases {
        let e = check(&text).expect_err(key);
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.to_string().contains(says), "{key}: {e}");
    }
}

#[test]
fn per_is_checked_against_the_stages_and_the_destination() {
    let per = |v: &str| GOOD.replace("partition_by = [\"day\"]", &format!("per = \"{v}\""));
    assert_eq!(
        check(&per("invocation")).expect("plan").config.output.per,
        Per::Invocation
    );
    assert_eq!(check(GOOD).expect("plan").config.output.per, Per::Object);
    let e = check(&per("sometimes")).expect_err("unknown");
    assert_eq!(e.key.as_deref(), Some("output.per"), "{e}");
    let aggregate = per("object").replace(
        "type = \"select\"\ncolumns = { page = \"page\", day = \"date(ts)\" }",
        "type = \"aggregate\"\ngroup_by = [\"page\"]\nmeasures = { n = \"count(*)\" }",
    );
    let e = check(&aggregate).expect_err("aggregate per object");
    assert_eq!(e.key.as_deref(), Some("output.per"), "{e}");
    assert!(
        e.to_string().contains("an aggregate sees every object"),
        "{e}"
    );
    let stream = per("invocation").replace("s3://out/clicks/", "kinesis://clicks");
    let e = check(&stream).expect_err("per invocation into a stream");
    assert_eq!(e.key.as_deref(), Some("output.per"), "{e}");
}

const FIREHOSE: &str = r#"
name = "web"

[input]
format = "ndjson"
trigger = "firehose"
schema = { ts = "timestamp", status = "int64" }

[[stage]]
type = "filter"
where = "status >= 400"

[[stage]]
type = "select"
columns = { day = "date(ts)", status = "status" }

[output]
format = "ndjson"
partition_by = ["day"]
"#;

#[test]
fn a_firehose_transformation_answers_firehose_and_refuses_what_it_cannot_answer() {
    let p = check(FIREHOSE).unwrap();
    assert_eq!(p.output, Destination::Firehose);
    assert_eq!(p.files.partition_by, ["day"]);
    let refused = |text: String, key: &str, says: &str| {
        let e = check(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.to_string().contains(says), "{e}");
    };
    let out = "[output]\nformat = \"ndjson\"\n";
    refused(
        FIREHOSE.replace(out, "[output]\nformat = \"ndjson\"\nuri = \"s3://b/p/\"\n"),
        "output.uri",
        "Firehose delivers the rows to its own destination",
    );
    refused(
        FIREHOSE.replace(
            out,
            "[output]\nformat = \"ndjson\"\ncompression = \"gzip\"\n",
        ),
        "output.compression",
        "has no meaning for a Firehose transformation",
    );
    refused(
        FIREHOSE.replace(out, "[output]\n"),
        "output.format",
        "set format = \"ndjson\"",
    );
    refused(
        format!("{FIREHOSE}[rejects]\nuri = \"s3://b/rejects/\"\n"),
        "rejects",
        "ProcessingFailed",
    );
    refused(
        FIREHOSE.replace(
            "[output]",
            "[[stage]]\ntype = \"aggregate\"\ngroup_by = [\"day\"]\nmeasures = { n = \"count(*)\" }\n\n[output]",
        ),
        "stage[2].type",
        "Firehose answers each record with its own rows",
    );
    refused(
        FIREHOSE.replace(
            "[output]",
            "[[stage]]\ntype = \"index\"\ntext = \"day\"\n\n[output]",
        ),
        "stage[2].type",
        "an index is files",
    );
    refused(
        FIREHOSE.replace(
            "trigger = \"firehose\"\n",
            "trigger = \"firehose\"\nkeys = [\"logs/**\"]\n",
        ),
        "input.keys",
        "not S3 objects",
    );
    // CSV records carry no header: the default (header = true) would take the first for one.
    let csv = FIREHOSE.replace("format = \"ndjson\"\ntrigger", "format = \"csv\"\ntrigger");
    refused(csv.clone(), "input.header", "set header = false");
    assert!(
        check(&csv.replace(
            "trigger = \"firehose\"\n",
            "trigger = \"firehose\"\nheader = false\n"
        ))
        .is_ok()
    );
    // Every other pipeline names where it writes.
    let e = check(&GOOD.replace("uri = \"s3://out/clicks/\"\n", "")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("output"), "{e}");
    assert!(e.to_string().contains("names no destination"), "{e}");
}
