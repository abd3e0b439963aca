//! The one error type of `sluice-processors`.

use arrow_schema::ArrowError;

/// Errors from decoding, expressions and stages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An expression did not parse or type-check. `offset` is the byte offset in `expr`.
    #[error("{message} (in `{expr}` at character {column})", column = .offset + 1)]
    Expr {
        /// The expression text.
        expr: String,
        /// Byte offset of the offending part.
        offset: usize,
        /// What is wrong and what would be valid.
        message: String,
    },
    /// An Arrow kernel failed while running a stage.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The kernel's error.
        #[source]
        source: ArrowError,
    },
    /// A declared or requested schema is unusable.
    #[error("{0}")]
    Schema(String),
    /// Input could not be decoded at all (as opposed to a single rejected record).
    #[error("{0}")]
    Decode(String),
    /// A limit protecting memory was exceeded.
    #[error("{what} exceeds the limit of {limit} set by `{setting}`")]
    Limit {
        /// What grew too large.
        what: String,
        /// The limit.
        limit: u64,
        /// The setting that controls it.
        setting: &'static str,
    },
    /// A computation cannot give a correct result (e.g. an integer sum that overflows).
    #[error("{0}")]
    Compute(String),
    /// An error from a user-defined stage.
    #[error("{0}")]
    Custom(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wrap an Arrow error with what was being done.
    pub fn arrow(context: impl Into<String>, source: ArrowError) -> Self {
        Error::Arrow {
            context: context.into(),
            source,
        }
    }
}
