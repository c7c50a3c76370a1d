//! Sequence classification (single texts and pairs): the task model, its batches, training loss
//! (cross-entropy), evaluation (accuracy, macro-F1, MCC), and [`Classification`], the task as
//! `pet train`, `pet eval` and `pet predict` run it.
//!
//! Data: JSONL, CSV or TSV rows with `text`, optional `text_pair` and `label` (read by
//! [`read_classification`]), or pre-tokenized JSONL lines (`input_ids`, optional
//! `attention_mask`, `token_type_ids`, and `label`). A prediction line is
//! `{"logits": [classes], "label"}`. Files are streamed and tokenized row by row; every row is
//! checked against the model's limits ([`check_row`]), and prediction runs batch by batch as
//! the file is read.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use pet_core::metrics::classification::{accuracy, macro_f1, matthews_corrcoef};
use pet_core::task::{Predictions, SplitRole};
use pet_core::train::{Evaluation, TrainTask};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::backbone::NlpBackbone;
use crate::batch::{PaddedBatch, check_row};
use crate::data::{LabelSet, classification_examples};
use crate::error::{NlpError, Result};
use crate::folder::{DEBERTA_V2, EncoderFolder};
use crate::heads::ClassificationHead;
use crate::heads::classification::from_hf_head_keys;
use crate::input::{is_pretokenized, json_lines};
use crate::tasks::model::TaskModel;
use crate::tasks::peft::{PeftHead, hf_head_weights};
use crate::tasks::text::{TextKind, TextKindOn, TextOptions, TextTask, default_max_length};
use crate::tokenize::Encoded;

/// Tokenized rows and their class indices.
#[derive(Clone, Debug)]
pub struct ClassificationBatch {
    /// Padded token ids, types and mask.
    pub inputs: PaddedBatch,
    /// Class index of each row.
    pub labels: Vec<usize>,
}

impl ClassificationBatch {
    /// Pads the rows `items` of `rows` into batches of `size`, in order.
    pub fn chunk(
        rows: &[(Encoded, usize)],
        items: &[usize],
        size: usize,
        pad_id: u32,
    ) -> Vec<Self> {
        items
            .chunks(size.max(1))
            .map(|chunk| Self {
                inputs: PaddedBatch::new(
                    &chunk.iter().map(|&i| &rows[i].0).collect::<Vec<_>>(),
                    pad_id,
                ),
                labels: chunk.iter().map(|&i| rows[i].1).collect(),
            })
            .collect()
    }
}

/// Backbone + delta + classification head.
pub type SequenceClassifier<B> = TaskModel<B, ClassificationHead<B>>;

impl<B: Backend> SequenceClassifier<B> {
    /// Class logits of a batch.
    ///
    /// # Shapes
    /// - output: `[batch, num_labels]`
    pub fn logits(&self, batch: &PaddedBatch) -> Tensor<B, 2> {
        let device = self.head.classifier.weight.device();
        self.head.forward(self.encode(batch, &device))
    }

    /// Predicted class indices and logits of every row.
    pub fn predict(&self, batches: &[ClassificationBatch]) -> (Vec<usize>, Vec<Vec<f32>>) {
        let (mut predicted, mut all_logits) = (Vec::new(), Vec::new());
        for batch in batches {
            let logits = self.logits(&batch.inputs);
            let [rows, classes] = logits.dims();
            let values = logits.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default();
            for row in values.chunks(classes).take(rows) {
                let best =
                    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
                predicted.push(best);
                all_logits.push(row.to_vec());
            }
        }
        (predicted, all_logits)
    }

    /// Accuracy (the selection score), macro-F1 and MCC over `batches`.
    pub fn evaluate(&self, batches: &[ClassificationBatch], num_labels: usize) -> Evaluation {
        let (predicted, _) = self.predict(batches);
        let labels: Vec<usize> = batches.iter().flat_map(|b| b.labels.iter().copied()).collect();
        let acc = accuracy(&predicted, &labels);
        let metrics = [
            ("accuracy".to_string(), acc),
            ("macro_f1".to_string(), macro_f1(&predicted, &labels, num_labels)),
            ("mcc".to_string(), matthews_corrcoef(&predicted, &labels)),
        ];
        Evaluation { score: acc, metrics: metrics.into() }
    }
}

