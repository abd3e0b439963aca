//! The report: a table, one JSON object, a self-contained HTML page with the chart.

use serde::Serialize;

use super::*;

/// The whole report: measurements and estimates.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The pipeline file.
    pub config: String,
    /// Events, in order.
    pub events: Vec<String>,
    /// Measured rounds over the events.
    pub iterations: usize,
    /// Unmeasured rounds first.
    pub warmup: usize,
    /// Invocations measured.
    pub invocations: usize,
    /// Invocations whose event failed.
    pub failed: usize,
    /// Wall time per invocation, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// CPU time per invocation, median, ms.
    pub cpu_p50_ms: f64,
    /// Records read per invocation, mean.
    pub records_per_invocation: f64,
    /// Records out per invocation, mean.
    pub records_out_per_invocation: f64,
    /// Rejects per invocation, mean.
    pub rejected_per_invocation: f64,
    /// Bytes taken in per invocation, mean.
    pub bytes_in_per_invocation: f64,
    /// Bytes written per invocation, mean.
    pub bytes_out_per_invocation: f64,
    /// Records per second of wall time.
    pub records_per_s: f64,
    /// MB (10^6 bytes) taken in per second of wall time.
    pub mb_per_s: f64,
    /// Records per second of CPU time: per core.
    pub records_per_cpu_s: f64,
    /// Peak resident memory over all invocations, bytes (the process: runtime, events, handler).
    pub peak_rss: Option<u64>,
    /// Cold start: a fresh process's time from spawn to ready to serve, median, ms.
    pub init_ms: Option<f64>,
    /// Fresh processes timed for `init_ms`.
    pub init_runs: usize,
    /// The architecture priced.
    pub arch: Arch,
    /// When the prices were checked.
    pub prices_as_of: &'static str,
    /// Dollars per GB-second at `arch`.
    pub usd_per_gb_second: f64,
    /// Dollars per request.
    pub usd_per_request: f64,
    /// How the estimate is made, in a sentence a reader can check.
    pub method: &'static str,
    /// Per memory size (their `total_*` figures include the rest of the bill).
    pub estimates: Vec<Estimate>,
    /// The rest of the bill: S3, KMS, Kinesis, the catalog and CloudWatch Logs, counted and
    /// priced.
    pub bill: Bill,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// The estimate's method, as printed.
pub const METHOD: &str = "Estimated, not measured on Lambda: Lambda gives one vCPU at 1769 MB, \
in proportion below and up to 6 at 10240 MB; each invocation's CPU time (all threads) runs on \
min(threads it used, vCPUs) while its waiting time stays as measured; one core here counts as \
one Lambda vCPU; billed time is each invocation's duration rounded up to the ms, averaged (so \
it may show a fraction); prices are US East (N. Virginia) on-demand, first tier, free tier not \
deducted.";

