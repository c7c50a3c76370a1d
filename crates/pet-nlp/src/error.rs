//! The error type of pet-nlp.

use std::path::PathBuf;

/// Errors at pet-nlp's boundaries: model folders, configs, data.
#[derive(Debug, thiserror::Error)]
pub enum NlpError {
    /// An error of pet-core (weights, checkpoints, configs).
    #[error(transparent)]
    Core(#[from] pet_core::PetError),
    /// A `config.json` field that pet cannot use.
    #[error("{path}: field `{field}`: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The field.
        field: String,
        /// Why it is refused.
        reason: String,
    },
    /// `tokenizer.json` cannot be read or cannot encode an input.
    #[error("{path}: {reason}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A fetched data set's raw files cannot be prepared (an empty folder or file).
    #[error("{path}: {reason}")]
    Dataset {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl NlpError {
    /// A [`NlpError::Tokenizer`] for `path`.
    pub fn tokenizer(path: &std::path::Path, reason: impl ToString) -> Self {
        Self::Tokenizer { path: path.to_path_buf(), reason: reason.to_string() }
    }
}

/// Result alias of pet-nlp.
pub type Result<T, E = NlpError> = std::result::Result<T, E>;