impl<B: AutodiffBackend> TrainTask<B> for SequenceClassifier<B>
where
    SequenceClassifier<B>: AutodiffModule<B>,
{
    type Batch = ClassificationBatch;

    fn loss(&self, batch: &ClassificationBatch) -> Tensor<B, 1> {
        let logits = self.logits(&batch.inputs);
        let device = logits.device();
        let labels: Vec<i64> = batch.labels.iter().map(|&l| l as i64).collect();
        let labels =
            Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [batch.labels.len()]), &device);
        CrossEntropyLossConfig::new().init(&device).forward(logits, labels)
    }

    fn batch_size(batch: &ClassificationBatch) -> usize {
        batch.labels.len()
    }
}

/// The job options of classification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationOptions {
    /// Tokens per input, special tokens included.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
}

impl Default for ClassificationOptions {
    fn default() -> Self {
        Self { max_length: default_max_length() }
    }
}

impl TextOptions for ClassificationOptions {
    fn max_length(&self) -> usize {
        self.max_length
    }

    fn for_peft(max_length: usize) -> Self {
        Self { max_length }
    }
}

/// Sequence classification as a [`Task`](pet_core::task::Task): the model folder's tokenizer,
/// the options, and the class names (from the training split, a checkpoint or `config.json`'s
/// `id2label`).
pub type Classification = TextTask<ClassificationKind>;

/// The kind of [`Classification`].
#[derive(Clone, Copy, Debug)]
pub struct ClassificationKind;

/// One row of a classification file: its tokens and its label, if it has one.
type Row = (Encoded, Option<String>);

/// The rows of `path` (text or pre-tokenized), read and tokenized one at a time as the file is
/// streamed, each checked against the model's limits.
fn rows<'a>(
    task: &'a Classification,
    path: &'a Path,
) -> Result<Box<dyn Iterator<Item = Result<Row>> + 'a>> {
    let limits = task.folder.limits();
    if is_pretokenized(path) {
        let lines = json_lines(path, limits)?;
        return Ok(Box::new(lines.map(move |line| {
            let line = line?;
            let ids = line
                .token_ids(path, limits)?
                .ok_or_else(|| line.error(path, "expected `input_ids`"))?;
            let encoded = ids.unpadded(path, line.line)?;
            check_row(limits, &encoded, path, line.line)?;
            let label = match line.value.get("label") {
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
                _ => line.text("label").map(str::to_string),
            };
            Ok((encoded, label))
        })));
    }
    let examples = classification_examples(path)?;
    let tokenizer = task.folder.tokenizer(path)?;
    Ok(Box::new(examples.map(move |example| {
        let (line, example) = example?;
        let encoded = tokenizer.encode(&example.text, example.text_pair.as_deref())?;
        check_row(limits, &encoded, path, line)?;
        Ok((encoded, example.label))
    })))
}

/// The first `limit` rows of `path`.
fn read_rows(task: &Classification, path: &Path, limit: Option<usize>) -> Result<Vec<Row>> {
    rows(task, path)?.take(limit.unwrap_or(usize::MAX)).collect()
}

impl TextKind for ClassificationKind {
    const NAME: &'static str = "classification";
    const PEFT_TASK_TYPE: &'static str = "SEQ_CLS";
    const LABELLED: bool = true;
    type Options = ClassificationOptions;
}

impl<B: AutodiffBackend> TextKindOn<B> for ClassificationKind {
    type Split = Vec<(Encoded, usize)>;
    type Batch = ClassificationBatch;
    type Head = ClassificationHead<B>;

    fn read_split(
        task: &mut Classification,
        path: &Path,
        role: SplitRole,
        limit: Option<usize>,
    ) -> Result<Vec<(Encoded, usize)>> {
        let rows = read_rows(task, path, limit)?;
        if role == SplitRole::Train {
            task.labels = LabelSet::new(rows.iter().filter_map(|(_, l)| l.clone()));
        }
        let mut split = Vec::with_capacity(rows.len());
        for (index, (encoded, label)) in rows.into_iter().enumerate() {
            let label = label.ok_or_else(|| NlpError::example(path, index + 1, "no label"))?;
            let class = task.labels.index_of(&label).ok_or_else(|| {
                let known = task.labels.names();
                let reason = format!("label `{label}` is not among the training labels {known:?}");
                NlpError::example(path, index + 1, reason)
            })?;
            split.push((encoded, class));
        }
        Ok(split)
    }

