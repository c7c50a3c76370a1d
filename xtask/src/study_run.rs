//! Runs the study of `study.rs` through the resume cache: for each data set and method, the
//! grid at the first seed, the choice of the learning rate on dev, then the other seeds at
//! that rate. Each run is `pet train` on the committed job file with the protocol's flags; its
//! record is `results.json` plus what made it (job, method, rate, seed, phase, command, commit,
//! code version, build).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cache::{hash_text, key_text};
use crate::progress::Progress;
use crate::reproduce::{Profile, RunContext};
use crate::study::{self, Task, Trial};

/// What a task's runs share: the committed job file and the manifests of its assets.
struct TaskInputs {
    job: String,
    assets: String,
}

impl TaskInputs {
    fn read(root: &Path, task: &Task) -> Result<Self> {
        let path = root.join("crates/pet-cli/jobs").join(format!("{}.toml", task.job));
        let job = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut assets = String::new();
        for asset in task.assets {
            let manifest = root.join("datasets").join(format!("{asset}.toml"));
            let text = std::fs::read_to_string(&manifest)
                .with_context(|| format!("reading {}", manifest.display()))?;
            assets.push_str(&format!("-- {asset}\n{text}"));
        }
        Ok(Self { job, assets })
    }
}

/// The metric `key` of `split` in a record.
pub fn metric(record: &Value, split: &str, key: &str) -> Option<f64> {
    record[split][key].as_f64()
}

/// Trains one trial in `folder` and returns its record.
fn train(
    context: &RunContext<'_>,
    trial: &Trial<'_>,
    inputs: &TaskInputs,
    phase: &str,
    folder: &Path,
) -> Result<Value> {
    let job_path = folder.join("job-input.toml");
    std::fs::write(&job_path, trial.job_text(&inputs.job))
        .with_context(|| format!("writing {}", job_path.display()))?;
    let output = folder.join("output");
    let log_path = folder.join("train.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let status = Command::new(&context.pet.binary)
        .arg("train")
        .arg("--config")
        .arg(&job_path)
        .args(trial.flags())
        .arg("--output")
        .arg(&output)
        .current_dir(context.root)
        .stdout(log.try_clone().context("sharing the log file")?)
        .stderr(log)
        .status()
        .with_context(|| format!("starting {}", context.pet.binary.display()))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("pet train ({}) failed with {status}:\n{}", trial.label(), tail.join("\n"));
    }
    let results_path = output.join("results.json");
    let text = std::fs::read_to_string(&results_path)
        .with_context(|| format!("reading {}", results_path.display()))?;
    let mut record: Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", results_path.display()))?;
    let eval =
        trial.protocol.eval_rows.map_or(String::new(), |n| format!(" (max_eval_examples = {n})"));
    record["job"] = trial.task.job.into();
    record["method"] = trial.method.name.into();
    record["learning_rate"] = trial.learning_rate.into();
    record["seed"] = trial.seed.into();
    record["phase"] = phase.into();
    record["command"] = format!(
        "pet train --config crates/pet-cli/jobs/{}.toml{eval} {}",
        trial.task.job,
        trial.flags().join(" ")
    )
    .into();
    record["git"] = crate::git_sha(context.root).into();
    record["code_version"] = context.code.into();
    record["build"] = context.pet.build.into();
    Ok(record)
}

/// Runs `trial` unless the cache holds it; prints progress.
fn run_trial(
    context: &RunContext<'_>,
    profile: Profile,
    trial: &Trial<'_>,
    inputs: &TaskInputs,
    phase: &str,
    progress: &mut Progress,
) -> Result<Value> {
    let flags = trial.flags().join(" ");
    let job = trial.job_text(&inputs.job);
    let key = hash_text(
        context.root,
        &key_text(&[
            ("job", &job),
            ("flags", &flags),
            ("build", context.pet.build),
            ("code", context.code),
            ("assets", &inputs.assets),
        ]),
    )?;
    progress.start(&trial.label());
    let started = Instant::now();
    let cached =
        context.cache.get_or_run(&key, |folder| train(context, trial, inputs, phase, folder))?;
    progress.finish(
        trial.estimated_seconds(profile),
        cached.reused,
        started.elapsed().as_secs_f64(),
    );
    let mut record = cached.record;
    // A run reused from a grid may serve as a seed run and the other way round.
    record["phase"] = phase.into();
    Ok(record)
}

/// Runs the study of `task` under `profile`; one record per run, grid runs first per method.
///
/// # Errors
/// When a run fails or its results cannot be read.
pub fn run_study(
    context: &RunContext<'_>,
    profile: Profile,
    task: &Task,
    progress: &mut Progress,
) -> Result<Vec<Value>> {
    let mut records = Vec::new();
    let inputs = TaskInputs::read(context.root, task)?;
    for method in study::methods(profile) {
        let mut grid = Vec::new();
        let mut scores = Vec::new();
        for trial in study::grid_trials(profile, task, method) {
            let record = run_trial(context, profile, &trial, &inputs, "grid", progress)?;
            let dev = metric(&record, "dev", task.metric).with_context(|| {
                format!("{}: no dev `{}` in its results", trial.label(), task.metric)
            })?;
            scores.push((trial.learning_rate, dev));
            grid.push(record);
        }
        let chosen = study::choose(&scores)
            .with_context(|| format!("{} {}: an empty grid", task.label, method.name))?;
        for trial in study::seed_trials(profile, task, method, chosen) {
            grid.push(run_trial(context, profile, &trial, &inputs, "seed", progress)?);
        }
        for record in &mut grid {
            record["chosen_learning_rate"] = chosen.into();
        }
        records.extend(grid);
    }
    Ok(records)
}
