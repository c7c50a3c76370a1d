//! The speed table: `pet bench` against the PyTorch + PEFT reference
//! `benchmarks/torch_bench.py`, train and infer for P-Tuning v2, LoRA and full fine-tuning, and
//! pet's bf16 inference against PyTorch's fp32 with its logit error. Both run as subprocesses
//! of this one invocation, alternating which goes first per repeat, with the same thread count;
//! an fp32 matrix-product peak is measured in each repeat for the FLOP utilization; pet on
//! Burn's `ndarray` backend (`--device ndarray`) runs P-Tuning v2 in each repeat too. The run's
//! metadata (CPU model and flags, the level pet's kernels ran at, caps) and every measurement go
//! to `minilm-cpu-<class>.jsonl`, the table (`bench_table.rs`) to `minilm-cpu-<class>.md`, where
//! the class is that level: one table per CPU class. `--level L` caps both sides to a lower
//! class on one machine (`cpu.rs`: `PET_CPU_LEVEL` for pet, ATen, oneDNN and MKL for PyTorch).
//!
//! Full profile: all-MiniLM-L6-v2, batch 32, seq 128, prefix 16, 3 repeats of 5 timed steps;
//! PyTorch is required. Quick profile: the tiny fixture encoder of
//! `crates/pet-nlp/tests/parity/encoders/bert`, batch 8, seq 16, prefix 4, 1 repeat of 2 steps;
//! without PyTorch's stack the reference side is skipped and the reason printed.
//!
//! Environment: `PET_BENCH_PYTHON` (default `python3`; the pinned stack is
//! `fixtures-requirements.txt`), `PET_BENCH_THREADS` (default: every available core).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::cache::{hash_text, key_text};
use crate::cpu;
use crate::progress::Progress;
use crate::reproduce::{Profile, RunContext};

/// Modes of the table.
pub const MODES: &[&str] = &["train", "infer"];
/// Methods of the table.
pub const METHODS: &[&str] = &["ptuning-v2", "lora", "full"];
/// Methods measured on Burn's `ndarray` backend too (the headline method: ndarray's cost).
pub const NDARRAY_METHODS: &[&str] = &["ptuning-v2"];
/// The `impl` of a measurement of pet on `ndarray` (the bench prints `pet`).
pub const PET_NDARRAY: &str = "pet-ndarray";

/// Model, shapes and repeats of a profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    /// Asset name (fetched) or a folder relative to the workspace.
    pub model: &'static str,
    /// Rows per step.
    pub batch: usize,
    /// Tokens per row.
    pub seq: usize,
    /// Prefix length of P-Tuning v2.
    pub prefix: usize,
    /// Repeats of every measurement.
    pub repeats: usize,
    /// Timed steps per measurement.
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Side of the square fp32 matrix product that measures the peak.
    pub gemm_size: usize,
    /// Whether the PyTorch reference must run.
    pub needs_torch: bool,
}

impl Setup {
    /// The setup of `profile`.
    pub fn of(profile: Profile) -> Self {
        match profile {
            Profile::Full => Self {
                model: "all-minilm-l6-v2",
                batch: 32,
                seq: 128,
                prefix: 16,
                repeats: 3,
                steps: 5,
                warmup: 1,
                gemm_size: 2048,
                needs_torch: true,
            },
            Profile::Quick => Self {
                model: "crates/pet-nlp/tests/parity/encoders/bert",
                batch: 8,
                seq: 16,
                prefix: 4,
                repeats: 1,
                steps: 2,
                warmup: 1,
                gemm_size: 256,
                needs_torch: false,
            },
        }
    }

    fn common_args(&self) -> Vec<String> {
        [
            ("--batch", self.batch),
            ("--seq", self.seq),
            ("--prefix", self.prefix),
            ("--steps", self.steps),
            ("--warmup", self.warmup),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
        .collect()
    }
}

/// Expected wall time of the speed table under `profile` on 2 cores.
pub fn estimated_seconds(profile: Profile) -> f64 {
    match profile {
        // 15 minutes of pet against PyTorch, 3 more of the ndarray rows.
        Profile::Full => 1100.0,
        Profile::Quick => 30.0,
    }
}

/// The shape of a BERT-like encoder, from its `config.json`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Layers.
    pub layers: f64,
    /// Hidden size.
    pub hidden: f64,
    /// Feed-forward size.
    pub intermediate: f64,
}

impl Shape {
    /// Reads `folder/config.json`.
    ///
    /// # Errors
    /// When the file is missing or lacks a field.
    pub fn read(folder: &Path) -> Result<Self> {
        let path = folder.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let config: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let field = |name: &str| {
            config[name].as_f64().with_context(|| format!("{}: no `{name}`", path.display()))
        };
        Ok(Self {
            layers: field("num_hidden_layers")?,
            hidden: field("hidden_size")?,
            intermediate: field("intermediate_size")?,
        })
    }

