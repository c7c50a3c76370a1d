//! The bad-input matrix: the real `pet` binary over a table of wrong command lines and files.
//! Every row must end in an error, never a panic (exit code 1 for a refused run, 2 for a
//! command line clap refuses; no "panicked" on stderr), with a message holding the row's
//! fragment, and must change no file that existed before it ran (hashes before and after,
//! model fixture included) nor leave a temporary file behind.
//!
//! A row is one line: `row(name, args, files, exit, fragment)`.
//! - `args`: split on whitespace; `{bert}` is the tiny BERT fixture folder; the binary runs in a
//!   fresh folder, so plain names are files of that folder.
//! - `files`: what to create there first, one string each:
//!   `"NAME"` (content by name: `train.jsonl`/`dev.jsonl` labelled rows, `job.toml` a
//!   classification job on them writing `out`, `delta.safetensors` a trained LoRA checkpoint,
//!   anything else a line of text), `"NAME=TEXT"` (that text; `{bert}` replaced),
//!   `"fifo:NAME"`, `"link:NAME->TARGET"` (a symbolic link), `"hard:NAME->TARGET"` (a hard
//!   link to a file made before it), `"dir:NAME"`.
//! - `exit`: [`Exit::Error`] or [`Exit::Usage`]; `fragment`: a piece of the message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pet_cli::device::{DeviceSpec, run_on};
use pet_cli::train::TrainJob;
use pet_core::testing::TempDir;

/// How a row must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    /// A run refused or failed: exit code 1.
    Error,
    /// A command line clap refuses: exit code 2.
    Usage,
}

impl Exit {
    fn code(self) -> i32 {
        match self {
            Self::Error => 1,
            Self::Usage => 2,
        }
    }
}

struct Row {
    name: &'static str,
    args: &'static str,
    files: &'static [&'static str],
    exit: Exit,
    fragment: &'static str,
}

const fn row(
    name: &'static str,
    args: &'static str,
    files: &'static [&'static str],
    exit: Exit,
    fragment: &'static str,
) -> Row {
    Row { name, args, files, exit, fragment }
}

