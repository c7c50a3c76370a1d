//! `cargo xtask bench [--quick]`: `pet bench` (release build) against the PyTorch + PEFT
//! reference `benchmarks/torch_bench.py` on all-MiniLM-L6-v2, batch 32, seq 128, prefix 16,
//! train and infer for P-Tuning v2, LoRA and full fine-tuning, and pet's bf16 inference against
//! PyTorch's fp32 with its logit error. Both run as subprocesses of this one invocation,
//! alternating which goes first per repeat, with the same thread count; an fp32
//! matrix-product peak is measured in each repeat for the FLOP utilization. Writes
//! `docs/benchmarks/minilm-cpu.jsonl` (run metadata, then every measurement) and the table
//! `docs/benchmarks/minilm-cpu.md`.
//!
//! Environment: `PET_BENCH_PYTHON` (default `python3`; the pinned stack is
//! `fixtures-requirements.txt`), `PET_BENCH_THREADS` (default: every available core),
//! `CARGO_TARGET_DIR` (where the release `pet` is built).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const MODEL: &str = "all-minilm-l6-v2";
const MODES: &[&str] = &["train", "infer"];
const METHODS: &[&str] = &["ptuning-v2", "lora", "full"];
const BATCH: usize = 32;
const SEQ: usize = 128;
const PREFIX: usize = 16;
/// Side of the square fp32 matrix product that measures the peak.
const GEMM_SIZE: usize = 2048;

/// Repeats, timed steps and warm-up steps of a profile.
struct Profile {
    repeats: usize,
    steps: usize,
    warmup: usize,
}

impl Profile {
    fn new(quick: bool) -> Self {
        if quick {
            Self { repeats: 1, steps: 2, warmup: 1 }
        } else {
            Self { repeats: 3, steps: 5, warmup: 1 }
        }
    }
}

/// The shape of a BERT-like encoder, from its `config.json`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Shape {
    layers: f64,
    hidden: f64,
    intermediate: f64,
}

