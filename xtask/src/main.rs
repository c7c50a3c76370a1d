//! `cargo xtask`: project chores that need no Burn.
//!
//! - `cargo xtask results`: train and evaluate every method on all-MiniLM-L6-v2 for SpamAssassin
//!   and WNUT-16 with `pet train` (release build; the CPU protocol of `TASKS` and `METHODS`), and write
//!   `docs/results/minilm.jsonl` (one record per run) and the table `docs/results/minilm.md`.
//! - `cargo xtask bench [--quick]`: `pet bench` against the PyTorch + PEFT reference
//!   `benchmarks/torch_bench.py` on all-MiniLM-L6-v2; writes `docs/benchmarks/minilm-cpu.*`
//!   (`bench.rs`).
//! - `cargo xtask fixtures`: regenerate every parity fixture. Creates a virtual environment in
//!   `target/fixtures-venv` with the pinned reference stack of `fixtures-requirements.txt`
//!   (PyTorch, transformers 4.57.6, PEFT 0.17.1), then runs each
//!   `crates/*/tests/parity/*/generate.py`. CI never runs this: it reads the committed fixtures.

mod bench;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

/// Every fixture generator, sorted.
fn generators(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let crates = root.join("crates");
    for krate in
        std::fs::read_dir(&crates).with_context(|| format!("listing {}", crates.display()))?
    {
        let parity = krate?.path().join("tests/parity");
        if !parity.is_dir() {
            continue;
        }
        for case in
            std::fs::read_dir(&parity).with_context(|| format!("listing {}", parity.display()))?
        {
            let script = case?.path().join("generate.py");
            if script.is_file() {
                found.push(script);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn fixtures() -> Result<()> {
    let root = workspace_root();
    let venv = root.join("target/fixtures-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "-r"])
        .arg(root.join("fixtures-requirements.txt")))?;
    let scripts = generators(&root)?;
    if scripts.is_empty() {
        bail!("no crates/*/tests/parity/*/generate.py found under {}", root.display());
    }
    for script in scripts {
        eprintln!("xtask: {}", script.strip_prefix(&root).unwrap_or(&script).display());
        // A fixed hash seed keeps set-ordered fields (PEFT's `target_modules`) stable.
        run(Command::new(&python).arg(&script).current_dir(&root).env("PYTHONHASHSEED", "0"))?;
    }
    Ok(())
}

/// Every method of the table with its peak learning rate: the usual ones per method family for
/// short schedules (prompt and prefix tables high, full fine-tuning low, LoRA, adapters and
/// BitFit between).
const METHODS: &[(&str, f64)] = &[
    ("full", 1e-4),
    ("ptuning-v2", 1e-2),
    ("prefix", 5e-3),
    ("prompt", 3e-2),
    ("lora", 3e-3),
    ("adapter", 3e-3),
    ("bitfit", 5e-3),
];

/// The data sets of the table: job file (`crates/pet-cli/jobs/`), the flags that set the
/// protocol on top of it, and its description for the table's header.
const TASKS: &[(&str, &[&str], &str)] = &[
    (
        "spamassassin-ptuning-v2",
        &["--max-train-examples", "800", "--epochs", "3"],
        "SpamAssassin: a seeded subset of 800 training emails, 400 dev and 400 test rows, 64 \
         tokens, 3 epochs (150 optimizer steps); metric accuracy",
    ),
    (
        "wnut16-ptuning-v2",
        &["--max-train-examples", "1000", "--epochs", "4"],
        "WNUT-16: a seeded subset of 1000 training sentences, all 239 dev and 239 test sentences, \
         64 tokens, 4 epochs (252 optimizer steps); metric seqeval span F1",
    ),
];

fn git_sha(root: &Path) -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn results() -> Result<()> {
    let root = workspace_root();
    let out_dir = root.join("docs/results");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let sha = git_sha(&root);
    let mut records = Vec::new();
    let runs = TASKS.iter().flat_map(|task| METHODS.iter().map(move |method| (task, method)));
    for ((job, protocol, _), (method, lr)) in runs {
        let output = format!("runs/results/{job}-{method}");
        let mut args = vec![
            "run".to_string(),
            "--quiet".into(),
            "--release".into(),
            "-p".into(),
            "pet-cli".into(),
            "--".into(),
            "train".into(),
            "--config".into(),
            format!("crates/pet-cli/jobs/{job}.toml"),
            "--method".into(),
            method.to_string(),
            "--lr".into(),
            lr.to_string(),
            "--output".into(),
            output.clone(),
        ];
        args.extend(protocol.iter().map(|a| a.to_string()));
        let command = format!("cargo {}", args.join(" "));
        eprintln!("xtask: {command}");
        run(Command::new("cargo").args(&args).current_dir(&root))?;
        let results_path = root.join(&output).join("results.json");
        let text = std::fs::read_to_string(&results_path)
            .with_context(|| format!("reading {}", results_path.display()))?;
        let mut record: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", results_path.display()))?;
        record["job"] = (*job).into();
        record["method"] = (*method).into();
        record["learning_rate"] = (*lr).into();
        record["command"] = command.into();
        record["git"] = sha.clone().into();
        let line = format!("{record}\n");
        let jsonl = out_dir.join("minilm.jsonl");
        let mut previous = if records.is_empty() {
            String::new()
        } else {
            std::fs::read_to_string(&jsonl).unwrap_or_default()
        };
        previous.push_str(&line);
        std::fs::write(&jsonl, previous).with_context(|| format!("writing {}", jsonl.display()))?;
        records.push(record);
        std::fs::write(out_dir.join("minilm.md"), table(&records)).context("writing minilm.md")?;
    }
    Ok(())
}

fn table(records: &[serde_json::Value]) -> String {
    let mut out = String::from(
        "# all-MiniLM-L6-v2: every method on SpamAssassin and WNUT-16\n\n\
         Generated by `cargo xtask results` from `docs/results/minilm.jsonl`; do not edit by hand.\n\n\
         CPU protocol (2 cores, release build, burn-flex): batch 16, seed 42, linear warmup (10%) \
         and decay, AdamW, the best epoch on dev (P-Tuning v2's protocol); dev and test metrics are \
         the best epoch's. Wall time covers loading, training and evaluation.\n\n",
    );
    for (_, _, description) in TASKS {
        out.push_str(&format!("- {description}\n"));
    }
    out.push_str(
        "\n| task | method | lr | dev | test | test - full | trainable | trainable % | delta KiB | wall s | seed | command |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in records {
        let task = if r["job"].as_str().unwrap_or("").starts_with("wnut") {
            "WNUT-16 F1"
        } else {
            "SpamAssassin acc."
        };
        let key = if task.starts_with("WNUT") { "f1" } else { "accuracy" };
        let metric =
            |split: &str| r[split][key].as_f64().map_or("-".to_string(), |v| format!("{v:.4}"));
        let full = records.iter().find(|f| f["job"] == r["job"] && f["method"] == "full");
        let gap = match (full.and_then(|f| f["test"][key].as_f64()), r["test"][key].as_f64()) {
            (Some(full), Some(test)) => format!("{:+.4}", test - full),
            _ => "-".to_string(),
        };
        let trainable = r["trainable"].as_f64().unwrap_or(0.0);
        let total = r["total"].as_f64().unwrap_or(1.0);
        out.push_str(&format!(
            "| {task} | {} | {} | {} | {} | {gap} | {} | {:.3} | {:.1} | {:.0} | 42 | `{}` |\n",
            r["method"].as_str().unwrap_or(""),
            r["learning_rate"],
            metric("dev"),
            metric("test"),
            trainable,
            100.0 * trainable / total,
            r["delta_bytes"].as_f64().unwrap_or(0.0) / 1024.0,
            r["seconds"].as_f64().unwrap_or(0.0),
            r["command"].as_str().unwrap_or(""),
        ));
    }
    out
}

fn main() -> Result<()> {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("fixtures") => fixtures(),
        Some("results") => results(),
        Some("bench") => bench::bench(std::env::args().skip(2).any(|a| a == "--quick")),
        other => bail!(
            "unknown task {other:?}\n\nusage: cargo xtask <task>\n\ntasks:\n  fixtures   regenerate the parity fixtures with the pinned PyTorch reference stack\n  bench      pet bench against PyTorch + PEFT on MiniLM (--quick: one short repeat); write docs/benchmarks/\n  results    train every method on MiniLM for SpamAssassin and WNUT-16; write docs/results/"
        ),
    }
}