    /// The shape a run's metadata records.
    pub fn from_meta(meta: &Value) -> Option<Self> {
        let field = |name: &str| meta["shape"][name].as_f64();
        Some(Self {
            layers: field("layers")?,
            hidden: field("hidden")?,
            intermediate: field("intermediate")?,
        })
    }

    /// Forward FLOPs of one sample of `seq` tokens attending over `prefix` extra keys:
    /// per layer `2 * seq * (4 h^2 + 2 h i)` in the linears plus `4 * seq * (seq + prefix) * h`
    /// in the attention products; embeddings, layer norms, softmax and the head are left out.
    pub fn forward_flops(&self, seq: f64, prefix: f64) -> f64 {
        let (h, i) = (self.hidden, self.intermediate);
        let linears = 2.0 * seq * (4.0 * h * h + 2.0 * h * i);
        let attention = 4.0 * seq * (seq + prefix) * h;
        self.layers * (linears + attention)
    }

    /// FLOPs of one sample in `mode`: a forward; training adds the input gradients (one more
    /// forward) and, for full fine-tuning, the weight gradients (another).
    pub fn flops(&self, mode: &str, method: &str, seq: f64, prefix: f64) -> f64 {
        let factor = match (mode, method) {
            ("infer", _) => 1.0,
            (_, "full") => 3.0,
            _ => 2.0,
        };
        factor * self.forward_flops(seq, prefix)
    }
}

