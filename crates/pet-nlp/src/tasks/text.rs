//! What every text task shares, written once: [`TextTask`] is the model folder (its tokenizer,
//! when the folder has a `tokenizer.json`; pre-tokenized inputs need none), the task's options
//! and its labels, and implements pet-core's [`Task`] for every [`TextKind`]: loading the
//! encoder, the task model, checkpoint metadata, precision, export and PEFT heads. A text task
//! ([`Classification`](super::Classification), ...) is one `TextKind` implementation: its data,
//! head, evaluation and predictions.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::TensorData;
use burn::tensor::backend::{AutodiffBackend, Backend};
use pet_core::delta::set::{DeltaSet, DeltaSpec};
use pet_core::peft::PeftAdapter;
use pet_core::peft::PeftType;
use pet_core::precision::Precision;
use pet_core::task::export::peft_adapter;
use pet_core::task::{
    InferenceModel, Predictions, SplitRole, Task, TaskKind, options_from_metadata,
};
use pet_core::train::{Evaluation, TrainTask};
use pet_core::{InputLimits, PetError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::backbone::NlpBackbone;
use crate::data::LabelSet;
use crate::error::{NlpError, Result};
use crate::folder::{EncoderFolder, load_encoder};
use crate::tasks::model::TaskModel;
use crate::tasks::peft::{PeftHead, peft_max_length};
use crate::tokenize::TextTokenizer;

/// A model folder and its tokenizer, truncating to the task's `max_length`.
#[derive(Clone, Debug)]
pub struct TextFolder {
    /// The model folder.
    pub dir: PathBuf,
    tokenizer: Option<TextTokenizer>,
    /// What loading the encoder read besides it: `config.json`'s labels and the task layers of
    /// a task checkpoint (the encoder's own weights are dropped).
    loaded: Option<EncoderFolder>,
    /// What the model's inputs may hold, once the task knows its model
    /// ([`Task::limit_inputs`]); every row read is checked against them.
    limits: Option<InputLimits>,
}

/// `max_length` when a job names none.
pub fn default_max_length() -> usize {
    128
}

impl TextFolder {
    /// The folder `dir`, with its `tokenizer.json` when it has one.
    ///
    /// # Errors
    /// [`NlpError::Tokenizer`] when `tokenizer.json` exists but cannot be read.
    pub fn open(dir: &Path, max_length: usize) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let tokenizer = match path.is_file() {
            true => Some(TextTokenizer::from_file(&path, max_length)?),
            false => None,
        };
        Ok(Self { dir: dir.to_path_buf(), tokenizer, loaded: None, limits: None })
    }

    /// The tokenizer, to read the text of `input`.
    ///
    /// # Errors
    /// [`NlpError::NoTokenizer`] naming the folder and `input` when the folder has none.
    pub fn tokenizer(&self, input: &Path) -> Result<&TextTokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| NlpError::NoTokenizer {
            folder: self.dir.clone(),
            input: input.to_path_buf(),
        })
    }

    /// The folder with its tokenizer truncating to `max_length` instead.
    ///
    /// # Errors
    /// As [`TextTokenizer::with_max_length`].
    pub fn with_max_length(self, max_length: usize) -> Result<Self> {
        let tokenizer = match self.tokenizer {
            Some(t) => Some(t.with_max_length(max_length)?),
            None => None,
        };
        Ok(Self { tokenizer, ..self })
    }

    /// What the model's inputs may hold, when the task knows its model.
    pub fn limits(&self) -> Option<&InputLimits> {
        self.limits.as_ref()
    }

    /// Checks `max_length` against `limits` and keeps them: rows read from now on are checked
    /// against them.
    ///
    /// # Errors
    /// [`pet_core::PetError::InvalidConfig`] for a `max_length` of 0 or past the positions.
    pub fn set_limits(&mut self, limits: InputLimits, max_length: usize) -> Result<()> {
        limits.check_max_length(max_length)?;
        self.limits = Some(limits);
        Ok(())
    }

    /// The padding id: the tokenizer's, 0 without a tokenizer (padding is masked).
    pub fn pad_id(&self) -> u32 {
        self.tokenizer.as_ref().map_or(0, TextTokenizer::pad_id)
    }

    /// The folder's encoder with its pretrained weights.
    ///
    /// # Errors
    /// As [`load_encoder`].
    pub fn load_backbone<B: Backend>(&mut self, device: &B::Device) -> Result<NlpBackbone<B>> {
        let (backbone, mut folder, _) = load_encoder::<B>(&self.dir, device)?;
        folder.weights = folder.head_weights();
        self.loaded = Some(folder);
        Ok(backbone)
    }

    /// What [`TextFolder::load_backbone`] read besides the encoder.
    ///
    /// # Panics
    /// When the encoder was not loaded yet: expected a call of `load_backbone` first.
    pub fn loaded(&self) -> &EncoderFolder {
        self.loaded.as_ref().expect("expected the encoder to be loaded before its task layers")
    }
}

