//! The task layer: what `pet train`, `pet eval` and `pet predict` need to know about one kind of
//! problem (sequence classification, tagging, extractive QA, image classification, seq2seq, ...),
//! as one trait that a domain crate implements once per task.
//!
//! A task owns its job options ([`TaskKind::Options`], the task's own keys of a job file), reads
//! its data splits into rows and batches, builds its task model (backbone + delta + head) whose
//! [`TrainTask::loss`] trains it, evaluates and predicts with the inference model, records what
//! restoring needs in a checkpoint's metadata and reads it back. Everything generic over tasks is
//! written once here: training a task ([`train::train_task`]) and restoring its model from a pet
//! checkpoint or a PEFT adapter folder ([`restore::restore_task`]).
//!
//! Nothing in the trait assumes a text encoder: the backbone, the data rows, the batches and the
//! model are the task's associated types.

pub mod export;
pub mod predictions;
pub mod restore;
pub mod train;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::tensor::TensorData;
use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::backbone::Backbone;
use crate::delta::set::{DeltaSet, DeltaSpec};
use crate::error::PetError;
use crate::limits::InputLimits;
use crate::peft::PeftAdapter;
use crate::precision::Precision;
use crate::train::{Evaluation, TrainTask};

pub use predictions::{JsonLinesFile, Predictions};

/// What a split is read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitRole {
    /// Training data: a task whose labels are not known yet takes them from it.
    Train,
    /// Data to score: its labels must be among the task's.
    Eval,
}

/// The part of a task that needs no backend: its name and its options.
pub trait TaskKind: Sized {
    /// The task's name in job files (`task = "..."`) and in checkpoint metadata.
    const NAME: &'static str;

    /// The PEFT `task_type` whose adapters restore as this task (`SEQ_CLS`, ...), if any.
    const PEFT_TASK_TYPE: Option<&'static str> = None;

    /// The task's own keys of a job file, beside the shared ones; every field has a default. The
    /// same keys are recorded in checkpoint metadata.
    type Options: Serialize + DeserializeOwned + Clone + Debug + Default;
}

/// The model of task `T` on `B` without autodiff: what evaluation and prediction run.
pub type InferenceModel<B, T> = <<T as Task<B>>::Model as AutodiffModule<B>>::InnerModule;

/// One task: options, data, model, loss, evaluation, predictions and checkpoint metadata.
///
/// A task value holds what it loaded from the model folder (a tokenizer, an image processor),
/// its options and, once known, its labels.
pub trait Task<B: AutodiffBackend>: TaskKind {
    /// The task's error; pet-core's errors convert into it.
    type Error: std::error::Error + Send + Sync + 'static + From<PetError>;
    /// The pretrained network the task model wraps.
    type Backbone: Backbone<B>;
    /// One data split, read and prepared (tokenized) for the task.
    type Split;
    /// What the model takes in one step of training or evaluation.
    type Batch;
    /// Backbone + delta + head, trained on `B`; its `InnerModule` evaluates and predicts.
    type Model: TrainTask<B, Batch = Self::Batch>;

    /// The task over the model folder `folder` with `options`, labels not yet known.
    ///
    /// # Errors
    /// When the folder lacks what the task reads (a tokenizer, a config).
    fn new(folder: &Path, options: Self::Options) -> Result<Self, Self::Error>;

    /// The task's options.
    fn options(&self) -> &Self::Options;

    /// The task a checkpoint describes: `metadata` is the checkpoint's `method` object, which
    /// holds what [`Task::metadata`] wrote; `source` names the checkpoint in errors.
    ///
    /// # Errors
    /// When the metadata lacks a key the task needs, or the folder lacks what the task reads.
    fn from_metadata(folder: &Path, metadata: &Value, source: &Path) -> Result<Self, Self::Error>;

    /// What the task records in a checkpoint's `method` metadata (its options and labels), so
    /// that [`Task::from_metadata`] rebuilds it.
    fn metadata(&self) -> serde_json::Map<String, Value>;

