//! `pet train`: tune a delta on a model folder for a task, from a TOML job file (or the embedded
//! default job) with command-line overrides. The job names its task and holds the task's options;
//! this module resolves asset names to local paths, writes the resolved job, prints what trains,
//! and hands the rest to [`pet_tasks::run::train`]: the training of any task, written once over
//! pet-core's `Task` trait (parameter report, progress bar, best epoch on dev, test metrics, the
//! delta checkpoint, the metrics log and the results in the output folder).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::AutodiffBackend;

use crate::device::BackendJob;

pub use pet_core::task::train::RunSummary;
pub use pet_tasks::Job;

/// The embedded default job.
pub const DEFAULT_JOB: &str = include_str!("../jobs/spamassassin-ptuning-v2.toml");

/// A folder or asset name, resolved to a local folder (fetching the asset when needed).
///
/// # Errors
/// When the asset cannot be fetched.
pub fn resolve_folder(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    crate::fetch::fetch(spec)
}

/// A file or `ASSET:FILE`, resolved to a local path.
///
/// # Errors
/// When the asset cannot be fetched.
pub fn resolve_file(spec: &str) -> Result<PathBuf> {
    match spec.split_once(':') {
        Some((asset, file)) if !Path::new(spec).exists() => Ok(resolve_folder(asset)?.join(file)),
        _ => Ok(PathBuf::from(spec)),
    }
}

/// A job to run on the device the command line selects.
pub struct TrainJob(pub Job);

impl BackendJob for TrainJob {
    type Output = RunSummary;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: &str) -> Result<RunSummary> {
        let job = self.0;
        let folder = resolve_folder(&job.model)?;
        let test = job.test.as_deref().map(resolve_file).transpose()?;
        let plan =
            job.plan(folder.clone(), resolve_file(&job.train)?, resolve_file(&job.dev)?, test)?;
        std::fs::create_dir_all(&job.output)
            .with_context(|| format!("creating {}", job.output.display()))?;
        std::fs::write(job.output.join("job.toml"), job.to_toml()?).context("writing job.toml")?;
        let summary = pet_tasks::run::train::<B>(&job, &plan, &device, |start| {
            eprintln!("{}", start.report);
            eprintln!(
                "training {} for {} on {} ({} train / {} dev rows, {} labels, backend {backend})",
                job.method,
                job.task,
                folder.display(),
                start.train_items,
                start.dev_items,
                start.num_labels
            );
        })?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_job_parses_and_names_its_method() {
        let job = Job::parse(DEFAULT_JOB, "default").expect("default job");
        assert_eq!(job.method, "ptuning-v2");
        assert_eq!(job.options.get("max_length"), Some(&toml::Value::Integer(64)));
        assert!(job.delta_spec().expect("spec").prefix.is_some());
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name() {
        let text = DEFAULT_JOB.replace("max_length = 64", "max_lenght = 64");
        let err = format!("{:#}", Job::parse(&text, "job.toml").expect_err("typo"));
        assert!(err.contains("max_lenght") && err.contains("job.toml"), "{err}");
    }
}
