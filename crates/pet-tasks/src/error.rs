//! The error type of pet-tasks.

use std::path::PathBuf;

/// Errors of choosing, configuring and running a task by name.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// No registered task has this name.
    #[error("task `{name}` is not supported; expected one of: {}", known.join(", "))]
    UnknownTask {
        /// The name asked for.
        name: String,
        /// The registered names.
        known: Vec<&'static str>,
    },
    /// A PEFT adapter whose `task_type` no registered task reads.
    #[error(
        "{}: task_type {task_type:?} has no task head; pet predict reads {} adapters (pet encode reads any)",
        config.display(),
        known.join(", ")
    )]
    NoPeftTask {
        /// `adapter_config.json`.
        config: PathBuf,
        /// Its `task_type`.
        task_type: Option<String>,
        /// The PEFT task types of the registered tasks.
        known: Vec<&'static str>,
    },
    /// A job file that cannot be read, or whose task options are refused.
    #[error("reading job {job}: {reason}")]
    Job {
        /// The job file, as the caller names it.
        job: String,
        /// What is wrong.
        reason: String,
    },
    /// A job field holding a value that cannot be used.
    #[error("job {job}: `{field}` {reason}")]
    JobField {
        /// The job file, as the caller names it.
        job: String,
        /// The field (`batch_size`, `optim.learning_rate`, ...).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// An error of pet-core.
    #[error(transparent)]
    Core(#[from] pet_core::PetError),
    /// An error of the task's own crate (data, tokenizer, model folder).
    #[error(transparent)]
    Task(Box<dyn std::error::Error + Send + Sync>),
}

impl TaskError {
    /// A task's own error.
    pub fn task(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Task(Box::new(error))
    }
}
