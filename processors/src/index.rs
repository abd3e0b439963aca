//! The term index: which documents hold which terms, and BM25 search over it.
//!
//! [`TermIndexBuilder`] takes documents (an id, a field name and its text), tokenizes them with
//! [`Tokenizer`], and produces two Arrow tables: `terms` — one row per (term, document, field)
//! with the term frequency, the first positions and the field's length, sorted by term then
//! document so a reader can fetch one term's rows by range — and `docs`, one row per (document,
//! field) with its length in terms (what BM25 needs for its length normalisation). [`search`]
//! ranks documents for a query from those tables.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{Int32Builder, ListBuilder, StringBuilder};
use arrow_array::{Array, ArrayRef, Int32Array, ListArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::tokenize::Tokenizer;

/// Positions kept per (term, document, field): enough for phrase checks near the start.
pub const MAX_POSITIONS: usize = 16;

/// The `terms` table's schema.
pub fn terms_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("term", DataType::Utf8, false),
        Field::new("doc", DataType::Utf8, false),
        Field::new("field", DataType::Utf8, false),
        Field::new("tf", DataType::Int32, false),
        Field::new(
            "positions",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            false,
        ),
        Field::new("doc_terms", DataType::Int32, false),
    ]))
}

/// The `docs` table's schema.
pub fn docs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("doc", DataType::Utf8, false),
        Field::new("field", DataType::Utf8, false),
        Field::new("terms", DataType::Int32, false),
    ]))
}

struct Posting {
    term: u32,
    doc: u32,
    field: u32,
    tf: u32,
    /// Its first positions, in [`TermIndexBuilder::positions`].
    positions: std::ops::Range<u32>,
    doc_terms: u32,
}

/// Builds a term index from documents.
#[derive(Default)]
pub struct TermIndexBuilder {
    tokenizer: Tokenizer,
    terms: Vec<String>,
    term_ids: HashMap<String, u32>,
    docs: Vec<String>,
    fields: Vec<String>,
    postings: Vec<Posting>,
    lengths: Vec<(u32, u32, u32)>,
    bytes: u64,
    /// Every posting's first positions, one after another.
    positions: Vec<i32>,
    /// Per document, reused: (term id, position) of each term.
    pairs: Vec<(u32, u32)>,
}

impl TermIndexBuilder {
    /// A builder tokenizing with `tokenizer`.
    pub fn new(tokenizer: Tokenizer) -> Self {
        TermIndexBuilder {
            tokenizer,
            ..Default::default()
        }
    }

    /// Index `text` as field `field` of document `doc`.
    pub fn add(&mut self, doc: &str, field: &str, text: &str) {
        let doc_id = self.docs.len() as u32;
        self.docs.push(doc.to_string());
        let field_id = match self.fields.iter().position(|f| f == field) {
            Some(i) => i as u32,
            None => {
                self.fields.push(field.to_string());
                (self.fields.len() - 1) as u32
            }
        };
        self.bytes += text.len() as u64;
        // Every (term, position) of the document, sorted, then grouped: no map, and positions
        // go into one flat buffer rather than a vector per posting.
        let mut pairs = std::mem::take(&mut self.pairs);
        pairs.clear();
        let mut count: u32 = 0;
        let (terms, ids) = (&mut self.terms, &mut self.term_ids);
        self.tokenizer.each(text, |term, pos| {
            count += 1;
            let id = match ids.get(term) {
                Some(&id) => id,
                None => {
                    let id = terms.len() as u32;
                    terms.push(term.to_string());
                    ids.insert(term.to_string(), id);
                    id
                }
            };
            pairs.push((id, pos));
        });
        self.lengths.push((doc_id, field_id, count));
        pairs.sort_unstable();
        for run in pairs.chunk_by(|a, b| a.0 == b.0) {
            let start = self.positions.len() as u32;
            self.positions.extend(
                run.iter()
                    .take(MAX_POSITIONS)
                    .map(|&(_, p)| i32::try_from(p).unwrap_or(i32::MAX)),
            );
            self.postings.push(Posting {
                term: run[0].0,
                doc: doc_id,
                field: field_id,
                tf: run.len() as u32,
                positions: start..self.positions.len() as u32,
                doc_terms: count,
            });
        }
        self.pairs = pairs;
    }

    /// Documents added so far.
    pub fn documents(&self) -> usize {
        self.docs.len()
    }

    /// Bytes of text added so far.
    pub fn text_bytes(&self) -> u64 {
        self.bytes
    }

