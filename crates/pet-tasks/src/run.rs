//! Training, restoring and scoring a task chosen by name at run time: the registry's visitors
//! over pet-core's generic [`train_task`] and [`restore_task`].

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use pet_core::PetError;
use pet_core::checkpoint::DeltaCheckpoint;
use pet_core::delta::set::DeltaSpec;
use pet_core::output::{Output, OutputKind};
use pet_core::precision::Precision;
use pet_core::task::restore::{Restored, TaskName, method_field, restore_task, task_of};
use pet_core::task::train::{RunSummary, TrainPlan, TrainStart, train_task};
use pet_core::task::{Predictions, SplitRole, Task, read_nonempty_split};

use crate::error::TaskError;
use crate::job::Job;
use crate::registry::{TaskVisitor, peft_task, peft_task_types, visit};

/// Trains the task `job` names with its options, as `plan` (the job with resolved paths) says.
struct Train<'a, B: AutodiffBackend, F> {
    job: &'a Job,
    plan: &'a TrainPlan,
    device: &'a B::Device,
    on_start: F,
}

impl<B: AutodiffBackend, F: FnOnce(&TrainStart<'_>)> TaskVisitor<B> for Train<'_, B, F> {
    type Output = Result<RunSummary, TaskError>;

    fn visit<T: Task<B>>(self) -> Self::Output {
        let (on_start, device) = (self.on_start, self.device);
        let options: T::Options = toml::Value::Table(self.job.options.clone())
            .try_into()
            .map_err(|e| TaskError::Job { job: self.job.task.clone(), reason: e.to_string() })?;
        train_task::<B, T>(self.plan, options, device, on_start).map_err(TaskError::task)
    }
}

/// Trains the task of `job` on `device` as `plan` says; `on_start` hears what is about to train.
///
/// # Errors
/// For an unknown task, invalid options, or whatever training reports.
pub fn train<B: AutodiffBackend>(
    job: &Job,
    plan: &TrainPlan,
    device: &B::Device,
    on_start: impl FnOnce(&TrainStart<'_>),
) -> Result<RunSummary, TaskError> {
    visit::<B, _>(&job.task, Train { job, plan, device, on_start })?
}

/// Work on a restored task model of whatever task a checkpoint names.
pub trait ModelVisitor<B: AutodiffBackend> {
    /// What the work returns.
    type Output;

    /// Runs the work on the restored task `T`.
    fn visit<T: Task<B>>(self, restored: Restored<B, T>) -> Self::Output;
}

/// Restores the task model, then hands it to the model visitor.
struct Restore<'a, B: AutodiffBackend, V> {
    folder: &'a Path,
    delta: &'a Path,
    device: &'a B::Device,
    visitor: V,
}

impl<B: AutodiffBackend, V: ModelVisitor<B>> TaskVisitor<B> for Restore<'_, B, V> {
    type Output = Result<V::Output, TaskError>;

    fn visit<T: Task<B>>(self) -> Self::Output {
        let restored =
            restore_task::<B, T>(self.folder, self.delta, self.device).map_err(TaskError::task)?;
        Ok(self.visitor.visit(restored))
    }
}

/// Restores the task model of the model folder `folder` and the delta `delta` (a pet
/// checkpoint, whose metadata names the task, or a PEFT adapter folder, whose `task_type` does)
/// on `device`, and runs `visitor` on it.
///
/// # Errors
/// When the delta names no registered task, or restoring fails; messages name the file.
pub fn restore<B: AutodiffBackend, V: ModelVisitor<B>>(
    folder: &Path,
    delta: &Path,
    device: &B::Device,
    visitor: V,
) -> Result<V::Output, TaskError> {
    let name = match task_of(delta)? {
        TaskName::Pet(name) => name,
        TaskName::Peft { task_type, config } => match task_type.as_deref().and_then(peft_task) {
            Some(name) => name.to_string(),
            None => {
                let known = peft_task_types();
                return Err(TaskError::NoPeftTask { config, task_type, known });
            }
        },
    };
    let restore = Restore { folder, delta, device, visitor };
    visit::<B, _>(&name, restore).map_err(|e| match e {
        TaskError::UnknownTask { name, known } => TaskError::Core(PetError::format(
            delta,
            format!("task `{name}` is not one of {}", known.join(", ")),
        )),
        other => other,
    })?
}