/// The `labels` of a checkpoint's `method` metadata.
///
/// # Errors
/// [`pet_core::PetError::Format`] naming `source` when they are absent or malformed.
pub fn labels_from_metadata(metadata: &serde_json::Value, source: &Path) -> Result<LabelSet> {
    let value = metadata
        .get("labels")
        .cloned()
        .ok_or_else(|| pet_core::PetError::format(source, "metadata `method` has no `labels`"))?;
    serde_json::from_value(value).map_err(|e| {
        pet_core::PetError::format(source, format!("metadata `method.labels`: {e}")).into()
    })
}

/// A task's options and labels as a checkpoint's `method` metadata records them.
pub fn metadata_of<O: serde::Serialize>(
    options: &O,
    labels: Option<&LabelSet>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut map = match serde_json::to_value(options) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    if let Some(labels) = labels {
        map.insert("labels".into(), serde_json::json!(labels));
    }
    map
}

/// What the options of every text task hold.
pub trait TextOptions: Serialize + DeserializeOwned + Clone + Debug + Default {
    /// Tokens per input, special tokens included.
    fn max_length(&self) -> usize;

    /// The options of a model read from a PEFT adapter: the defaults with `max_length`.
    fn for_peft(max_length: usize) -> Self;
}

/// A text task of kind `K`: the model folder, the options and the labels.
#[derive(Clone, Debug)]
pub struct TextTask<K: TextKind> {
    /// The model folder and its tokenizer.
    pub folder: TextFolder,
    /// The job options.
    pub options: K::Options,
    /// Class or tag names, in index order (empty for a task without labels).
    pub labels: LabelSet,
}

impl<K: TextKind> TextTask<K> {
    /// The class or tag names, in index order.
    pub fn labels(&self) -> &LabelSet {
        &self.labels
    }
}

/// One text task: its name and options.
pub trait TextKind: Clone + Debug + 'static {
    /// The task's name in job files and checkpoints.
    const NAME: &'static str;
    /// The PEFT `task_type` of its adapters.
    const PEFT_TASK_TYPE: &'static str;
    /// Whether the task has labels (classes, tags) that checkpoints record.
    const LABELLED: bool;
    /// The task's job options.
    type Options: TextOptions;
}

/// The inference model of text task `K` on `B`'s inner backend.
pub type TextInference<B, K> = TaskModel<
    <B as AutodiffBackend>::InnerBackend,
    <<K as TextKindOn<B>>::Head as AutodiffModule<B>>::InnerModule,
>;

/// What one text task adds on backend `B`: its data, head, evaluation and predictions.
pub trait TextKindOn<B: AutodiffBackend>: TextKind {
    /// One data split, tokenized.
    type Split;
    /// One batch.
    type Batch;
    /// The task head.
    type Head: AutodiffModule<B>;

