//! `pet train`: tune a delta on a Hugging Face encoder for a task, from a TOML job file (or the
//! embedded default job) with command-line overrides; print the parameter report, train with a
//! progress bar, select the best epoch on the dev set, and save the delta checkpoint, the
//! resolved job, the metrics log and the dev/test results into the output folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use pet_core::BackboneIdentity;
use pet_core::checkpoint::DeltaCheckpoint;
use pet_core::delta::set::DeltaSet;
use pet_core::delta::set::DeltaSpec;
use pet_core::rng::SplitMix64;
use pet_core::train::{MetricsLog, TrainConfig, fit};
use pet_core::{Backbone, ParamReport};
use pet_nlp::data::{LabelSet, SquadExample, read_classification, read_conll, read_squad};
use pet_nlp::heads::{QaHeadConfig, TokenClassificationHeadConfig};
use pet_nlp::tasks::classification::{ClassificationBatch, SequenceClassifier};
use pet_nlp::tasks::qa::{QaBatch, QaFeature, QuestionAnswerer, features as qa_features};
use pet_nlp::tasks::tagging::{SequenceTagger, TaggedRow, TaggingBatch};
use pet_nlp::tokenize::{Encoded, TextTokenizer};
use pet_nlp::{NlpBackbone, load_encoder};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::device::BackendJob;

/// The embedded default job.
pub const DEFAULT_JOB: &str = include_str!("../jobs/spamassassin-ptuning-v2.toml");

fn default_max_length() -> usize {
    128
}

/// `doc_stride` when a job names none.
pub(crate) fn default_doc_stride() -> usize {
    128
}

/// `max_answer_length` when a job names none.
pub(crate) fn default_max_answer_length() -> usize {
    30
}

fn default_batch_size() -> usize {
    32
}

/// A training job, as a TOML file holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Model folder, or the name of an asset of `datasets/`.
    pub model: String,
    /// `classification` (JSONL/CSV/TSV with `text`, `text_pair`, `label`), `tagging` (CoNLL
    /// columns `token tag`, BIO tags) or `qa` (SQuAD v1.1 JSON).
    pub task: String,
    /// Training data: a file, or `ASSET:FILE` inside a fetched asset.
    pub train: String,
    /// Dev data, for best-epoch selection.
    pub dev: String,
    /// Test data, evaluated with the best epoch.
    #[serde(default)]
    pub test: Option<String>,
    /// Method preset (`ptuning-v2`, `prefix`, `prompt`, `lora`, `adapter`, `bitfit`, `full`, or
    /// several joined by `+`).
    pub method: String,
    /// Explicit delta settings, replacing the preset's.
    #[serde(default)]
    pub delta: Option<DeltaSpec>,
    /// Tokens per input, special tokens included.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Rows per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Train on a seeded subset of this many rows.
    #[serde(default)]
    pub max_train_examples: Option<usize>,
    /// Evaluate on the first this many rows of dev and test.
    #[serde(default)]
    pub max_eval_examples: Option<usize>,
    /// Output folder.
    pub output: PathBuf,
    /// For `tagging`: a CRF over the word-level tag scores.
    #[serde(default)]
    pub crf: bool,
    /// For `qa`: context tokens shared by consecutive windows of a long context.
    #[serde(default = "default_doc_stride")]
    pub doc_stride: usize,
    /// For `qa`: longest answer, in tokens.
    #[serde(default = "default_max_answer_length")]
    pub max_answer_length: usize,
    /// Optimization.
    #[serde(default)]
    pub optim: TrainConfig,
}

impl Job {
    /// Parses a job file's text; `source` names it in errors.
    ///
    /// # Errors
    /// When the TOML is malformed or holds an unknown key.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        toml::from_str(text).with_context(|| format!("reading job {source}"))
    }

    /// The delta settings: the explicit ones, or the method's preset.
    ///
    /// # Errors
    /// For an unknown method.
    pub fn delta_spec(&self) -> Result<DeltaSpec> {
        match &self.delta {
            Some(spec) => Ok(spec.clone()),
            None => Ok(DeltaSpec::preset(&self.method)?),
        }
    }
}

/// A folder or asset name, resolved to a local folder (fetching the asset when needed).
///
/// # Errors
/// When the asset cannot be fetched.
pub fn resolve_folder(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    crate::fetch::fetch(spec)
}

