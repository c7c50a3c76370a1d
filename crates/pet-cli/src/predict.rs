//! `pet predict` and `pet eval`: restore a task model from a model folder and a pet delta
//! checkpoint or a PEFT task adapter folder, then write one JSON object per input line, or score
//! a labelled file. Both are [`pet_tasks::run::infer`]: the task comes from the delta, and the
//! task reads the input and writes the lines.
//!
//! | task | `predict` input line | `predict` output line | `eval` input | `eval` metrics |
//! |---|---|---|---|---|
//! | classification | `{"text", "text_pair"}` (or CSV/TSV), or `{"input_ids", "attention_mask", "token_type_ids"}` | `{"logits": [classes], "label"}` | the same with `label` | accuracy, macro-F1, MCC |
//! | tagging | `{"tokens": [...]}` or `{"text"}` split on whitespace, or `{"input_ids", "word_ids", ...}` | `{"tokens", "tags", "logits": [tokens, classes]}` (no `tokens` for ids) | CoNLL `token tag`, or ids lines with `tags` | seqeval F1, precision, recall |
//! | qa | SQuAD JSON | `{"id", "answer"}` | SQuAD JSON | exact match, F1 |
//!
//! Tagging logits are read at each word's first sub-word; words cut off by truncation get the
//! `O` tag and no logits row. Pre-tokenized lines need no `tokenizer.json` in the model folder;
//! text does, and without one the error names the folder and the input file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use pet_core::output::{Output, OutputKind};
use pet_core::precision::Precision;
use pet_core::task::JsonLinesFile;
use pet_tasks::run::Inference::{Predict, Score};
use pet_tasks::run::{Infer, Inferred, infer};

use crate::device::BackendJob;
use crate::train::resolve_folder;

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
    /// Replace an existing output file.
    pub overwrite: bool,
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
        let inputs = [model_dir.as_path(), self.delta.as_path(), self.input.as_path()];
        let request = |inference| Infer { inference, precision: self.precision, batch_size: BATCH };
        let Some(path) = &self.output else {
            return match infer::<B>(&model_dir, &self.delta, &device, request(Score(&self.input)))?
            {
                Inferred::Metrics(metrics) => Ok(PredictOutcome::Scored(metrics)),
                Inferred::Predictions(_) => anyhow::bail!("scoring gave predictions"),
            };
        };
        // Each line is written as its batch is run, to a staged sibling renamed into place once
        // every line is written (removed if anything fails).
        let output = Output::checked(path, OutputKind::File, self.overwrite, &inputs)?;
        let staged = output.stage()?;
        let mut lines = JsonLinesFile::create(staged.path())?;
        let predict = Predict { input: &self.input, to: &mut lines };
        let written = match infer::<B>(&model_dir, &self.delta, &device, request(predict))? {
            Inferred::Predictions(written) => written,
            Inferred::Metrics(_) => anyhow::bail!("predicting gave metrics"),
        };
        lines.finish()?;
        staged.commit()?;
        Ok(PredictOutcome::Written(written))
    }
}
