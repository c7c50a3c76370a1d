//! The registry: every task pet knows, by the name job files and checkpoints use. Code that runs
//! on a task chosen at run time is a visitor, generic over the task: [`visit`] calls it with the
//! implementation of the name (with a backend), [`visit_kind`] without one (options only).
//!
//! Adding a task is one implementation of [`Task`] in its domain crate and one line in the
//! `registry!` list at the bottom of this file.

use burn::tensor::backend::AutodiffBackend;
use pet_core::task::{Task, TaskKind};

use crate::error::TaskError;

/// Work on backend `B` for a task chosen by name.
pub trait TaskVisitor<B: AutodiffBackend> {
    /// What the work returns.
    type Output;

    /// Runs the work with task `T`.
    fn visit<T: Task<B>>(self) -> Self::Output;
}

/// Work that needs a task's name and options only, no backend.
pub trait KindVisitor {
    /// What the work returns.
    type Output;

    /// Runs the work with task `T`.
    fn visit<T: TaskKind>(self) -> Self::Output;
}

/// Defines [`TASKS`], [`visit`], [`visit_kind`] and [`peft_task`] over the listed tasks.
macro_rules! registry {
    ($($task:ty),+ $(,)?) => {
        /// The names of every registered task.
        pub const TASKS: &[&str] = &[$(<$task as TaskKind>::NAME),+];

        /// Runs `visitor` with the task named `name`.
        ///
        /// # Errors
        /// [`TaskError::UnknownTask`] when no task has that name.
        pub fn visit<B: AutodiffBackend, V: TaskVisitor<B>>(
            name: &str,
            visitor: V,
        ) -> Result<V::Output, TaskError> {
            $(if name == <$task as TaskKind>::NAME {
                return Ok(visitor.visit::<$task>());
            })+
            Err(unknown(name))
        }

        /// Runs `visitor` with the kind of the task named `name`.
        ///
        /// # Errors
        /// [`TaskError::UnknownTask`] when no task has that name.
        pub fn visit_kind<V: KindVisitor>(name: &str, visitor: V) -> Result<V::Output, TaskError> {
            $(if name == <$task as TaskKind>::NAME {
                return Ok(visitor.visit::<$task>());
            })+
            Err(unknown(name))
        }

        /// The name of the task that reads PEFT adapters of `task_type` (`SEQ_CLS`, ...).
        pub fn peft_task(task_type: &str) -> Option<&'static str> {
            $(if <$task as TaskKind>::PEFT_TASK_TYPE == Some(task_type) {
                return Some(<$task as TaskKind>::NAME);
            })+
            None
        }

        /// The PEFT task types some registered task reads.
        pub fn peft_task_types() -> Vec<&'static str> {
            [$(<$task as TaskKind>::PEFT_TASK_TYPE),+].into_iter().flatten().collect()
        }
    };
}

fn unknown(name: &str) -> TaskError {
    TaskError::UnknownTask { name: name.to_string(), known: TASKS.to_vec() }
}

registry! {
    pet_nlp::tasks::Classification,
    pet_nlp::tasks::Tagging,
    pet_nlp::tasks::QuestionAnswering,
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Name;

    impl KindVisitor for Name {
        type Output = &'static str;

        fn visit<T: TaskKind>(self) -> &'static str {
            T::NAME
        }
    }

    #[test]
    fn every_task_is_found_by_its_name() {
        for name in TASKS {
            assert_eq!(visit_kind(name, Name).expect("registered"), *name);
        }
        assert_eq!(TASKS, ["classification", "tagging", "qa"]);
    }

    #[test]
    fn an_unknown_task_lists_the_known_ones() {
        let err = visit_kind("translation", Name).expect_err("unknown").to_string();
        assert!(err.contains("`translation`") && err.contains("classification, tagging, qa"));
    }

    #[test]
    fn peft_task_types_map_to_tasks() {
        assert_eq!(peft_task("SEQ_CLS"), Some("classification"));
        assert_eq!(peft_task("TOKEN_CLS"), Some("tagging"));
        assert_eq!(peft_task("QUESTION_ANS"), Some("qa"));
        assert_eq!(peft_task("FEATURE_EXTRACTION"), None);
        assert_eq!(peft_task_types(), ["SEQ_CLS", "TOKEN_CLS", "QUESTION_ANS"]);
    }
}