/// What [`Infer`] does with a restored model. An input file with no example is refused
/// ([`PetError::EmptyData`]) rather than scored 0 or predicted as nothing.
pub enum Inference<'a> {
    /// One JSON value per prediction for the input file at `input`, pushed to `to` as each
    /// batch is run (a batch of rows and predictions is held at a time).
    Predict {
        /// The input file.
        input: &'a Path,
        /// Where the predictions go: a `Vec<Value>` keeps them, `pet predict` writes them.
        to: &'a mut dyn Predictions,
    },
    /// The metrics of a labelled file.
    Score(&'a Path),
}

/// What [`Infer`] returns.
#[derive(Clone, Debug, PartialEq)]
pub enum Inferred {
    /// How many predictions were pushed.
    Predictions(usize),
    /// Metrics.
    Metrics(BTreeMap<String, f64>),
}

/// Prediction or scoring of a restored model: what `pet predict` and `pet eval` run.
pub struct Infer<'a> {
    /// What to do.
    pub inference: Inference<'a>,
    /// Precision of the backbone's linear sites.
    pub precision: Precision,
    /// Rows per batch.
    pub batch_size: usize,
}

impl<B: AutodiffBackend> ModelVisitor<B> for Infer<'_> {
    type Output = Result<Inferred, TaskError>;

    fn visit<T: Task<B>>(self, restored: Restored<B, T>) -> Self::Output {
        let Restored { mut task, model } = restored;
        let model = T::with_precision(model, self.precision)?;
        match self.inference {
            Inference::Predict { input, to } => {
                let pushed =
                    task.predict(&model, input, self.batch_size, to).map_err(TaskError::task)?;
                if pushed == 0 {
                    let reason = "the file holds no example".to_string();
                    return Err(PetError::EmptyData { path: input.to_path_buf(), reason }.into());
                }
                Ok(Inferred::Predictions(pushed))
            }
            Inference::Score(input) => {
                let split = read_nonempty_split(&mut task, input, SplitRole::Eval, None)
                    .map_err(TaskError::task)?;
                let items: Vec<usize> = (0..T::split_len(&split)).collect();
                let batches = task.batches(&split, &items, self.batch_size);
                Ok(Inferred::Metrics(task.evaluate(&model, &split, &batches).metrics))
            }
        }
    }
}

/// Predicts with or scores the model of `folder` and `delta` on `device`.
///
/// # Errors
/// As [`restore`], or when the input cannot be read.
pub fn infer<B: AutodiffBackend>(
    folder: &Path,
    delta: &Path,
    device: &B::Device,
    infer: Infer<'_>,
) -> Result<Inferred, TaskError> {
    restore::<B, _>(folder, delta, device, infer)?
}

/// Writes a restored model as a PEFT adapter folder.
struct Export<'a> {
    spec: DeltaSpec,
    method: String,
    output: &'a Output,
}

impl<B: AutodiffBackend> ModelVisitor<B> for Export<'_> {
    type Output = Result<&'static str, TaskError>;

    fn visit<T: Task<B>>(self, restored: Restored<B, T>) -> Self::Output {
        let adapter = restored
            .task
            .export_peft(&restored.model, &self.spec, &self.method)
            .map_err(TaskError::task)?;
        let peft_type = adapter.peft_type()?.as_str();
        let staged = self.output.stage()?;
        adapter.write(staged.path())?;
        staged.commit()?;
        Ok(peft_type)
    }
}

/// Writes the model of the model folder `folder` and the pet checkpoint `delta` as a PEFT
/// adapter folder `output` (`adapter_config.json`, `adapter_model.safetensors`, the head among
/// the saved modules), as a unit; returns the PEFT type written. An existing `output` is
/// replaced only with `overwrite`; one that is or holds an input is refused ([`Output`]).
///
/// # Errors
/// When the output is refused, `delta` is not a pet checkpoint, its method has no PEFT form
/// (refused by name), or the folder cannot be written.
pub fn export_peft<B: AutodiffBackend>(
    folder: &Path,
    delta: &Path,
    device: &B::Device,
    output: &Path,
    overwrite: bool,
) -> Result<&'static str, TaskError> {
    let output = Output::checked(output, OutputKind::Folder, overwrite, &[folder, delta])?;
    if delta.is_dir() {
        let reason = "is a PEFT adapter folder already; export reads pet checkpoints";
        return Err(PetError::format(delta, reason).into());
    }
    let checkpoint = DeltaCheckpoint::load(delta)?;
    let spec: DeltaSpec = method_field(&checkpoint, "delta")?;
    let method: String = method_field(&checkpoint, "method")?;
    restore::<B, _>(folder, delta, device, Export { spec, method, output: &output })?
}
