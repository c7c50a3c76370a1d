//! The one error type of pet-core: structured, so that every message names the file, key or
//! line at fault.

use std::path::PathBuf;

/// Errors returned at pet-core's boundaries: configs, weights, checkpoints and data.
#[derive(Debug, thiserror::Error)]
pub enum PetError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A config field holds a value that cannot be used.
    #[error("invalid config field `{field}`: {reason}")]
    InvalidConfig {
        /// The field, by its serialized name.
        field: String,
        /// Why the value is rejected.
        reason: String,
    },
    /// A tensor has a different shape than its destination.
    #[error("shape mismatch for `{path}`: expected {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// The parameter path.
        path: String,
        /// The shape the module expects.
        expected: Vec<usize>,
        /// The shape found in the file.
        found: Vec<usize>,
    },
    /// Parameters the module needs are absent from the file.
    #[error("{file}: missing weights: {}", keys.join(", "))]
    MissingWeights {
        /// The file read.
        file: String,
        /// The absent keys.
        keys: Vec<String>,
    },
    /// The file holds keys that no parameter of the module takes.
    #[error("{file}: unexpected weights: {}", keys.join(", "))]
    UnexpectedWeights {
        /// The file read.
        file: String,
        /// The unused keys.
        keys: Vec<String>,
    },
    /// A safetensors or JSON file is malformed.
    #[error("{path}: malformed file: {reason}")]
    Format {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A float tensor of a weights, checkpoint or adapter file holds NaN or ±inf.
    #[error(
        "{path}: tensor `{key}` holds a non-finite value (NaN or infinity) at flat index {index}"
    )]
    NonFinite {
        /// The file at fault.
        path: PathBuf,
        /// The tensor's key.
        key: String,
        /// Flat index of the first non-finite value.
        index: usize,
    },
    /// A delta checkpoint was made for another backbone.
    #[error(
        "{path}: delta was trained on backbone `{expected}`, but the loaded backbone is `{found}`"
    )]
    BackboneMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// The identity recorded in the checkpoint.
        expected: String,
        /// The identity of the backbone it is loaded onto.
        found: String,
    },
    /// A data file holds a line that cannot be parsed.
    #[error("{path}:{line}: {reason}")]
    Data {
        /// The data file.
        path: PathBuf,
        /// One-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// An output path that would destroy an input, a link or special file, or an existing
    /// output without overwrite.
    #[error("refusing to write {}: {reason}", path.display())]
    OutputRefused {
        /// The output path.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// Training reached a loss or gradient norm that is not a finite number.
    #[error(
        "training diverged at epoch {epoch}, step {step}: the {quantity} is {value}; {cause}; \
         nothing of this run was saved"
    )]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based optimizer step (the step being taken).
        step: usize,
        /// `loss` or `gradient norm`.
        quantity: &'static str,
        /// The value read (NaN or infinite).
        value: f64,
        /// The likely cause and what to try.
        cause: String,
    },
    /// A row of a data file that the model cannot take: a token id past the vocabulary, a
    /// token type past `type_vocab_size`, more tokens than positions, no token.
    #[error("{path}:{line}: {violation}")]
    Input {
        /// The data file.
        path: PathBuf,
        /// One-based line number of the row (its first line).
        line: usize,
        /// What does not fit, and the limit.
        violation: crate::limits::InputViolation,
    },
    /// A data file with no example to train on, score or predict: a score of an empty file
    /// would mean nothing.
    #[error("{path}: {reason}")]
    EmptyData {
        /// The data file.
        path: PathBuf,
        /// What is missing (`no example`, `no training item`).
        reason: String,
    },
}

/// Result alias of pet-core.
pub type Result<T, E = PetError> = std::result::Result<T, E>;

impl PetError {
    /// An [`PetError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// An [`PetError::InvalidConfig`] for `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig { field: field.into(), reason: reason.into() }
    }

    /// A [`PetError::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Self::Format { path: path.into(), reason: reason.to_string() }
    }
}