/// A file or `ASSET:FILE`, resolved to a local path.
///
/// # Errors
/// When the asset cannot be fetched.
pub fn resolve_file(spec: &str) -> Result<PathBuf> {
    match spec.split_once(':') {
        Some((asset, file)) if !Path::new(spec).exists() => Ok(resolve_folder(asset)?.join(file)),
        _ => Ok(PathBuf::from(spec)),
    }
}

fn encode_file(
    spec: &str,
    tokenizer: &TextTokenizer,
    labels: Option<&LabelSet>,
    limit: Option<usize>,
) -> Result<(Vec<(Encoded, usize)>, LabelSet)> {
    let path = resolve_file(spec)?;
    let examples = read_classification(&path)?;
    let labels = labels.cloned().unwrap_or_else(|| LabelSet::from_examples(&examples));
    let mut rows = Vec::with_capacity(examples.len());
    for (index, example) in examples.iter().enumerate().take(limit.unwrap_or(usize::MAX)) {
        let Some(label) = &example.label else {
            bail!("{}: example {} has no label", path.display(), index + 1);
        };
        let Some(class) = labels.index_of(label) else {
            bail!(
                "{}: example {}: label `{label}` is not among the training labels {:?}",
                path.display(),
                index + 1,
                labels.names()
            );
        };
        let encoded = tokenizer.encode(&example.text, example.text_pair.as_deref())?;
        rows.push((encoded, class));
    }
    Ok((rows, labels))
}

/// What a finished run reports.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// 1-based best epoch.
    pub best_epoch: usize,
    /// Dev metrics of the best epoch.
    pub dev: std::collections::BTreeMap<String, f64>,
    /// Test metrics of the best epoch, when a test set is given.
    pub test: Option<std::collections::BTreeMap<String, f64>>,
    /// Trainable parameters.
    pub trainable: usize,
    /// All parameters.
    pub total: usize,
    /// Size of the saved delta checkpoint in bytes.
    pub delta_bytes: u64,
    /// Wall time of training and evaluation, in seconds.
    pub seconds: f64,
}

/// A job to run on the device the command line selects.
pub struct TrainJob(pub Job);

/// What every task shares before training: the model folder, its tokenizer, the deltas and the
/// backbone with its trainability applied.
struct Setup<B: AutodiffBackend> {
    folder: PathBuf,
    tokenizer: TextTokenizer,
    spec: DeltaSpec,
    backbone: NlpBackbone<B>,
    delta: DeltaSet<B>,
    identity: BackboneIdentity,
}

impl<B: AutodiffBackend> Setup<B> {
    fn new(job: &Job, device: &B::Device) -> Result<Self> {
        let folder = resolve_folder(&job.model)?;
        let tokenizer = TextTokenizer::from_file(&folder.join("tokenizer.json"), job.max_length)?;
        let spec = job.delta_spec()?;
        B::seed(device, job.optim.seed);
        let (backbone, _, _) = load_encoder::<B>(&folder, device)?;
        let backbone = spec.trainability.apply(backbone);
        let delta = spec.build(&backbone, device)?;
        let identity = backbone.identity();
        Ok(Self { folder, tokenizer, spec, backbone, delta, identity })
    }
}

/// Seeded subset of the training rows, when the job asks for one.
fn subset<T>(job: &Job, mut rows: Vec<T>) -> Vec<T> {
    if let Some(limit) = job.max_train_examples {
        SplitMix64::new(job.optim.seed).shuffle(&mut rows);
        rows.truncate(limit);
    }
    rows
}

/// Prints the parameter report and what is about to train.
fn announce(
    job: &Job,
    folder: &Path,
    report: &ParamReport,
    train: usize,
    dev: usize,
    labels: &LabelSet,
    backend: &str,
) {
    eprintln!("{report}");
    eprintln!(
        "training {} for {} on {} ({train} train / {dev} dev rows, {} labels, backend {backend})",
        job.method,
        job.task,
        folder.display(),
        labels.len()
    );
}

/// What a finished fit hands to [`save_outputs`].
struct Finished {
    best_epoch: usize,
    dev: std::collections::BTreeMap<String, f64>,
    test: Option<std::collections::BTreeMap<String, f64>>,
    report: ParamReport,
    started: std::time::Instant,
}