impl Shape {
    fn read(folder: &Path) -> Result<Self> {
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

    /// Forward FLOPs of one sample of `seq` tokens attending over `prefix` extra keys:
    /// per layer `2 * seq * (4 h^2 + 2 h i)` in the linears plus `4 * seq * (seq + prefix) * h`
    /// in the attention products; embeddings, layer norms, softmax and the head are left out.
    fn forward_flops(&self, seq: f64, prefix: f64) -> f64 {
        let (h, i) = (self.hidden, self.intermediate);
        let linears = 2.0 * seq * (4.0 * h * h + 2.0 * h * i);
        let attention = 4.0 * seq * (seq + prefix) * h;
        self.layers * (linears + attention)
    }

    /// FLOPs of one sample in `mode`: a forward; training adds the input gradients (one more
    /// forward) and, for full fine-tuning, the weight gradients (another).
    fn flops(&self, mode: &str, method: &str, seq: f64, prefix: f64) -> f64 {
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

/// The release `pet` and the Python reference, with what both need.
struct Runner {
    root: PathBuf,
    pet: PathBuf,
    python: String,
    script: PathBuf,
    folder: PathBuf,
    threads: usize,
}

impl Runner {
    fn common_args(&self, profile: &Profile) -> Vec<String> {
        [
            ("--batch", BATCH.to_string()),
            ("--seq", SEQ.to_string()),
            ("--prefix", PREFIX.to_string()),
            ("--steps", profile.steps.to_string()),
            ("--warmup", profile.warmup.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
    }

    fn pet(&self, mode: &str, method: &str, precision: &str, profile: &Profile) -> Result<Value> {
        let mut command = Command::new(&self.pet);
        command
            .args(["bench", "--model"])
            .arg(&self.folder)
            .args(["--mode", mode, "--method", method, "--precision", precision])
            .args(self.common_args(profile))
            .env("RAYON_NUM_THREADS", self.threads.to_string())
            .current_dir(&self.root);
        json_line(&mut command)
    }

    fn python(&self) -> Command {
        let mut command = Command::new(&self.python);
        command.arg(&self.script).env("PYTHONHASHSEED", "0").current_dir(&self.root);
        command
    }

    fn torch(&self, mode: &str, method: &str, profile: &Profile) -> Result<Value> {
        let mut command = self.python();
        command
            .arg("--model")
            .arg(&self.folder)
            .args(["--mode", mode, "--method", method])
            .args(self.common_args(profile))
            .args(["--threads", &self.threads.to_string()]);
        json_line(&mut command)
    }

    fn gemm_peak(&self) -> Result<Value> {
        let mut command = self.python();
        command.args([
            "--mode",
            "gemm",
            "--gemm-size",
            &GEMM_SIZE.to_string(),
            "--steps",
            "10",
            "--warmup",
            "2",
            "--threads",
            &self.threads.to_string(),
        ]);
        json_line(&mut command)
    }

    fn versions(&self) -> Value {
        let code = "import json, torch, transformers, peft; print(json.dumps({'torch': \
                    torch.__version__, 'transformers': transformers.__version__, 'peft': \
                    peft.__version__}))";
        json_line(Command::new(&self.python).args(["-c", code])).unwrap_or(Value::Null)
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Median, minimum and maximum.
fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    Some((median, sorted[0], sorted[n - 1]))
}

/// Runs the benchmark and writes `docs/benchmarks/minilm-cpu.{jsonl,md}`.
///
/// # Errors
/// When the build, a subprocess or a write fails.
pub fn bench(quick: bool) -> Result<()> {
    let root = crate::workspace_root();
    let profile = Profile::new(quick);
    crate::run(
        Command::new("cargo").args(["build", "--release", "-p", "pet-cli"]).current_dir(&root),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let pet = root.join(target).join("release/pet");
    let fetched = Command::new(&pet)
        .args(["fetch", MODEL])
        .current_dir(&root)
        .output()
        .with_context(|| format!("starting {} fetch {MODEL}", pet.display()))?;
    if !fetched.status.success() {
        bail!("pet fetch {MODEL} failed:\n{}", String::from_utf8_lossy(&fetched.stderr));
    }
    let folder = PathBuf::from(String::from_utf8_lossy(&fetched.stdout).trim());
    let shape = Shape::read(&folder)?;
    let threads = std::env::var("PET_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    let runner = Runner {
        pet,
        python: std::env::var("PET_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_string()),
        script: root.join("benchmarks/torch_bench.py"),
        folder,
        threads,
        root: root.clone(),
    };
    let meta = json!({
        "event": "run",
        "git": crate::git_sha(&root),
        "date": utc_now(),
        "cpu": cpu_model(),
        "threads": threads,
        "model": MODEL,
        "profile": if quick { "quick" } else { "full" },
        "repeats": profile.repeats,
        "steps": profile.steps,
        "warmup": profile.warmup,
        "versions": runner.versions(),
    });
    let mut records = Vec::new();
    for repeat in 0..profile.repeats {
        let mut peak = runner.gemm_peak()?;
        peak["repeat"] = repeat.into();
        eprintln!("xtask: repeat {repeat}: {peak}");
        records.push(peak);
        for mode in MODES {
            for method in METHODS {
                let pet_first = repeat % 2 == 0;
                // bf16 inference follows pet's fp32 inference, beside the same PyTorch runs.
                let pet_runs: &[&str] = if *mode == "infer" { &["f32", "bf16"] } else { &["f32"] };
                for turn in 0..2 {
                    let runs = if (turn == 0) == pet_first {
                        pet_runs
                            .iter()
                            .map(|precision| runner.pet(mode, method, precision, &profile))
                            .collect::<Result<Vec<_>>>()?
                    } else {
                        vec![runner.torch(mode, method, &profile)?]
                    };
                    for mut record in runs {
                        record["repeat"] = repeat.into();
                        eprintln!("xtask: {record}");
                        records.push(record);
                    }
                }
            }
        }
    }
    let out_dir = root.join("docs/benchmarks");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut jsonl = format!("{meta}\n");
    for record in &records {
        jsonl.push_str(&format!("{record}\n"));
    }
    std::fs::write(out_dir.join("minilm-cpu.jsonl"), jsonl).context("writing minilm-cpu.jsonl")?;
    std::fs::write(out_dir.join("minilm-cpu.md"), table(&meta, &records, &shape))
        .context("writing minilm-cpu.md")?;
    Ok(())
}

fn table(meta: &Value, records: &[Value], shape: &Shape) -> String {
    let select_in = |precision: &str, implementation: &str, mode: &str, method: &str, key: &str| {
        records
            .iter()
            .filter(|r| r["impl"] == implementation && r["mode"] == mode && r["method"] == method)
            .filter(|r| r["precision"].as_str().unwrap_or("f32") == precision)
            .filter_map(|r| key.split('.').try_fold(r, |value, part| value.get(part)))
            .filter_map(Value::as_f64)
            .collect::<Vec<f64>>()
    };
    let select = |implementation: &str, mode: &str, method: &str, key: &str| {
        select_in("f32", implementation, mode, method, key)
    };
    let peaks: Vec<f64> = records
        .iter()
        .filter(|r| r["mode"] == "gemm")
        .filter_map(|r| r["gflops"].as_f64())
        .collect();
    let peak = peaks.iter().copied().fold(0.0, f64::max);
    let mut out = format!(
        "# all-MiniLM-L6-v2 on the CPU: pet against PyTorch + PEFT\n\n\
         Generated by `cargo xtask bench{}` into `docs/benchmarks/minilm-cpu.jsonl` and this \
         table; do not edit by hand.\n\n\
         Run: git `{}`, {}, CPU `{}`, {} threads for both, {} repeat(s) of {} timed steps after \
         {} warm-up step(s), alternating which implementation goes first; reference stack {}.\n\
         Shapes: batch {BATCH}, seq {SEQ}, prefix {PREFIX} (P-Tuning v2 only), synthetic token ids, \
         all attended. LoRA: r 8, alpha 16, query and value (pet's preset). Samples/s: median \
         (min-max) over repeats. Peak RSS: the largest `VmHWM` / `ru_maxrss` over repeats, MiB.\n\n\
         FLOP utilization = median samples/s x FLOPs per sample / fp32 matmul peak. The peak is \
         the best of the repeats' {GEMM_SIZE}x{GEMM_SIZE} fp32 `torch.matmul` at the same thread \
         count: {peak:.1} GFLOP/s. FLOPs per sample of a forward = layers x (2 seq (4 h^2 + 2 h \
         i) + 4 seq (seq + prefix) h) = {:.2} GFLOP at prefix 0 (h {}, i {}, {} layers); \
         frozen-backbone training (P-Tuning v2, LoRA) counts 2 forwards, full fine-tuning 3.\n\n\
         | mode | method | pet samples/s | torch samples/s | pet / torch | pet RSS | torch RSS | \
         RSS pet / torch | pet FLOP util. | torch FLOP util. |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        if meta["profile"] == "quick" { " --quick" } else { "" },
        meta["git"].as_str().unwrap_or(""),
        meta["date"].as_str().unwrap_or(""),
        meta["cpu"].as_str().unwrap_or(""),
        meta["threads"],
        meta["repeats"],
        meta["steps"],
        meta["warmup"],
        meta["versions"],
        shape.forward_flops(SEQ as f64, 0.0) / 1e9,
        shape.hidden,
        shape.intermediate,
        shape.layers,
    );
    let cell = |s: Option<(f64, f64, f64)>| {
        s.map_or("-".to_string(), |(m, lo, hi)| format!("{m:.2} ({lo:.2}-{hi:.2})"))
    };
    for mode in MODES {
        for method in METHODS {
            let prefix = if *method == "ptuning-v2" { PREFIX as f64 } else { 0.0 };
            let flops = shape.flops(mode, method, SEQ as f64, prefix);
            let (pet, torch) = (
                select("pet", mode, method, "samples_per_sec"),
                select("torch", mode, method, "samples_per_sec"),
            );
            let (pet_s, torch_s) = (spread(&pet), spread(&torch));
            let max = |v: Vec<f64>| v.into_iter().reduce(f64::max);
            let (pet_rss, torch_rss) = (
                max(select("pet", mode, method, "peak_rss_mib")),
                max(select("torch", mode, method, "peak_rss_mib")),
            );
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "-".to_string(),
            };
            let util = |s: Option<(f64, f64, f64)>| match s {
                Some((m, _, _)) if peak > 0.0 => {
                    format!("{:.0}%", 100.0 * m * flops / (peak * 1e9))
                }
                _ => "-".to_string(),
            };
            let mib = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
            out.push_str(&format!(
                "| {mode} | {method} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                cell(pet_s),
                cell(torch_s),
                ratio(pet_s.map(|s| s.0), torch_s.map(|s| s.0)),
                mib(pet_rss),
                mib(torch_rss),
                ratio(pet_rss, torch_rss),
                util(pet_s),
                util(torch_s),
            ));
        }
    }
    out.push_str(
        "\n## bf16 inference\n\n\
         pet with `--precision bf16` (the linears' weights and activations and the attention \
         products in bf16, `f32` sums; AVX512-BF16) against PyTorch's fp32 inference of the same \
         repeats. Logit error: the largest `|bf16 - f32|` over the timed batch's logits (pet's \
         own fp32 forward of the same model and batch), over repeats; in brackets the largest \
         `|f32 logit|`. Argmax agreement: the smallest share of rows whose predicted class is \
         unchanged.\n\n\
         | method | pet bf16 samples/s | torch fp32 samples/s | pet bf16 / torch fp32 | pet bf16 / pet fp32 | pet RSS | max logit error | argmax agreement |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for method in METHODS {
        let bf16 = |key: &str| select_in("bf16", "pet", "infer", method, key);
        let median = |values: &[f64]| spread(values).map(|s| s.0);
        let (pet, torch, fp32) = (
            spread(&bf16("samples_per_sec")),
            median(&select("torch", "infer", method, "samples_per_sec")),
            median(&select("pet", "infer", method, "samples_per_sec")),
        );
        let ratio = |b: Option<f64>| match (pet, b) {
            (Some(p), Some(b)) if b > 0.0 => format!("{:.2}", p.0 / b),
            _ => "-".to_string(),
        };
        let largest = |key: &str| bf16(key).into_iter().reduce(f64::max);
        let error = match (largest("logit_error.max_abs"), largest("logit_error.max_abs_f32")) {
            (Some(e), Some(scale)) => format!("{e:.2e} ({scale:.3})"),
            _ => "-".to_string(),
        };
        let agreement = bf16("logit_error.argmax_agreement").into_iter().reduce(f64::min);
        out.push_str(&format!(
            "| {method} | {} | {} | {} | {} | {} | {error} | {} |\n",
            cell(pet),
            torch.map_or("-".to_string(), |t| format!("{t:.2}")),
            ratio(torch),
            ratio(fp32),
            largest("peak_rss_mib").map_or("-".to_string(), |v| format!("{v:.0}")),
            agreement.map_or("-".to_string(), |a| format!("{a:.3}")),
        ));
    }
    out
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
    fn bf16_rows_compare_with_torch_fp32_and_report_the_logit_error() {
        let minilm = Shape { layers: 6.0, hidden: 384.0, intermediate: 1536.0 };
        let meta = json!({"git": "abc", "repeats": 1, "steps": 5, "warmup": 1});
        let infer = |implementation: &str, samples: f64| json!({"impl": implementation, "mode": "infer", "method": "lora", "samples_per_sec": samples});
        let mut bf16 = infer("pet", 90.0);
        bf16["precision"] = "bf16".into();
        bf16["logit_error"] =
            json!({"max_abs": 0.002, "max_abs_f32": 0.25, "argmax_agreement": 0.96875});
        let records = [infer("pet", 40.0), infer("torch", 45.0), bf16];
        let text = table(&meta, &records, &minilm);
        // fp32 rows are unaffected by the bf16 record.
        assert!(
            text.contains("| infer | lora | 40.00 (40.00-40.00) | 45.00 (45.00-45.00) | 0.89 |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| lora | 90.00 (90.00-90.00) | 45.00 | 2.00 | 2.25 | - | 2.00e-3 (0.250) | 0.969 |"
            ),
            "{text}"
        );
    }

    #[test]
    fn spread_is_median_min_max() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(spread(&[4.0, 1.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(spread(&[]), None);
    }
}
