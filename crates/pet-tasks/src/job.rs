//! A training job as a TOML file holds it: the keys every task shares (model, data, method,
//! batching, output, `[optim]`) and the task's own options beside them (`max_length`, `crf`,
//! `doc_stride`, ...: [`TaskKind::Options`] of the task named by `task`), checked by that task
//! when the job is parsed, so that a misspelt key is refused by name before anything runs.

use std::path::PathBuf;

use pet_core::PetError;
use pet_core::delta::set::DeltaSpec;
use pet_core::task::TaskKind;
use pet_core::task::train::TrainPlan;
use pet_core::train::TrainConfig;
use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::registry::{KindVisitor, visit_kind};

/// Task options that are token counts, at least 1 whichever task has them.
const LENGTH_OPTIONS: &[&str] = &["max_length", "max_answer_length"];

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
    /// Output folder, written as a unit when the run ends.
    pub output: PathBuf,
    /// Replace an existing output folder (`--overwrite`); a run-time choice, not written to
    /// the job a run records.
    #[serde(default, skip_serializing)]
    pub overwrite: bool,
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
        job.validate(source)?;
        Ok(job)
    }

    /// Checks the numbers of the job: sizes and lengths at least 1, the `[optim]` settings
    /// ([`TrainConfig::validate`]); `source` names the job in errors.
    ///
    /// # Errors
    /// [`TaskError::JobField`] naming the first bad field.
    pub fn validate(&self, source: &str) -> Result<(), TaskError> {
        let field = |field: &str, reason: String| TaskError::JobField {
            job: source.to_string(),
            field: field.to_string(),
            reason,
        };
        let at_least_one = |name: &str, value: Option<usize>| match value {
            Some(0) => Err(field(name, "must be at least 1, got 0".into())),
            _ => Ok(()),
        };
        at_least_one("batch_size", Some(self.batch_size))?;
        at_least_one("max_train_examples", self.max_train_examples)?;
        at_least_one("max_eval_examples", self.max_eval_examples)?;
        for key in LENGTH_OPTIONS {
            let value = self.options.get(*key).and_then(toml::Value::as_integer);
            if let Some(value) = value.filter(|v| *v < 1) {
                return Err(field(key, format!("must be at least 1, got {value}")));
            }
        }
        self.optim.validate().map_err(|e| match e {
            PetError::InvalidConfig { field: name, reason } => {
                field(&format!("optim.{name}"), reason)
            }
            other => TaskError::Core(other),
        })
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
    /// model folder and data files resolved to local paths, recording the job as `job.toml` in
    /// the output folder.
    ///
    /// # Errors
    /// For an unknown method, or a job that cannot be written as TOML.
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
            overwrite: self.overwrite,
            extra_files: vec![("job.toml".into(), self.to_toml()?)],
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
    fn bad_numbers_are_refused_naming_the_job_and_field() {
        // Each case replaces the first line with the second.
        let cases = [
            ("crf = true", "batch_size = 0", "batch_size"),
            ("crf = true", "max_train_examples = 0", "max_train_examples"),
            ("crf = true", "max_length = 0", "max_length"),
            ("epochs = 1", "epochs = 0", "optim.epochs"),
            ("epochs = 1", "learning_rate = -1.0", "optim.learning_rate"),
            ("epochs = 1", "learning_rate = nan", "optim.learning_rate"),
            ("epochs = 1", "weight_decay = -0.5", "optim.weight_decay"),
            ("epochs = 1", "weight_decay = inf", "optim.weight_decay"),
        ];
        for (anchor, line, field) in cases {
            let text = JOB.replace(anchor, line);
            let err = Job::parse(&text, "job.toml").expect_err(line).to_string();
            assert!(err.contains(&format!("`{field}`")) && err.contains("job.toml"), "{err}");
        }
    }

    #[test]
    fn overwrite_is_read_but_not_recorded() {
        let job = Job::parse(&JOB.replace("crf = true", "crf = true\noverwrite = true"), "j")
            .expect("job");
        assert!(job.overwrite);
        assert!(!job.to_toml().expect("toml").contains("overwrite"));
    }

    #[test]
    fn an_unknown_task_is_refused() {
        let text = JOB.replace("tagging", "parsing");
        let err = Job::parse(&text, "job.toml").expect_err("unknown").to_string();
        assert!(err.contains("`parsing`"), "{err}");
    }
}
