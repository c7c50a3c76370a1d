//! Restoring a task model without the command line: from a pet delta checkpoint (its metadata
//! names the task, the deltas and what the task recorded, such as labels and options) or from a
//! PEFT adapter folder (`LORA`, `PREFIX_TUNING`, `PROMPT_TUNING`) whose `task_type` is the
//! task's [`TaskKind::PEFT_TASK_TYPE`](super::TaskKind::PEFT_TASK_TYPE).

use std::path::Path;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde_json::Value;

use crate::backbone::Backbone;
use crate::checkpoint::DeltaCheckpoint;
use crate::delta::set::{DeltaSet, DeltaSpec};
use crate::error::{PetError, Result};
use crate::peft::{PeftAdapter, PeftType};
use crate::task::{InferenceModel, Task};

/// A task with its model, restored for inference.
pub struct Restored<B: AutodiffBackend, T: Task<B>> {
    /// The task as the checkpoint describes it (labels, options).
    pub task: T,
    /// Backbone, deltas and head with the trained values.
    pub model: InferenceModel<B, T>,
}

impl<B: AutodiffBackend, T: Task<B>> std::fmt::Debug for Restored<B, T>
where
    InferenceModel<B, T>: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restored").field("model", &self.model).finish_non_exhaustive()
    }
}

/// The value of `key` in a checkpoint's `method` metadata.
///
/// # Errors
/// [`PetError::Format`] naming the checkpoint when the key is absent or of the wrong type.
pub fn method_field<T: serde::de::DeserializeOwned>(
    checkpoint: &DeltaCheckpoint,
    key: &str,
) -> Result<T> {
    let value = checkpoint.method.get(key).cloned().ok_or_else(|| {
        PetError::format(&checkpoint.source, format!("metadata `method` has no `{key}`"))
    })?;
    serde_json::from_value(value)
        .map_err(|e| PetError::format(&checkpoint.source, format!("metadata `method.{key}`: {e}")))
}

/// The name of the task a delta (a pet checkpoint file, or a PEFT adapter folder) was trained
/// for: the checkpoint's `method.task`, or the adapter's `task_type` (`SEQ_CLS`, ...).
///
/// # Errors
/// When the file or folder cannot be read, or names no task.
pub fn task_of(delta: &Path) -> Result<TaskName> {
    if delta.is_dir() {
        let adapter = PeftAdapter::read(delta)?;
        let task_type = adapter.task_type().map(str::to_string);
        return Ok(TaskName::Peft { task_type, config: delta.join(crate::peft::CONFIG_FILE) });
    }
    let checkpoint = DeltaCheckpoint::load(delta)?;
    Ok(TaskName::Pet(method_field(&checkpoint, "task")?))
}

/// How a delta names its task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskName {
    /// A pet checkpoint's `method.task`.
    Pet(String),
    /// A PEFT adapter's `task_type` (absent in some configs), with the config file for errors.
    Peft {
        /// `task_type`.
        task_type: Option<String>,
        /// `adapter_config.json`.
        config: std::path::PathBuf,
    },
}

/// Task `T` and its model over the model folder `folder` with the delta at `delta` (a pet delta
/// checkpoint of task `T`, or a PEFT adapter folder whose head `T` reads), for inference.
///
/// # Errors
/// When the checkpoint is not a delta of `T`, was trained on another backbone, or does not fit
/// the model; every message names the file.
pub fn restore_task<B: AutodiffBackend, T: Task<B>>(
    folder: &Path,
    delta: &Path,
    device: &B::Device,
) -> std::result::Result<Restored<B, T>, T::Error> {
    if delta.is_dir() {
        let mut adapter = PeftAdapter::read(delta)?;
        let saved = adapter.take_saved_modules();
        let mut task = T::new(folder, T::Options::default())?;
        let backbone = task.load_backbone(device)?;
        let deltas = peft_deltas(&adapter, &backbone, device)?;
        let limits = backbone.input_limits(&deltas);
        let (mut task, model) = task.restore_peft(&adapter, saved, backbone, deltas, device)?;
        task.limit_inputs(limits)?;
        return Ok(Restored { task, model: model.valid() });
    }
    let checkpoint = DeltaCheckpoint::load(delta)?;
    let name: String = method_field(&checkpoint, "task")?;
    if name != T::NAME {
        return Err(PetError::format(
            delta,
            format!("a delta of task `{name}`, not `{}`", T::NAME),
        )
        .into());
    }
    let spec: DeltaSpec = method_field(&checkpoint, "delta")?;
    let mut task = T::from_metadata(folder, &checkpoint.method, delta)?;
    let backbone = task.load_backbone(device)?;
    let identity = backbone.identity();
    let deltas = spec.build(&backbone, device)?;
    task.limit_inputs(backbone.input_limits(&deltas))?;
    let model = task.assemble(backbone, deltas, device);
    let model = checkpoint.apply(model, &identity, &["delta", "head"])?;
    Ok(Restored { task, model: model.valid() })
}

/// `backbone` and the deltas of `delta` (a pet checkpoint file or a PEFT adapter folder). Backbone
/// parameters a checkpoint holds (BitFit's biases, partial or full tuning) are loaded into the
/// backbone; a head it holds is not used.
///
/// # Errors
/// As [`restore_task`], or for a PEFT method pet does not read.
pub fn restore_deltas<B: Backend, M: Backbone<B>>(
    backbone: M,
    delta: &Path,
    device: &B::Device,
) -> Result<(M, DeltaSet<B>)> {
    if delta.is_dir() {
        let mut adapter = PeftAdapter::read(delta)?;
        adapter.take_saved_modules();
        let set = peft_deltas(&adapter, &backbone, device)?;
        return Ok((backbone, set));
    }
    let checkpoint = DeltaCheckpoint::load(delta)?;
    let spec: DeltaSpec = method_field(&checkpoint, "delta")?;
    let set = spec.build(&backbone, device)?;
    let identity = backbone.identity();
    let part = |prefix: &str| {
        let mut part = checkpoint.clone();
        part.tensors = checkpoint
            .tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .collect();
        part
    };
    let backbone = part("backbone.").apply(backbone, &identity, &[])?;
    let set = part("delta.").apply(set, &identity, &["prompt", "prefix", "lora", "adapters"])?;
    Ok((backbone, set))
}

/// The deltas of a PEFT adapter whose task head, if any, was taken out.
///
/// # Errors
/// When the adapter's method or weights do not fit `backbone`.
pub fn peft_deltas<B: Backend, M: Backbone<B>>(
    adapter: &PeftAdapter,
    backbone: &M,
    device: &B::Device,
) -> Result<DeltaSet<B>> {
    let none = DeltaSpec::none().build(backbone, device)?;
    let shape = backbone.shape();
    Ok(match adapter.peft_type()? {
        PeftType::Lora => {
            DeltaSet { lora: Some(adapter.to_lora(&backbone.linear_sites(), device)?), ..none }
        }
        PeftType::PrefixTuning => {
            DeltaSet { prefix: Some(adapter.to_prefix(shape, device)?), ..none }
        }
        PeftType::PromptTuning => {
            DeltaSet { prompt: Some(adapter.to_prompt(shape, device)?), ..none }
        }
    })
}

/// The number of virtual tokens a PEFT adapter config names (0 for LoRA).
pub fn peft_virtual_tokens(adapter: &PeftAdapter) -> usize {
    adapter.config.get("num_virtual_tokens").and_then(Value::as_u64).unwrap_or(0) as usize
}
