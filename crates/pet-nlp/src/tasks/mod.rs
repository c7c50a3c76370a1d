//! Text tasks: each is a task model (backbone + delta + head, [`model::TaskModel`]) with its
//! batches, loss and evaluation, and a [`text::TextKind`] that makes [`text::TextTask`] a
//! [`pet_core::task::Task`] for `pet train`, `pet eval` and `pet predict`:
//! [`classification::Classification`], [`tagging::Tagging`] and [`qa::QuestionAnswering`].

pub mod classification;
pub mod model;
pub mod peft;
pub mod qa;
pub mod tagging;
pub mod text;

pub use classification::Classification;
pub use qa::QuestionAnswering;
pub use tagging::Tagging;
