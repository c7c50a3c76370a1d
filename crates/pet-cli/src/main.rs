//! `pet`: parameter-efficient tuning of pretrained transformers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use clap::{Parser, Subcommand};
use pet_cli::args;
use pet_cli::bench::{BenchArgs, BenchJob};
use pet_cli::device::{BackendJob, DeviceSpec, compiled_backends, run_on};
use pet_cli::encode::EncodeJob;
use pet_cli::export::ExportJob;
use pet_cli::predict::{PredictJob, PredictOutcome};
use pet_cli::train::{DEFAULT_JOB, Job, TrainJob};
use pet_core::output::{Output, OutputKind};
use pet_core::precision::Precision;

/// mimalloc, keeping freed memory mapped: tensor-sized blocks are reused instead of being
/// returned to the OS and faulted in again (`crates/pet-alloc`).
#[global_allocator]
static ALLOCATOR: pet_alloc::Allocator = pet_alloc::Allocator;

#[derive(Parser, Debug)]
#[command(name = "pet", version, about = "Parameter-efficient tuning of pretrained transformers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show what a delta checkpoint (file) or PEFT adapter (folder) holds.
    Inspect {
        /// Delta checkpoint or PEFT adapter folder.
        delta: PathBuf,
    },
    /// Tune a delta: the embedded default job (P-Tuning v2 on all-MiniLM-L6-v2 for SpamAssassin),
    /// or a TOML job file, with overrides.
    Train(TrainArgs),
    /// Write one JSON object per input line (`logits` and `label` or `tags`; QA `answer`).
    Predict {
        /// Model folder or asset name.
        #[arg(long)]
        model: String,
        /// A pet delta checkpoint, or a PEFT adapter folder of task type SEQ_CLS, TOKEN_CLS or
        /// QUESTION_ANS; the task and head come from it.
        #[arg(long)]
        delta: PathBuf,
        /// Input: JSONL, CSV or TSV `text` (+ `text_pair`) for classification, JSONL `tokens` or
        /// `text` for tagging, SQuAD JSON for QA.
        #[arg(long)]
        input: PathBuf,
        /// Output JSONL; never one of the inputs.
        #[arg(long)]
        output: PathBuf,
        /// Replace an existing output file.
        #[arg(long)]
        overwrite: bool,
        /// Precision of the backbone's linear layers: f32 or bf16.
        #[arg(long, default_value_t = Precision::F32)]
        precision: Precision,
        /// Device: cpu, ndarray, wgpu or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
    /// Score a trained model on a labelled file (accuracy, macro-F1, MCC; seqeval F1; SQuAD).
    Eval {
        /// Model folder or asset name.
        #[arg(long)]
        model: String,
        /// A pet delta checkpoint or a PEFT task adapter folder, as for `predict`.
        #[arg(long)]
        delta: PathBuf,
        /// Labelled input: JSONL, CSV or TSV with `label` (classification), CoNLL (tagging),
        /// SQuAD JSON (QA).
        #[arg(long)]
        input: PathBuf,
        /// Precision of the backbone's linear layers: f32 or bf16.
        #[arg(long, default_value_t = Precision::F32)]
        precision: Precision,
        /// Device: cpu, ndarray, wgpu or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
    /// Write the encoder's hidden states (and pooler output) of a JSONL file to safetensors.
    Encode {
        /// Model folder or asset name.
        #[arg(long)]
        model: String,
        /// Input JSONL: `{"text", "text_pair"}` or `{"input_ids", "attention_mask", "token_type_ids"}`.
        #[arg(long)]
        input: PathBuf,
        /// Output safetensors; never one of the inputs.
        #[arg(long)]
        output: PathBuf,
        /// Replace an existing output file.
        #[arg(long)]
        overwrite: bool,
        /// A pet delta checkpoint or a PEFT adapter folder.
        #[arg(long)]
        delta: Option<PathBuf>,
        /// Truncation of tokenized texts.
        #[arg(long, default_value_t = 512, value_parser = args::count, allow_negative_numbers = true)]
        max_length: usize,
        /// Device: cpu, ndarray, wgpu or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
    /// Write a pet delta checkpoint (LoRA, prefix or prompt tuning) with its head as a PEFT
    /// adapter folder.
    Export {
        /// Model folder or asset name the delta was trained on.
        #[arg(long)]
        model: String,
        /// A pet delta checkpoint.
        #[arg(long)]
        delta: PathBuf,
        /// Output format: `peft`.
        #[arg(long, default_value = "peft")]
        format: String,
        /// Output folder, written as a unit; never one of the inputs.
        #[arg(long)]
        output: PathBuf,
        /// Replace an existing output folder.
        #[arg(long)]
        overwrite: bool,
        /// Device: cpu, ndarray, wgpu or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
    /// Bring an asset of `datasets/` (model or data) into the local cache and check its sha256.
    Fetch {
        /// Asset name, e.g. `all-minilm-l6-v2`, `spamassassin`, `wnut16`.
        name: String,
    },
    /// Measure training or inference throughput and peak memory on synthetic token ids; print
    /// one JSON line (`cargo xtask bench` compares it with PyTorch + PEFT).
    Bench {
        #[command(flatten)]
        args: BenchArgs,
        /// Device: cpu, ndarray, wgpu or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
    /// List the compiled-in backends and check that a device runs.
    Devices {
        /// Device to check: cpu, wgpu or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
}

#[derive(clap::Args, Debug)]
struct TrainArgs {
    /// Job file (TOML); without it, the embedded default job.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Model folder or asset name.
    #[arg(long)]
    model: Option<String>,
    /// Method: ptuning-v2, prefix, prompt, lora, adapter, bitfit, full, or several joined by `+`.
    #[arg(long)]
    method: Option<String>,
    /// Epochs.
    #[arg(long, value_parser = args::count, allow_negative_numbers = true)]
    epochs: Option<usize>,
    /// Peak learning rate.
    #[arg(long, value_parser = args::positive, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Rows per batch.
    #[arg(long, value_parser = args::count, allow_negative_numbers = true)]
    batch_size: Option<usize>,
    /// Tokens per input.
    #[arg(long, value_parser = args::count, allow_negative_numbers = true)]
    max_length: Option<usize>,
    /// Train on a seeded subset of this many rows.
    #[arg(long, value_parser = args::count, allow_negative_numbers = true)]
    max_train_examples: Option<usize>,
    /// Output folder, written as a unit when the run ends; never one of the inputs.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Replace an existing output folder (as the job file's `overwrite = true`).
    #[arg(long)]
    overwrite: bool,
    /// Device: cpu, ndarray, wgpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
}

impl TrainArgs {
    fn job(&self) -> Result<Job> {
        let source = match &self.config {
            Some(path) => path.display().to_string(),
            None => "the embedded default job".into(),
        };
        let mut job = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading job {}", path.display()))?;
                Job::parse(&text, &source)?
            }
            None => Job::parse(DEFAULT_JOB, &source)?,
        };
        if let Some(model) = &self.model {
            job.model = model.clone();
        }
        if let Some(method) = &self.method {
            job.method = method.clone();
            job.delta = None;
        }
        if let Some(epochs) = self.epochs {
            job.optim.epochs = epochs;
        }
        if let Some(lr) = self.lr {
            job.optim.learning_rate = lr;
        }
        if let Some(seed) = self.seed {
            job.optim.seed = seed;
        }
        if let Some(size) = self.batch_size {
            job.batch_size = size;
        }
        if let Some(length) = self.max_length {
            let length = i64::try_from(length).context("--max-length")?;
            job.options.insert("max_length".into(), toml::Value::Integer(length));
        }
        if self.max_train_examples.is_some() {
            job.max_train_examples = self.max_train_examples;
        }
        if let Some(output) = &self.output {
            job.output = output.clone();
        }
        job.overwrite |= self.overwrite;
        job.options = job.resolved_options()?;
        job.validate(&format!("{source} with the command line's overrides"))?;
        job.delta_spec()?;
        // Refused before anything is fetched or loaded; the run checks again with the model
        // and data paths resolved. The job file is an input too.
        let named = [job.model.as_str(), job.train.as_str(), job.dev.as_str()];
        let mut inputs: Vec<&Path> =
            named.into_iter().chain(job.test.as_deref()).map(Path::new).collect();
        inputs.extend(self.config.as_deref());
        Output::checked(&job.output, OutputKind::Folder, job.overwrite, &inputs)?;
        Ok(job)
    }
}

/// Says on stderr what `--precision bf16` does on a CPU without bf16 kernels.
fn note_bf16(device: DeviceSpec, precision: Precision) {
    if let Some(note) = pet_cli::device::bf16_note(device, precision) {
        eprintln!("{note}");
    }
}

fn print_metrics(split: &str, metrics: &std::collections::BTreeMap<String, f64>) {
    let line: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
    println!("{split:<5} {}", line.join(", "));
}

/// A matrix product and its gradient: proof that a backend computes and differentiates.
struct Probe;

impl BackendJob for Probe {
    type Output = String;

    fn run<B: AutodiffBackend>(self, device: B::Device, name: &str) -> Result<String> {
        let a = Tensor::<B, 2>::from_data([[1.0, 2.0], [3.0, 4.0]], &device).require_grad();
        let grads = a.clone().matmul(a.clone()).sum().backward();
        let grad = a
            .grad(&grads)
            .map(|g| g.into_data().to_vec::<f32>().unwrap_or_default())
            .unwrap_or_default();
        anyhow::ensure!(grad == vec![7.0, 11.0, 9.0, 13.0], "{name}: wrong gradient {grad:?}");
        Ok(format!("{name}: ok (matmul gradient {grad:?})"))
    }
}

fn main() -> Result<()> {
    pet_alloc::keep_freed_memory();
    // The kernels read the cap once and would take a bad value as unset: refuse it here.
    pet_gemm::Cap::from_env()?;
    match Cli::parse().command {
        Command::Inspect { delta } => print!("{}", pet_cli::inspect::describe(&delta)?),
        Command::Train(args) => {
            let job = args.job()?;
            let output = job.output.clone();
            let summary = run_on(args.device, TrainJob(job))?;
            println!(
                "best epoch {} | trainable {} of {} ({:.3}%) | delta {:.1} KiB | {:.0} s",
                summary.best_epoch,
                summary.trainable,
                summary.total,
                100.0 * summary.trainable as f64 / summary.total.max(1) as f64,
                summary.delta_bytes as f64 / 1024.0,
                summary.seconds
            );
            print_metrics("dev", &summary.dev);
            if let Some(test) = &summary.test {
                print_metrics("test", test);
            }
            println!("saved to {}", output.display());
        }
        Command::Predict { model, delta, input, output, overwrite, precision, device } => {
            note_bf16(device, precision);
            let output_path = Some(output.clone());
            let job = PredictJob { model, delta, input, output: output_path, overwrite, precision };
            if let PredictOutcome::Written(n) = run_on(device, job)? {
                println!("wrote {n} predictions to {}", output.display());
            }
        }
        Command::Eval { model, delta, input, precision, device } => {
            note_bf16(device, precision);
            if let PredictOutcome::Scored(metrics) = run_on(
                device,
                PredictJob { model, delta, input, output: None, overwrite: false, precision },
            )? {
                print_metrics("eval", &metrics);
            }
        }
        Command::Encode { model, input, output, overwrite, delta, max_length, device } => {
            let job =
                EncodeJob { model, input, output: output.clone(), overwrite, delta, max_length };
            let n = run_on(device, job)?;
            println!("encoded {n} rows into {}", output.display());
        }
        Command::Export { model, delta, format, output, overwrite, device } => {
            let job = ExportJob { model, delta, format, output: output.clone(), overwrite };
            let peft_type = run_on(device, job)?;
            println!("wrote a PEFT {peft_type} adapter to {}", output.display());
        }
        Command::Fetch { name } => {
            let folder = pet_cli::fetch::fetch(&name)?;
            println!("{}", folder.display());
        }
        Command::Bench { args, device } => {
            note_bf16(device, args.precision);
            let measurement = run_on(device, BenchJob(args))?;
            println!("{}", serde_json::to_string(&measurement).context("writing the measurement")?);
        }
        Command::Devices { device } => {
            println!("compiled in: {}", compiled_backends().join(", "));
            println!("{}", run_on(device, Probe)?);
        }
    }
    Ok(())
}