    /// Reads the split at `path`, at most `limit` rows; role `Train` sets `task`'s labels.
    ///
    /// # Errors
    /// When the file cannot be read or tokenized, or a label is unknown.
    fn read_split(
        task: &mut TextTask<Self>,
        path: &Path,
        role: SplitRole,
        limit: Option<usize>,
    ) -> Result<Self::Split>;

    /// Number of items (rows, windows) of a split.
    fn split_len(split: &Self::Split) -> usize;

    /// The items training draws from a split (all of them by default).
    fn training_items(split: &Self::Split) -> Vec<usize> {
        (0..Self::split_len(split)).collect()
    }

    /// The items `items` of `split` in batches of `size`.
    fn batches(
        task: &TextTask<Self>,
        split: &Self::Split,
        items: &[usize],
        size: usize,
    ) -> Vec<Self::Batch>;

    /// A new head for `backbone`.
    fn head(task: &TextTask<Self>, backbone: &NlpBackbone<B>, device: &B::Device) -> Self::Head;

    /// Scores `model` on `split`.
    fn evaluate(
        task: &TextTask<Self>,
        model: &TextInference<B, Self>,
        split: &Self::Split,
        batches: &[Self::Batch],
    ) -> Evaluation;

    /// One JSON value per prediction for the input file at `input`, pushed to `out` as each
    /// batch is run; returns how many were pushed.
    ///
    /// # Errors
    /// When the input cannot be read or tokenized, or `out` refuses a prediction.
    fn predict(
        task: &TextTask<Self>,
        model: &TextInference<B, Self>,
        input: &Path,
        batch_size: usize,
        out: &mut dyn Predictions,
    ) -> Result<usize>;

    /// The head of a PEFT adapter from `weights`, with the labels it predicts.
    ///
    /// # Errors
    /// When the weights hold no head of this task, or it does not fit.
    fn peft_head(
        weights: &PeftHead,
        names: &EncoderFolder,
        backbone: &NlpBackbone<B>,
        device: &B::Device,
    ) -> Result<(Self::Head, LabelSet)>;

