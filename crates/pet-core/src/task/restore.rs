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
use crate::config_check::HeaderCheck;
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
/// [`PetError::Format`] naming the checkpoint when the key is absent or not of the expected
/// form; [`PetError::InvalidConfig`] naming the field (`method.delta.lora.r`) and the checkpoint
/// when a value inside it has the wrong type (`-1` for a size).
pub fn method_field<T: serde::de::DeserializeOwned>(
    checkpoint: &DeltaCheckpoint,
    key: &str,
) -> Result<T> {
    let value = checkpoint.method.get(key).cloned().ok_or_else(|| {
        PetError::format(&checkpoint.source, format!("metadata `method` has no `{key}`"))
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        match at.as_str() {
            "." => {
                PetError::format(&checkpoint.source, format!("metadata `method.{key}`: {inner}"))
            }
            _ => PetError::config(
                format!("method.{key}.{at}"),
                format!("{}: {inner}", checkpoint.source.display()),
            ),
        }
    })
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
        adapter.check_config()?;
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
    check_labels(&checkpoint, task.num_labels())?;
    let backbone = task.load_backbone(device)?;
    let identity = backbone.identity();
    check_spec(&checkpoint, &spec, &backbone)?;
    let deltas = spec.build(&backbone, device).map_err(in_checkpoint(&checkpoint))?;
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
        adapter.check_config()?;
        adapter.take_saved_modules();
        let set = peft_deltas(&adapter, &backbone, device)?;
        return Ok((backbone, set));
    }
    checkpoint_deltas(backbone, &DeltaCheckpoint::load(delta)?, device)
}

/// `backbone` and the deltas of the pet delta checkpoint `checkpoint`, as [`restore_deltas`]: its
/// `method.delta` spec is checked against its tensors before anything is built.
///
/// # Errors
/// As [`restore_deltas`].
pub fn checkpoint_deltas<B: Backend, M: Backbone<B>>(
    backbone: M,
    checkpoint: &DeltaCheckpoint,
    device: &B::Device,
) -> Result<(M, DeltaSet<B>)> {
    let spec: DeltaSpec = method_field(checkpoint, "delta")?;
    check_spec(checkpoint, &spec, &backbone)?;
    let set = spec.build(&backbone, device).map_err(in_checkpoint(checkpoint))?;
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

/// Checks the delta spec a checkpoint records (`method.delta`) against the tensors it holds
/// (`delta.*`) for `backbone`, before anything of the spec's sizes is allocated.
///
/// # Errors
/// [`PetError::InvalidConfig`] naming the field (`method.delta.prompt.num_virtual_tokens`, ...)
/// and the file's key, as [`DeltaSpec::check_tensors`].
pub fn check_spec<B: Backend, M: Backbone<B>>(
    checkpoint: &DeltaCheckpoint,
    spec: &DeltaSpec,
    backbone: &M,
) -> Result<()> {
    let shapes = checkpoint.shapes();
    let file = checkpoint.source.display().to_string();
    let check = HeaderCheck::new(&shapes, &file, "");
    let sites = backbone.linear_sites();
    spec.check_tensors(backbone.shape(), &sites, &check, "delta.", "method.delta.")
        .map_err(in_checkpoint(checkpoint))
}

/// An error of a checkpoint's `method.delta` as the checkpoint's: an
/// [`InvalidConfig`](PetError::InvalidConfig) names the field under `method.delta.` and the file.
fn in_checkpoint(checkpoint: &DeltaCheckpoint) -> impl Fn(PetError) -> PetError + '_ {
    move |e| match e {
        PetError::InvalidConfig { field, reason } => {
            let file = checkpoint.source.display().to_string();
            let field = match field.starts_with("method.") || field == "backbone" {
                true => field,
                false => format!("method.delta.{field}"),
            };
            let reason = match reason.contains(&file) {
                true => reason,
                false => format!("{reason} (in {file})"),
            };
            PetError::InvalidConfig { field, reason }
        }
        other => other,
    }
}

