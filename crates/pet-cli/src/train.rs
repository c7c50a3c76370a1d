//! `pet train`: tune a delta on a model folder for a task, from a TOML job file (or the embedded
//! default job) with command-line overrides. The job names its task and holds the task's options;
//! this module resolves asset names to local paths, writes the resolved job, prints what trains,
//! and hands the rest to [`pet_tasks::run::train`]: the training of any task, written once over
//! pet-core's `Task` trait (parameter report, progress bar, best epoch on dev, test metrics, the
//! delta checkpoint, the metrics log and the results in the output folder).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;

use crate::device::BackendJob;

pub use pet_core::task::train::RunSummary;
pub use pet_tasks::Job;

/// The embedded default job.
pub const DEFAULT_JOB: &str = include_str!("../jobs/spamassassin-ptuning-v2.toml");

/// Whether `spec` reads as a path rather than an asset name: it holds a path separator or
/// starts with `.` or `~`.
fn looks_like_path(spec: &str) -> bool {
    spec.contains('/') || spec.contains(std::path::MAIN_SEPARATOR) || spec.starts_with(['.', '~'])
}

/// A folder or asset name, resolved to a local folder (fetching the asset when needed).
///
/// # Errors
/// "no such file or folder: SPEC" for a missing path (one that [`looks_like_path`]); "not a
/// folder" for a file; otherwise when the asset cannot be fetched.
pub fn resolve_folder(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path.exists() {
        bail!(
            "{spec}: not a folder; expected a model folder (config.json, weights) or an asset name"
        );
    }
    if looks_like_path(spec) {
        bail!("no such file or folder: {spec}");
    }
    crate::fetch::fetch(spec)
}

/// A file or `ASSET:FILE`, resolved to a local path.
///
/// # Errors
/// When the asset cannot be fetched.
pub fn resolve_file(spec: &str) -> Result<PathBuf> {
    match spec.split_once(':') {
        Some((asset, file)) if !Path::new(spec).exists() && !looks_like_path(asset) => {
            Ok(resolve_folder(asset)?.join(file))
        }
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
    fn a_missing_model_path_is_named_as_a_path_not_an_asset() {
        for spec in ["./no-such-model", "/nonexistent/model", "models/x", "~/m"] {
            let err = format!("{:#}", resolve_folder(spec).expect_err(spec));
            assert_eq!(err, format!("no such file or folder: {spec}"));
        }
        let file = format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
        let err = format!("{:#}", resolve_folder(&file).expect_err("a file"));
        assert!(err.contains("not a folder") && err.contains(&file), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name() {
        let text = DEFAULT_JOB.replace("max_length = 64", "max_lenght = 64");
        let err = format!("{:#}", Job::parse(&text, "job.toml").expect_err("typo"));
        assert!(err.contains("max_lenght") && err.contains("job.toml"), "{err}");
    }
}
