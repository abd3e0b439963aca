use super::report::{count, dollars, ms};
use super::*;

fn sample(wall: f64, cpu: f64, records: u64) -> Sample {
    Sample {
        wall_ms: wall,
        cpu_ms: cpu,
        records_in: records,
        bytes_in: 1_000_000,
        ..Sample::default()
    }
}

#[test]
fn cpu_bound_time_stretches_below_one_vcpu_and_not_above() {
    // 10 ms, all of it one thread's CPU.
    assert!((estimated_ms(10.0, 10.0, 0.5) - 20.0).abs() < 1e-9);
    assert!((estimated_ms(10.0, 10.0, 1.0) - 10.0).abs() < 1e-9);
    assert!((estimated_ms(10.0, 10.0, 4.0) - 10.0).abs() < 1e-9);
    // Half of it waiting on storage: only the CPU half stretches.
    assert!((estimated_ms(10.0, 5.0, 0.25) - 25.0).abs() < 1e-9);
    // Two threads busy for 10 ms (20 ms of CPU): halved vCPU share doubles it, more does
    // not help past two.
    assert!((estimated_ms(10.0, 20.0, 1.0) - 20.0).abs() < 1e-9);
    assert!((estimated_ms(10.0, 20.0, 6.0) - 10.0).abs() < 1e-9);
}

#[test]
fn vcpus_follow_memory_up_to_six() {
    assert!((vcpus(1769) - 1.0).abs() < 1e-9);
    assert!((vcpus(128) - 128.0 / 1769.0).abs() < 1e-9);
    assert!((vcpus(10_240) - 5.788).abs() < 1e-3);
}

#[test]
fn prices_a_cpu_bound_invocation() {
    // 20 ms of one core, 10 000 records.
    let samples = vec![sample(20.0, 20.0, 10_000); 3];
    let est = estimate(&samples, &[128, 1769, 3008], Arch::Arm64, Some(100 << 20));
    // 128 MB: 20 ms × 1769/128 = 276.4 ms → 277 ms billed.
    assert_eq!(est[0].billed_ms, 277.0);
    assert!(est[0].fits, "100 MiB fits in 128 MB");
    assert!((est[0].duration_ms - 276.406).abs() < 1e-2);
    let usd_1769 = 1769.0 / 1024.0 * 0.020 * prices::ARM64_GB_SECOND + prices::REQUEST;
    assert!((est[1].usd_per_invocation - usd_1769).abs() < 1e-15);
    assert!((est[1].usd_per_million_records.unwrap() - usd_1769 * 100.0).abs() < 1e-12);
    assert!((est[1].usd_per_gb_in.unwrap() - usd_1769 * 1000.0).abs() < 1e-12);
    // Past one vCPU a one-thread handler is no faster, only dearer.
    assert_eq!(est[2].billed_ms, 20.0);
    assert!(est[2].usd_per_invocation > est[1].usd_per_invocation);
    // 0.125 GB × 0.277 s = 0.034625 GB-s against 1.7275 GB × 0.020 s = 0.034551 GB-s: the
    // rounding up at 128 MB makes 1769 MB the cheapest, and of the two at 20 ms the cheaper
    // is the fastest.
    assert!((est[0].gb_seconds - 0.034_625).abs() < 1e-12);
    assert!(est[1].cheapest && !est[0].cheapest && !est[2].cheapest);
    assert!(est[1].fastest && !est[2].fastest);
}

#[test]
fn a_size_too_small_for_the_peak_is_never_cheapest() {
    let samples = vec![sample(20.0, 20.0, 10)];
    let est = estimate(&samples, &[128, 256, 512], Arch::X86_64, Some(200 << 20));
    assert!(!est[0].fits);
    assert!(est[1].fits && est[2].fits);
    assert!(!est[0].cheapest && !est[0].fastest);
    assert_eq!(est.iter().filter(|e| e.cheapest).count(), 1);
}

#[test]
fn memory_lists_are_checked() {
    assert_eq!(parse_memory_list("512, 128,512").unwrap(), vec![128, 512]);
    assert!(
        parse_memory_list("64")
            .unwrap_err()
            .contains("between 128 and 10240")
    );
    assert!(parse_memory_list("1g").unwrap_err().contains("`1g`"));
    assert!("sparc".parse::<Arch>().is_err());
    assert_eq!("x86_64".parse::<Arch>().unwrap(), Arch::X86_64);
}

#[test]
fn the_page_stands_alone() {
    let samples = vec![sample(20.0, 20.0, 10_000)];
    let r = Report::new(
        "p<1>.toml".into(),
        vec!["e.json".into()],
        1,
        1,
        &samples,
        &[5.0],
        DEFAULT_MEMORY_MB,
        Arch::Arm64,
        Catalog::None,
    );
    let html = r.html();
    assert!(html.contains("p&lt;1&gt;.toml"));
    assert!(!html.contains("<script"), "no script needed");
    assert!(!html.contains("src="), "nothing fetched");
    assert_eq!(
        html.matches("<circle class=\"cost\"").count(),
        DEFAULT_MEMORY_MB.len()
    );
    // The estimates (a header and 12 sizes) and the rest of the bill (a header and 7 rows: S3,
    // KMS, Kinesis, catalog, SQS, CloudWatch Logs and all of these).
    assert_eq!(
        html.matches("<tr>").count() + html.matches("<tr class").count(),
        13 + 8
    );
    let text = r.text();
    assert!(text.contains("cheapest"), "{text}");
    assert!(text.contains("Estimated, not measured on Lambda"));
}

#[test]
fn numbers_read_well() {
    assert_eq!(count(1234567.0), "1 234 567");
    assert_eq!(count(999.0), "999");
    assert_eq!(dollars(0.000_002_345_6), "$0.000002346");
    assert_eq!(dollars(0.5), "$0.5000");
    assert_eq!(ms(12.345), "12.3 ms");
}

#[test]
fn the_rest_of_the_bill_prices_what_was_counted() {
    let mut s = sample(20.0, 20.0, 1000);
    s.requests = Requests {
        s3: crate::store::S3Requests {
            get: 2,
            head: 1,
            list: 1,
            put: 3,
            multipart: 5,
            objects_written: 4,
        },
        kms: 4,
        kinesis_records: 10,
        kinesis_put_units: 12,
        catalog: 2,
        sqs: 3,
        log_lines: 6,
        log_bytes: 1 << 20,
    };
    let b = Bill::new(&[s.clone(), s], Catalog::Glue);
    assert_eq!(b.requests.s3.get, 4, "added up over the invocations");
    let c = b.usd_per_invocation;
    let near = |a: f64, b: f64| assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-30), "{a} {b}");
    near(c.s3, 9.0 * 0.005 / 1000.0 + 3.0 * 0.0004 / 1000.0);
    near(c.kms, 4.0 * 0.03 / 10_000.0);
    near(c.kinesis, 12.0 * 0.014 / 1e6);
    near(c.catalog, 2.0 / 1e6);
    near(c.sqs, 3.0 * 0.40 / 1e6);
    near(c.logs, 0.5 / 1024.0);
    near(
        c.total,
        c.s3 + c.kms + c.kinesis + c.catalog + c.sqs + c.logs,
    );
    near(
        b.usd_per_million_records.unwrap().total,
        c.total / 1000.0 * 1e6,
    );
    // A SQLite catalog is a file: its requests are counted, not billed.
    let free = Bill::new(&[sample(20.0, 20.0, 1)], Catalog::None);
    assert_eq!(free.usd_per_invocation.catalog, 0.0);
}