use Exit::{Error, Usage};

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // Outputs never destroy inputs.
    row("predict_output_is_its_input", "predict --model {bert} --delta delta.safetensors --input dev.jsonl --output dev.jsonl --overwrite", &["delta.safetensors", "dev.jsonl"], Error, "is an input"),
    row("predict_output_is_the_input_by_another_path", "predict --model {bert} --delta delta.safetensors --input dev.jsonl --output ./sub/../dev.jsonl --overwrite", &["delta.safetensors", "dev.jsonl", "dir:sub"], Error, "is an input"),
    row("predict_output_is_a_hard_link_to_the_input", "predict --model {bert} --delta delta.safetensors --input dev.jsonl --output same.jsonl --overwrite", &["delta.safetensors", "dev.jsonl", "hard:same.jsonl->dev.jsonl"], Error, "is an input"),
    row("predict_output_is_the_delta", "predict --model {bert} --delta delta.safetensors --input dev.jsonl --output delta.safetensors --overwrite", &["delta.safetensors", "dev.jsonl"], Error, "is an input"),
    row("predict_output_exists", "predict --model {bert} --delta delta.safetensors --input dev.jsonl --output old.jsonl", &["delta.safetensors", "dev.jsonl", "old.jsonl"], Error, "--overwrite"),
    row("predict_output_is_a_symlink", "predict --model {bert} --delta delta.safetensors --input dev.jsonl --output link.jsonl --overwrite", &["delta.safetensors", "dev.jsonl", "other.txt", "link:link.jsonl->other.txt"], Error, "symbolic link"),
    row("predict_output_is_a_fifo", "predict --model {bert} --delta delta.safetensors --input dev.jsonl --output pipe --overwrite", &["delta.safetensors", "dev.jsonl", "fifo:pipe"], Error, "not a regular file"),
    row("predict_output_is_a_folder", "predict --model {bert} --delta delta.safetensors --input dev.jsonl --output sub --overwrite", &["delta.safetensors", "dev.jsonl", "dir:sub"], Error, "is a folder"),
    row("predict_output_is_in_the_model_folder", "predict --model {bert} --delta delta.safetensors --input dev.jsonl --output {bert}/config.json --overwrite", &["delta.safetensors", "dev.jsonl"], Error, "inside the input"),
    row("encode_output_is_its_input", "encode --model {bert} --input dev.jsonl --output dev.jsonl --overwrite", &["dev.jsonl"], Error, "is an input"),
    row("encode_output_is_the_model_weights", "encode --model {bert} --input dev.jsonl --output {bert}/model.safetensors --overwrite", &["dev.jsonl"], Error, "inside the input"),
    row("encode_output_exists", "encode --model {bert} --input dev.jsonl --output old.safetensors", &["dev.jsonl", "old.safetensors"], Error, "--overwrite"),
    row("encode_output_is_a_symlink", "encode --model {bert} --input dev.jsonl --output link.st --overwrite", &["dev.jsonl", "other.txt", "link:link.st->other.txt"], Error, "symbolic link"),
    row("export_output_is_the_delta", "export --model {bert} --delta delta.safetensors --output delta.safetensors --overwrite", &["delta.safetensors"], Error, "is an input"),
    row("export_output_is_the_model_folder", "export --model {bert} --delta delta.safetensors --output {bert} --overwrite", &["delta.safetensors"], Error, "is an input"),
    row("export_output_holds_the_delta", "export --model {bert} --delta run/delta.safetensors --output run --overwrite", &["run/delta.safetensors"], Error, "holds the input"),
    row("export_output_exists", "export --model {bert} --delta delta.safetensors --output peft", &["delta.safetensors", "peft/adapter_config.json"], Error, "--overwrite"),
    row("train_output_is_the_model_folder", "train --config job.toml --output {bert} --overwrite", &["job.toml", "train.jsonl", "dev.jsonl"], Error, "is an input"),
    row("train_output_holds_the_data", "train --config job.toml --output . --overwrite", &["job.toml", "train.jsonl", "dev.jsonl"], Error, "holds the input"),
    row("train_output_is_the_train_file", "train --config job.toml --output train.jsonl --overwrite", &["job.toml", "train.jsonl", "dev.jsonl"], Error, "is an input"),
    row("train_output_exists", "train --config job.toml", &["job.toml", "train.jsonl", "dev.jsonl", "out/delta.safetensors"], Error, "--overwrite"),
    row("train_output_is_a_symlink", "train --config job.toml --output link --overwrite", &["job.toml", "train.jsonl", "dev.jsonl", "dir:real", "link:link->real"], Error, "symbolic link"),
    row("train_output_is_a_fifo", "train --config job.toml --output pipe --overwrite", &["job.toml", "train.jsonl", "dev.jsonl", "fifo:pipe"], Error, "not a regular file"),
    // Training that diverges stops by name and keeps the previous result.
    row("train_diverging_keeps_the_old_checkpoint", "train --config job.toml --lr 1e30 --overwrite", &["job.toml", "train.jsonl", "dev.jsonl", "out/delta.safetensors", "out/results.json", "out/metrics.jsonl"], Error, "learning rate"),
    // Numeric flags, refused by the parser.
    row("train_lr_negative", "train --config job.toml --lr -1", &["job.toml"], Usage, "greater than 0"),
    row("train_lr_nan", "train --config job.toml --lr nan", &["job.toml"], Usage, "finite"),
    row("train_lr_infinite", "train --config job.toml --lr inf", &["job.toml"], Usage, "finite"),
    row("train_lr_zero", "train --config job.toml --lr 0", &["job.toml"], Usage, "greater than 0"),
    row("train_batch_size_zero", "train --config job.toml --batch-size 0", &["job.toml"], Usage, "at least 1"),
    row("train_batch_size_negative", "train --config job.toml --batch-size -3", &["job.toml"], Usage, "at least 1"),
    row("train_epochs_zero", "train --config job.toml --epochs 0", &["job.toml"], Usage, "at least 1"),
    row("train_max_length_zero", "train --config job.toml --max-length 0", &["job.toml"], Usage, "at least 1"),
    row("train_max_train_examples_zero", "train --config job.toml --max-train-examples 0", &["job.toml"], Usage, "at least 1"),
    row("encode_max_length_zero", "encode --model {bert} --input dev.jsonl --output o.st --max-length 0", &["dev.jsonl"], Usage, "at least 1"),
    row("bench_batch_zero", "bench --model {bert} --batch 0", &[], Usage, "at least 1"),
    row("bench_steps_zero", "bench --model {bert} --steps 0", &[], Usage, "at least 1"),
    // Job files get the same checks, by field.
    row("job_batch_size_zero", "train --config bad.toml", &["train.jsonl", "dev.jsonl", "bad.toml=model = \"{bert}\"\ntask = \"classification\"\ntrain = \"train.jsonl\"\ndev = \"dev.jsonl\"\nmethod = \"lora\"\noutput = \"out\"\nbatch_size = 0\n"], Error, "batch_size"),
    row("job_learning_rate_negative", "train --config bad.toml", &["train.jsonl", "dev.jsonl", "bad.toml=model = \"{bert}\"\ntask = \"classification\"\ntrain = \"train.jsonl\"\ndev = \"dev.jsonl\"\nmethod = \"lora\"\noutput = \"out\"\n[optim]\nlearning_rate = -0.1\n"], Error, "learning_rate"),
    row("job_weight_decay_nan", "train --config bad.toml", &["train.jsonl", "dev.jsonl", "bad.toml=model = \"{bert}\"\ntask = \"classification\"\ntrain = \"train.jsonl\"\ndev = \"dev.jsonl\"\nmethod = \"lora\"\noutput = \"out\"\n[optim]\nweight_decay = nan\n"], Error, "weight_decay"),
    row("job_max_length_zero", "train --config bad.toml", &["train.jsonl", "dev.jsonl", "bad.toml=model = \"{bert}\"\ntask = \"classification\"\ntrain = \"train.jsonl\"\ndev = \"dev.jsonl\"\nmethod = \"lora\"\noutput = \"out\"\nmax_length = 0\n"], Error, "max_length"),
    row("job_epochs_zero", "train --config bad.toml", &["train.jsonl", "dev.jsonl", "bad.toml=model = \"{bert}\"\ntask = \"classification\"\ntrain = \"train.jsonl\"\ndev = \"dev.jsonl\"\nmethod = \"lora\"\noutput = \"out\"\n[optim]\nepochs = 0\n"], Error, "epochs"),
    // Messages name what is wrong.
    row("model_path_missing", "encode --model ./no-such-model --input dev.jsonl --output o.st", &["dev.jsonl"], Error, "no such file or folder: ./no-such-model"),
    row("model_absolute_path_missing", "encode --model /nonexistent/model --input dev.jsonl --output o.st", &["dev.jsonl"], Error, "no such file or folder: /nonexistent/model"),
    row("model_is_a_file", "encode --model dev.jsonl --input dev.jsonl --output o.st", &["dev.jsonl"], Error, "not a folder"),
    row("predict_input_missing", "predict --model {bert} --delta delta.safetensors --input missing.jsonl --output o.jsonl", &["delta.safetensors"], Error, "missing.jsonl"),
    row("predict_delta_missing", "predict --model {bert} --delta missing.safetensors --input dev.jsonl --output o.jsonl", &["dev.jsonl"], Error, "missing.safetensors"),
    row("encode_input_missing", "encode --model {bert} --input missing.jsonl --output o.st", &[], Error, "missing.jsonl"),
    row("train_config_missing", "train --config missing.toml", &[], Error, "missing.toml"),
    row("train_data_missing", "train --config job.toml", &["job.toml", "dev.jsonl"], Error, "train.jsonl"),
];

