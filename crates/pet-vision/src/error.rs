//! The error type of pet-vision.

use std::path::PathBuf;

/// Errors at pet-vision's boundaries: model folders and configs.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// An error of pet-core (weights, checkpoints, configs).
    #[error(transparent)]
    Core(#[from] pet_core::PetError),
    /// A `config.json` field that pet cannot use.
    #[error("{}: field `{field}`: {reason}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// The field.
        field: String,
        /// Why it is refused.
        reason: String,
    },
}

impl VisionError {
    /// `error` with the config file `path` named: pet-core's invalid-config errors become
    /// [`VisionError::Config`], others pass through.
    pub fn at_config(path: &std::path::Path, error: pet_core::PetError) -> Self {
        match error {
            pet_core::PetError::InvalidConfig { field, reason } => {
                Self::Config { path: path.to_path_buf(), field, reason }
            }
            other => Self::Core(other),
        }
    }
}

/// pet-vision's result type.
pub type Result<T, E = VisionError> = std::result::Result<T, E>;
