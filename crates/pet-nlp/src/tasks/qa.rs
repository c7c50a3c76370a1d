//! Extractive question answering (SQuAD v1.1): question/context windows with a document stride,
//! start/end targets, training loss, and span decoding (n-best starts and ends inside the
//! context, end after start, at most `max_answer_length` tokens, best summed logit over all
//! windows of a question), scored with SQuAD exact match and F1. This follows transformers'
//! `run_qa.py` (`prepare_train_features`, `postprocess_qa_predictions`). Unanswerable questions
//! (SQuAD v2) are not modelled: they are skipped when training and answered with a span.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use pet_core::metrics::squad;
use pet_core::peft::{PeftAdapter, PeftType};
use pet_core::task::{Predictions, SplitRole};
use pet_core::train::{Evaluation, TrainTask};
use pet_core::{Backbone, PetError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::backbone::NlpBackbone;
use crate::batch::{PaddedBatch, check_row};
use crate::data::{LabelSet, SquadExample, read_squad};
use crate::error::{NlpError, Result};
use crate::folder::EncoderFolder;
use crate::heads::qa::{QaHead, QaHeadConfig};
use crate::tasks::model::TaskModel;
use crate::tasks::peft::{PeftHead, hf_head_weights};
use crate::tasks::text::{TextKind, TextKindOn, TextOptions, TextTask, default_max_length};
use crate::tokenize::{TextTokenizer, Window};

/// Candidates kept per window for the start and for the end, as `run_qa.py`'s `n_best_size`.
const N_BEST: usize = 20;

/// One window of one question, with its target span.
#[derive(Clone, Debug)]
pub struct QaFeature {
    /// Tokens of the window.
    pub window: Window,
    /// Index of its question among the examples.
    pub example: usize,
    /// Start token of the answer, 0 (`[CLS]`) when the answer is not inside the window.
    pub start: usize,
    /// End token of the answer, 0 when the answer is not inside the window.
    pub end: usize,
}

/// The target tokens of the character span `[start_char, end_char)` in `window`, or `(0, 0)`.
fn target(window: &Window, start_char: usize, end_char: usize) -> (usize, usize) {
    let context: Vec<usize> =
        (0..window.sequence_ids.len()).filter(|&i| window.sequence_ids[i] == Some(1)).collect();
    let (Some(&first), Some(&last)) = (context.first(), context.last()) else { return (0, 0) };
    let offsets = &window.encoded.offsets;
    if offsets[first].0 > start_char || offsets[last].1 < end_char {
        return (0, 0);
    }
    let mut start = first;
    while start <= last && offsets[start].0 <= start_char {
        start += 1;
    }
    let mut end = last;
    while end >= first && offsets[end].1 >= end_char {
        if end == 0 {
            break;
        }
        end -= 1;
    }
    (start - 1, end + 1)
}

/// The windows of every question, with targets from each question's first answer.
///
/// # Errors
/// When the tokenizer fails.
pub fn features(
    examples: &[SquadExample],
    tokenizer: &TextTokenizer,
    max_length: usize,
    stride: usize,
) -> Result<Vec<QaFeature>> {
    let mut out = Vec::new();
    for (index, example) in examples.iter().enumerate() {
        out.extend(features_of(index, example, tokenizer, max_length, stride)?);
    }
    Ok(out)
}

/// The windows of question `index`, with targets from its first answer.
fn features_of(
    index: usize,
    example: &SquadExample,
    tokenizer: &TextTokenizer,
    max_length: usize,
    stride: usize,
) -> Result<Vec<QaFeature>> {
    let span =
        example.answers.first().map(|a| (a.answer_start, a.answer_start + a.text.chars().count()));
    let windows = tokenizer.encode_windows(
        example.question.trim_start(),
        &example.context,
        max_length,
        stride,
    )?;
    Ok(windows
        .into_iter()
        .map(|window| {
            let (start, end) = span.map_or((0, 0), |(s, e)| target(&window, s, e));
            QaFeature { window, example: index, start, end }
        })
        .collect())
}

/// Padded windows and their targets.
#[derive(Clone, Debug)]
pub struct QaBatch {
    /// Padded token ids, types and mask.
    pub inputs: PaddedBatch,
    /// Start targets.
    pub starts: Vec<i64>,
    /// End targets.
    pub ends: Vec<i64>,
    /// Index of each row's feature in the feature list.
    pub features: Vec<usize>,
}

impl QaBatch {
    /// Pads the features `indices` into batches of `size`.
    pub fn chunk(features: &[QaFeature], indices: &[usize], size: usize, pad_id: u32) -> Vec<Self> {
        indices
            .chunks(size.max(1))
            .map(|chunk| Self {
                inputs: PaddedBatch::new(
                    &chunk.iter().map(|&i| &features[i].window.encoded).collect::<Vec<_>>(),
                    pad_id,
                ),
                starts: chunk.iter().map(|&i| features[i].start as i64).collect(),
                ends: chunk.iter().map(|&i| features[i].end as i64).collect(),
                features: chunk.to_vec(),
            })
            .collect()
    }
}

/// Backbone + delta + QA head.
pub type QuestionAnswerer<B> = TaskModel<B, QaHead<B>>;

/// The n best indices of `scores`, highest first.
fn n_best(scores: &[f32], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(n);
    order
}

impl<B: Backend> QuestionAnswerer<B> {
    /// Start and end logits of a batch.
    ///
    /// # Shapes
    /// - output: two `[batch, seq]`
    pub fn logits(&self, batch: &QaBatch) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let device = self.head.qa_outputs.weight.device();
        self.head.forward(self.encode(&batch.inputs, &device))
    }

    /// The best answer text of every example.
    pub fn answers(
        &self,
        batches: &[QaBatch],
        features: &[QaFeature],
        examples: &[SquadExample],
        max_answer_length: usize,
    ) -> Vec<String> {
        let mut best: Vec<Option<(f32, usize, usize, usize)>> = vec![None; examples.len()];
        for batch in batches {
            let (start, end) = self.logits(batch);
            let [_, seq] = start.dims();
            let start = start.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default();
            let end = end.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default();
            for (row, &index) in batch.features.iter().enumerate() {
                let feature = &features[index];
                let len = feature.window.encoded.input_ids.len();
                let (s, e) = (&start[row * seq..row * seq + len], &end[row * seq..row * seq + len]);
                let in_context = |t: usize| feature.window.sequence_ids.get(t) == Some(&Some(1));
                for &a in &n_best(s, N_BEST) {
                    for &b in &n_best(e, N_BEST) {
                        if !in_context(a)
                            || !in_context(b)
                            || b < a
                            || b - a + 1 > max_answer_length
                        {
                            continue;
                        }
                        let score = s[a] + e[b];
                        if best[feature.example].is_none_or(|(top, ..)| score > top) {
                            best[feature.example] = Some((score, index, a, b));
                        }
                    }
                }
            }
        }
        best.iter()
            .enumerate()
            .map(|(example, choice)| match choice {
                Some((_, index, a, b)) => {
                    let offsets = &features[*index].window.encoded.offsets;
                    let (from, to) = (offsets[*a].0, offsets[*b].1);
                    examples[example]
                        .context
                        .chars()
                        .skip(from)
                        .take(to.saturating_sub(from))
                        .collect()
                }
                None => String::new(),
            })
            .collect()
    }

    /// SQuAD F1 (the selection score) and exact match, in percent.
    pub fn evaluate(
        &self,
        batches: &[QaBatch],
        features: &[QaFeature],
        examples: &[SquadExample],
        max_answer_length: usize,
    ) -> Evaluation {
        let predictions = self.answers(batches, features, examples, max_answer_length);
        let gold: Vec<Vec<String>> =
            examples.iter().map(|e| e.answers.iter().map(|a| a.text.clone()).collect()).collect();
        let scores = squad::evaluate(&predictions, &gold);
        let metrics =
            [("exact_match".to_string(), scores.exact_match), ("f1".to_string(), scores.f1)];
        Evaluation { score: scores.f1, metrics: metrics.into() }
    }
}

