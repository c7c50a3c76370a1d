//! `pet bench`: training and inference throughput and peak memory of a sequence-classification
//! task model (backbone + delta + classification head, as `pet train` builds it) on synthetic,
//! seeded token ids, printed as one JSON line per measurement. `benchmarks/torch_bench.py` is the
//! PyTorch + PEFT reference with the same flags and the same line; `cargo xtask bench` runs both.

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use pet_core::Backbone;
use pet_core::delta::set::DeltaSpec;
use pet_core::precision::Precision;
use pet_core::rng::SplitMix64;
use pet_core::train::TrainTask;
use pet_nlp::batch::PaddedBatch;
use pet_nlp::load_encoder;
use pet_nlp::tasks::classification::{ClassificationBatch, SequenceClassifier};
use serde::Serialize;

use crate::device::BackendJob;
use crate::train::resolve_folder;

/// Classes of the benchmark's classification head.
const CLASSES: usize = 2;

/// What a benchmark times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchMode {
    /// Forward, backward and an AdamW step on the trainable parameters.
    Train,
    /// Forward only, on the inner (non-autodiff) backend.
    Infer,
}

/// The settings of one measurement.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Model folder or asset name.
    #[arg(long)]
    pub model: String,
    /// `train` or `infer`.
    #[arg(long, value_enum, default_value = "train")]
    pub mode: BenchMode,
    /// Method preset: ptuning-v2, lora or full (any `pet train --method` preset works).
    #[arg(long, default_value = "ptuning-v2")]
    pub method: String,
    /// Rows per batch.
    #[arg(long, default_value_t = 32, value_parser = crate::args::count, allow_negative_numbers = true)]
    pub batch: usize,
    /// Tokens per row.
    #[arg(long, default_value_t = 128, value_parser = crate::args::count, allow_negative_numbers = true)]
    pub seq: usize,
    /// Prefix length of a prefix method (`num_virtual_tokens`).
    #[arg(long, default_value_t = 16)]
    pub prefix: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5, value_parser = crate::args::count, allow_negative_numbers = true)]
    pub steps: usize,
    /// Untimed steps before them.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Seed of the backend (initialization) and of the token ids.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Precision of the backbone's linear layers, `f32` or `bf16` (inference only).
    #[arg(long, default_value_t = Precision::F32)]
    pub precision: Precision,
}

/// One measurement, as `pet bench` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// Always `pet` (the reference prints `torch`).
    #[serde(rename = "impl")]
    pub implementation: &'static str,
    /// What was timed.
    pub mode: BenchMode,
    /// Method preset.
    pub method: String,
    /// Rows per batch.
    pub batch: usize,
    /// Tokens per row.
    pub seq: usize,
    /// Prefix length in use (0 for a method without a prefix).
    pub prefix: usize,
    /// Rows per second over the timed steps.
    pub samples_per_sec: f64,
    /// Peak resident memory of the process (`VmHWM`), MiB; 0 where unknown.
    pub peak_rss_mib: f64,
    /// The backend that ran.
    pub device: String,
    /// Threads the CPU backend uses.
    pub threads: usize,
    /// Precision of the backbone's linear layers.
    pub precision: Precision,
    /// The level pet's CPU kernels ran at (`avx2`, `avx512`, `avx512-bf16`), or `none` where
    /// Burn's operations ran (another backend, a CPU without AVX2, `PET_CPU_LEVEL=none`).
    pub kernel_level: String,
    /// How far the logits moved from `f32`'s on the timed batch (not `f32` itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logit_error: Option<LogitError>,
}

/// The logits of a lower precision against `f32`'s, on the same model and batch.
#[derive(Clone, Debug, Serialize)]
pub struct LogitError {
    /// Largest absolute difference.
    pub max_abs: f64,
    /// Largest absolute `f32` logit, the scale of `max_abs`.
    pub max_abs_f32: f64,
    /// Fraction of rows whose highest logit is the same class.
    pub argmax_agreement: f64,
}

impl LogitError {
    /// Compares `logits` with `reference` (both `[batch, classes]`, row-major).
    fn between(logits: &[f32], reference: &[f32], classes: usize) -> Self {
        let max_abs =
            logits.iter().zip(reference).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max);
        let max_abs_f32 = reference.iter().map(|v| f64::from(v.abs())).fold(0.0, f64::max);
        let argmax = |row: &[f32]| {
            row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
        };
        let rows = reference.len() / classes.max(1);
        let agreeing = logits
            .chunks(classes.max(1))
            .zip(reference.chunks(classes.max(1)))
            .filter(|(a, b)| argmax(a) == argmax(b))
            .count();
        Self { max_abs, max_abs_f32, argmax_agreement: agreeing as f64 / rows.max(1) as f64 }
    }
}

/// Runs one measurement on the device the command line selects.
pub struct BenchJob(pub BenchArgs);

/// Threads of the CPU backend: burn-flex runs on rayon's global pool, which honours
/// `RAYON_NUM_THREADS` and otherwise takes every available core.
pub fn backend_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
}

/// The level pet's kernels run at on backend `backend` (`"none"` off burn-flex, where Burn's
/// operations run).
fn kernel_level(backend: &str) -> String {
    match (backend, pet_gemm::Level::selected()) {
        ("flex", Some(level)) => level.name().to_string(),
        _ => "none".to_string(),
    }
}

