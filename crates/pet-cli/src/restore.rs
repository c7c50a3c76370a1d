//! Rebuilding a task model from a model folder and a delta: a pet delta checkpoint (its
//! metadata names the task, the deltas, the labels and the sequence length) or a PEFT adapter
//! folder (`LORA`, `PREFIX_TUNING`, `PROMPT_TUNING`; deltas only, no head).

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use pet_core::Backbone;
use pet_core::blocks::PostNormEncoder;
use pet_core::checkpoint::DeltaCheckpoint;
use pet_core::delta::set::{DeltaSet, DeltaSpec};
use pet_core::peft::{PeftAdapter, PeftType};
use pet_nlp::data::LabelSet;
use pet_nlp::heads::{ClassificationHeadConfig, QaHeadConfig, TokenClassificationHeadConfig};
use pet_nlp::load_encoder;
use pet_nlp::tasks::classification::SequenceClassifier;
use pet_nlp::tasks::qa::QuestionAnswerer;
use pet_nlp::tasks::tagging::SequenceTagger;

/// A task model restored from a pet delta checkpoint.
#[derive(Debug)]
pub enum TaskModel<B: Backend> {
    /// Sequence classification.
    Classifier(Box<SequenceClassifier<B>>),
    /// Sequence labeling.
    Tagger(Box<SequenceTagger<B>>),
    /// Extractive question answering, with its window stride and longest answer.
    Answerer(Box<QuestionAnswerer<B>>, usize, usize),
}

/// A task model with what its checkpoint records about it.
#[derive(Debug)]
pub struct Restored<B: Backend> {
    /// Backbone, deltas and head with the trained values.
    pub model: TaskModel<B>,
    /// Class or tag names, in index order.
    pub labels: LabelSet,
    /// The sequence length it was trained with.
    pub max_length: usize,
}

fn method_field<T: serde::de::DeserializeOwned>(
    checkpoint: &DeltaCheckpoint,
    key: &str,
) -> Result<T> {
    let value = checkpoint.method.get(key).cloned().with_context(|| {
        format!("{}: metadata `method` has no `{key}`", checkpoint.source.display())
    })?;
    serde_json::from_value(value)
        .with_context(|| format!("{}: metadata `method.{key}`", checkpoint.source.display()))
}

/// The task model of `model_dir` with the delta checkpoint at `delta` loaded.
///
/// # Errors
/// When the checkpoint is not a pet task delta, was trained on another backbone, or does not fit
/// the model; every message names the file.
pub fn restore_model<B: Backend>(
    model_dir: &Path,
    delta: &Path,
    device: &B::Device,
) -> Result<Restored<B>> {
    if delta.is_dir() {
        bail!(
            "{}: a PEFT adapter folder holds no pet head; give a pet delta checkpoint",
            delta.display()
        );
    }
    let checkpoint = DeltaCheckpoint::load(delta)?;
    let task: String = method_field(&checkpoint, "task")?;
    let spec: DeltaSpec = method_field(&checkpoint, "delta")?;
    let labels: LabelSet = method_field(&checkpoint, "labels")?;
    let max_length: usize = method_field(&checkpoint, "max_length")?;
    let (backbone, _, _) = load_encoder::<B>(model_dir, device)?;
    let identity = backbone.identity();
    let delta_set = spec.build(&backbone, device)?;
    let hidden = backbone.shape().hidden_size;
    let required = ["delta", "head"];
    let model = match task.as_str() {
        "classification" => {
            let head = ClassificationHeadConfig::new(hidden, labels.len()).init(device);
            let model = SequenceClassifier { backbone, delta: delta_set, head };
            TaskModel::Classifier(Box::new(checkpoint.apply(model, &identity, &required)?))
        }
        "tagging" => {
            let crf =
                checkpoint.method.get("crf").and_then(serde_json::Value::as_bool).unwrap_or(false);
            let head =
                TokenClassificationHeadConfig::new(hidden, labels.len()).with_crf(crf).init(device);
            let model = SequenceTagger { backbone, delta: delta_set, head };
            TaskModel::Tagger(Box::new(checkpoint.apply(model, &identity, &required)?))
        }
        "qa" => {
            let stride: usize = method_field(&checkpoint, "doc_stride")?;
            let longest: usize = method_field(&checkpoint, "max_answer_length")?;
            let head = QaHeadConfig::new(hidden).init(device);
            let model = QuestionAnswerer { backbone, delta: delta_set, head };
            TaskModel::Answerer(
                Box::new(checkpoint.apply(model, &identity, &required)?),
                stride,
                longest,
            )
        }
        other => bail!("{}: task `{other}` is not classification, tagging or qa", delta.display()),
    };
    Ok(Restored { model, labels, max_length })
}

/// `backbone` and the deltas of `delta` (a pet checkpoint file or a PEFT adapter folder). Backbone
/// parameters a checkpoint holds (BitFit's biases, partial or full tuning) are loaded into the
/// backbone; a head it holds is not used.
///
/// # Errors
/// As [`restore_classifier`], or for a PEFT method pet does not read.
pub fn restore_deltas<B: Backend>(
    backbone: PostNormEncoder<B>,
    delta: &Path,
    device: &B::Device,
) -> Result<(PostNormEncoder<B>, DeltaSet<B>)> {
    if delta.is_dir() {
        let adapter = PeftAdapter::read(delta)?;
        let none = DeltaSpec::none().build(&backbone, device)?;
        let shape = backbone.shape();
        let set = match adapter.peft_type()? {
            PeftType::Lora => {
                DeltaSet { lora: Some(adapter.to_lora(&backbone.linear_sites(), device)?), ..none }
            }
            PeftType::PrefixTuning => {
                DeltaSet { prefix: Some(adapter.to_prefix(shape, device)?), ..none }
            }
            PeftType::PromptTuning => {
                DeltaSet { prompt: Some(adapter.to_prompt(shape, device)?), ..none }
            }
        };
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
