//! pet-tasks: every task pet knows, by name, above the domain crates.
//!
//! The [`Task`](pet_core::task::Task) trait lives in pet-core and each domain crate implements
//! it (pet-nlp: classification, tagging, QA). This crate holds what must know all of them: the
//! [`registry`] (a task's name to its implementation; adding a task is one line there), job files
//! whose `task` key names the task and whose other keys include the task's options ([`job`]),
//! and training, restoring and scoring a task chosen by name at run time ([`run`]). The `pet`
//! command line is argument parsing and printing over these functions.
//!
//! # Quick start
//!
//! A job file names its task; training, restoring and scoring need no task type (the whole
//! program, which trains a tagger and scores its checkpoint, is `examples/restore_and_score.rs`:
//! `cargo run -p pet-tasks --example restore_and_score`):
//!
//! ```no_run
//! # fn main() -> Result<(), pet_tasks::TaskError> {
//! let job = pet_tasks::Job::parse(
//!     "model = \"bert\"\ntask = \"classification\"\ntrain = \"t.jsonl\"\ndev = \"d.jsonl\"\n\
//!      method = \"lora\"\noutput = \"out\"\nmax_length = 64\n",
//!     "job.toml",
//! )?;
//! assert_eq!(job.task, "classification");
//! # Ok(()) }
//! ```

pub mod error;
pub mod job;
pub mod registry;
pub mod run;

pub use error::TaskError;
pub use job::Job;
