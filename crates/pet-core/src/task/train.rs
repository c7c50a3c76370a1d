//! Training a task, written once for every [`Task`]: read its splits, build the task model from
//! the model folder and the deltas, [`fit`] it with best-epoch selection on dev, score the best
//! epoch on test, and save the delta checkpoint (deltas exported, head, trained backbone
//! parameters; metadata naming the task, the method and what the task records), the metrics log
//! (`metrics.jsonl`) and the results (`results.json`) into the output folder.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;
use serde_json::{Value, json};

use crate::backbone::Backbone;
use crate::checkpoint::DeltaCheckpoint;
use crate::delta::set::DeltaSpec;
use crate::error::PetError;
use crate::output::{Output, OutputKind};
use crate::report::ParamReport;
use crate::rng::SplitMix64;
use crate::task::{SplitRole, Task, read_nonempty_split};
use crate::train::{MetricsLog, TrainConfig, fit};

/// What to train: resolved paths and the shared settings of a job.
#[derive(Clone, Debug)]
pub struct TrainPlan {
    /// The model folder.
    pub folder: PathBuf,
    /// Training split.
    pub train: PathBuf,
    /// Dev split, for best-epoch selection.
    pub dev: PathBuf,
    /// Test split, scored with the best epoch.
    pub test: Option<PathBuf>,
    /// The method's name, as recorded in the checkpoint (`ptuning-v2`, `lora`, ...).
    pub method: String,
    /// The deltas and the trainability policy.
    pub spec: DeltaSpec,
    /// Rows per batch.
    pub batch_size: usize,
    /// Train on a seeded subset of this many items.
    pub max_train_examples: Option<usize>,
    /// Evaluate on the first this many rows of dev and test.
    pub max_eval_examples: Option<usize>,
    /// Output folder, written as a unit (see [`train_task`]).
    pub output: PathBuf,
    /// Replace an existing output folder (`--overwrite`); without it, one is refused.
    pub overwrite: bool,
    /// Further files of the run, `(name, text)`, written into the output folder with the
    /// results (the resolved `job.toml` of `pet train`).
    pub extra_files: Vec<(String, String)>,
    /// Optimization.
    pub optim: TrainConfig,
}

/// What is about to train, reported before the first epoch.
#[derive(Debug)]
pub struct TrainStart<'a> {
    /// Trainable and total parameters, by path prefix.
    pub report: &'a ParamReport,
    /// Training items (after the subset).
    pub train_items: usize,
    /// Dev items.
    pub dev_items: usize,
    /// Classes or tags of the task.
    pub num_labels: usize,
}

/// What a finished run reports (and writes to `results.json`).
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// 1-based best epoch.
    pub best_epoch: usize,
    /// Dev metrics of the best epoch.
    pub dev: BTreeMap<String, f64>,
    /// Test metrics of the best epoch, when a test set is given.
    pub test: Option<BTreeMap<String, f64>>,
    /// Trainable parameters.
    pub trainable: usize,
    /// All parameters.
    pub total: usize,
    /// Size of the saved delta checkpoint in bytes.
    pub delta_bytes: u64,
    /// Wall time of training and evaluation, in seconds.
    pub seconds: f64,
}

/// The training items, or a subset of `limit` of them drawn with `seed`.
fn subset(mut items: Vec<usize>, limit: Option<usize>, seed: u64) -> Vec<usize> {
    if let Some(limit) = limit {
        SplitMix64::new(seed).shuffle(&mut items);
        items.truncate(limit);
    }
    items
}