    /// Number of classes or tags (0 for a task without labels).
    fn num_labels(&self) -> usize;

    /// What the model's inputs may hold: the backbone's [`InputLimits`] under the delta it
    /// runs with. [`train::train_task`] and [`restore::restore_task`] call it once the backbone
    /// and the delta are built, before any split is read or any input predicted. A task that
    /// builds token rows checks its options against the limits (`max_length`), keeps them,
    /// and refuses a row past them with an error naming the file and the line. The default
    /// accepts every input (a task whose inputs are not token ids).
    ///
    /// # Errors
    /// When an option asks for more than the model takes.
    fn limit_inputs(&mut self, limits: InputLimits) -> Result<(), Self::Error> {
        let _ = limits;
        Ok(())
    }

    /// Reads the split at `path`, at most `limit` rows of it.
    ///
    /// # Errors
    /// When the file cannot be read, a row is malformed, or a label is unknown (role `Eval`).
    fn read_split(
        &mut self,
        path: &Path,
        role: SplitRole,
        limit: Option<usize>,
    ) -> Result<Self::Split, Self::Error>;

    /// Number of items (rows, windows) of a split; batches index them from 0.
    fn split_len(split: &Self::Split) -> usize;

    /// The items training draws from a split, in order (all of them unless the task skips some,
    /// such as unanswerable questions).
    fn training_items(split: &Self::Split) -> Vec<usize> {
        (0..Self::split_len(split)).collect()
    }

    /// The items `items` of `split` in batches of `size`, in order.
    fn batches(&self, split: &Self::Split, items: &[usize], size: usize) -> Vec<Self::Batch>;

    /// The backbone of the model folder, with pretrained weights.
    ///
    /// # Errors
    /// When the folder's weights or config cannot be read.
    fn load_backbone(&mut self, device: &B::Device) -> Result<Self::Backbone, Self::Error>;

    /// The task model of `backbone` and `delta` with a new head.
    fn assemble(
        &self,
        backbone: Self::Backbone,
        delta: DeltaSet<B>,
        device: &B::Device,
    ) -> Self::Model;

    /// `model` with its delta exported for a checkpoint (reparameterizations materialized).
    fn export(model: Self::Model) -> Self::Model;

    /// `model` with its backbone's linear sites in `precision` (an inference setting).
    ///
    /// # Errors
    /// When the backend cannot store `precision`'s weights ([`Precision::apply`]).
    fn with_precision(
        model: InferenceModel<B, Self>,
        precision: Precision,
    ) -> Result<InferenceModel<B, Self>, PetError>;

    /// Scores `model` on `split` (in `batches`); the score selects the best epoch.
    fn evaluate(
        &self,
        model: &InferenceModel<B, Self>,
        split: &Self::Split,
        batches: &[Self::Batch],
    ) -> Evaluation;

    /// One JSON value per prediction for the input file at `input` (the task's prediction
    /// format, which may differ from its training files), run in batches of `batch_size` and
    /// pushed to `out` batch by batch as the file is read; returns how many were pushed.
    ///
    /// # Errors
    /// When the input cannot be read or prepared, or `out` refuses a prediction.
    fn predict(
        &self,
        model: &InferenceModel<B, Self>,
        input: &Path,
        batch_size: usize,
        out: &mut dyn Predictions,
    ) -> Result<usize, Self::Error>;

    /// The task and its model from a PEFT adapter of [`TaskKind::PEFT_TASK_TYPE`]: `self` was
    /// made with default options and loaded `backbone`, `delta` holds the adapter's deltas, and
    /// `saved` the modules PEFT saved beside the adapter (`modules_to_save`, keyed as in the
    /// base model), from which (or from the model folder's task layers) the head comes.
    ///
    /// # Errors
    /// The default refuses: the task reads no PEFT adapter.
    fn restore_peft(
        self,
        adapter: &PeftAdapter,
        saved: BTreeMap<String, TensorData>,
        backbone: Self::Backbone,
        delta: DeltaSet<B>,
        device: &B::Device,
    ) -> Result<(Self, Self::Model), Self::Error> {
        let _ = (saved, backbone, delta, device);
        Err(PetError::format(
            adapter.source.join(crate::peft::CONFIG_FILE),
            format!("task `{}` {NO_PEFT_EXPORT}", Self::NAME),
        )
        .into())
    }

