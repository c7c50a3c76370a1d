//! The resume cache of `cargo xtask reproduce-benchmarks`: a finished run is kept under
//! `runs/reproduce/cache/KEY/` with its `record.json`, where `KEY` hashes what decides its
//! numbers: the job (job file text and flags), the code version and the manifests of the assets
//! it reads. A run whose key is unchanged is not rerun. `record.json` is written last, through a
//! temporary file and a rename, so a killed run leaves no record: its folder is cleared and the
//! run starts over.
//!
//! The code version hashes the sources that produce the numbers: every file git tracks or
//! would track (untracked, not ignored) under `crates/`, except tests, examples and
//! benchmarks, plus `Cargo.toml`, `Cargo.lock`, `.cargo/` and `benchmarks/`, taken from the
//! working tree (so uncommitted edits count), through `git hash-object`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Paths whose content makes the code version.
const SOURCES: &[&str] = &["crates", "Cargo.toml", "Cargo.lock", ".cargo", "benchmarks"];

/// Whether a path under [`SOURCES`] is left out of the code version: tests, examples and
/// benchmarks of a crate, and documentation.
fn is_incidental(path: &str) -> bool {
    path.split('/').any(|part| matches!(part, "tests" | "examples" | "benches"))
        || path.ends_with(".md")
}

/// Runs `git` in `root` with `input` on standard input; its trimmed standard output.
fn git(root: &Path, args: &[&str], input: &str) -> Result<String> {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting git {}", args.join(" ")))?;
    child
        .stdin
        .take()
        .context("git's standard input")?
        .write_all(input.as_bytes())
        .with_context(|| format!("writing to git {}", args.join(" ")))?;
    let output = child.wait_with_output().with_context(|| format!("git {}", args.join(" ")))?;
    if !output.status.success() {
        bail!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The git object id of `text`.
///
/// # Errors
/// When git cannot be run.
pub fn hash_text(root: &Path, text: &str) -> Result<String> {
    git(root, &["hash-object", "--stdin"], text)
}

/// The hash of the working tree's sources that produce the numbers (module header).
///
/// # Errors
/// When git cannot list or hash the files.
pub fn code_version(root: &Path) -> Result<String> {
    let mut args = vec!["ls-files", "-co", "--exclude-standard", "--"];
    args.extend(SOURCES);
    let listed = git(root, &args, "")?;
    let mut paths: Vec<&str> =
        listed.lines().filter(|path| !is_incidental(path) && root.join(path).is_file()).collect();
    paths.sort_unstable();
    paths.dedup();
    let ids = git(root, &["hash-object", "--stdin-paths"], &paths.join("\n"))?;
    let manifest: String =
        ids.lines().zip(&paths).map(|(id, path)| format!("{id} {path}\n")).collect();
    if manifest.lines().count() != paths.len() {
        bail!("git hash-object returned {} ids for {} files", ids.lines().count(), paths.len());
    }
    hash_text(root, &manifest)
}

/// The text every run key starts from: a name per part, in order.
pub fn key_text(parts: &[(&str, &str)]) -> String {
    parts.iter().map(|(name, value)| format!("== {name}\n{value}\n")).collect()
}

/// Finished runs under a folder, by key.
pub struct RunCache {
    dir: PathBuf,
}

/// What [`RunCache::get_or_run`] hands back.
pub struct Cached {
    /// The run's record.
    pub record: Value,
    /// Whether it came from the cache.
    pub reused: bool,
}

impl RunCache {
    /// A cache in `dir` (created on first use).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The folder of the run with `key`.
    pub fn folder(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// The record of the finished run with `key`, or runs `run` in its cleared folder and keeps
    /// what it returns.
    ///
    /// # Errors
    /// When `run` fails or its folder or record cannot be written.
    pub fn get_or_run(
        &self,
        key: &str,
        run: impl FnOnce(&Path) -> Result<Value>,
    ) -> Result<Cached> {
        let folder = self.folder(key);
        let record_path = folder.join("record.json");
        if let Ok(text) = std::fs::read_to_string(&record_path) {
            let record = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", record_path.display()))?;
            return Ok(Cached { record, reused: true });
        }
        if folder.exists() {
            std::fs::remove_dir_all(&folder)
                .with_context(|| format!("clearing the unfinished run {}", folder.display()))?;
        }
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        let record = run(&folder)?;
        let partial = folder.join("record.json.partial");
        std::fs::write(&partial, format!("{record}\n"))
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &record_path)
            .with_context(|| format!("writing {}", record_path.display()))?;
        Ok(Cached { record, reused: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_finished_run_is_reused_and_not_rerun() {
        let cache = RunCache::new(scratch("reuse"));
        let first = cache.get_or_run("k", |_| Ok(json!({"accuracy": 0.9}))).expect("first");
        assert!(!first.reused);
        let second =
            cache.get_or_run("k", |_| bail!("a finished run must not run again")).expect("second");
        assert!(second.reused);
        assert_eq!(second.record, json!({"accuracy": 0.9}));
        let other = cache.get_or_run("other", |_| Ok(json!(1))).expect("another key");
        assert!(!other.reused);
    }

    #[test]
    fn a_killed_run_starts_over_in_a_cleared_folder() {
        let cache = RunCache::new(scratch("killed"));
        // What a run killed half-way leaves: output files, no record.
        let folder = cache.folder("k");
        std::fs::create_dir_all(&folder).expect("folder");
        std::fs::write(folder.join("metrics.jsonl"), "{\"epoch\": 1}\n").expect("partial output");
        let rerun = cache
            .get_or_run("k", |folder| {
                assert!(!folder.join("metrics.jsonl").exists(), "stale output kept");
                Ok(json!("fresh"))
            })
            .expect("rerun");
        assert!(!rerun.reused);
        assert_eq!(rerun.record, json!("fresh"));
        // A failed run leaves no record either.
        assert!(cache.get_or_run("failed", |_| bail!("killed")).is_err());
        assert!(!cache.folder("failed").join("record.json").exists());
    }

    #[test]
    fn tests_examples_and_docs_are_not_code() {
        assert!(is_incidental("crates/pet-cli/tests/train.rs"));
        assert!(is_incidental("crates/pet-nlp/examples/quick_start.rs"));
        assert!(is_incidental("crates/pet-core/README.md"));
        assert!(!is_incidental("crates/pet-core/src/delta/prefix.rs"));
        assert!(!is_incidental("crates/pet-cli/jobs/spamassassin-ptuning-v2.toml"));
    }

    #[test]
    fn the_code_version_follows_the_sources() {
        let root = crate::workspace_root();
        let Ok(version) = code_version(&root) else {
            eprintln!("skipped: git cannot run in {}", root.display());
            return;
        };
        assert_eq!(version.len(), 40, "{version}");
        assert_eq!(code_version(&root).expect("again"), version, "not deterministic");
        let key = |job: &str| hash_text(&root, &key_text(&[("job", job), ("code", &version)]));
        assert_ne!(key("a").expect("key"), key("b").expect("key"));
    }
}