    /// The `terms` and `docs` tables.
    pub fn finish(mut self) -> Result<(RecordBatch, RecordBatch), arrow_schema::ArrowError> {
        let (terms, docs, fields) = (&self.terms, &self.docs, &self.fields);
        // Strings are ranked once; postings are then sorted by integer keys (comparing the
        // strings in every comparison was a quarter of the indexing time).
        fn ranks(v: &[String]) -> Vec<u32> {
            let mut order: Vec<u32> = (0..v.len() as u32).collect();
            order.sort_unstable_by(|a, b| v[*a as usize].cmp(&v[*b as usize]));
            let mut rank = vec![0u32; v.len()];
            for (r, i) in order.into_iter().enumerate() {
                rank[i as usize] = r as u32;
            }
            rank
        }
        let (tr, dr, fr) = (ranks(terms), ranks(docs), ranks(fields));
        let mut keyed: Vec<(u64, u32, u32)> = self
            .postings
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    (u64::from(tr[p.term as usize]) << 32) | u64::from(dr[p.doc as usize]),
                    fr[p.field as usize],
                    i as u32,
                )
            })
            .collect();
        keyed.sort_unstable();
        let n = self.postings.len();
        let mut term = StringBuilder::with_capacity(n, n * 8);
        let mut doc = StringBuilder::with_capacity(n, n * 32);
        let mut field = StringBuilder::with_capacity(n, n * 8);
        let mut tf = Int32Builder::with_capacity(n);
        let mut positions = ListBuilder::new(Int32Builder::new()).with_field(Arc::new(Field::new(
            "item",
            DataType::Int32,
            true,
        )));
        let mut doc_terms = Int32Builder::with_capacity(n);
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        for p in keyed.iter().filter_map(|k| self.postings.get(k.2 as usize)) {
            term.append_value(&terms[p.term as usize]);
            doc.append_value(&docs[p.doc as usize]);
            field.append_value(&fields[p.field as usize]);
            tf.append_value(clamp(p.tf));
            positions.values().append_slice(
                self.positions
                    .get(p.positions.start as usize..p.positions.end as usize)
                    .unwrap_or_default(),
            );
            positions.append(true);
            doc_terms.append_value(clamp(p.doc_terms));
        }
        let t = RecordBatch::try_new(
            terms_schema(),
            vec![
                Arc::new(term.finish()) as ArrayRef,
                Arc::new(doc.finish()),
                Arc::new(field.finish()),
                Arc::new(tf.finish()),
                Arc::new(positions.finish()),
                Arc::new(doc_terms.finish()),
            ],
        )?;
        self.lengths
            .sort_unstable_by_key(|l| (dr[l.0 as usize], fr[l.1 as usize]));
        let d = RecordBatch::try_new(
            docs_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    self.lengths.iter().map(|l| docs[l.0 as usize].as_str()),
                )) as ArrayRef,
                Arc::new(StringArray::from_iter_values(
                    self.lengths.iter().map(|l| fields[l.1 as usize].as_str()),
                )),
                Arc::new(Int32Array::from_iter_values(
                    self.lengths.iter().map(|l| clamp(l.2)),
                )),
            ],
        )?;
        Ok((t, d))
    }
}

/// A document found by [`search`].
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The document id.
    pub doc: String,
    /// Its BM25 score (k1 = 1.2, b = 0.75), summed over fields.
    pub score: f64,
    /// The query terms it holds.
    pub matched: Vec<String>,
}