/// Checks that the labels a checkpoint's metadata names fit the head it holds: a head over `n`
/// labels has at least `n` values, so a label list longer than the stored head (`head.*`) is
/// refused before a head of its size is allocated.
///
/// # Errors
/// [`PetError::InvalidConfig`] naming `method.labels` and the file.
pub fn check_labels(checkpoint: &DeltaCheckpoint, num_labels: usize) -> Result<()> {
    let stored: usize = checkpoint
        .tensors
        .iter()
        .filter(|(key, _)| key.starts_with("head."))
        .map(|(_, data)| data.num_elements())
        .sum();
    if num_labels > stored {
        return Err(PetError::config(
            "method.labels",
            format!(
                "names {num_labels} labels, but {} holds a head of {stored} values",
                checkpoint.source.display()
            ),
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::conformance::Tuned;
    use crate::testing::{TestInner as B, TinyEncoder, TinyEncoderConfig};

    fn backbone() -> TinyEncoder<B> {
        TinyEncoderConfig::tiny().init::<B>(&Default::default())
    }

    /// A checkpoint of `spec`'s deltas over the tiny encoder, saved with `method.delta` replaced
    /// by `recorded` (what a hostile or stale file may claim).
    fn saved(name: &str, spec: &DeltaSpec, recorded: Value) -> std::path::PathBuf {
        let device = Default::default();
        let backbone = backbone();
        let delta = spec.build(&backbone, &device).expect("deltas");
        let identity = backbone.identity();
        let model = Tuned::<B, _, _> { backbone, delta, backend: Default::default() };
        let method = serde_json::json!({ "task": "test", "delta": recorded });
        let checkpoint = DeltaCheckpoint::capture::<B, _>(
            &model,
            &|e| e.path.starts_with("delta."),
            method,
            identity,
        );
        let path = std::env::temp_dir()
            .join(format!("pet-restore-{name}-{}.safetensors", std::process::id()));
        checkpoint.save(&path).expect("save");
        path
    }

    fn field_of<T: std::fmt::Debug>(result: Result<T>) -> String {
        let (field, reason) = crate::testing::invalid_config(result);
        assert!(reason.contains(".safetensors"), "the file is named: {reason}");
        field
    }

    #[test]
    fn a_checkpoint_restores_when_its_spec_fits_its_tensors() {
        let spec = DeltaSpec::preset("prompt+prefix+lora+adapter").expect("preset");
        let path = saved("fits", &spec, serde_json::to_value(&spec).expect("json"));
        let (_, set) = restore_deltas(backbone(), &path, &Default::default()).expect("restores");
        assert!(set.prompt.is_some() && set.prefix.is_some() && set.lora.is_some());
        assert!(set.adapters.is_some());
    }

    #[test]
    fn a_checkpoint_spec_larger_than_its_tensors_is_refused_before_building() {
        let spec = DeltaSpec::preset("prompt+prefix+lora+adapter").expect("preset");
        let json = serde_json::to_value(&spec).expect("json");
        for (name, pointer, value, field) in [
            (
                "prompt",
                "/prompt/num_virtual_tokens",
                1_000_000_000u64,
                "method.delta.prompt.num_virtual_tokens",
            ),
            (
                "prefix",
                "/prefix/num_virtual_tokens",
                1_000_000_000,
                "method.delta.prefix.num_virtual_tokens",
            ),
            ("rank", "/lora/r", 1_000_000_000, "method.delta.lora.r"),
            ("moderate", "/lora/r", 100_000, "method.delta.lora.r"),
            ("reduction", "/adapter/reduction_factor", 1, "method.delta.adapter.reduction_factor"),
            ("zero", "/lora/r", 0, "method.delta.lora.r"),
        ] {
            let mut recorded = json.clone();
            *recorded.pointer_mut(pointer).expect("field") = value.into();
            let path = saved(name, &spec, recorded);
            let result = restore_deltas(backbone(), &path, &Default::default()).map(|_| ());
            assert_eq!(field_of(result), field, "{name}");
        }
        // The projection's size and values no delta takes.
        let projected = DeltaSpec::preset("prefix").expect("preset");
        let mut recorded = serde_json::to_value(&projected).expect("json");
        recorded["prefix"]["encoder_hidden_size"] = 1_000_000_000u64.into();
        let path = saved("projection", &projected, recorded);
        let result = restore_deltas(backbone(), &path, &Default::default()).map(|_| ());
        assert_eq!(field_of(result), "method.delta.prefix.encoder_hidden_size");
        for (pointer, value, field) in [
            ("/lora/lora_dropout", 5.0, "method.delta.lora.lora_dropout"),
            ("/prefix/prefix_dropout", -1.0, "method.delta.prefix.prefix_dropout"),
        ] {
            let mut recorded = json.clone();
            *recorded.pointer_mut(pointer).expect("field") = value.into();
            let path = saved("dropout", &spec, recorded);
            let result = restore_deltas(backbone(), &path, &Default::default()).map(|_| ());
            assert_eq!(field_of(result), field);
        }
    }

    #[test]
    fn a_mistyped_spec_value_names_its_field() {
        let spec = DeltaSpec::preset("lora").expect("preset");
        let mut recorded = serde_json::to_value(&spec).expect("json");
        recorded["lora"]["r"] = (-1).into();
        let path = saved("mistyped", &spec, recorded);
        let result = restore_deltas(backbone(), &path, &Default::default()).map(|_| ());
        assert_eq!(field_of(result), "method.delta.lora.r");
    }

    #[test]
    fn labels_beyond_the_stored_head_are_refused() {
        let spec = DeltaSpec::preset("lora").expect("preset");
        let path = saved("labels", &spec, serde_json::to_value(&spec).expect("json"));
        let mut checkpoint = DeltaCheckpoint::load(&path).expect("load");
        checkpoint
            .tensors
            .insert("head.weight".into(), burn::tensor::TensorData::new(vec![0f32; 6], [3, 2]));
        assert!(check_labels(&checkpoint, 3).is_ok());
        assert_eq!(field_of(check_labels(&checkpoint, 1_000_000)), "method.labels");
    }

    #[test]
    fn the_spec_check_lists_exactly_the_tensors_build_makes() {
        let device = Default::default();
        let backbone = backbone();
        for name in ["prompt+prefix+lora+adapter", "prefix", "ptuning-v2+lora"] {
            let spec = DeltaSpec::preset(name).expect("preset");
            let set = spec.build(&backbone, &device).expect("deltas");
            let state = crate::params::read_params::<B, _>(&set, &|_| true);
            let shapes = state.iter().map(|(k, v)| (k.clone(), v.shape.to_vec())).collect();
            let check = HeaderCheck::new(&shapes, "d.safetensors", "");
            let sites = backbone.linear_sites();
            spec.check_tensors(backbone.shape(), &sites, &check, "", "").expect("fits");
            let mut checked = check.checked();
            checked.sort();
            assert_eq!(checked, state.keys().cloned().collect::<Vec<_>>(), "{name}");
        }
    }
}
