//! Typed errors of the library.
//!
//! [`InputError`] is an input that can never succeed: the run ends with a `failed` summary and exit code 2
//! (a Lambda does not retry it). [`Error`] is everything else, including input errors, with context.

use std::path::PathBuf;

/// The input was rejected as a whole. `kind()` is the `error.kind` of the summary.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum InputError {
    #[error("the input is empty: no header record found")]
    EmptyFile,
    #[error("the header is not valid: {message}")]
    InvalidHeader { message: String },
    #[error("required column(s) missing from the header: {}", missing.join(", "))]
    MissingColumns { missing: Vec<String> },
    #[error("column '{column}' appears more than once in the header")]
    DuplicateColumn { column: String },
    #[error("the input could not be decoded: {message}")]
    CorruptInput { message: String },
    #[error("a revenue total does not fit decimal(18,2): {message}")]
    RevenueOverflow { message: String },
    #[error("the rejected rows do not fit the space for temporary files: {message}")]
    RejectsTooLarge { message: String },
    #[error("the input is not UTF-8 text: {message}")]
    UnsupportedEncoding { message: String },
    #[error("the input is compressed in a format this program does not read: {message}")]
    UnsupportedCompression { message: String },
}

impl InputError {
    /// The machine-readable kind written to the summary's `error.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            InputError::EmptyFile => "empty_file",
            InputError::InvalidHeader { .. } => "invalid_header",
            InputError::MissingColumns { .. } => "missing_columns",
            InputError::DuplicateColumn { .. } => "duplicate_column",
            InputError::CorruptInput { .. } => "corrupt_input",
            InputError::RevenueOverflow { .. } => "revenue_overflow",
            InputError::RejectsTooLarge { .. } => "rejects_too_large",
            InputError::UnsupportedEncoding { .. } => "unsupported_encoding",
            InputError::UnsupportedCompression { .. } => "unsupported_compression",
        }
    }
}

/// Any error of a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("cannot read {uri}")]
    Read { uri: String, source: std::io::Error },
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("storage error on {uri}: {message}")]
    Storage { uri: String, message: String, retryable: bool },
    #[error("aggregation failed: {0}")]
    Polars(#[from] polars::error::PolarsError),
    #[error("internal error: {message}")]
    Internal { message: String },
    #[error("{uri} changed while it was being processed; the run for the newer object writes the outputs")]
    Superseded { uri: String },
    #[error("stopped before the invocation deadline: {message}")]
    Deadline { message: String },
}

impl Error {
    /// Whether retrying the same run later may succeed (transient I/O or storage trouble).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Storage { retryable, .. } => *retryable,
            Error::Read { .. } => true,
            // A retry with more time (or a later run of the same source) completes it.
            Error::Deadline { .. } => true,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
