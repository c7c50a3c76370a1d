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
    /// An input holds text, but the model folder has no `tokenizer.json` to tokenize it.
    #[error(
        "{}: the input holds text, but the model folder {} has no tokenizer.json; give pre-tokenized lines (`input_ids`, `attention_mask`, optional `token_type_ids`) or a folder with a tokenizer",
        input.display(),
        folder.display()
    )]
    NoTokenizer {
        /// The model folder.
        folder: PathBuf,
        /// The input file.
        input: PathBuf,
    },
    /// An example of a data file that the task cannot use.
    #[error("{}: example {index}: {reason}", path.display())]
    Example {
        /// The data file.
        path: PathBuf,
        /// One-based index of the example (sentence, row) in the file.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A PEFT adapter that saved no task head, over a folder without task layers.
    #[error(
        "{file}: no `{key}`: the adapter saved no task head (`modules_to_save`) and the model folder is not a task checkpoint"
    )]
    NoTaskHead {
        /// The files searched.
        file: String,
        /// The head weight looked for.
        key: String,
    },
}

impl NlpError {
    /// `error` as an error of the config file at `path`: pet-core's
    /// [`InvalidConfig`](pet_core::PetError::InvalidConfig) (a value or size check) becomes
    /// [`NlpError::Config`] naming the file and the field; others pass through.
    pub fn at_config(path: &std::path::Path, error: pet_core::PetError) -> Self {
        match error {
            pet_core::PetError::InvalidConfig { field, reason } => {
                Self::Config { path: path.to_path_buf(), field, reason }
            }
            other => Self::Core(other),
        }
    }

    /// A [`NlpError::Example`] for the one-based example `index` of `path`.
    pub fn example(path: &std::path::Path, index: usize, reason: impl Into<String>) -> Self {
        Self::Example { path: path.to_path_buf(), index, reason: reason.into() }
    }

    /// A [`NlpError::Tokenizer`] for `path`.
    pub fn tokenizer(path: &std::path::Path, reason: impl ToString) -> Self {
        Self::Tokenizer { path: path.to_path_buf(), reason: reason.to_string() }
    }
}

/// Result alias of pet-nlp.
pub type Result<T, E = NlpError> = std::result::Result<T, E>;