/// Trains task `T` with `options` as `plan` says on `device`; `on_start` hears what is about to
/// train once the model is built.
///
/// The backend is seeded with `plan.optim.seed` before the backbone loads, so deltas and head
/// initialize the same way in every run of the same plan.
///
/// The output folder is checked first ([`Output::checked`]: not an input, not above one, not a
/// link or special file, not existing unless `plan.overwrite`), the run writes into a fresh
/// sibling folder (metrics log, extra files, checkpoint, results), and that folder replaces the
/// output only when everything is written: a failed, diverged or killed run leaves the previous
/// output as it was and no temporary folder.
///
/// # Errors
/// When the output is refused, the model folder or a split cannot be read, the settings are
/// invalid, training diverges ([`PetError::Diverged`]), or an output file cannot be written.
pub fn train_task<B: AutodiffBackend, T: Task<B>>(
    plan: &TrainPlan,
    options: T::Options,
    device: &B::Device,
    on_start: impl FnOnce(&TrainStart<'_>),
) -> Result<RunSummary, T::Error> {
    let started = Instant::now();
    let mut inputs = vec![plan.folder.as_path(), plan.train.as_path(), plan.dev.as_path()];
    inputs.extend(plan.test.as_deref());
    let output = Output::checked(&plan.output, OutputKind::Folder, plan.overwrite, &inputs)?;
    plan.optim.validate()?;
    let mut task = T::new(&plan.folder, options)?;
    B::seed(device, plan.optim.seed);
    let backbone = plan.spec.trainability.apply(task.load_backbone(device)?);
    let delta = plan.spec.build(&backbone, device)?;
    task.limit_inputs(backbone.input_limits(&delta))?;
    let identity = backbone.identity();
    let train = read_nonempty_split(&mut task, &plan.train, SplitRole::Train, None)?;
    let items = subset(T::training_items(&train), plan.max_train_examples, plan.optim.seed);
    if items.is_empty() {
        let reason = match plan.max_train_examples {
            Some(0) => "no training item is drawn: max_train_examples is 0",
            _ => "no item to train on (every example of the file is skipped for training)",
        };
        let path = plan.train.clone();
        return Err(PetError::EmptyData { path, reason: reason.into() }.into());
    }
    let limit = plan.max_eval_examples;
    let dev = read_nonempty_split(&mut task, &plan.dev, SplitRole::Eval, limit)?;
    let test = match &plan.test {
        Some(path) => Some(read_nonempty_split(&mut task, path, SplitRole::Eval, limit)?),
        None => None,
    };
    let all = |split: &T::Split| (0..T::split_len(split)).collect::<Vec<_>>();
    let dev_batches = task.batches(&dev, &all(&dev), plan.batch_size);
    let model = task.assemble(backbone, delta, device);
    let report = ParamReport::of::<B, _>(&model, 2);
    on_start(&TrainStart {
        report: &report,
        train_items: items.len(),
        dev_items: T::split_len(&dev),
        num_labels: task.num_labels(),
    });
    let staged = output.stage()?;
    let folder = staged.path();
    for (name, text) in &plan.extra_files {
        let path = folder.join(name);
        std::fs::write(&path, text).map_err(|e| PetError::io(&path, e))?;
    }
    let mut log = MetricsLog::to_file(&folder.join("metrics.jsonl"))?;
    let outcome = fit(
        model,
        &plan.optim,
        device,
        |_, rng| {
            let mut order = items.clone();
            rng.shuffle(&mut order);
            task.batches(&train, &order, plan.batch_size)
        },
        |model| task.evaluate(model, &dev, &dev_batches),
        &mut log,
    )
    .map_err(|e| with_method_hint(e, &plan.spec))?;
    drop(log);
    let best = outcome.best;
    let test = test.map(|split| {
        let batches = task.batches(&split, &all(&split), plan.batch_size);
        task.evaluate(&best.valid(), &split, &batches).metrics
    });
    let dev = outcome.history[outcome.best_epoch - 1].evaluation.metrics.clone();
    let mut method = json!({
        "task": T::NAME,
        "method": plan.method,
        "delta": plan.spec.exported(),
    });
    if let Value::Object(map) = &mut method {
        map.extend(task.metadata());
    }
    let checkpoint = DeltaCheckpoint::capture::<B, _>(
        &T::export(best),
        &|e| e.trainable || e.path.starts_with("delta.") || e.path.starts_with("head."),
        method,
        identity,
    );
    let delta_path = folder.join("delta.safetensors");
    checkpoint.save(&delta_path)?;
    let summary = RunSummary {
        best_epoch: outcome.best_epoch,
        dev,
        test,
        trainable: report.overall.trainable,
        total: report.overall.total,
        delta_bytes: std::fs::metadata(&delta_path).map(|m| m.len()).unwrap_or(0),
        seconds: started.elapsed().as_secs_f64(),
    };
    let results = folder.join("results.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| PetError::format(&results, e))?;
    std::fs::write(&results, text).map_err(|e| PetError::io(&results, e))?;
    staged.commit()?;
    Ok(summary)
}

/// A divergence's cause, with what is known of the method: the reparameterized prefix moves its
/// table hundreds of times faster than a plain one at the same rate (`docs/results`).
fn with_method_hint(error: PetError, spec: &DeltaSpec) -> PetError {
    match error {
        PetError::Diverged { epoch, step, quantity, value, mut cause }
            if spec.prefix.as_ref().is_some_and(|p| p.prefix_projection) =>
        {
            cause.push_str(
                "; the prefix with the reparameterization MLP (`prefix`, `prefix_projection`) \
                 is known to collapse at 5e-3 and trains at 1e-3",
            );
            PetError::Diverged { epoch, step, quantity, value, cause }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subset_is_a_seeded_draw_of_the_items() {
        let items: Vec<usize> = (0..20).collect();
        let a = subset(items.clone(), Some(5), 7);
        assert_eq!(a, subset(items.clone(), Some(5), 7));
        assert_eq!(a.len(), 5);
        assert_ne!(a, vec![0, 1, 2, 3, 4]);
        assert_eq!(subset(items.clone(), None, 7), items);
    }
}