/// Writes the delta checkpoint (deltas exported, head, trained backbone parameters), the
/// resolved job and the results into the output folder.
fn save_outputs<B: AutodiffBackend, M: burn::module::Module<B>>(
    job: &Job,
    exported: &M,
    spec: &DeltaSpec,
    labels: &LabelSet,
    identity: BackboneIdentity,
    finished: Finished,
) -> Result<RunSummary> {
    let method = json!({
        "task": job.task,
        "method": job.method,
        "delta": spec.exported(),
        "labels": labels,
        "max_length": job.max_length,
        "crf": job.crf,
        "doc_stride": job.doc_stride,
        "max_answer_length": job.max_answer_length,
    });
    let checkpoint = DeltaCheckpoint::capture::<B, _>(
        exported,
        &|e| e.trainable || e.path.starts_with("delta.") || e.path.starts_with("head."),
        method,
        identity,
    );
    let delta_path = job.output.join("delta.safetensors");
    checkpoint.save(&delta_path)?;
    let resolved = toml::to_string_pretty(job).context("writing the resolved job")?;
    std::fs::write(job.output.join("job.toml"), resolved).context("writing job.toml")?;
    let summary = RunSummary {
        best_epoch: finished.best_epoch,
        dev: finished.dev,
        test: finished.test,
        trainable: finished.report.overall.trainable,
        total: finished.report.overall.total,
        delta_bytes: std::fs::metadata(&delta_path).map(|m| m.len()).unwrap_or(0),
        seconds: finished.started.elapsed().as_secs_f64(),
    };
    let results = serde_json::to_string_pretty(&summary).context("writing results")?;
    std::fs::write(job.output.join("results.json"), results).context("writing results.json")?;
    Ok(summary)
}

fn metrics_log(job: &Job) -> Result<MetricsLog> {
    std::fs::create_dir_all(&job.output)
        .with_context(|| format!("creating {}", job.output.display()))?;
    Ok(MetricsLog::to_file(&job.output.join("metrics.jsonl"))?)
}

fn train_classification<B: AutodiffBackend>(
    job: &Job,
    device: &B::Device,
    backend: &str,
) -> Result<RunSummary> {
    let started = std::time::Instant::now();
    let setup = Setup::<B>::new(job, device)?;
    let (train_rows, labels) = encode_file(&job.train, &setup.tokenizer, None, None)?;
    let train_rows = subset(job, train_rows);
    let (dev_rows, _) =
        encode_file(&job.dev, &setup.tokenizer, Some(&labels), job.max_eval_examples)?;
    let test_rows = match &job.test {
        Some(test) => {
            Some(encode_file(test, &setup.tokenizer, Some(&labels), job.max_eval_examples)?.0)
        }
        None => None,
    };
    let pad = setup.tokenizer.pad_id();
    let dev = ClassificationBatch::chunk(&dev_rows, job.batch_size, pad);
    let head = setup.backbone.classification_head(labels.len(), false).init(device);
    let model = SequenceClassifier { backbone: setup.backbone, delta: setup.delta, head };
    let report = ParamReport::of::<B, _>(&model, 2);
    announce(job, &setup.folder, &report, train_rows.len(), dev_rows.len(), &labels, backend);
    let num_labels = labels.len();
    let outcome = fit(
        model,
        &job.optim,
        device,
        |_, rng| {
            let mut rows = train_rows.clone();
            rng.shuffle(&mut rows);
            ClassificationBatch::chunk(&rows, job.batch_size, pad)
        },
        |model: &SequenceClassifier<B::InnerBackend>| model.evaluate(&dev, num_labels),
        &mut metrics_log(job)?,
    )?;
    let best = outcome.best;
    let test = test_rows.map(|rows| {
        best.valid()
            .evaluate(&ClassificationBatch::chunk(&rows, job.batch_size, pad), num_labels)
            .metrics
    });
    let dev = outcome.history[outcome.best_epoch - 1].evaluation.metrics.clone();
    let exported = SequenceClassifier { delta: best.delta.export(), ..best };
    let finished = Finished { best_epoch: outcome.best_epoch, dev, test, report, started };
    save_outputs::<B, _>(job, &exported, &setup.spec, &labels, setup.identity, finished)
}