/// Peak resident memory of this process in MiB, from `/proc/self/status` (`VmHWM`); 0 where the
/// file does not exist.
pub fn peak_rss_mib() -> f64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0.0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// `batch` rows of `seq` seeded token ids below `vocab`, all attended, with labels 0, 1, 0, ...
fn synthetic_batch(args: &BenchArgs, vocab: usize) -> ClassificationBatch {
    let mut rng = SplitMix64::new(args.seed);
    let cells = args.batch * args.seq;
    let inputs = PaddedBatch {
        batch: args.batch,
        seq: args.seq,
        input_ids: (0..cells).map(|_| rng.below(vocab) as i64).collect(),
        token_type_ids: vec![0; cells],
        attention_mask: vec![1.0; cells],
    };
    ClassificationBatch { inputs, labels: (0..args.batch).map(|i| i % 2).collect() }
}

/// Waits for the device's queued work.
fn sync<B: Backend>(device: &B::Device) -> Result<()> {
    B::sync(device).map_err(|e| anyhow::anyhow!("synchronizing the device: {e:?}"))
}

/// Runs `warmup` untimed and `steps` timed calls of `step`, and returns the timed seconds.
fn timed<B: Backend>(
    args: &BenchArgs,
    device: &B::Device,
    mut step: impl FnMut() -> Result<()>,
) -> Result<f64> {
    for _ in 0..args.warmup {
        step()?;
    }
    sync::<B>(device)?;
    let started = Instant::now();
    for _ in 0..args.steps {
        step()?;
    }
    sync::<B>(device)?;
    Ok(started.elapsed().as_secs_f64())
}

impl BackendJob for BenchJob {
    type Output = Measurement;

    fn run<B: AutodiffBackend>(self, device: B::Device, name: &str) -> Result<Measurement> {
        let args = self.0;
        ensure!(args.batch > 0 && args.seq > 0, "--batch and --seq must be at least 1");
        ensure!(args.steps > 0, "--steps must be at least 1");
        ensure!(
            args.mode == BenchMode::Infer || args.precision == Precision::F32,
            "--precision {} is an inference setting: training runs in f32",
            args.precision
        );
        let folder = resolve_folder(&args.model)?;
        let mut spec =
            DeltaSpec::preset(&args.method).with_context(|| format!("method `{}`", args.method))?;
        if let Some(prefix) = spec.prefix.as_mut() {
            prefix.num_virtual_tokens = args.prefix;
        }
        let prefix = spec.prefix.as_ref().map_or(0, |p| p.num_virtual_tokens);
        B::seed(&device, args.seed);
        let (backbone, _, _) = load_encoder::<B>(&folder, &device)
            .with_context(|| format!("loading {}", folder.display()))?;
        let backbone = spec.trainability.apply(backbone);
        let delta = spec.build(&backbone, &device)?;
        let head = backbone.classification_head(CLASSES, false).init(&device);
        let batch = synthetic_batch(&args, backbone.shape().vocab_size.max(1));
        let model = SequenceClassifier::new(backbone, delta, head);
        let mut logit_error = None;
        let seconds = match args.mode {
            BenchMode::Train => {
                let mut optimizer = AdamWConfig::new().init::<B, SequenceClassifier<B>>();
                let mut slot = Some(model);
                timed::<B>(&args, &device, || {
                    let model = slot.take().context("the model of the previous step")?;
                    let grads = GradientsParams::from_grads(model.loss(&batch).backward(), &model);
                    slot = Some(optimizer.step(1e-3, model, grads));
                    Ok(())
                })?
            }
            BenchMode::Infer => {
                // Prefix key/values are constant per task: a reparameterized prefix is folded
                // into its table once (as `pet predict` reads it from a checkpoint), not per batch.
                let model = SequenceClassifier { delta: model.delta.export(), ..model }.valid();
                let model = if args.precision == Precision::F32 {
                    model
                } else {
                    let logits_of = |model: &SequenceClassifier<B::InnerBackend>| {
                        model.logits(&batch.inputs).into_data().to_vec::<f32>()
                    };
                    let reference = logits_of(&model).context("reading the f32 logits")?;
                    let model = SequenceClassifier {
                        backbone: args.precision.apply(model.backbone)?,
                        ..model
                    };
                    let logits = logits_of(&model).context("reading the logits")?;
                    logit_error = Some(LogitError::between(&logits, &reference, CLASSES));
                    model
                };
                timed::<B::InnerBackend>(&args, &device, || {
                    // Reading the logits back forces the forward on a lazy backend.
                    model.logits(&batch.inputs).into_data();
                    Ok(())
                })?
            }
        };
        Ok(Measurement {
            implementation: "pet",
            mode: args.mode,
            method: args.method,
            batch: args.batch,
            seq: args.seq,
            prefix,
            samples_per_sec: (args.batch * args.steps) as f64 / seconds.max(1e-12),
            peak_rss_mib: peak_rss_mib(),
            device: name.to_string(),
            threads: backend_threads(),
            precision: args.precision,
            kernel_level: kernel_level(name),
            logit_error,
        })
    }
}
