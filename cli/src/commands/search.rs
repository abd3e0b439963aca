//! `sluice search`: the documents of a term index ranked for a query (BM25).

use std::sync::Arc;

use sluice_pipeline::store::ObjectStore;

use super::*;

#[derive(clap::Args)]
pub struct SearchArgs {
    /// The index stage's output: a folder, or s3://bucket/prefix/ (holding _index/terms/).
    pub index: String,
    /// The query: words, in any language the index stage tokenizes.
    pub query: String,
    /// How many documents to print.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Read s3:// through this S3-compatible endpoint.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// One JSON line per hit: {"doc","score","matched"}.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: SearchArgs) -> anyhow::Result<u8> {
    let SearchArgs {
        index,
        query,
        limit,
        endpoint_url,
        json,
    } = a;
    let (store, bucket, prefix): (Arc<dyn ObjectStore>, String, String) =
        match index.strip_prefix("s3://") {
            Some(rest) => {
                let (b, p) = rest.split_once('/').unwrap_or((rest, ""));
                match s3_store(endpoint_url.as_deref(), None).await {
                    Ok(s) => (s, b.to_string(), p.to_string()),
                    Err(e) => {
                        eprintln!("sluice: {e}");
                        return Ok(2);
                    }
                }
            }
            None => (
                Arc::new(sluice_pipeline::store::FsStore::flat(&index)),
                String::new(),
                String::new(),
            ),
        };
    match sluice_pipeline::search::search(store, &bucket, &prefix, &query, limit).await {
        Ok(hits) => {
            for h in &hits {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"doc": h.doc, "score": h.score, "matched": h.matched})
                    );
                } else {
                    println!("{:>8.3}  {}  ({})", h.score, h.doc, h.matched.join(", "));
                }
            }
            if hits.is_empty() && !json {
                eprintln!("no documents match");
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("sluice: {e}");
            Ok(1)
        }
    }
}
