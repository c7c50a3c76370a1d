//! `pet predict` and `pet eval` for sequence classification: restore the classifier from a
//! model folder and a pet delta checkpoint, then write one JSON object per input line
//! (`logits`, `label`), or score a labelled file (accuracy, macro-F1, MCC).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::AutodiffBackend;
use pet_nlp::data::read_classification;
use pet_nlp::tasks::classification::ClassificationBatch;
use pet_nlp::tokenize::TextTokenizer;
use serde_json::json;

use crate::device::BackendJob;
use crate::restore::restore_classifier;
use crate::train::resolve_folder;

const BATCH: usize = 32;

/// Predict or score a classification file.
#[derive(Clone, Debug)]
pub struct PredictJob {
    /// Model folder or asset name.
    pub model: String,
    /// pet delta checkpoint.
    pub delta: PathBuf,
    /// Input (JSONL, CSV or TSV with `text`, optional `text_pair`, and `label` for `eval`).
    pub input: PathBuf,
    /// Where to write predictions (JSONL); `None` scores the file instead.
    pub output: Option<PathBuf>,
}

/// What a run produced: the number of predictions written, or the metrics.
#[derive(Clone, Debug)]
pub enum PredictOutcome {
    /// Predictions written.
    Written(usize),
    /// Metrics of `eval`.
    Scored(std::collections::BTreeMap<String, f64>),
}

impl BackendJob for PredictJob {
    type Output = PredictOutcome;

    fn run<B: AutodiffBackend>(self, device: B::Device, _backend: &str) -> Result<PredictOutcome> {
        let model_dir = resolve_folder(&self.model)?;
        let restored = restore_classifier::<B::InnerBackend>(&model_dir, &self.delta, &device)?;
        let tokenizer =
            TextTokenizer::from_file(&model_dir.join("tokenizer.json"), restored.max_length)?;
        let examples = read_classification(&self.input)?;
        let mut rows = Vec::with_capacity(examples.len());
        for (index, example) in examples.iter().enumerate() {
            let class = match (&self.output, &example.label) {
                (Some(_), _) => 0,
                (None, Some(label)) => restored.labels.index_of(label).with_context(|| {
                    format!(
                        "{}: example {}: unknown label `{label}`",
                        self.input.display(),
                        index + 1
                    )
                })?,
                (None, None) => anyhow::bail!(
                    "{}: example {} has no label to score",
                    self.input.display(),
                    index + 1
                ),
            };
            rows.push((tokenizer.encode(&example.text, example.text_pair.as_deref())?, class));
        }
        let batches = ClassificationBatch::chunk(&rows, BATCH, tokenizer.pad_id());
        let Some(output) = self.output else {
            let metrics = restored.model.evaluate(&batches, restored.labels.len()).metrics;
            return Ok(PredictOutcome::Scored(metrics));
        };
        let (predicted, logits) = restored.model.predict(&batches);
        write_predictions(&output, &predicted, &logits, |i| {
            restored.labels.name(i).unwrap_or("").to_string()
        })?;
        Ok(PredictOutcome::Written(predicted.len()))
    }
}

fn write_predictions(
    path: &Path,
    predicted: &[usize],
    logits: &[Vec<f32>],
    name: impl Fn(usize) -> String,
) -> Result<()> {
    let tmp = path.with_extension("jsonl.partial");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    for (class, row) in predicted.iter().zip(logits) {
        writeln!(out, "{}", json!({"logits": row, "label": name(*class)}))
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    out.flush().with_context(|| format!("writing {}", tmp.display()))?;
    drop(out);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("moving {} to {}", tmp.display(), path.display()))
}