/// The sentences of a CoNLL file (a path or `ASSET:FILE`) as tagged rows, with the tag set:
/// `labels`, or the file's own tags when `None`.
///
/// # Errors
/// When the file cannot be read, a tag is not in `labels`, or no word of a sentence survives
/// truncation.
pub fn read_tagged(
    spec: &str,
    tokenizer: &TextTokenizer,
    labels: Option<&LabelSet>,
) -> Result<(Vec<TaggedRow>, LabelSet)> {
    let path = resolve_file(spec)?;
    let sentences = read_conll(&path, 1)?;
    let labels = labels
        .cloned()
        .unwrap_or_else(|| LabelSet::new(sentences.iter().flat_map(|s| s.tags.iter().cloned())));
    let mut rows = Vec::with_capacity(sentences.len());
    for (index, sentence) in sentences.iter().enumerate() {
        let tags = sentence
            .tags
            .iter()
            .map(|t| {
                labels.index_of(t).with_context(|| {
                    format!(
                        "{}: sentence {}: tag `{t}` is not among the training tags",
                        path.display(),
                        index + 1
                    )
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        let row = TaggedRow::new(tokenizer.encode_words(&sentence.tokens)?, tags);
        if row.first_subword.is_empty() {
            bail!(
                "{}: sentence {}: no word survives truncation to max_length",
                path.display(),
                index + 1
            );
        }
        rows.push(row);
    }
    Ok((rows, labels))
}

fn train_tagging<B: AutodiffBackend>(
    job: &Job,
    device: &B::Device,
    backend: &str,
) -> Result<RunSummary> {
    let started = std::time::Instant::now();
    let setup = Setup::<B>::new(job, device)?;
    let (train_rows, labels) = read_tagged(&job.train, &setup.tokenizer, None)?;
    let train_rows = subset(job, train_rows);
    let limit = |mut rows: Vec<TaggedRow>| {
        rows.truncate(job.max_eval_examples.unwrap_or(usize::MAX));
        rows
    };
    let dev_rows = limit(read_tagged(&job.dev, &setup.tokenizer, Some(&labels))?.0);
    let test_rows = match &job.test {
        Some(test) => Some(limit(read_tagged(test, &setup.tokenizer, Some(&labels))?.0)),
        None => None,
    };
    let pad = setup.tokenizer.pad_id();
    let dev = TaggingBatch::chunk(&dev_rows, job.batch_size, pad);
    let hidden = setup.backbone.shape().hidden_size;
    let head =
        TokenClassificationHeadConfig::new(hidden, labels.len()).with_crf(job.crf).init(device);
    let model = SequenceTagger { backbone: setup.backbone, delta: setup.delta, head };
    let report = ParamReport::of::<B, _>(&model, 2);
    announce(job, &setup.folder, &report, train_rows.len(), dev_rows.len(), &labels, backend);
    let names = labels.names().to_vec();
    let outcome = fit(
        model,
        &job.optim,
        device,
        |_, rng| {
            let mut rows = train_rows.clone();
            rng.shuffle(&mut rows);
            TaggingBatch::chunk(&rows, job.batch_size, pad)
        },
        |model: &SequenceTagger<B::InnerBackend>| model.evaluate(&dev, &names),
        &mut metrics_log(job)?,
    )?;
    let best = outcome.best;
    let test = test_rows.map(|rows| {
        best.valid().evaluate(&TaggingBatch::chunk(&rows, job.batch_size, pad), &names).metrics
    });
    let dev = outcome.history[outcome.best_epoch - 1].evaluation.metrics.clone();
    let exported = SequenceTagger { delta: best.delta.export(), ..best };
    let finished = Finished { best_epoch: outcome.best_epoch, dev, test, report, started };
    save_outputs::<B, _>(job, &exported, &setup.spec, &labels, setup.identity, finished)
}

/// The first `limit` questions of a SQuAD file (a path or `ASSET:FILE`) and their windows of
/// `max_length` tokens overlapping by `stride`.
///
/// # Errors
/// When the file cannot be read or tokenized.
pub fn read_qa(
    spec: &str,
    tokenizer: &TextTokenizer,
    max_length: usize,
    stride: usize,
    limit: Option<usize>,
) -> Result<(Vec<SquadExample>, Vec<QaFeature>)> {
    let mut examples = read_squad(&resolve_file(spec)?)?;
    examples.truncate(limit.unwrap_or(usize::MAX));
    let features = qa_features(&examples, tokenizer, max_length, stride)?;
    Ok((examples, features))
}

fn train_qa<B: AutodiffBackend>(
    job: &Job,
    device: &B::Device,
    backend: &str,
) -> Result<RunSummary> {
    let started = std::time::Instant::now();
    let setup = Setup::<B>::new(job, device)?;
    let (train_examples, train_features) =
        read_qa(&job.train, &setup.tokenizer, job.max_length, job.doc_stride, None)?;
    // Answerable questions only (SQuAD v1.1); a seeded subset of their windows.
    let answerable: Vec<usize> = (0..train_features.len())
        .filter(|&i| !train_examples[train_features[i].example].is_impossible)
        .collect();
    let train_indices = subset(job, answerable);
    let (dev_examples, dev_features) =
        read_qa(&job.dev, &setup.tokenizer, job.max_length, job.doc_stride, job.max_eval_examples)?;
    let pad = setup.tokenizer.pad_id();
    let all = |features: &[QaFeature]| (0..features.len()).collect::<Vec<_>>();
    let dev = QaBatch::chunk(&dev_features, &all(&dev_features), job.batch_size, pad);
    let head = QaHeadConfig::new(setup.backbone.shape().hidden_size).init(device);
    let model =
        QuestionAnswerer { backbone: setup.backbone, delta: setup.delta, head, token_types: true };
    let report = ParamReport::of::<B, _>(&model, 2);
    let labels = LabelSet::new(Vec::<String>::new());
    announce(
        job,
        &setup.folder,
        &report,
        train_indices.len(),
        dev_features.len(),
        &labels,
        backend,
    );
    let max_answer = job.max_answer_length;
    let outcome = fit(
        model,
        &job.optim,
        device,
        |_, rng| {
            let mut indices = train_indices.clone();
            rng.shuffle(&mut indices);
            QaBatch::chunk(&train_features, &indices, job.batch_size, pad)
        },
        |model: &QuestionAnswerer<B::InnerBackend>| {
            model.evaluate(&dev, &dev_features, &dev_examples, max_answer)
        },
        &mut metrics_log(job)?,
    )?;
    let best = outcome.best;
    let test = match &job.test {
        Some(test) => {
            let (examples, features) = read_qa(
                test,
                &setup.tokenizer,
                job.max_length,
                job.doc_stride,
                job.max_eval_examples,
            )?;
            let batches = QaBatch::chunk(&features, &all(&features), job.batch_size, pad);
            Some(best.valid().evaluate(&batches, &features, &examples, max_answer).metrics)
        }
        None => None,
    };
    let dev = outcome.history[outcome.best_epoch - 1].evaluation.metrics.clone();
    let exported = QuestionAnswerer { delta: best.delta.export(), ..best };
    let finished = Finished { best_epoch: outcome.best_epoch, dev, test, report, started };
    save_outputs::<B, _>(job, &exported, &setup.spec, &labels, setup.identity, finished)
}

impl BackendJob for TrainJob {
    type Output = RunSummary;

    fn run<B: AutodiffBackend>(self, device: B::Device, backend: &str) -> Result<RunSummary> {
        match self.0.task.as_str() {
            "classification" => train_classification::<B>(&self.0, &device, backend),
            "tagging" => train_tagging::<B>(&self.0, &device, backend),
            "qa" => train_qa::<B>(&self.0, &device, backend),
            other => bail!(
                "task `{other}` is not supported; expected `classification`, `tagging` or `qa`"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_job_parses_and_names_its_method() {
        let job = Job::parse(DEFAULT_JOB, "default").expect("default job");
        assert_eq!(job.method, "ptuning-v2");
        assert!(job.delta_spec().expect("spec").prefix.is_some());
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name() {
        let text = DEFAULT_JOB.replace("max_length = 64", "max_lenght = 64");
        let err = format!("{:#}", Job::parse(&text, "job.toml").expect_err("typo"));
        assert!(err.contains("max_lenght") && err.contains("job.toml"), "{err}");
    }
}