fn bert() -> PathBuf {
    crate::fixtures::parity("encoders", "bert")
}

fn rows(n: usize, label_a: &str, label_b: &str) -> String {
    (0..n)
        .map(|i| match i % 2 {
            0 => format!("{{\"text\": \"the cat sat on the mat\", \"label\": \"{label_a}\"}}\n"),
            _ => format!("{{\"text\": \"a big dog is running\", \"label\": \"{label_b}\"}}\n"),
        })
        .collect()
}

fn job_toml() -> String {
    format!(
        "model = \"{}\"\ntask = \"classification\"\ntrain = \"train.jsonl\"\ndev = \"dev.jsonl\"\n\
         method = \"lora\"\nmax_length = 16\nbatch_size = 4\noutput = \"out\"\n\
         [optim]\nepochs = 1\nlearning_rate = 0.05\nprogress = false\n",
        bert().display()
    )
}

/// A LoRA checkpoint trained once per test run on the tiny fixture.
fn trained_delta() -> &'static [u8] {
    static DELTA: OnceLock<Vec<u8>> = OnceLock::new();
    DELTA.get_or_init(|| {
        let _serial = pet_core::testing::serial();
        let dir = TempDir::new("bad-inputs-delta");
        std::fs::write(dir.path().join("train.jsonl"), rows(8, "cat", "dog")).expect("train");
        std::fs::write(dir.path().join("dev.jsonl"), rows(4, "cat", "dog")).expect("dev");
        let text = job_toml().replace("\"train.jsonl\"", "\"{d}/train.jsonl\"");
        let text =
            text.replace("\"dev.jsonl\"", "\"{d}/dev.jsonl\"").replace("\"out\"", "\"{d}/out\"");
        let text = text.replace("{d}", &dir.path().display().to_string());
        let job = pet_cli::train::Job::parse(&text, "delta job").expect("job");
        run_on(DeviceSpec::Cpu, TrainJob(job)).expect("the delta trains");
        std::fs::read(dir.path().join("out/delta.safetensors")).expect("delta")
    })
}

