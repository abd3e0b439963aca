//! The index stage.

use arrow_schema::SchemaRef;
use sluice_processors::expr::type_name;

use crate::config::model::*;
use crate::config::plan::*;
use crate::config::spans::*;
use crate::error::ConfigError;

/// A checked index stage (stage `i`; `last` when nothing follows it), against the columns that
/// reach it when they are known.
pub(crate) fn index_spec(
    (text, id, stop_words): (&Option<String>, &Option<String>, &Vec<String>),
    input: &InputSpec,
    current: Option<&SchemaRef>,
    (i, last): (usize, bool),
    cx: &Ctx<'_>,
) -> Result<IndexSpec, ConfigError> {
    let at = |k: &'static str| [Seg::Key("stage"), Seg::Index(i), Seg::Key(k)];
    if !last {
        return Err(cx.err(
            &at("type"),
            "index is the last stage: it indexes the rows the output receives",
        ));
    }
    // Without a text column (and not whole text objects): the catalog only.
    let text = match (text, input) {
        (Some(t), _) => Some(t.clone()),
        (None, InputSpec::Text) => Some("text".to_string()),
        (None, _) => None,
    };
    for (key, col) in [("text", text.as_ref()), ("id", id.as_ref())] {
        let (Some(col), Some(s)) = (col, current) else {
            continue;
        };
        let Ok(f) = s.field_with_name(col) else {
            let have: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(cx.err(
                &at(key),
                format!(
                    "no column `{col}` reaches this stage; it has: {}",
                    have.join(", ")
                ),
            ));
        };
        let is_text = matches!(
            f.data_type(),
            arrow_schema::DataType::Utf8
                | arrow_schema::DataType::LargeUtf8
                | arrow_schema::DataType::Utf8View
        );
        if key == "text" && !is_text {
            return Err(cx.err(
                &at(key),
                format!("`{col}` is {}, not text", type_name(f.data_type())),
            ));
        }
    }
    Ok(IndexSpec {
        text,
        id: id.clone(),
        stop_words: stop_words.clone(),
    })
}
