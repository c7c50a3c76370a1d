//! Rebuilding a task model from a model folder and a delta: a pet delta checkpoint (its
//! metadata names the task, the deltas, the labels and the sequence length) or a PEFT adapter
//! folder (`LORA`, `PREFIX_TUNING`, `PROMPT_TUNING`).
//!
//! A PEFT folder's `task_type` names the task: `SEQ_CLS` classification, `TOKEN_CLS` tagging,
//! `QUESTION_ANS` extractive QA. Its head is the `modules_to_save` PEFT stored beside the adapter
//! (`classifier`, RoBERTa's `classifier.dense` + `classifier.out_proj`, DeBERTa's `pooler.dense` +
//! `classifier`, `qa_outputs`), or, when it stored none, the head of a task checkpoint model
//! folder (`BertForSequenceClassification`, `DebertaV2ForSequenceClassification`, ...). The
//! model folder may hold any encoder [`load_encoder`] reads; a classifier's head is the
//! backbone's ([`NlpBackbone::classification_head`]). Class names come from the model's
//! `config.json` `id2label` (else `LABEL_0`, `LABEL_1`, ...); the sequence length is the
//! model's position capacity less the adapter's virtual tokens, capped at 512.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::TensorData;
use burn::tensor::backend::Backend;
use pet_core::Backbone;
use pet_core::blocks::hf_keys::load_hf_state;
use pet_core::checkpoint::DeltaCheckpoint;
use pet_core::delta::set::{DeltaSet, DeltaSpec};
use pet_core::peft::{PeftAdapter, PeftType};
use pet_core::precision::Precision;
use pet_nlp::data::LabelSet;
use pet_nlp::heads::classification::from_hf_head_keys;
use pet_nlp::heads::{QaHeadConfig, TokenClassificationHeadConfig};
use pet_nlp::tasks::classification::SequenceClassifier;
use pet_nlp::tasks::qa::QuestionAnswerer;
use pet_nlp::tasks::tagging::SequenceTagger;
use pet_nlp::{EncoderFolder, NlpBackbone, load_encoder};

use crate::train::{default_doc_stride, default_max_answer_length};

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