/// The last line of `command`'s standard output that parses as a JSON object.
fn json_line(command: &mut Command) -> Result<Value> {
    let output = command.output().with_context(|| format!("starting {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok().filter(Value::is_object))
        .with_context(|| format!("{command:?} printed no JSON line:\n{stdout}"))
}

/// The Python of `PET_BENCH_PYTHON` and whether it has the reference stack.
struct Python {
    program: String,
    /// torch, transformers and peft versions; `Err` with why the stack is absent.
    versions: std::result::Result<Value, String>,
}

impl Python {
    fn probe() -> Self {
        Self::probe_program(
            std::env::var("PET_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_string()),
        )
    }

    fn probe_program(program: String) -> Self {
        let code = "import json, torch, transformers, peft; print(json.dumps({'torch': \
                    torch.__version__, 'transformers': transformers.__version__, 'peft': \
                    peft.__version__}))";
        let versions = json_line(Command::new(&program).args(["-c", code])).map_err(|error| {
            let last = format!("{error:#}");
            let last = last.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            format!(
                "`{program}` cannot import torch, transformers and peft ({last}); set \
                 PET_BENCH_PYTHON to a Python with fixtures-requirements.txt"
            )
        });
        Self { program, versions }
    }
}

/// The `pet` binary and the Python reference, with what both need.
struct Runner<'a> {
    root: &'a Path,
    pet: &'a Path,
    python: &'a str,
    script: PathBuf,
    folder: PathBuf,
    threads: usize,
    setup: &'a Setup,
    /// `--level`: the cap on both sides.
    level: Option<&'a str>,
}

impl Runner<'_> {
    fn pet(&self, mode: &str, method: &str, precision: &str) -> Result<Value> {
        self.pet_on("cpu", mode, method, precision)
    }

    fn pet_on(&self, device: &str, mode: &str, method: &str, precision: &str) -> Result<Value> {
        let mut command = Command::new(self.pet);
        command
            .args(["bench", "--model"])
            .arg(&self.folder)
            .args(["--device", device, "--mode", mode, "--method", method])
            .args(["--precision", precision])
            .args(self.setup.common_args())
            .env("RAYON_NUM_THREADS", self.threads.to_string())
            .current_dir(self.root);
        if let Some(level) = self.level {
            command.env("PET_CPU_LEVEL", level);
        }
        json_line(&mut command)
    }

    fn python(&self) -> Command {
        let mut command = Command::new(self.python);
        command.arg(&self.script).env("PYTHONHASHSEED", "0").current_dir(self.root);
        command.envs(self.level.map(cpu::torch_caps).unwrap_or_default().iter().copied());
        command
    }

    fn torch(&self, mode: &str, method: &str) -> Result<Value> {
        let mut command = self.python();
        command
            .arg("--model")
            .arg(&self.folder)
            .args(["--mode", mode, "--method", method])
            .args(self.setup.common_args())
            .args(["--threads", &self.threads.to_string()]);
        json_line(&mut command)
    }

    fn gemm_peak(&self) -> Result<Value> {
        let mut command = self.python();
        command.args(["--mode", "gemm", "--gemm-size", &self.setup.gemm_size.to_string()]);
        command.args(["--steps", "10", "--warmup", "2", "--threads", &self.threads.to_string()]);
        json_line(&mut command)
    }

    /// Every measurement of every repeat; `torch` says whether the reference runs.
    fn measure(&self, torch: bool) -> Result<Vec<Value>> {
        let mut records = Vec::new();
        for repeat in 0..self.setup.repeats {
            if torch {
                let mut peak = self.gemm_peak()?;
                peak["repeat"] = repeat.into();
                eprintln!("xtask: repeat {repeat}: {peak}");
                records.push(peak);
            }
            for mode in MODES {
                for method in METHODS {
                    let pet_first = repeat % 2 == 0;
                    // bf16 inference follows pet's fp32 inference, beside the same PyTorch runs.
                    let precisions: &[&str] =
                        if *mode == "infer" { &["f32", "bf16"] } else { &["f32"] };
                    for turn in 0..2 {
                        let runs = if (turn == 0) == pet_first {
                            precisions
                                .iter()
                                .map(|precision| self.pet(mode, method, precision))
                                .collect::<Result<Vec<_>>>()?
                        } else if torch {
                            vec![self.torch(mode, method)?]
                        } else {
                            Vec::new()
                        };
                        for mut record in runs {
                            record["repeat"] = repeat.into();
                            eprintln!("xtask: {record}");
                            records.push(record);
                        }
                    }
                }
                for method in NDARRAY_METHODS {
                    let mut record = self.pet_on("ndarray", mode, method, "f32")?;
                    record["impl"] = PET_NDARRAY.into();
                    record["repeat"] = repeat.into();
                    eprintln!("xtask: {record}");
                    records.push(record);
                }
            }
        }
        Ok(records)
    }
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// A finished speed table: the run's metadata and every measurement.
#[derive(Clone, Debug)]
pub struct BenchRun {
    /// `event: run` metadata: commit, date, CPU, threads, model, shapes, profile, versions,
    /// and `torch_skipped` (why) when the reference did not run.
    pub meta: Value,
    /// Measurements (`pet bench` and `torch_bench.py` JSON lines, with `repeat`).
    pub records: Vec<Value>,
}

impl BenchRun {
    /// The JSON lines file: the metadata, then every measurement.
    pub fn jsonl(&self) -> String {
        std::iter::once(&self.meta).chain(&self.records).map(|r| format!("{r}\n")).collect()
    }

    /// Why the PyTorch side did not run, when it did not.
    pub fn torch_skipped(&self) -> Option<&str> {
        self.meta["torch_skipped"].as_str()
    }

    /// The level pet's kernels ran at on burn-flex (`avx2`, `avx512`, `avx512-bf16`, `none`):
    /// the CPU class the table stands for.
    pub fn cpu_class(&self) -> &str {
        self.records
            .iter()
            .find(|r| r["impl"] == "pet")
            .and_then(|r| r["kernel_level"].as_str())
            .unwrap_or("unknown")
    }

    /// The file stem of this run's table: `minilm-cpu-<class>`.
    pub fn table_stem(&self) -> String {
        format!("minilm-cpu-{}", self.cpu_class())
    }

    fn from_record(record: &Value) -> Result<Self> {
        let records = record["records"].as_array().context("a bench record without records")?;
        Ok(Self { meta: record["meta"].clone(), records: records.clone() })
    }
}

/// The model folder: a fetched asset or a folder of the workspace.
fn model_folder(root: &Path, pet: &Path, model: &str) -> Result<PathBuf> {
    let local = root.join(model);
    if local.is_dir() {
        return Ok(local);
    }
    let fetched = Command::new(pet)
        .args(["fetch", model])
        .current_dir(root)
        .output()
        .with_context(|| format!("starting {} fetch {model}", pet.display()))?;
    if !fetched.status.success() {
        bail!("pet fetch {model} failed:\n{}", String::from_utf8_lossy(&fetched.stderr));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&fetched.stdout).trim()))
}

/// Fails early, before hours of study, when `profile`'s speed table needs PyTorch and
/// `PET_BENCH_PYTHON` lacks it.
///
/// # Errors
/// When the reference stack is required and absent.
pub fn preflight(profile: Profile) -> Result<()> {
    if let (true, Err(reason)) = (Setup::of(profile).needs_torch, Python::probe().versions) {
        bail!("the full speed table compares with PyTorch: {reason}");
    }
    Ok(())
}