impl<B: AutodiffBackend> TrainTask<B> for QuestionAnswerer<B>
where
    QuestionAnswerer<B>: AutodiffModule<B>,
{
    type Batch = QaBatch;

    fn loss(&self, batch: &QaBatch) -> Tensor<B, 1> {
        let (start, end) = self.logits(batch);
        let device = start.device();
        let targets = |t: &Vec<i64>| {
            Tensor::<B, 1, Int>::from_data(TensorData::new(t.clone(), [t.len()]), &device)
        };
        let loss = CrossEntropyLossConfig::new().init(&device);
        (loss.forward(start, targets(&batch.starts)) + loss.forward(end, targets(&batch.ends)))
            / 2.0
    }

    fn batch_size(batch: &QaBatch) -> usize {
        batch.starts.len()
    }
}

/// `doc_stride` when a job names none.
fn default_doc_stride() -> usize {
    128
}

/// `max_answer_length` when a job names none.
fn default_max_answer_length() -> usize {
    30
}

/// The job options of extractive QA.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaOptions {
    /// Tokens per window, special tokens included.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Context tokens shared by consecutive windows of a long context.
    #[serde(default = "default_doc_stride")]
    pub doc_stride: usize,
    /// Longest answer, in tokens.
    #[serde(default = "default_max_answer_length")]
    pub max_answer_length: usize,
}

