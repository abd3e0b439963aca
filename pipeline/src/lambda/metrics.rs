//! CloudWatch Embedded Metric Format: one JSON log line per invocation that CloudWatch Logs turns
//! into metrics, with no API call and nothing to wait for
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).

use serde_json::{Map, Value, json};

use crate::config::MetricsConfig;
use crate::run::Summary;

/// The metric line for one invocation's `summary`, in `m`'s namespace and dimension sets, at
/// `timestamp_ms`. `function` is the Lambda function's name (`AWS_LAMBDA_FUNCTION_NAME`).
pub fn emf_line(
    summary: &Summary,
    m: &MetricsConfig,
    pipeline: &str,
    function: &str,
    timestamp_ms: u64,
) -> Value {
    let mut values: Vec<(String, &str, f64)> = vec![
        ("Objects".into(), "Count", summary.objects as f64),
        ("Skipped".into(), "Count", summary.skipped as f64),
        ("RecordsIn".into(), "Count", summary.records_in as f64),
        ("RecordsOut".into(), "Count", summary.records_out as f64),
        ("Rejected".into(), "Count", summary.rejected as f64),
        ("BytesIn".into(), "Bytes", summary.bytes_in as f64),
        (
            "BatchItemFailures".into(),
            "Count",
            summary.batch_item_failures.len() as f64,
        ),
        (
            "Failed".into(),
            "Count",
            if summary.error.is_some() { 1.0 } else { 0.0 },
        ),
        (
            "Duration".into(),
            "Milliseconds",
            summary.duration_ms as f64,
        ),
    ];
    // Two stages of one type (two filters) are summed under one name.
    for st in &summary.stages {
        let name = format!("Stage.{}", st.stage);
        match values.iter_mut().find(|v| v.0 == name) {
            Some(v) => v.2 += st.ms,
            None => values.push((name, "Milliseconds", st.ms)),
        }
    }
    let mut values: Vec<(String, &str, Value)> = values
        .into_iter()
        .map(|(n, u, v)| (n, u, v.into()))
        .collect();
    // A table's commit: what it held and how contended it was; the committer's messages, and
    // how long each took from its writer to visibility (a list: CloudWatch takes percentiles).
    if let Some(c) = &summary.commit {
        values.push(("CommitFiles".into(), "Count", (c.files as f64).into()));
        values.push(("CommitRows".into(), "Count", (c.rows as f64).into()));
        values.push((
            "CommitConflicts".into(),
            "Count",
            f64::from(c.conflicts).into(),
        ));
        if let Some(ms) = summary.commit_ms {
            values.push(("CommitLatency".into(), "Milliseconds", ms.into()));
        }
        if let Some([committed, dropped, refused]) = c.messages {
            values.push(("CommitMessages".into(), "Count", (committed as f64).into()));
            values.push(("CommitDropped".into(), "Count", (dropped as f64).into()));
            values.push(("CommitRefused".into(), "Count", (refused as f64).into()));
        }
        if !c.visible_ms.is_empty() {
            values.push((
                "TimeToVisibility".into(),
                "Milliseconds",
                Value::from(c.visible_ms.clone()),
            ));
        }
    }
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": m.namespace,
                "Dimensions": m.dimensions,
                "Metrics": values.iter().map(|(n, u, _)| json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
            }],
        }),
    );
    for d in m.dimensions.iter().flatten() {
        let v = match d.as_str() {
            "pipeline" => pipeline.to_string(),
            "trigger" => summary.trigger.to_string(),
            _ => function.to_string(),
        };
        line.insert(d.clone(), v.into());
    }
    for (n, _, v) in values {
        line.insert(n, v);
    }
    Value::Object(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::StageTime;

    #[test]
    fn a_committer_reports_its_commit_and_each_message_s_time_to_visibility() {
        let s = Summary {
            trigger: crate::trigger::Source::of(crate::trigger::Kind::Messages),
            commit_ms: Some(41.5),
            commit: Some(crate::run::CommitStats {
                mode: "committer",
                files: 12,
                rows: 3400,
                conflicts: 2,
                messages: Some([6, 1, 0]),
                visible_ms: vec![1200.0, 900.0, 15000.0],
                message_bytes: None,
            }),
            ..Summary::default()
        };
        let v = emf_line(&s, &MetricsConfig::default(), "clicks", "fn", 1);
        let names: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in &names {
            assert!(v[*name].is_number() || v[*name].is_array(), "{name} in {v}");
        }
        assert_eq!(
            (
                &v["CommitFiles"],
                &v["CommitRows"],
                &v["CommitConflicts"],
                &v["CommitLatency"],
                &v["CommitMessages"],
                &v["CommitDropped"],
                &v["CommitRefused"],
            ),
            (
                &json!(12.0),
                &json!(3400.0),
                &json!(2.0),
                &json!(41.5),
                &json!(6.0),
                &json!(1.0),
                &json!(0.0)
            )
        );
        assert_eq!(v["TimeToVisibility"], json!([1200.0, 900.0, 15000.0]));
        // Without a commit, none of them.
        let plain = emf_line(
            &Summary::default(),
            &MetricsConfig::default(),
            "clicks",
            "fn",
            1,
        );
        assert!(plain.get("CommitFiles").is_none() && plain.get("TimeToVisibility").is_none());
    }

    #[test]
    fn a_line_cloudwatch_reads_as_metrics() {
        let s = Summary {
            trigger: crate::trigger::Source::of(crate::trigger::Kind::Kinesis),
            records_in: 10,
            records_out: 7,
            rejected: 3,
            bytes_in: 4096,
            batch_item_failures: vec!["49590".into()],
            duration_ms: 12,
            stages: vec![
                StageTime {
                    stage: "filter".into(),
                    ms: 1.5,
                },
                StageTime {
                    stage: "filter".into(),
                    ms: 0.5,
                },
                StageTime {
                    stage: "aggregate".into(),
                    ms: 4.0,
                },
            ],
            ..Summary::default()
        };
        let m = MetricsConfig {
            dimensions: vec![
                vec!["pipeline".into()],
                vec!["pipeline".into(), "trigger".into()],
            ],
            ..MetricsConfig::default()
        };
        let v = emf_line(&s, &m, "clicks", "fn", 1_763_000_000_000);
        let aws = &v["_aws"];
        assert_eq!(aws["Timestamp"], 1_763_000_000_000u64);
        let d = &aws["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], "Sluice");
        assert_eq!(
            d["Dimensions"],
            json!([["pipeline"], ["pipeline", "trigger"]])
        );
        // Every metric declared has its value at the top level, as the specification requires.
        for metric in d["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(v[name].is_number(), "{name} in {v}");
        }
        assert_eq!(
            (
                &v["pipeline"],
                &v["trigger"],
                &v["RecordsOut"],
                &v["Rejected"]
            ),
            (
                &json!("clicks"),
                &json!("kinesis"),
                &json!(7.0),
                &json!(3.0)
            )
        );
        assert_eq!(v["BatchItemFailures"], 1.0);
        assert_eq!(v["Stage.filter"], 2.0);
        assert_eq!(v["Stage.aggregate"], 4.0);
        assert_eq!(v["BytesIn"], 4096.0);
        assert!(v.get("function").is_none());
    }
}