    fn split_len(split: &Vec<(Encoded, usize)>) -> usize {
        split.len()
    }

    fn batches(
        task: &Classification,
        split: &Vec<(Encoded, usize)>,
        items: &[usize],
        size: usize,
    ) -> Vec<ClassificationBatch> {
        ClassificationBatch::chunk(split, items, size, task.folder.pad_id())
    }

    fn head(
        task: &Classification,
        backbone: &NlpBackbone<B>,
        device: &B::Device,
    ) -> ClassificationHead<B> {
        backbone.classification_head(task.labels.len(), false).init(device)
    }

    fn evaluate(
        task: &Classification,
        model: &SequenceClassifier<B::InnerBackend>,
        _split: &Vec<(Encoded, usize)>,
        batches: &[ClassificationBatch],
    ) -> Evaluation {
        model.evaluate(batches, task.labels.len())
    }

    fn predict(
        task: &Classification,
        model: &SequenceClassifier<B::InnerBackend>,
        input: &Path,
        batch_size: usize,
        out: &mut dyn Predictions,
    ) -> Result<usize> {
        // Batch by batch as the file is read: a batch of rows and its predictions are held at
        // a time.
        let mut rows = rows(task, input)?;
        let label = |class: usize| task.labels.name(class).unwrap_or("");
        let mut pushed = 0;
        loop {
            let chunk: Vec<(Encoded, usize)> = rows
                .by_ref()
                .take(batch_size.max(1))
                .map(|row| row.map(|(encoded, _)| (encoded, 0)))
                .collect::<Result<_>>()?;
            if chunk.is_empty() {
                break;
            }
            let items: Vec<usize> = (0..chunk.len()).collect();
            let batches =
                ClassificationBatch::chunk(&chunk, &items, chunk.len(), task.folder.pad_id());
            let (predicted, logits) = model.predict(&batches);
            for (&class, row) in predicted.iter().zip(&logits) {
                out.push(json!({"logits": row, "label": label(class)}))?;
                pushed += 1;
            }
        }
        Ok(pushed)
    }

    fn peft_head(
        weights: &PeftHead,
        names: &EncoderFolder,
        backbone: &NlpBackbone<B>,
        device: &B::Device,
    ) -> Result<(ClassificationHead<B>, LabelSet)> {
        let (tensors, dense) = from_hf_head_keys(weights.tensors.clone());
        let weights = PeftHead { tensors, file: weights.file.clone() };
        let n = weights.outputs("classifier.weight")?;
        let head = weights.load(backbone.classification_head(n, dense).init(device))?;
        Ok((head, LabelSet::new(names.label_names(n))))
    }

    /// BERT's `classifier`; RoBERTa's `classifier.dense` + `classifier.out_proj`; DeBERTa's
    /// `pooler.dense` + `classifier` (the ContextPooler saved as module `pooler`).
    fn peft_saved_head(
        task: &Classification,
        model: &SequenceClassifier<B::InnerBackend>,
    ) -> Result<(Vec<&'static str>, BTreeMap<String, TensorData>)> {
        let weights = hf_head_weights(&model.head)?;
        let deberta = task.folder.loaded().model_type == DEBERTA_V2;
        let dense = model.head.dense.is_some();
        let (dense_to, classifier_to, modules) = match (dense, deberta) {
            (true, true) => ("pooler.dense.", "classifier.", vec!["classifier", "pooler"]),
            (true, false) => ("classifier.dense.", "classifier.out_proj.", vec!["classifier"]),
            (false, _) => ("dense.", "classifier.", vec!["classifier"]),
        };
        let renamed = weights
            .into_iter()
            .map(|(key, data)| {
                match (key.strip_prefix("dense."), key.strip_prefix("classifier.")) {
                    (Some(rest), _) => (format!("{dense_to}{rest}"), data),
                    (_, Some(rest)) => (format!("{classifier_to}{rest}"), data),
                    _ => (key, data),
                }
            })
            .collect();
        Ok((modules, renamed))
    }
}
