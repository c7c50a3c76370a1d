//! `cargo xtask`: project chores that need no Burn.
//!
//! - `cargo xtask reproduce-benchmarks [--quick]`: regenerate every committed results and
//!   benchmark table in one command (`reproduce.rs`): the NLP study of `study.rs` (every method
//!   on all-MiniLM-L6-v2 for SpamAssassin and WNUT-16, learning rate chosen on dev from a grid,
//!   three seeds) into `docs/results/`, and the speed table against PyTorch + PEFT
//!   (`bench.rs`) into `docs/benchmarks/`; finished runs are reused from `runs/reproduce/cache`
//!   (`cache.rs`), and a summary says which of the tables' claims this run supports
//!   (`claims.rs`). `--quick` is the CI smoke profile: tiny subsets, a debug build, the tiny
//!   fixture encoder for the speed harness, and everything written under `runs/reproduce/quick`.
//! - `cargo xtask results [--quick] [--task NAME]` and `cargo xtask bench [--quick]`: the study
//!   alone (one data set with `--task`: each fits in a 90-minute session) and the speed table
//!   alone, through the same runner and cache.
//! - `cargo xtask fixtures`: regenerate every parity fixture with the pinned PyTorch reference
//!   stack (`fixtures.rs`). CI never runs this: it reads the committed fixtures.

mod bench;
mod bench_table;
mod cache;
mod claims;
mod cpu;
mod fixtures;
mod papers;
mod progress;
mod reproduce;
mod stats;
mod study;
mod study_run;
mod study_table;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::reproduce::{Options, Parts};

const USAGE: &str = "usage: cargo xtask <task> [--quick] [--level none|avx2|avx512|avx512-bf16]
                          [--task spamassassin|wnut16]

tasks:
  reproduce-benchmarks  regenerate every results and benchmark table: the NLP study (docs/results)
                        and the speed table against PyTorch + PEFT (docs/benchmarks); resumes from
                        runs/reproduce/cache; --quick: the CI smoke profile, written under runs/
  results               the NLP study alone (same runner, cache and --quick); --task: one data
                        set (docs/results/minilm-NAME.md), each about 80 minutes on 2 cores
  bench                 the speed table alone (same runner, cache and --quick); one table per
                        CPU class (the level pet's kernels ran at); --level caps pet
                        (PET_CPU_LEVEL) and PyTorch (ATen, oneDNN, MKL) to a lower class
  fixtures              regenerate the parity fixtures with the pinned PyTorch reference stack";

/// The workspace root (the parent of `xtask/`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Runs `command`, failing on a non-zero exit.
fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

/// The short commit of `HEAD`, or an empty string outside a git checkout.
fn git_sha(root: &Path) -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let options = Options::from_args(&rest).with_context(|| format!("\n\n{USAGE}"))?;
    match task.as_deref() {
        Some("reproduce-benchmarks") => reproduce::reproduce(&options, Parts::All),
        Some("results") => reproduce::reproduce(&options, Parts::Study),
        Some("bench") => reproduce::reproduce(&options, Parts::Bench),
        Some("fixtures") => fixtures::fixtures(),
        other => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}
