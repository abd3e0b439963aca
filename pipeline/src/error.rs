//! Errors of `sluice-pipeline`: configuration errors, and run-time errors classified for retries.

use std::path::PathBuf;

/// A problem with `pipeline.toml`, naming the file, line and key.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}{}{message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), key.as_deref().map(|k| format!(": `{k}`: ")).unwrap_or_else(|| ": ".into()))]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// Dotted key path such as `stage[1].where`, where known.
    pub key: Option<String>,
    /// What is wrong and what would be valid.
    pub message: String,
}

/// A run-time error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pipeline configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Reading or writing an object failed.
    #[error("{location}: {message}")]
    Store {
        /// `s3://bucket/key` or a path.
        location: String,
        /// What happened.
        message: String,
        /// Whether retrying the same request may succeed (throttling, 5xx, network).
        retryable: bool,
    },
    /// The object named by the event is not there (deleted since the notification).
    #[error("{location}: {}", missing_reason(looked_for.as_deref()))]
    Missing {
        /// `s3://bucket/key`.
        location: String,
        /// The file a local store looked for.
        looked_for: Option<String>,
    },
    /// The object named by the event was overwritten since: its notification's version (or
    /// ETag) is no longer what the key holds. The newer upload has a notification of its own,
    /// which reads it; reading it here too would write its rows twice.
    #[error("{location}: {SUPERSEDED}")]
    Superseded {
        /// `s3://bucket/key`.
        location: String,
    },
    /// The object named by the event was written by this same pipeline (its S3 metadata carries
    /// the pipeline's marker): processing it would invoke the pipeline again, and again.
    #[error("{location}: {}", own_output(pipeline))]
    OwnOutput {
        /// `s3://bucket/key`.
        location: String,
        /// The pipeline's name.
        pipeline: String,
    },
    /// An object could not be processed.
    #[error("{}", with_location(location, source))]
    Object {
        /// `s3://bucket/key`.
        location: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A stage or decoder failed.
    #[error(transparent)]
    Processor(#[from] sluice_processors::Error),
    /// Reading or writing failed part-way (a stream cut, a file system error): a retry may
    /// succeed.
    #[error("{0}")]
    Io(String),
    /// The input cannot be used as it is (corrupt, the wrong format, a schema or a value that
    /// does not fit what the pipeline asks of it): a retry reads the same bytes and fails the
    /// same way.
    #[error("{0}")]
    Data(String),
    /// Something that should not happen did (an internal invariant; a bug to report): not
    /// retried.
    #[error("{0}")]
    Internal(String),
    /// Writing Parquet failed.
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The event could not be understood at all.
    #[error("{0}")]
    Event(String),
}

/// Why an object named by an event could not be read: it is not there.
pub const MISSING: &str = "no such object (deleted after the notification?)";

/// `location: what went wrong`, once: an error that already starts with its location (a store's)
/// is not prefixed again.
fn with_location(location: &str, source: &Error) -> String {
    let text = source.to_string();
    if text.starts_with(location) {
        text
    } else {
        format!("{location}: {text}")
    }
}

/// Why an object is missing: [`MISSING`], or for a local store the file it looked for.
pub fn missing_reason(looked_for: Option<&str>) -> String {
    match looked_for {
        Some(file) => format!("no such object: the local store has no file {file}"),
        None => MISSING.to_string(),
    }
}

/// Why an object named by an event is not read: the pipeline named `pipeline` (this one) wrote it.
pub fn own_output(pipeline: &str) -> String {
    format!(
        "written by this pipeline (metadata x-amz-meta-sluice-pipeline: {pipeline}); \
         skipped by the recursive-invocation guard"
    )
}

/// Why an object overwritten since its notification is skipped.
pub const SUPERSEDED: &str =
    "superseded by a newer upload (the newer upload's own notification processes it)";

/// What retrying a failure would do, decided where the error is made: told in the logs, in the
/// summary, in the Lambda error's `errorType`, in the catalog's `error_class` column and in what
/// a redelivered replay gives up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The input cannot be used as it is (corrupt, the wrong format, not an event Sluice reads):
    /// a retry reads the same bytes and fails the same way. Fix or remove the input.
    BadInput,
    /// The pipeline or its environment is wrong (configuration, permissions, a missing bucket,
    /// a bug): a retry fails the same way until someone changes it.
    Permanent,
    /// A transient failure (throttling, a 5xx, the network, a deadline): a retry may succeed.
    RetryLater,
}