impl<B: Backend> TaskModel<B> {
    /// The model with its backbone's linear sites in `precision` (an inference setting).
    pub fn with_precision(self, precision: Precision) -> Self {
        match self {
            Self::Classifier(m) => Self::Classifier(Box::new(SequenceClassifier {
                backbone: precision.apply(m.backbone),
                ..*m
            })),
            Self::Tagger(m) => Self::Tagger(Box::new(SequenceTagger {
                backbone: precision.apply(m.backbone),
                ..*m
            })),
            Self::Answerer(m, stride, longest) => Self::Answerer(
                Box::new(QuestionAnswerer { backbone: precision.apply(m.backbone), ..*m }),
                stride,
                longest,
            ),
        }
    }
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
        return restore_peft_model(model_dir, delta, device);
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
            let head = backbone.classification_head(labels.len(), false).init(device);
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
            let model = QuestionAnswerer { backbone, delta: delta_set, head, token_types: true };
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
    backbone: NlpBackbone<B>,
    delta: &Path,
    device: &B::Device,
) -> Result<(NlpBackbone<B>, DeltaSet<B>)> {
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
fn peft_deltas<B: Backend>(
    adapter: &PeftAdapter,
    backbone: &NlpBackbone<B>,
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

/// Where a PEFT task model's head comes from: the adapter's saved modules, else the model folder's
/// task layers. PEFT saves only the modules named in `modules_to_save` (`classifier`), not
/// DeBERTa's ContextPooler, so with saved modules the pooler (`pooler.*`) still comes from a task
/// checkpoint folder, as the adapter's base model had it.
struct HeadWeights {
    tensors: BTreeMap<String, TensorData>,
    file: String,
}

impl HeadWeights {
    fn of(saved: BTreeMap<String, TensorData>, adapter: &Path, folder: &EncoderFolder) -> Self {
        let file = match saved.is_empty() {
            true => folder.weights_file(),
            false => format!(
                "{} (over {})",
                adapter.join(pet_core::peft::WEIGHTS_FILE).display(),
                folder.weights_file()
            ),
        };
        let mut tensors = folder.head_weights();
        if !saved.is_empty() {
            tensors.retain(|key, _| key.starts_with("pooler."));
            tensors.extend(saved);
        }
        Self { tensors, file }
    }

    /// Rows of the output layer `key` (`[out, in]` as PyTorch stores it).
    fn outputs(&self, key: &str) -> Result<usize> {
        let data = self.tensors.get(key).with_context(|| {
            format!(
                "{}: no `{key}`: the adapter saved no task head (`modules_to_save`) and the \
                 model folder is not a task checkpoint",
                self.file
            )
        })?;
        Ok(data.shape[0])
    }

    fn load<B: Backend, M: Module<B>>(&self, head: M) -> Result<M> {
        Ok(load_hf_state(head, &self.tensors, &self.file, "", &|_| false)?.0)
    }
}

/// The task model of `model_dir` with the PEFT adapter folder `dir`, its head included.
fn restore_peft_model<B: Backend>(
    model_dir: &Path,
    dir: &Path,
    device: &B::Device,
) -> Result<Restored<B>> {
    let mut adapter = PeftAdapter::read(dir)?;
    let saved = adapter.take_saved_modules();
    let (backbone, folder, _) = load_encoder::<B>(model_dir, device)?;
    let delta = peft_deltas(&adapter, &backbone, device)?;
    let head = HeadWeights::of(saved, dir, &folder);
    let hidden = backbone.shape().hidden_size;
    let max_length = peft_max_length(&backbone, &adapter);
    let (model, labels) = match adapter.task_type() {
        Some("SEQ_CLS") => {
            let (tensors, dense) = from_hf_head_keys(head.tensors);
            let head = HeadWeights { tensors, ..head };
            let n = head.outputs("classifier.weight")?;
            let classifier = head.load(backbone.classification_head(n, dense).init(device))?;
            let model = SequenceClassifier { backbone, delta, head: classifier };
            (TaskModel::Classifier(Box::new(model)), folder.label_names(n))
        }
        Some("TOKEN_CLS") => {
            let n = head.outputs("classifier.weight")?;
            let tagger = head.load(TokenClassificationHeadConfig::new(hidden, n).init(device))?;
            let model = SequenceTagger { backbone, delta, head: tagger };
            (TaskModel::Tagger(Box::new(model)), folder.label_names(n))
        }
        Some("QUESTION_ANS") => {
            let qa = head.load(QaHeadConfig::new(hidden).init(device))?;
            let prompt_learning = adapter.peft_type()? != PeftType::Lora;
            let model =
                QuestionAnswerer { backbone, delta, head: qa, token_types: !prompt_learning };
            let (stride, longest) = (default_doc_stride(), default_max_answer_length());
            (TaskModel::Answerer(Box::new(model), stride, longest), Vec::new())
        }
        other => bail!(
            "{}: task_type {other:?} has no task head; pet predict reads SEQ_CLS, TOKEN_CLS and \
             QUESTION_ANS adapters (pet encode reads any)",
            dir.join(pet_core::peft::CONFIG_FILE).display()
        ),
    };
    Ok(Restored { model, labels: LabelSet::new(labels), max_length })
}

/// The longest input a PEFT model takes: the backbone's positions
/// ([`NlpBackbone::max_positions`]) less the adapter's virtual tokens, which use positions too,
/// capped at 512.
fn peft_max_length<B: Backend>(backbone: &NlpBackbone<B>, adapter: &PeftAdapter) -> usize {
    let virtual_tokens =
        adapter.config.get("num_virtual_tokens").and_then(serde_json::Value::as_u64).unwrap_or(0)
            as usize;
    backbone.max_positions().saturating_sub(virtual_tokens).min(512)
}