impl TextOptions for QaOptions {
    fn max_length(&self) -> usize {
        self.max_length
    }

    fn for_peft(max_length: usize) -> Self {
        Self { max_length, ..Self::default() }
    }
}

impl Default for QaOptions {
    fn default() -> Self {
        Self {
            max_length: default_max_length(),
            doc_stride: default_doc_stride(),
            max_answer_length: default_max_answer_length(),
        }
    }
}

/// A SQuAD split: its questions and their windows.
#[derive(Clone, Debug)]
pub struct QaSplit {
    /// The questions.
    pub examples: Vec<SquadExample>,
    /// Their windows, with targets.
    pub features: Vec<QaFeature>,
}

/// Extractive question answering as a [`Task`](pet_core::task::Task): SQuAD v1.1 JSON to
/// train, score and predict; a prediction line is `{"id", "answer"}`.
pub type QuestionAnswering = TextTask<QaKind>;

/// The kind of [`QuestionAnswering`].
#[derive(Clone, Copy, Debug)]
pub struct QaKind;

/// The first `limit` questions of the SQuAD file at `path` and their windows, each window
/// checked against the model's limits.
///
/// A SQuAD file is one JSON document, read whole ([`read_squad`]); questions are cut as texts
/// are ([`crate::tokenize`]), contexts are windowed whole.
fn read_split(task: &QuestionAnswering, path: &Path, limit: Option<usize>) -> Result<QaSplit> {
    let mut examples = read_squad(path)?;
    examples.truncate(limit.unwrap_or(usize::MAX));
    let tokenizer = task.folder.tokenizer(path)?;
    let QaOptions { max_length, doc_stride, .. } = task.options;
    let mut features = Vec::new();
    for (index, example) in examples.iter().enumerate() {
        let question = |reason: String| -> NlpError {
            PetError::format(path, format!("question `{}`: {reason}", example.id)).into()
        };
        let windows = features_of(index, example, tokenizer, max_length, doc_stride)
            .map_err(|e| question(e.to_string()))?;
        for feature in &windows {
            let limits = task.folder.limits();
            check_row(limits, &feature.window.encoded, path, 0)
                .map_err(|e| match e {
                    NlpError::Core(PetError::Input { violation, .. }) => violation.to_string(),
                    other => other.to_string(),
                })
                .map_err(question)?;
        }
        features.extend(windows);
    }
    Ok(QaSplit { examples, features })
}

impl TextKind for QaKind {
    const NAME: &'static str = "qa";
    const PEFT_TASK_TYPE: &'static str = "QUESTION_ANS";
    const LABELLED: bool = false;
    type Options = QaOptions;
}

impl<B: AutodiffBackend> TextKindOn<B> for QaKind {
    type Split = QaSplit;
    type Batch = QaBatch;
    type Head = QaHead<B>;

    fn read_split(
        task: &mut QuestionAnswering,
        path: &Path,
        _role: SplitRole,
        limit: Option<usize>,
    ) -> Result<QaSplit> {
        read_split(task, path, limit)
    }