    /// The head of `model` keyed as the transformers task model names it, and the
    /// `modules_to_save` that hold it, for a PEFT adapter.
    ///
    /// # Errors
    /// When the head has no transformers form.
    fn peft_saved_head(
        task: &TextTask<Self>,
        model: &TextInference<B, Self>,
    ) -> Result<(Vec<&'static str>, BTreeMap<String, TensorData>)>;

    /// Whether a model read from `adapter` sees token type ids (yes by default).
    ///
    /// # Errors
    /// When the adapter's method cannot be read.
    fn peft_token_types(adapter: &PeftAdapter) -> Result<bool> {
        let _ = adapter;
        Ok(true)
    }
}

impl<K: TextKind> TaskKind for TextTask<K> {
    const NAME: &'static str = K::NAME;
    const PEFT_TASK_TYPE: Option<&'static str> = Some(K::PEFT_TASK_TYPE);
    type Options = K::Options;
}

impl<B: AutodiffBackend, K: TextKindOn<B>> Task<B> for TextTask<K>
where
    TaskModel<B, K::Head>: TrainTask<B, Batch = K::Batch, InnerModule = TextInference<B, K>>,
{
    type Error = NlpError;
    type Backbone = NlpBackbone<B>;
    type Split = K::Split;
    type Batch = K::Batch;
    type Model = TaskModel<B, K::Head>;

    fn new(folder: &Path, options: K::Options) -> Result<Self> {
        let folder = TextFolder::open(folder, options.max_length())?;
        Ok(Self { folder, options, labels: LabelSet::default() })
    }

    fn options(&self) -> &K::Options {
        &self.options
    }

    fn from_metadata(folder: &Path, metadata: &Value, source: &Path) -> Result<Self> {
        let options: K::Options = options_from_metadata(metadata, source)?;
        let labels = match K::LABELLED {
            true => labels_from_metadata(metadata, source)?,
            false => LabelSet::default(),
        };
        Ok(Self { folder: TextFolder::open(folder, options.max_length())?, options, labels })
    }

    fn metadata(&self) -> serde_json::Map<String, Value> {
        metadata_of(&self.options, K::LABELLED.then_some(&self.labels))
    }

    fn num_labels(&self) -> usize {
        self.labels.len()
    }

    fn limit_inputs(&mut self, limits: InputLimits) -> Result<()> {
        self.folder.set_limits(limits, self.options.max_length())
    }

    fn read_split(
        &mut self,
        path: &Path,
        role: SplitRole,
        limit: Option<usize>,
    ) -> Result<K::Split> {
        K::read_split(self, path, role, limit)
    }

    fn split_len(split: &K::Split) -> usize {
        K::split_len(split)
    }

    fn training_items(split: &K::Split) -> Vec<usize> {
        K::training_items(split)
    }

    fn batches(&self, split: &K::Split, items: &[usize], size: usize) -> Vec<K::Batch> {
        K::batches(self, split, items, size)
    }

    fn load_backbone(&mut self, device: &B::Device) -> Result<NlpBackbone<B>> {
        self.folder.load_backbone(device)
    }

    fn assemble(
        &self,
        backbone: NlpBackbone<B>,
        delta: DeltaSet<B>,
        device: &B::Device,
    ) -> TaskModel<B, K::Head> {
        let head = K::head(self, &backbone, device);
        TaskModel::new(backbone, delta, head)
    }

    fn export(model: TaskModel<B, K::Head>) -> TaskModel<B, K::Head> {
        model.exported()
    }

    fn with_precision(
        model: InferenceModel<B, Self>,
        precision: Precision,
    ) -> Result<InferenceModel<B, Self>, PetError> {
        model.with_precision(precision)
    }

    fn evaluate(
        &self,
        model: &InferenceModel<B, Self>,
        split: &K::Split,
        batches: &[K::Batch],
    ) -> Evaluation {
        K::evaluate(self, model, split, batches)
    }

    fn predict(
        &self,
        model: &InferenceModel<B, Self>,
        input: &Path,
        batch_size: usize,
        out: &mut dyn Predictions,
    ) -> Result<usize> {
        K::predict(self, model, input, batch_size, out)
    }

    fn restore_peft(
        self,
        adapter: &PeftAdapter,
        saved: BTreeMap<String, TensorData>,
        backbone: NlpBackbone<B>,
        delta: DeltaSet<B>,
        device: &B::Device,
    ) -> Result<(Self, TaskModel<B, K::Head>)> {
        let loaded = self.folder.loaded();
        let weights = PeftHead::of(saved, &adapter.source, loaded);
        let (head, labels) = K::peft_head(&weights, loaded, &backbone, device)?;
        let options = K::Options::for_peft(peft_max_length(&backbone, adapter));
        let folder = self.folder.with_max_length(options.max_length())?;
        let mut model = TaskModel::new(backbone, delta, head);
        model.token_types = K::peft_token_types(adapter)?;
        Ok((Self { folder, options, labels }, model))
    }

    fn export_peft(
        &self,
        model: &InferenceModel<B, Self>,
        spec: &DeltaSpec,
        method: &str,
    ) -> Result<PeftAdapter> {
        let model_prefix = format!("{}.", self.folder.loaded().hf_base_model());
        let mut adapter = peft_adapter(method, spec, &model.delta, &model.backbone, &model_prefix)?;
        let (modules, head) = K::peft_saved_head(self, model)?;
        let head_prefix = match adapter.peft_type()? {
            PeftType::Lora => "base_model.model.",
            _ => "base_model.",
        };
        adapter.tensors.extend(head.into_iter().map(|(k, v)| (format!("{head_prefix}{k}"), v)));
        adapter.config.insert("task_type".into(), K::PEFT_TASK_TYPE.into());
        adapter.config.insert("modules_to_save".into(), modules.into());
        Ok(adapter)
    }
}