fn default_content(name: &str) -> Vec<u8> {
    let file = Path::new(name).file_name().and_then(|n| n.to_str()).unwrap_or(name);
    match file {
        "train.jsonl" => rows(8, "cat", "dog").into_bytes(),
        "dev.jsonl" => rows(4, "cat", "dog").into_bytes(),
        "job.toml" => job_toml().into_bytes(),
        "delta.safetensors" => trained_delta().to_vec(),
        _ => format!("previous content of {name}\n").into_bytes(),
    }
}

#[cfg(unix)]
fn make_fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn create(dir: &Path, spec: &str) {
    let bert = bert().display().to_string();
    let parent = |path: &Path| {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent folder");
        }
    };
    if let Some(name) = spec.strip_prefix("fifo:") {
        make_fifo(&dir.join(name));
    } else if let Some(name) = spec.strip_prefix("dir:") {
        std::fs::create_dir_all(dir.join(name)).expect("folder");
    } else if let Some(link) = spec.strip_prefix("link:") {
        let (name, target) = link.split_once("->").expect("link:NAME->TARGET");
        parent(&dir.join(name));
        std::os::unix::fs::symlink(target, dir.join(name)).expect("symlink");
    } else if let Some(link) = spec.strip_prefix("hard:") {
        let (name, target) = link.split_once("->").expect("hard:NAME->TARGET");
        std::fs::hard_link(dir.join(target), dir.join(name)).expect("hard link");
    } else {
        let (name, content) = match spec.split_once('=') {
            Some((name, text)) => (name, text.replace("{bert}", &bert).into_bytes()),
            None => (spec, default_content(spec)),
        };
        parent(&dir.join(name));
        std::fs::write(dir.join(name), content).expect("file");
    }
}

/// Every entry under `root` (not following links): its kind and, for a regular file, the
/// sha256 of its bytes.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            let kind = entry.file_type().expect("file type");
            let value = if kind.is_symlink() {
                format!("link {}", std::fs::read_link(&path).expect("link").display())
            } else if kind.is_dir() {
                stack.push(path.clone());
                "folder".into()
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).expect("file");
                format!("file {}", pet_core::digest::sha256_hex(&bytes))
            } else {
                "special".into()
            };
            out.insert(path.strip_prefix(root).unwrap_or(&path).to_path_buf(), value);
        }
    }
    out
}

/// Runs one row; `Err` says how it failed.
fn check(row: &Row) -> Result<(), String> {
    let dir = TempDir::new(&format!("bad-{}", row.name));
    for spec in row.files {
        create(dir.path(), spec);
    }
    let model_before = snapshot(&bert());
    let before = snapshot(dir.path());
    let bert = bert().display().to_string();
    let args: Vec<String> =
        row.args.split_whitespace().map(|a| a.replace("{bert}", &bert)).collect();
    let output = Command::new(env!("CARGO_BIN_EXE_pet"))
        .args(&args)
        .current_dir(dir.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .map_err(|e| format!("cannot run pet: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code();
    let mut problems = Vec::new();
    if code != Some(row.exit.code()) {
        problems.push(format!("exit {code:?}, expected {}", row.exit.code()));
    }
    if stderr.contains("panicked") {
        problems.push("panicked".into());
    }
    if !stderr.contains(row.fragment) {
        problems.push(format!("no `{}` in the message", row.fragment));
    }
    let after = snapshot(dir.path());
    for (path, value) in &before {
        match after.get(path) {
            Some(now) if now == value => {}
            Some(_) => problems.push(format!("{} changed", path.display())),
            None => problems.push(format!("{} removed", path.display())),
        }
    }
    let left: Vec<_> = after
        .keys()
        .filter(|p| !before.contains_key(*p))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    if !left.is_empty() {
        problems.push(format!("temporary files left: {left:?}"));
    }
    if snapshot(&crate::fixtures::parity("encoders", "bert")) != model_before {
        problems.push("the model fixture changed".into());
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "{}: {} (pet {}):\n{}",
            row.name,
            problems.join("; "),
            args.join(" "),
            stderr.trim_end()
        )),
    }
}

#[test]
fn every_bad_input_is_refused_by_name_and_changes_no_file() {
    let failures: Vec<String> = ROWS.iter().filter_map(|row| check(row).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n\n{}",
        failures.len(),
        ROWS.len(),
        failures.join("\n\n")
    );
}

#[test]
fn row_names_are_unique() {
    let mut names: Vec<&str> = ROWS.iter().map(|r| r.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ROWS.len());
}