    fn split_len(split: &QaSplit) -> usize {
        split.features.len()
    }

    /// Windows of answerable questions only (SQuAD v1.1).
    fn training_items(split: &QaSplit) -> Vec<usize> {
        (0..split.features.len())
            .filter(|&i| !split.examples[split.features[i].example].is_impossible)
            .collect()
    }

    fn batches(
        task: &QuestionAnswering,
        split: &QaSplit,
        items: &[usize],
        size: usize,
    ) -> Vec<QaBatch> {
        QaBatch::chunk(&split.features, items, size, task.folder.pad_id())
    }

    fn head(_task: &QuestionAnswering, backbone: &NlpBackbone<B>, device: &B::Device) -> QaHead<B> {
        QaHeadConfig::new(backbone.shape().hidden_size).init(device)
    }

    fn evaluate(
        task: &QuestionAnswering,
        model: &QuestionAnswerer<B::InnerBackend>,
        split: &QaSplit,
        batches: &[QaBatch],
    ) -> Evaluation {
        let longest = task.options.max_answer_length;
        model.evaluate(batches, &split.features, &split.examples, longest)
    }

    fn predict(
        task: &QuestionAnswering,
        model: &QuestionAnswerer<B::InnerBackend>,
        input: &Path,
        batch_size: usize,
        out: &mut dyn Predictions,
    ) -> Result<usize> {
        // A SQuAD file is one JSON document, read whole; its answers are pushed as they come.
        let split = read_split(task, input, None)?;
        let items: Vec<usize> = (0..split.features.len()).collect();
        let batches = QaBatch::chunk(&split.features, &items, batch_size, task.folder.pad_id());
        let longest = task.options.max_answer_length;
        let answers = model.answers(&batches, &split.features, &split.examples, longest);
        let mut pushed = 0;
        for (example, answer) in split.examples.iter().zip(&answers) {
            out.push(json!({"id": example.id, "answer": answer}))?;
            pushed += 1;
        }
        Ok(pushed)
    }

    fn peft_head(
        weights: &PeftHead,
        _names: &EncoderFolder,
        backbone: &NlpBackbone<B>,
        device: &B::Device,
    ) -> Result<(QaHead<B>, LabelSet)> {
        let head = weights.load(QaHeadConfig::new(backbone.shape().hidden_size).init(device))?;
        Ok((head, LabelSet::default()))
    }

    fn peft_saved_head(
        _task: &QuestionAnswering,
        model: &QuestionAnswerer<B::InnerBackend>,
    ) -> Result<(Vec<&'static str>, BTreeMap<String, TensorData>)> {
        Ok((vec!["qa_outputs"], hf_head_weights(&model.head)?))
    }

    /// PEFT 0.17's `QUESTION_ANS` prompt learning forwards no token type ids: only LoRA sees
    /// them.
    fn peft_token_types(adapter: &PeftAdapter) -> Result<bool> {
        Ok(adapter.peft_type()? == PeftType::Lora)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::Encoded;

    fn window() -> Window {
        // [CLS] q [SEP] the cat sat [SEP]; context "the cat sat"
        Window {
            encoded: Encoded {
                input_ids: vec![2, 9, 3, 5, 6, 7, 3],
                token_type_ids: vec![0, 0, 0, 1, 1, 1, 1],
                offsets: vec![(0, 0), (0, 1), (0, 0), (0, 3), (4, 7), (8, 11), (0, 0)],
                word_ids: vec![None; 7],
            },
            sequence_ids: vec![None, Some(0), None, Some(1), Some(1), Some(1), None],
        }
    }

    #[test]
    fn an_answer_inside_the_window_targets_its_tokens() {
        // "cat sat" = characters 4..11
        assert_eq!(target(&window(), 4, 11), (4, 5));
        assert_eq!(target(&window(), 0, 3), (3, 3));
    }

    #[test]
    fn an_answer_outside_the_window_targets_cls() {
        assert_eq!(target(&window(), 8, 15), (0, 0));
    }

    #[test]
    fn n_best_orders_by_score() {
        assert_eq!(n_best(&[0.1, 0.9, 0.5], 2), vec![1, 2]);
    }
}
