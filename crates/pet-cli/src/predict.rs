//! `pet predict` and `pet eval`: restore a task model from a model folder and a pet delta
//! checkpoint or a PEFT task adapter folder (see [`crate::restore`]), then write one JSON object per input line, or score a labelled file.
//!
//! | task | `predict` input line | `predict` output line | `eval` input | `eval` metrics |
//! |---|---|---|---|---|
//! | classification | `{"text", "text_pair"}` (or CSV/TSV) | `{"logits": [classes], "label"}` | JSONL/CSV/TSV with `label` | accuracy, macro-F1, MCC |
//! | tagging | `{"tokens": [...]}` or `{"text"}` split on whitespace | `{"tokens", "tags", "logits": [tokens, classes]}` | CoNLL `token tag` | seqeval F1, precision, recall |
//! | qa | SQuAD JSON | `{"id", "answer"}` | SQuAD JSON | exact match, F1 |
//!
//! Tagging logits are read at each word's first sub-word; words cut off by truncation get the
//! `O` tag and no logits row.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::{AutodiffBackend, Backend};
use pet_nlp::data::{LabelSet, read_classification};
use pet_nlp::tasks::classification::{ClassificationBatch, SequenceClassifier};
use pet_nlp::tasks::qa::{QaBatch, QuestionAnswerer};
use pet_nlp::tasks::tagging::{SequenceTagger, TaggedRow, TaggingBatch};
use pet_nlp::tokenize::TextTokenizer;
use serde_json::{Value, json};

use pet_core::precision::Precision;

use crate::device::BackendJob;
use crate::restore::{TaskModel, restore_model};
use crate::train::{read_qa, read_tagged, resolve_folder};

const BATCH: usize = 32;

/// Predict or score a file.
#[derive(Clone, Debug)]
pub struct PredictJob {
    /// Model folder or asset name.
    pub model: String,
    /// pet delta checkpoint or PEFT adapter folder.
    pub delta: PathBuf,
    /// Input file (see the module table).
    pub input: PathBuf,
    /// Where to write predictions (JSONL); `None` scores the file instead.
    pub output: Option<PathBuf>,
    /// Precision of the backbone's linear layers.
    pub precision: Precision,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub enum PredictOutcome {
    /// Number of predictions written.
    Written(usize),
    /// Metrics of `eval`.
    Scored(BTreeMap<String, f64>),
}

impl BackendJob for PredictJob {
    type Output = PredictOutcome;

    fn run<B: AutodiffBackend>(self, device: B::Device, _backend: &str) -> Result<PredictOutcome> {
        let model_dir = resolve_folder(&self.model)?;
        let mut restored = restore_model::<B::InnerBackend>(&model_dir, &self.delta, &device)?;
        restored.model = restored.model.with_precision(self.precision);
        let tokenizer =
            TextTokenizer::from_file(&model_dir.join("tokenizer.json"), restored.max_length)?;
        match &restored.model {
            TaskModel::Classifier(model) => self.classify(model, &restored.labels, &tokenizer),
            TaskModel::Tagger(model) => self.tag(model, &restored.labels, &tokenizer),
            TaskModel::Answerer(model, stride, longest) => {
                self.answer(model, &tokenizer, restored.max_length, *stride, *longest)
            }
        }
    }
}

impl PredictJob {
    fn classify<B: Backend>(
        &self,
        model: &SequenceClassifier<B>,
        labels: &LabelSet,
        tokenizer: &TextTokenizer,
    ) -> Result<PredictOutcome> {
        let examples = read_classification(&self.input)?;
        let mut rows = Vec::with_capacity(examples.len());
        for (index, example) in examples.iter().enumerate() {
            let class = match (&self.output, &example.label) {
                (Some(_), _) => 0,
                (None, Some(label)) => labels.index_of(label).with_context(|| {
                    format!(
                        "{}: example {}: unknown label `{label}`",
                        self.input.display(),
                        index + 1
                    )
                })?,
                (None, None) => {
                    bail!("{}: example {} has no label to score", self.input.display(), index + 1)
                }
            };
            rows.push((tokenizer.encode(&example.text, example.text_pair.as_deref())?, class));
        }
        let batches = ClassificationBatch::chunk(&rows, BATCH, tokenizer.pad_id());
        let Some(output) = &self.output else {
            return Ok(PredictOutcome::Scored(model.evaluate(&batches, labels.len()).metrics));
        };
        let (predicted, logits) = model.predict(&batches);
        let lines = predicted
            .iter()
            .zip(&logits)
            .map(|(class, row)| json!({"logits": row, "label": labels.name(*class).unwrap_or("")}));
        write_lines(output, lines)?;
        Ok(PredictOutcome::Written(predicted.len()))
    }

