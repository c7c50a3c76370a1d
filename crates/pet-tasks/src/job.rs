//! A training job as a TOML file holds it: the keys every task shares (model, data, method,
//! batching, output, `[optim]`) and the task's own options beside them (`max_length`, `crf`,
//! `doc_stride`, ...: [`TaskKind::Options`] of the task named by `task`), checked by that task
//! when the job is parsed, so that a misspelt key is refused by name before anything runs.

use std::path::PathBuf;

use pet_core::delta::set::DeltaSpec;
use pet_core::task::TaskKind;
use pet_core::task::train::TrainPlan;
use pet_core::train::TrainConfig;
use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::registry::{KindVisitor, visit_kind};

fn default_batch_size() -> usize {
    32
}

/// A training job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    /// Model folder, or the name of an asset of `datasets/`.
    pub model: String,
    /// The task's name in the registry: `classification` (JSONL/CSV/TSV with `text`,
    /// `text_pair`, `label`), `tagging` (CoNLL columns `token tag`, BIO tags) or `qa` (SQuAD
    /// v1.1 JSON).
    pub task: String,
    /// Training data: a file, or `ASSET:FILE` inside a fetched asset.
    pub train: String,
    /// Dev data, for best-epoch selection.
    pub dev: String,
    /// Test data, evaluated with the best epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// Method preset (`ptuning-v2`, `prefix`, `prompt`, `lora`, `adapter`, `bitfit`, `full`, or
    /// several joined by `+`).
    pub method: String,
    /// Explicit delta settings, replacing the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaSpec>,
    /// Rows per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Train on a seeded subset of this many rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_train_examples: Option<usize>,
    /// Evaluate on the first this many rows of dev and test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_eval_examples: Option<usize>,
    /// Output folder.
    pub output: PathBuf,
    /// The task's own options (every other key of the file); [`Job::parse`] fills in their
    /// defaults.
    #[serde(flatten)]
    pub options: toml::Table,
    /// Optimization.
    #[serde(default)]
    pub optim: TrainConfig,
}

/// The options of a task, read from a job's table and written back with defaults filled in.
struct ResolveOptions<'a>(&'a toml::Table);

impl KindVisitor for ResolveOptions<'_> {
    type Output = Result<toml::Table, String>;

    fn visit<T: TaskKind>(self) -> Result<toml::Table, String> {
        let options: T::Options =
            toml::Value::Table(self.0.clone()).try_into().map_err(|e| e.to_string())?;
        match toml::Value::try_from(&options).map_err(|e| e.to_string())? {
            toml::Value::Table(table) => Ok(table),
            other => Err(format!("options of task `{}` are not a table: {other}", T::NAME)),
        }
    }
}

impl Job {
    /// Parses a job file's text; `source` names it in errors.
    ///
    /// # Errors
    /// [`TaskError::Job`] when the TOML is malformed, lacks a shared key, or holds a key that is
    /// neither shared nor an option of its task; [`TaskError::UnknownTask`] for an unknown task.
    pub fn parse(text: &str, source: &str) -> Result<Self, TaskError> {
        let job_error = |reason: String| TaskError::Job { job: source.to_string(), reason };
        let mut job: Self = toml::from_str(text).map_err(|e| job_error(e.to_string()))?;
        job.options = job.resolved_options().map_err(|e| match e {
            TaskError::Job { reason, .. } => job_error(reason),
            other => other,
        })?;
        Ok(job)
    }

    /// The task's options of this job with their defaults filled in.
    ///
    /// # Errors
    /// [`TaskError::Job`] when a key is not an option of the task or holds a wrong value.
    pub fn resolved_options(&self) -> Result<toml::Table, TaskError> {
        visit_kind(&self.task, ResolveOptions(&self.options))?.map_err(|reason| TaskError::Job {
            job: "(options)".into(),
            reason: format!("task `{}`: {reason}", self.task),
        })
    }

    /// The delta settings: the explicit ones, or the method's preset.
    ///
    /// # Errors
    /// For an unknown method.
    pub fn delta_spec(&self) -> Result<DeltaSpec, TaskError> {
        match &self.delta {
            Some(spec) => Ok(spec.clone()),
            None => Ok(DeltaSpec::preset(&self.method)?),
        }
    }

    /// The plan [`train_task`](pet_core::task::train::train_task) runs: this job with its
    /// model folder and data files resolved to local paths.
    ///
    /// # Errors
    /// For an unknown method.
    pub fn plan(
        &self,
        folder: PathBuf,
        train: PathBuf,
        dev: PathBuf,
        test: Option<PathBuf>,
    ) -> Result<TrainPlan, TaskError> {
        Ok(TrainPlan {
            folder,
            train,
            dev,
            test,
            method: self.method.clone(),
            spec: self.delta_spec()?,
            batch_size: self.batch_size,
            max_train_examples: self.max_train_examples,
            max_eval_examples: self.max_eval_examples,
            output: self.output.clone(),
            optim: self.optim.clone(),
        })
    }

    /// The job as TOML, with the task's options resolved.
    ///
    /// # Errors
    /// [`TaskError::Job`] when a value cannot be written as TOML.
    pub fn to_toml(&self) -> Result<String, TaskError> {
        toml::to_string_pretty(self)
            .map_err(|e| TaskError::Job { job: "the resolved job".into(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "model = \"m\"\ntask = \"tagging\"\ntrain = \"t\"\ndev = \"d\"\n\
                       method = \"lora\"\noutput = \"o\"\ncrf = true\n[optim]\nepochs = 1\n";

    #[test]
    fn task_options_sit_beside_the_shared_keys_with_defaults_filled_in() {
        let job = Job::parse(JOB, "job.toml").expect("job");
        assert_eq!(job.options.get("crf"), Some(&toml::Value::Boolean(true)));
        assert_eq!(job.options.get("max_length"), Some(&toml::Value::Integer(128)));
        assert_eq!(job.optim.epochs, 1);
        let again = Job::parse(&job.to_toml().expect("toml"), "again").expect("round trip");
        assert_eq!(again.options, job.options);
    }

    #[test]
    fn an_option_of_another_task_is_refused_by_name() {
        let text = JOB.replace("crf = true", "doc_stride = 8");
        let err = Job::parse(&text, "job.toml").expect_err("a QA option").to_string();
        assert!(err.contains("doc_stride") && err.contains("job.toml"), "{err}");
    }

    #[test]
    fn an_unknown_task_is_refused() {
        let text = JOB.replace("tagging", "parsing");
        let err = Job::parse(&text, "job.toml").expect_err("unknown").to_string();
        assert!(err.contains("`parsing`"), "{err}");
    }
}