impl Report {
    /// Summarise `samples` and price them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: String,
        events: Vec<String>,
        warmup: usize,
        iterations: usize,
        samples: &[Sample],
        init: &[f64],
        memory_mb: &[u32],
        arch: Arch,
        catalog: Catalog,
    ) -> Self {
        let n = samples.len().max(1) as f64;
        let wall: Vec<f64> = samples.iter().map(|s| s.wall_ms).collect();
        let cpu: Vec<f64> = samples.iter().map(|s| s.cpu_ms).collect();
        let sum = |f: &dyn Fn(&Sample) -> u64| samples.iter().map(f).sum::<u64>() as f64;
        let records = sum(&|s| s.records_in);
        let bytes_in = sum(&|s| s.bytes_in);
        let wall_s = wall.iter().sum::<f64>() / 1e3;
        let cpu_s = cpu.iter().sum::<f64>() / 1e3;
        let peak = samples
            .iter()
            .filter_map(|s| s.peak_rss)
            .max()
            .or_else(peak_rss);
        let per_s = |x: f64, secs: f64| if secs > 0.0 { x / secs } else { 0.0 };
        let bill = Bill::new(samples, catalog);
        let mut estimates = estimate(samples, memory_mb, arch, peak);
        for e in &mut estimates {
            e.total_usd_per_invocation += bill.usd_per_invocation.total;
            if let (Some(t), Some(b)) = (
                e.total_usd_per_million_records.as_mut(),
                bill.usd_per_million_records,
            ) {
                *t += b.total;
            }
            if let (Some(t), Some(b)) = (e.total_usd_per_gb_in.as_mut(), bill.usd_per_gb_in) {
                *t += b.total;
            }
        }
        Report {
            config,
            events,
            iterations,
            warmup,
            invocations: samples.len(),
            failed: samples.iter().filter(|s| s.error.is_some()).count(),
            p50_ms: percentile(&wall, 0.5),
            p90_ms: percentile(&wall, 0.9),
            p99_ms: percentile(&wall, 0.99),
            cpu_p50_ms: percentile(&cpu, 0.5),
            records_per_invocation: records / n,
            records_out_per_invocation: sum(&|s| s.records_out) / n,
            rejected_per_invocation: sum(&|s| s.rejected) / n,
            bytes_in_per_invocation: bytes_in / n,
            bytes_out_per_invocation: sum(&|s| s.bytes_out) / n,
            records_per_s: per_s(records, wall_s),
            mb_per_s: per_s(bytes_in / 1e6, wall_s),
            records_per_cpu_s: per_s(records, cpu_s),
            peak_rss: peak,
            init_ms: (!init.is_empty()).then(|| percentile(init, 0.5)),
            init_runs: init.len(),
            arch,
            prices_as_of: prices::AS_OF,
            usd_per_gb_second: arch.gb_second(),
            usd_per_request: prices::REQUEST,
            method: METHOD,
            estimates,
            bill,
            first_error: samples.iter().find_map(|s| s.error.clone()),
        }
    }

    /// What a size is marked with: cheapest, fastest, and (with `fit`) too small for the peak.
    fn marks(&self, e: &Estimate, fit: bool) -> Vec<String> {
        let mut marks = Vec::new();
        if e.cheapest {
            marks.push("cheapest".to_string());
        }
        if e.fastest {
            marks.push("fastest".to_string());
        }
        if fit && !e.fits {
            marks.push(format!(
                "too small: peak {}",
                self.peak_rss.map(mib).unwrap_or_default()
            ));
        }
        marks
    }

    /// The terminal report.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "sluice bench {}: {} event(s) x {} iteration(s) after {} warm-up, {} invocations{}",
            self.config,
            self.events.len(),
            self.iterations,
            self.warmup,
            self.invocations,
            if self.failed > 0 {
                format!(
                    ", {} FAILED: {}",
                    self.failed,
                    self.first_error.as_deref().unwrap_or("")
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            o,
            "  time         p50 {}  p90 {}  p99 {}  (CPU p50 {})",
            ms(self.p50_ms),
            ms(self.p90_ms),
            ms(self.p99_ms),
            ms(self.cpu_p50_ms)
        );
        let _ = writeln!(
            o,
            "  throughput   {} records/s  {:.1} MB/s  ({} records per CPU second)",
            count(self.records_per_s),
            self.mb_per_s,
            count(self.records_per_cpu_s)
        );
        let _ = writeln!(
            o,
            "  records      {} in, {} out, {} rejected per invocation",
            count(self.records_per_invocation),
            count(self.records_out_per_invocation),
            count(self.rejected_per_invocation)
        );
        let _ = writeln!(
            o,
            "  bytes        {} read, {} written per invocation",
            size(self.bytes_in_per_invocation),
            size(self.bytes_out_per_invocation)
        );
        let _ = writeln!(
            o,
            "  peak memory  {}",
            self.peak_rss
                .map_or("unknown".into(), |p| format!("{} resident", mib(p)))
        );
        let _ = writeln!(
            o,
            "  cold start   {}",
            self.init_ms.map_or("not measured".into(), |i| format!(
                "{} from process start to ready (median of {} fresh processes)",
                ms(i),
                self.init_runs
            ))
        );
        let _ = writeln!(
            o,
            "\nCost on Lambda, {} (${} per GB-s, ${:.2} per million requests; prices of {}):",
            self.arch.name(),
            self.usd_per_gb_second,
            self.usd_per_request * 1e6,
            self.prices_as_of
        );
        let _ = writeln!(
            o,
            "  {:>8}  {:>5}  {:>10}  {:>9}  {:>14}  {:>12}  {:>10}  {:>14}",
            "memory",
            "vCPU",
            "duration",
            "billed",
            "$/invocation",
            "$/1M records",
            "$/GB in",
            "all: $/1M rec"
        );
        for e in &self.estimates {
            let [duration, billed, per_invocation, per_million, per_gb, all] = cells(e);
            let _ = writeln!(
                o,
                "  {:>5} MB  {:>5.2}  {:>10}  {:>9}  {:>14}  {:>12}  {:>10}  {:>14}  {}",
                e.memory_mb,
                e.vcpus,
                duration,
                billed,
                per_invocation,
                per_million,
                per_gb,
                all,
                self.marks(e, true).join(", ")
            );
        }
        let _ = writeln!(
            o,
            "\nThe rest of the bill, counted as the handler ran (prices of {}):",
            self.bill.prices_as_of
        );
        for (service, what, cost) in self.bill_rows() {
            let _ = writeln!(
                o,
                "  {service:<16} {what:<52} {:>12} per invocation",
                dollars(cost)
            );
        }
        let _ = writeln!(o, "\n{}", self.method);
        o
    }

    /// The rest of the bill, one row per service: what was asked per invocation, and its price.
    fn bill_rows(&self) -> Vec<(&'static str, String, f64)> {
        let b = &self.bill;
        let n = self.invocations.max(1) as f64;
        let each = |v: u64| {
            let per = v as f64 / n;
            if per.fract() == 0.0 {
                format!("{per:.0}")
            } else {
                format!("{per:.2}")
            }
        };
        let r = &b.requests;
        let c = &b.usd_per_invocation;
        vec![
            (
                "S3",
                format!(
                    "{} GET/HEAD, {} PUT/LIST (parts {})",
                    each(r.s3.tier2()),
                    each(r.s3.tier1()),
                    each(r.s3.multipart)
                ),
                c.s3,
            ),
            ("KMS", format!("{} data keys", each(r.kms)), c.kms),
            (
                "Kinesis",
                format!(
                    "{} records, {} PUT payload units",
                    each(r.kinesis_records),
                    each(r.kinesis_put_units)
                ),
                c.kinesis,
            ),
            (
                "Catalog",
                format!(
                    "{} requests ({})",
                    each(r.catalog),
                    match b.catalog {
                        Catalog::None => "not billed",
                        Catalog::Glue => "Glue",
                        Catalog::S3Tables => "S3 Tables",
                    }
                ),
                c.catalog,
            ),
            ("SQS", format!("{} requests", each(r.sqs)), c.sqs),
            (
                "CloudWatch Logs",
                format!(
                    "{} lines, {} ingested",
                    each(r.log_lines),
                    size(r.log_bytes as f64 / n)
                ),
                c.logs,
            ),
            ("all of these", String::new(), c.total),
        ]
    }

    /// A self-contained page: the chart of cost and duration against memory size (SVG drawn
    /// here, no script, nothing fetched) and the tables.
    pub fn html(&self) -> String {
        use std::fmt::Write;
        let per_million = self
            .estimates
            .iter()
            .all(|e| e.usd_per_million_records.is_some());
        let (cost_label, cost): (&str, Vec<f64>) = if per_million {
            (
                "$ per million records",
                self.estimates
                    .iter()
                    .map(|e| e.usd_per_million_records.unwrap_or(0.0))
                    .collect(),
            )
        } else {
            (
                "$ per invocation",
                self.estimates
                    .iter()
                    .map(|e| e.usd_per_invocation)
                    .collect(),
            )
        };
        let duration: Vec<f64> = self.estimates.iter().map(|e| e.duration_ms).collect();
        let (w, h, left, right, top, bottom) = (920.0, 420.0, 110.0, 90.0, 30.0, 60.0);
        let plot_w = w - left - right;
        let plot_h = h - top - bottom;
        let n = self.estimates.len().max(1);
        let x = |i: usize| left + plot_w * (i as f64 + 0.5) / n as f64;
        let max_cost = cost
            .iter()
            .copied()
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE)
            * 1.1;
        let max_dur = duration
            .iter()
            .copied()
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE)
            * 1.1;
        let y = |v: f64, max: f64| top + plot_h * (1.0 - v / max);
        let mut svg = String::new();
        let _ = write!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="cost and duration against memory size">"##
        );
        let _ = write!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#999"/>"##
        );
        for k in 0..=4 {
            let f = k as f64 / 4.0;
            let yy = top + plot_h * (1.0 - f);
            let _ = write!(
                svg,
                r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end" font-size="12" fill="#c0392b">{}</text><text x="{}" y="{:.1}" font-size="12" fill="#2471a3">{}</text>"##,
                left + plot_w,
                left - 6.0,
                yy + 4.0,
                escape(&dollars(max_cost * f)),
                left + plot_w + 6.0,
                yy + 4.0,
                escape(&ms(max_dur * f)),
            );
        }
        for (i, e) in self.estimates.iter().enumerate() {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" text-anchor="middle" font-size="12">{}</text>"##,
                x(i),
                top + plot_h + 18.0,
                e.memory_mb
            );
            if !e.fits {
                let _ = write!(
                    svg,
                    r##"<rect x="{:.1}" y="{top}" width="{:.1}" height="{plot_h}" fill="#000" fill-opacity="0.08"><title>peak memory does not fit</title></rect>"##,
                    x(i) - plot_w / n as f64 / 2.0,
                    plot_w / n as f64
                );
            }
        }
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" font-size="13">memory (MB)</text><text transform="translate(18 {}) rotate(-90)" text-anchor="middle" font-size="13" fill="#c0392b">{}</text><text transform="translate({} {}) rotate(90)" text-anchor="middle" font-size="13" fill="#2471a3">duration (ms)</text>"##,
            left + plot_w / 2.0,
            h - 14.0,
            top + plot_h / 2.0,
            cost_label,
            w - 14.0,
            top + plot_h / 2.0
        );
        let line = |svg: &mut String, vals: &[f64], max: f64, color: &str, class: &str| {
            let pts: Vec<String> = vals
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v, max)))
                .collect();
            let _ = write!(
                svg,
                r##"<polyline class="{class}" points="{}" fill="none" stroke="{color}" stroke-width="2.5"/>"##,
                pts.join(" ")
            );
            for (i, v) in vals.iter().enumerate() {
                let _ = write!(
                    svg,
                    r##"<circle class="{class}" cx="{:.1}" cy="{:.1}" r="4" fill="{color}"/>"##,
                    x(i),
                    y(*v, max)
                );
            }
        };
        line(&mut svg, &cost, max_cost, "#c0392b", "cost");
        line(&mut svg, &duration, max_dur, "#2471a3", "duration");
        for (i, e) in self.estimates.iter().enumerate() {
            let label = self.marks(e, false);
            if !label.is_empty() {
                let _ = write!(
                    svg,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" font-weight="bold">{}</text>"##,
                    x(i),
                    (y(cost[i], max_cost) - 10.0).max(top + 12.0),
                    label.join(" · ")
                );
            }
        }
        svg.push_str("</svg>");

        let mut rows = String::new();
        for e in &self.estimates {
            let [duration, billed, per_invocation, per_million, per_gb, all] =
                cells(e).map(|c| escape(&c));
            let _ = write!(
                rows,
                "<tr{}><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if e.fits { "" } else { r#" class="nofit""# },
                e.memory_mb,
                e.vcpus,
                duration,
                billed,
                per_invocation,
                per_million,
                per_gb,
                all,
                escape(&self.marks(e, true).join(", "))
            );
        }
        let mut bill = String::new();
        for (service, what, cost) in self.bill_rows() {
            let _ = write!(
                bill,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(service),
                escape(&what),
                escape(&dollars(cost))
            );
        }
        let measured = format!(
            "<ul><li>{} invocations ({} event(s) × {} iterations, {} warm-up rounds){}</li>\
             <li>time per invocation: p50 {}, p90 {}, p99 {} (CPU p50 {})</li>\
             <li>{} records/s, {:.1} MB/s; {} records per CPU second</li>\
             <li>per invocation: {} records in, {} out, {} rejected; {} read, {} written</li>\
             <li>peak memory: {}</li><li>cold start: {}</li></ul>",
            self.invocations,
            self.events.len(),
            self.iterations,
            self.warmup,
            if self.failed > 0 {
                format!(", <b>{} failed</b>", self.failed)
            } else {
                String::new()
            },
            escape(&ms(self.p50_ms)),
            escape(&ms(self.p90_ms)),
            escape(&ms(self.p99_ms)),
            escape(&ms(self.cpu_p50_ms)),
            escape(&count(self.records_per_s)),
            self.mb_per_s,
            escape(&count(self.records_per_cpu_s)),
            escape(&count(self.records_per_invocation)),
            escape(&count(self.records_out_per_invocation)),
            escape(&count(self.rejected_per_invocation)),
            escape(&size(self.bytes_in_per_invocation)),
            escape(&size(self.bytes_out_per_invocation)),
            escape(&self.peak_rss.map_or("unknown".into(), mib)),
            escape(&self.init_ms.map_or("not measured".into(), |i| format!(
                "{} (median of {} fresh processes)",
                ms(i),
                self.init_runs
            ))),
        );
        format!(
            r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sluice bench: {config}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th {{ background: #f0f0f0; }}
tr.nofit td {{ color: #999; }}
.legend span {{ display: inline-block; margin-right: 2em; }}
.method {{ max-width: 60em; color: #555; }}
</style></head>
<body>
<h1>sluice bench: {config}</h1>
<p>Lambda {arch}, prices of {as_of}: ${gbs} per GB-second, ${req:.2} per million requests.</p>
<p class="legend"><span style="color:#c0392b">● {cost_label}</span><span style="color:#2471a3">● duration (ms)</span></p>
{svg}
<table id="estimates"><thead><tr><th>memory (MB)</th><th>vCPU</th><th>duration</th><th>billed</th><th>$ / invocation</th><th>$ / 1M records</th><th>$ / GB in</th><th>all services: $ / 1M records</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>The rest of the bill</h2>
<p>Counted as the handler ran, per invocation; prices of {bill_as_of} (US East, standard tiers).</p>
<table id="bill"><thead><tr><th>service</th><th>asked for, per invocation</th><th>$ / invocation</th></tr></thead>
<tbody>{bill}</tbody></table>
<h2>Measured</h2>
{measured}
<p class="method">{method}</p>
</body></html>
"##,
            config = escape(&self.config),
            arch = self.arch.name(),
            as_of = self.prices_as_of,
            gbs = self.usd_per_gb_second,
            req = self.usd_per_request * 1e6,
            method = escape(self.method),
            bill_as_of = self.bill.prices_as_of,
        )
    }
}

/// A size's duration, billed duration, and dollars per invocation, per million records and per
/// GB in, and per million records with the rest of the bill, as printed.
fn cells(e: &Estimate) -> [String; 6] {
    [
        ms(e.duration_ms),
        ms(e.billed_ms),
        dollars(e.usd_per_invocation),
        e.usd_per_million_records.map_or("-".into(), dollars),
        e.usd_per_gb_in.map_or("-".into(), dollars),
        e.total_usd_per_million_records.map_or("-".into(), dollars),
    ]
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Milliseconds, to three significant figures or so.
pub(super) fn ms(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// Dollars, with enough digits to tell sizes apart.
pub(super) fn dollars(v: f64) -> String {
    if v == 0.0 {
        "$0".into()
    } else if v >= 1.0 {
        format!("${v:.2}")
    } else {
        // Four significant figures.
        let digits = (-v.log10()).ceil() as usize + 3;
        format!("${v:.digits$}")
    }
}

/// A count with thousands separated.
pub(super) fn count(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn size(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} GB", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} MB", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} kB", v / 1e3)
    } else {
        format!("{v:.0} B")
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}