    fn tag<B: Backend>(
        &self,
        model: &SequenceTagger<B>,
        labels: &LabelSet,
        tokenizer: &TextTokenizer,
    ) -> Result<PredictOutcome> {
        let names = labels.names().to_vec();
        let Some(output) = &self.output else {
            let input = self.input.display().to_string();
            let (rows, _) = read_tagged(&input, tokenizer, Some(labels))?;
            let batches = TaggingBatch::chunk(&rows, BATCH, tokenizer.pad_id());
            return Ok(PredictOutcome::Scored(model.evaluate(&batches, &names).metrics));
        };
        let sentences = read_token_lines(&self.input)?;
        let outside = labels.index_of("O").unwrap_or(0);
        let mut rows = Vec::with_capacity(sentences.len());
        for tokens in &sentences {
            rows.push(TaggedRow::new(tokenizer.encode_words(tokens)?, vec![outside; tokens.len()]));
        }
        let batches = TaggingBatch::chunk(&rows, BATCH, tokenizer.pad_id());
        let mut lines = Vec::with_capacity(rows.len());
        let mut sentence = 0;
        for batch in &batches {
            let (emissions, mask) = model.emissions(batch);
            let [_, words, classes] = emissions.dims();
            let scores = emissions
                .clone()
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .unwrap_or_default();
            let decoded = model.head.decode(emissions, mask, &batch.lengths);
            for (row, (mut tags, &length)) in decoded.into_iter().zip(&batch.lengths).enumerate() {
                let tokens = &sentences[sentence];
                tags.resize(tokens.len(), outside);
                let logits: Vec<&[f32]> = (0..length)
                    .map(|w| &scores[(row * words + w) * classes..(row * words + w + 1) * classes])
                    .collect();
                let tags: Vec<&str> = tags.iter().map(|&t| labels.name(t).unwrap_or("O")).collect();
                lines.push(json!({"tokens": tokens, "tags": tags, "logits": logits}));
                sentence += 1;
            }
        }
        let n = lines.len();
        write_lines(output, lines.into_iter())?;
        Ok(PredictOutcome::Written(n))
    }
}

impl PredictJob {
    fn answer<B: Backend>(
        &self,
        model: &QuestionAnswerer<B>,
        tokenizer: &TextTokenizer,
        max_length: usize,
        stride: usize,
        longest: usize,
    ) -> Result<PredictOutcome> {
        let input = self.input.display().to_string();
        let (examples, features) = read_qa(&input, tokenizer, max_length, stride, None)?;
        let indices: Vec<usize> = (0..features.len()).collect();
        let batches = QaBatch::chunk(&features, &indices, BATCH, tokenizer.pad_id());
        let Some(output) = &self.output else {
            return Ok(PredictOutcome::Scored(
                model.evaluate(&batches, &features, &examples, longest).metrics,
            ));
        };
        let answers = model.answers(&batches, &features, &examples, longest);
        let lines = examples.iter().zip(&answers).map(|(e, a)| json!({"id": e.id, "answer": a}));
        write_lines(output, lines)?;
        Ok(PredictOutcome::Written(answers.len()))
    }
}

/// Words of every JSONL line: `{"tokens": [...]}`, or `{"text": ...}` split on whitespace.
fn read_token_lines(path: &Path) -> Result<Vec<Vec<String>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut sentences = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), index + 1);
        let value: Value = serde_json::from_str(line).with_context(at)?;
        let tokens: Vec<String> =
            match (value.get("tokens"), value.get("text").and_then(Value::as_str)) {
                (Some(Value::Array(items)), _) => items
                    .iter()
                    .map(|t| t.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .with_context(|| format!("{}: `tokens` must hold strings", at()))?,
                (None, Some(text)) => text.split_whitespace().map(str::to_string).collect(),
                _ => bail!("{}: expected `tokens` (a list of strings) or `text`", at()),
            };
        if tokens.is_empty() {
            bail!("{}: no token", at());
        }
        sentences.push(tokens);
    }
    Ok(sentences)
}

/// Writes one JSON value per line, through a temporary file renamed into place.
fn write_lines(path: &Path, lines: impl Iterator<Item = Value>) -> Result<()> {
    let tmp = path.with_extension("jsonl.partial");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    for line in lines {
        writeln!(out, "{line}").with_context(|| format!("writing {}", tmp.display()))?;
    }
    out.flush().with_context(|| format!("writing {}", tmp.display()))?;
    drop(out);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("moving {} to {}", tmp.display(), path.display()))
}