    /// `model` (its deltas built from `spec`, trained as method `method`) as a PEFT adapter of
    /// the task's `task_type`, its head among the adapter's saved modules (`modules_to_save`),
    /// keyed as the transformers task model names it.
    ///
    /// # Errors
    /// When PEFT cannot hold the method or the head; the default refuses.
    fn export_peft(
        &self,
        model: &InferenceModel<B, Self>,
        spec: &DeltaSpec,
        method: &str,
    ) -> Result<PeftAdapter, Self::Error> {
        let _ = (model, spec);
        Err(PetError::config(
            "method",
            format!("`{method}`: task `{}` {NO_PEFT_EXPORT}", Self::NAME),
        )
        .into())
    }
}

/// Reads the split at `path` through `task` (at most `limit` items), refusing a split with no
/// item: training, scoring or predicting on nothing is a mistake (a wrong or empty file), not
/// a score of 0.
///
/// # Errors
/// As [`Task::read_split`], and [`PetError::EmptyData`] naming `path` for an empty split.
pub fn read_nonempty_split<B: AutodiffBackend, T: Task<B>>(
    task: &mut T,
    path: &Path,
    role: SplitRole,
    limit: Option<usize>,
) -> Result<T::Split, T::Error> {
    let split = task.read_split(path, role, limit)?;
    if T::split_len(&split) == 0 {
        let reason = match limit {
            Some(0) => "no example is read: the example limit is 0",
            _ => "the file holds no example",
        };
        return Err(PetError::EmptyData { path: path.to_path_buf(), reason: reason.into() }.into());
    }
    Ok(split)
}

/// Restored models of a task written as PEFT adapters: see [`Task::export_peft`].
pub const NO_PEFT_EXPORT: &str = "reads and writes no PEFT adapter";

/// The options of `O` among the keys of a checkpoint's `method` metadata: keys `O` does not
/// know (the task name, the delta, other tasks' options of older checkpoints) are passed over,
/// and keys it knows but the metadata lacks take their defaults.
///
/// # Errors
/// [`PetError::Format`] naming `source` when a known key holds a value of the wrong type.
pub fn options_from_metadata<O: Serialize + DeserializeOwned + Default>(
    metadata: &Value,
    source: &Path,
) -> Result<O, PetError> {
    let defaults = serde_json::to_value(O::default()).map_err(|e| PetError::format(source, e))?;
    let mut options = match defaults {
        Value::Object(map) => map,
        _ => return Ok(O::default()),
    };
    for (key, value) in options.iter_mut() {
        if let Some(stored) = metadata.get(key) {
            *value = stored.clone();
        }
    }
    serde_json::from_value(Value::Object(options))
        .map_err(|e| PetError::format(source, format!("metadata `method`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
    struct Options {
        max_length: usize,
        crf: bool,
    }

    #[test]
    fn options_are_read_from_metadata_past_other_keys() {
        let metadata = serde_json::json!({"task": "tagging", "max_length": 64, "doc_stride": 8});
        let options: Options =
            options_from_metadata(&metadata, Path::new("delta.safetensors")).expect("options");
        assert_eq!(options, Options { max_length: 64, crf: false });
    }

    #[test]
    fn a_mistyped_option_names_the_checkpoint() {
        let metadata = serde_json::json!({"max_length": "long"});
        let err = options_from_metadata::<Options>(&metadata, Path::new("d.safetensors"))
            .expect_err("a string");
        assert!(err.to_string().contains("d.safetensors"), "{err}");
    }
}