/// Runs the speed table of `profile` through the cache (one run: its key is the code version,
/// the build, the setup, the reference stack, the CPU and the thread count).
///
/// # Errors
/// When PyTorch is required and absent, or a subprocess fails.
pub fn run_bench(
    context: &RunContext<'_>,
    profile: Profile,
    level: Option<&str>,
    progress: &mut Progress,
) -> Result<BenchRun> {
    let setup = Setup::of(profile);
    let python = Python::probe();
    if let Err(reason) = &python.versions {
        if setup.needs_torch {
            bail!("the full speed table compares with PyTorch: {reason}");
        }
        eprintln!("xtask: skipping the PyTorch side of the speed table: {reason}");
    }
    let threads = std::env::var("PET_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    let versions = python.versions.clone().unwrap_or(Value::Null);
    let key = hash_text(
        context.root,
        &key_text(&[
            ("setup", &format!("{setup:?}")),
            ("build", context.pet.build),
            ("code", context.code),
            ("python", &format!("{} {versions}", python.program)),
            ("cpu", &cpu::model()),
            ("threads", &threads.to_string()),
            ("level", level.unwrap_or("")),
        ]),
    )?;
    progress.start(&format!("speed table ({})", setup.model));
    let started = Instant::now();
    let cached = context.cache.get_or_run(&key, |_| {
        let folder = model_folder(context.root, &context.pet.binary, setup.model)?;
        let shape = Shape::read(&folder)?;
        let runner = Runner {
            root: context.root,
            pet: &context.pet.binary,
            python: &python.program,
            script: context.root.join("benchmarks/torch_bench.py"),
            folder,
            threads,
            setup: &setup,
            level,
        };
        let mut meta = json!({
            "event": "run",
            "git": crate::git_sha(context.root),
            "code_version": context.code,
            "build": context.pet.build,
            "date": utc_now(),
            "cpu": cpu::model(),
            "cpu_flags": cpu::kernel_flags(),
            "level_cap": level,
            "torch_caps": level.map(cpu::torch_caps).unwrap_or_default().iter()
                .map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>(),
            "threads": threads,
            "model": setup.model,
            "shape": {"layers": shape.layers, "hidden": shape.hidden, "intermediate": shape.intermediate},
            "batch": setup.batch,
            "seq": setup.seq,
            "prefix": setup.prefix,
            "gemm_size": setup.gemm_size,
            "profile": profile.name(),
            "repeats": setup.repeats,
            "steps": setup.steps,
            "warmup": setup.warmup,
            "versions": versions,
        });
        if let Err(reason) = &python.versions {
            meta["torch_skipped"] = reason.clone().into();
        }
        let records = runner.measure(python.versions.is_ok())?;
        Ok(json!({"meta": meta, "records": records}))
    })?;
    progress.finish(estimated_seconds(profile), cached.reused, started.elapsed().as_secs_f64());
    BenchRun::from_record(&cached.record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minilm_forward_is_about_2_9_gflop_per_sample_at_seq_128() {
        let minilm = Shape { layers: 6.0, hidden: 384.0, intermediate: 1536.0 };
        let forward = minilm.forward_flops(128.0, 0.0);
        // 6 * (2 * 128 * 1_769_472 + 4 * 128 * 128 * 384)
        assert_eq!(forward, 6.0 * (2.0 * 128.0 * 1_769_472.0 + 4.0 * 128.0 * 128.0 * 384.0));
        assert!((forward / 1e9 - 2.87).abs() < 0.01, "{forward}");
        assert_eq!(minilm.flops("train", "full", 128.0, 0.0), 3.0 * forward);
        assert_eq!(minilm.flops("train", "lora", 128.0, 0.0), 2.0 * forward);
        assert_eq!(minilm.flops("infer", "full", 128.0, 0.0), forward);
    }

    #[test]
    fn the_quick_setup_runs_a_fixture_folder_without_pytorch() {
        let quick = Setup::of(Profile::Quick);
        assert!(!quick.needs_torch);
        assert!(crate::workspace_root().join(quick.model).join("config.json").is_file());
        let full = Setup::of(Profile::Full);
        assert!(full.needs_torch);
        assert_eq!((full.batch, full.seq, full.prefix), (32, 128, 16));
    }

    #[test]
    fn a_missing_reference_stack_is_reported_not_fatal() {
        let python = Python::probe_program("python-that-does-not-exist".into());
        let reason = python.versions.expect_err("no such Python");
        assert!(reason.contains("PET_BENCH_PYTHON"), "{reason}");
        let run = BenchRun {
            meta: json!({"torch_skipped": "no torch"}),
            records: vec![json!({"impl": "pet"})],
        };
        assert_eq!(run.torch_skipped(), Some("no torch"));
        assert_eq!(run.jsonl(), "{\"torch_skipped\":\"no torch\"}\n{\"impl\":\"pet\"}\n");
    }
}