impl ErrorClass {
    /// `bad_input`, `permanent` or `retry_later`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::BadInput => "bad_input",
            ErrorClass::Permanent => "permanent",
            ErrorClass::RetryLater => "retry_later",
        }
    }

    /// The Lambda error's `errorType`: `Sluice.BadInput`, `Sluice.Permanent`, `Sluice.RetryLater`.
    pub fn error_type(self) -> &'static str {
        match self {
            ErrorClass::BadInput => "Sluice.BadInput",
            ErrorClass::Permanent => "Sluice.Permanent",
            ErrorClass::RetryLater => "Sluice.RetryLater",
        }
    }

    /// The class of several failures together: if a retry may help one of them, it is worth
    /// retrying (`retry_later`); otherwise `permanent` (someone must change the pipeline) before
    /// `bad_input`.
    pub fn most_hopeful(a: Option<ErrorClass>, b: ErrorClass) -> ErrorClass {
        a.map_or(b, |a| a.max(b))
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage's or decoder's failure: the input's fault (undecodable, over a memory limit, a value
/// that overflows), or the pipeline's (an expression, a schema, a kernel, a custom stage).
fn processor_class(e: &sluice_processors::Error) -> ErrorClass {
    use sluice_processors::Error as P;
    match e {
        P::Decode(_) | P::Limit { .. } | P::Compute(_) => ErrorClass::BadInput,
        _ => ErrorClass::Permanent,
    }
}

impl Error {
    /// What a retry would do.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Store { retryable, .. } => {
                if *retryable {
                    ErrorClass::RetryLater
                } else {
                    ErrorClass::Permanent
                }
            }
            Error::Object { source, .. } => source.class(),
            Error::Io(_) => ErrorClass::RetryLater,
            Error::Data(_) | Error::Event(_) => ErrorClass::BadInput,
            Error::Processor(e) => processor_class(e),
            // Deleted, overwritten or our own output: skipped where they are met, never retried.
            Error::Missing { .. } | Error::Superseded { .. } | Error::OwnOutput { .. } => {
                ErrorClass::BadInput
            }
            Error::Config(_) | Error::Internal(_) | Error::Parquet(_) => ErrorClass::Permanent,
        }
    }

    /// Whether a retry of the invocation may succeed.
    pub fn retryable(&self) -> bool {
        self.class() == ErrorClass::RetryLater
    }

    /// Whether the object was not there to read.
    pub fn missing(&self) -> bool {
        match self {
            Error::Missing { .. } => true,
            Error::Object { source, .. } => source.missing(),
            _ => false,
        }
    }

    /// Why the object is missing, when it is ([`Self::missing`]).
    pub fn missing_reason(&self) -> Option<String> {
        match self {
            Error::Missing { looked_for, .. } => Some(missing_reason(looked_for.as_deref())),
            Error::Object { source, .. } => source.missing_reason(),
            _ => None,
        }
    }

    /// Whether the object was overwritten since its notification ([`Error::Superseded`]).
    pub fn superseded(&self) -> bool {
        match self {
            Error::Superseded { .. } => true,
            Error::Object { source, .. } => source.superseded(),
            _ => false,
        }
    }

    /// The pipeline whose own output the object is (its metadata marker), when that is why it
    /// was not read.
    pub fn own_output_of(&self) -> Option<&str> {
        match self {
            Error::OwnOutput { pipeline, .. } => Some(pipeline),
            Error::Object { source, .. } => source.own_output_of(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod location_tests {
    use super::*;

    /// Issue 39: `s3://b/k: s3://b/k: no such object` said its source twice.
    #[test]
    fn an_object_error_names_its_location_once() {
        let inner = |looked_for: Option<&str>| Error::Missing {
            location: "s3://b/k".into(),
            looked_for: looked_for.map(str::to_string),
        };
        let wrapped = |source| Error::Object {
            location: "s3://b/k".into(),
            source: Box::new(source),
        };
        assert_eq!(
            wrapped(inner(None)).to_string(),
            "s3://b/k: no such object (deleted after the notification?)"
        );
        assert_eq!(
            wrapped(inner(Some("store/b/k"))).to_string(),
            "s3://b/k: no such object: the local store has no file store/b/k"
        );
        assert_eq!(
            wrapped(Error::Io("bad".into())).to_string(),
            "s3://b/k: bad"
        );
    }
}

#[cfg(test)]
mod class_tests {
    use super::*;

    /// Issue 28: every error says what a retry would do, and an object's error is its cause's.
    #[test]
    fn errors_are_classed_where_they_are_made() {
        let store = |retryable| Error::Store {
            location: "s3://b/k".into(),
            message: "m".into(),
            retryable,
        };
        let object = |source: Error| Error::Object {
            location: "s3://b/k".into(),
            source: Box::new(source),
        };
        use sluice_processors::Error as P;
        for (e, class) in [
            (store(true), ErrorClass::RetryLater),
            (store(false), ErrorClass::Permanent),
            (Error::Io("cut".into()), ErrorClass::RetryLater),
            (Error::Data("corrupt".into()), ErrorClass::BadInput),
            (Error::Event("not an event".into()), ErrorClass::BadInput),
            (Error::Internal("bug".into()), ErrorClass::Permanent),
            (
                Error::Processor(P::Decode("x".into())),
                ErrorClass::BadInput,
            ),
            (
                Error::Processor(P::Compute("overflow".into())),
                ErrorClass::BadInput,
            ),
            (
                Error::Processor(P::Schema("x".into())),
                ErrorClass::Permanent,
            ),
            (object(store(true)), ErrorClass::RetryLater),
            (object(Error::Data("corrupt".into())), ErrorClass::BadInput),
        ] {
            assert_eq!(e.class(), class, "{e:?}");
            assert_eq!(e.retryable(), class == ErrorClass::RetryLater);
        }
        use ErrorClass::*;
        assert_eq!(
            ErrorClass::most_hopeful(Some(BadInput), RetryLater),
            RetryLater
        );
        assert_eq!(
            ErrorClass::most_hopeful(Some(Permanent), BadInput),
            Permanent
        );
        assert_eq!(ErrorClass::most_hopeful(None, BadInput), BadInput);
        assert_eq!(
            serde_json::to_value([BadInput, Permanent, RetryLater]).unwrap(),
            serde_json::json!(["bad_input", "permanent", "retry_later"])
        );
    }
}
