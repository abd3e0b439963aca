//! `[[stage]]`: each stage built against the schema that reaches it (when declared), so a typo in
//! a column name is an error here.

use arrow_schema::SchemaRef;
use std::sync::Arc;

use sluice_processors::aggregate::{AggregateFactory, Window, parse_every};
use sluice_processors::filter::FilterFactory;
use sluice_processors::select::SelectFactory;

use sluice_processors::StageFactory;

use crate::config::model::*;
use crate::config::plan::*;
use crate::config::spans::*;
use crate::error::ConfigError;

use super::index::index_spec;

/// The planned stages, and what reaches the output.
pub(super) struct Stages {
    pub(super) stages: Vec<PlannedStage>,
    pub(super) index: Option<IndexSpec>,
    pub(super) streamed: Vec<crate::stream::Column>,
    /// The schema the output receives, when the input schema is declared.
    pub(super) current: Option<SchemaRef>,
}

pub(super) fn check(
    config: &PipelineConfig,
    spec: &InputSpec,
    schema: &Option<SchemaRef>,
    _resize: &Option<ResizeSpec>,
    cx: &Ctx<'_>,
) -> Result<Stages, ConfigError> {
    let _input = &config.input;
    let mut stages = Vec::new();
    let mut index = None;
    // Stream batches add the stream columns the stages name.
    let streamed = stream_columns(&config.stages);
    let mut current = schema
        .clone()
        .map(|s| crate::stream::with_columns(&s, &streamed));
    for (i, st) in config.stages.iter().enumerate() {
        let (factory, describe, key): (Arc<dyn StageFactory>, String, &str) = match st {
            // Checked above; it makes the rows the next stages see.
            StageConfig::Resize(_) => continue,
            StageConfig::Index {
                text,
                id,
                stop_words,
            } => {
                let last = i + 1 == config.stages.len();
                index = Some(index_spec(
                    (text, id, stop_words),
                    spec,
                    current.as_ref(),
                    (i, last),
                    cx,
                )?);
                continue;
            }
            StageConfig::Filter { predicate } => {
                // Parse now, whatever the schema, so syntax errors never wait for data.
                sluice_processors::expr::parse(predicate).map_err(|e| {
                    cx.err(
                        &[Seg::Key("stage"), Seg::Index(i), Seg::Key("where")],
                        e.to_string(),
                    )
                })?;
                (
                    Arc::new(FilterFactory::new(predicate.clone())),
                    format!("filter where {predicate}"),
                    "where",
                )
            }
            StageConfig::Select { columns } => {
                for (name, e) in &columns.0 {
                    sluice_processors::expr::parse(e).map_err(|err| {
                        cx.err(
                            &[
                                Seg::Key("stage"),
                                Seg::Index(i),
                                Seg::Key("columns"),
                                Seg::Key(name),
                            ],
                            err.to_string(),
                        )
                    })?;
                }
                let d = columns
                    .0
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    Arc::new(SelectFactory::new(columns.0.clone())),
                    format!("select {d}"),
                    "columns",
                )
            }
            StageConfig::Aggregate {
                group_by,
                window,
                measures,
                max_groups,
                max_distinct_values,
            } => {
                let at = |k: &'static str| [Seg::Key("stage"), Seg::Index(i), Seg::Key(k)];
                if measures.0.is_empty() {
                    return Err(cx.err(
                        &at("measures"),
                        "needs at least one measure, e.g. hits = \"count(*)\"",
                    ));
                }
                for (name, e) in &measures.0 {
                    sluice_processors::expr::parse(e).map_err(|err| {
                        cx.err(
                            &[
                                Seg::Key("stage"),
                                Seg::Index(i),
                                Seg::Key("measures"),
                                Seg::Key(name),
                            ],
                            err.to_string(),
                        )
                    })?;
                }
                let window = match window {
                    None => None,
                    Some(w) => Some(Window {
                        column: w.column.clone(),
                        every_micros: parse_every(&w.every).map_err(|m| {
                            cx.err(
                                &[
                                    Seg::Key("stage"),
                                    Seg::Index(i),
                                    Seg::Key("window"),
                                    Seg::Key("every"),
                                ],
                                m,
                            )
                        })?,
                    }),
                };
                if *max_groups == 0 {
                    return Err(cx.err(&at("max_groups"), "must be at least 1"));
                }
                if *max_distinct_values == 0 {
                    return Err(cx.err(&at("max_distinct_values"), "must be at least 1"));
                }
                let d = format!(
                    "aggregate by {}{} → {}",
                    if group_by.is_empty() {
                        "(everything)".to_string()
                    } else {
                        group_by.join(", ")
                    },
                    window
                        .as_ref()
                        .map(|w| format!(" per {} of `{}`", w_every(w.every_micros), w.column))
                        .unwrap_or_default(),
                    measures
                        .0
                        .iter()
                        .map(|(k, v)| format!("{k} = {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                (
                    Arc::new(AggregateFactory {
                        group_by: group_by.clone(),
                        window,
                        measures: measures.0.clone(),
                        max_groups: *max_groups,
                        max_distinct_values: *max_distinct_values,
                    }),
                    d,
                    "measures",
                )
            }
        };
        if let Some(s) = &current {
            let built = factory.build(s).map_err(|e| {
                // Point at the one select column that fails, not the whole table.
                if let StageConfig::Aggregate {
                    measures, group_by, ..
                } = st
                {
                    for (name, text) in &measures.0 {
                        let one = sluice_processors::aggregate::Aggregate::new(
                            &[],
                            None,
                            &[(name.clone(), text.clone())],
                            1,
                            s,
                        );
                        if let Err(e) = one {
                            return cx.err(
                                &[
                                    Seg::Key("stage"),
                                    Seg::Index(i),
                                    Seg::Key("measures"),
                                    Seg::Key(name),
                                ],
                                e.to_string(),
                            );
                        }
                    }
                    if !group_by.is_empty() {
                        return cx.err(
                            &[Seg::Key("stage"), Seg::Index(i), Seg::Key("group_by")],
                            e.to_string(),
                        );
                    }
                }
                if let StageConfig::Select { columns } = st {
                    for (name, text) in &columns.0 {
                        if let Err(e) = sluice_processors::expr::Compiled::new(text, s) {
                            return cx.err(
                                &[
                                    Seg::Key("stage"),
                                    Seg::Index(i),
                                    Seg::Key(key),
                                    Seg::Key(name),
                                ],
                                e.to_string(),
                            );
                        }
                    }
                }
                cx.err(
                    &[Seg::Key("stage"), Seg::Index(i), Seg::Key(key)],
                    e.to_string(),
                )
            })?;
            current = Some(built.schema());
        }
        stages.push(PlannedStage {
            factory,
            describe,
            output: current.clone(),
        });
    }
    Ok(Stages {
        stages,
        index,
        streamed,
        current,
    })
}