/// Rank documents for `query` with BM25 from an index's `terms` and `docs` tables (any number of
/// batches of each, as read back from its files). The best `limit` hits, best first; ties by
/// document id.
pub fn search(
    terms: &[RecordBatch],
    docs: &[RecordBatch],
    query: &str,
    tokenizer: &Tokenizer,
    limit: usize,
) -> Result<Vec<Hit>, String> {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;
    let col = |b: &RecordBatch, name: &str| -> Result<ArrayRef, String> {
        b.column_by_name(name)
            .cloned()
            .ok_or_else(|| format!("not a Sluice term index: no `{name}` column"))
    };
    let strings = |a: &ArrayRef| -> Result<StringArray, String> {
        a.as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .ok_or_else(|| "not a Sluice term index: a text column is not text".to_string())
    };
    let ints = |a: &ArrayRef| -> Result<Int32Array, String> {
        a.as_any()
            .downcast_ref::<Int32Array>()
            .cloned()
            .ok_or_else(|| "not a Sluice term index: a count column is not int32".to_string())
    };
    // Collection statistics per field: documents and mean length.
    let mut n_docs: HashMap<String, (f64, f64)> = HashMap::new();
    for b in docs {
        let (f, n) = (strings(&col(b, "field")?)?, ints(&col(b, "terms")?)?);
        for i in 0..b.num_rows() {
            let e = n_docs.entry(f.value(i).to_string()).or_default();
            e.0 += 1.0;
            e.1 += f64::from(n.value(i));
        }
    }
    let mut wanted: Vec<String> = tokenizer.terms(query);
    wanted.sort();
    wanted.dedup();
    // The matching rows of every batch (an index is one file per unit of work), gathered first:
    // a term's document frequency counts all of them.
    struct Match {
        term: usize,
        doc: String,
        field: String,
        tf: f64,
        dl: f64,
    }
    let mut matches: Vec<Match> = Vec::new();
    for b in terms {
        let (t, d, f, tf, dl) = (
            strings(&col(b, "term")?)?,
            strings(&col(b, "doc")?)?,
            strings(&col(b, "field")?)?,
            ints(&col(b, "tf")?)?,
            ints(&col(b, "doc_terms")?)?,
        );
        let _ = col(b, "positions")?
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or("not a Sluice term index: `positions` is not a list")?;
        for (wi, w) in wanted.iter().enumerate() {
            // Rows are sorted by term: binary search for the first, then walk.
            let mut r = partition_point(&t, w);
            while r < t.len() && t.value(r) == w {
                matches.push(Match {
                    term: wi,
                    doc: d.value(r).to_string(),
                    field: f.value(r).to_string(),
                    tf: f64::from(tf.value(r)),
                    dl: f64::from(dl.value(r)),
                });
                r += 1;
            }
        }
    }
    let mut df: HashMap<(usize, &str), f64> = HashMap::new();
    for m in &matches {
        *df.entry((m.term, m.field.as_str())).or_default() += 1.0;
    }
    let mut scores: HashMap<String, (f64, Vec<String>)> = HashMap::new();
    for m in &matches {
        let (n, total) = n_docs.get(&m.field).copied().unwrap_or((1.0, 1.0));
        let avgdl = if n > 0.0 { total / n } else { 1.0 };
        let df = df.get(&(m.term, m.field.as_str())).copied().unwrap_or(1.0);
        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        let s = idf * m.tf * (K1 + 1.0) / (m.tf + K1 * (1.0 - B + B * m.dl / avgdl.max(1e-9)));
        let e = scores.entry(m.doc.clone()).or_default();
        e.0 += s;
        if !e.1.contains(&wanted[m.term]) {
            e.1.push(wanted[m.term].clone());
        }
    }
    let mut hits: Vec<Hit> = scores
        .into_iter()
        .map(|(doc, (score, matched))| Hit {
            doc,
            score,
            matched,
        })
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.doc.cmp(&b.doc))
    });
    hits.truncate(limit);
    Ok(hits)
}

/// The first row whose term is not less than `w`.
fn partition_point(t: &StringArray, w: &str) -> usize {
    let (mut lo, mut hi) = (0, t.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if t.value(mid) < w {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> (RecordBatch, RecordBatch) {
        let mut b = TermIndexBuilder::default();
        b.add(
            "s3://docs/rust.txt",
            "text",
            "Rust is fast. Rust is safe. Rust!",
        );
        b.add(
            "s3://docs/python.txt",
            "text",
            "Python is easy, and Python is everywhere.",
        );
        b.add(
            "s3://docs/beijing.txt",
            "text",
            "我来到北京清华大学。北京很大。",
        );
        b.add(
            "s3://docs/mixed.txt",
            "text",
            "Fast trains run from 北京 to 上海 every hour.",
        );
        b.finish().unwrap()
    }

    #[test]
    fn terms_are_sorted_with_frequencies_positions_and_lengths() {
        let (t, d) = corpus();
        let term = t.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let all: Vec<&str> = (0..t.num_rows()).map(|i| term.value(i)).collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(all, sorted);
        // "rust" is in one document, three times, at positions 0, 3, 6 of 7 terms.
        let i = all.iter().position(|t| *t == "rust").unwrap();
        let tf = t.column(3).as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(tf.value(i), 3);
        let pos = t
            .column(4)
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap()
            .value(i);
        let pos = pos.as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(pos.values().to_vec(), [0, 3, 6]);
        let dl = t.column(5).as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(dl.value(i), 7);
        // 北京 is in two documents.
        assert_eq!(all.iter().filter(|t| **t == "北京").count(), 2);
        assert_eq!(d.num_rows(), 4);
    }

    #[test]
    fn bm25_ranks_the_right_documents() {
        let (t, d) = corpus();
        let (t, d) = (vec![t], vec![d]);
        let tok = Tokenizer::default();
        let hits = search(&t, &d, "rust", &tok, 10).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].doc, "s3://docs/rust.txt");
        // Both documents with 北京; the one saying it twice, and shorter, first.
        let hits = search(&t, &d, "北京", &tok, 10).unwrap();
        let docs: Vec<&str> = hits.iter().map(|h| h.doc.as_str()).collect();
        assert_eq!(docs, ["s3://docs/beijing.txt", "s3://docs/mixed.txt"]);
        // Two query terms: the document matching both ranks first and lists both.
        let hits = search(&t, &d, "FAST 北京", &tok, 10).unwrap();
        assert_eq!(hits[0].doc, "s3://docs/mixed.txt");
        assert_eq!(hits[0].matched, ["fast", "北京"]);
        assert!(search(&t, &d, "nothing here", &tok, 10).unwrap().is_empty());
    }
}
