//! `cargo xtask reproduce-benchmarks [--quick]`: build `pet`, run the NLP study and the speed
//! table through the resume cache, write their tables and print which claims this run supports.
//!
//! | profile | build | study | speed table | writes |
//! |---|---|---|---|---|
//! | full | release | `study.rs`'s full protocol | MiniLM, 3 repeats, with PyTorch + PEFT | `docs/results/`, `docs/benchmarks/` |
//! | `--quick` | debug (CI has built it for the tests) | full, P-Tuning v2 and prefix; 32 training rows, 1 epoch, 2 rates, 2 seeds | the tiny fixture encoder, 1 repeat, PyTorch when present | `runs/reproduce/quick/` |
//!
//! Both keep finished runs in `runs/reproduce/cache/` and write `summary.md` beside the
//! profile's run folder (`runs/reproduce/{full,quick}/`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cache::RunCache;
use crate::progress::{Progress, clock};
use crate::{bench, claims, study, study_run, study_table};

/// How much to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The CI smoke profile: minutes, written under `runs/`.
    Quick,
    /// The committed tables.
    Full,
}

/// The arguments of the reproduce tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `--quick`, or the full profile.
    pub profile: Profile,
    /// `--level LEVEL`: the speed table's CPU level cap on both sides ([`crate::cpu`]).
    pub level: Option<String>,
    /// `--task NAME`: the study's one data set ([`study::select_tasks`]); all without it.
    pub task: Option<String>,
}

impl Options {
    /// `[--quick] [--level LEVEL] [--task NAME]`.
    ///
    /// # Errors
    /// On any other argument, or a level or data set pet does not know.
    pub fn from_args(args: &[String]) -> Result<Self> {
        let mut options = Self { profile: Profile::Full, level: None, task: None };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.profile = Profile::Quick,
                "--level" => {
                    let level = args.next().context("--level needs a value")?;
                    options.level = Some(crate::cpu::check_level(level)?.to_string());
                }
                "--task" => {
                    let name = args.next().context("--task needs a data set")?;
                    study::select_tasks(Some(name))?;
                    options.task = Some(name.clone());
                }
                other => bail!("unknown argument `{other}`"),
            }
        }
        Ok(options)
    }
}

impl Profile {
    /// `quick` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Quick => "quick",
            Self::Full => "full",
        }
    }

    /// The cargo profile `pet` is built with.
    fn cargo_profile(self) -> &'static str {
        match self {
            Self::Quick => "debug",
            Self::Full => "release",
        }
    }
}

/// Which tables to regenerate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parts {
    /// The study and the speed table.
    All,
    /// The NLP study alone (`cargo xtask results`).
    Study,
    /// The speed table alone (`cargo xtask bench`).
    Bench,
}

/// Where a profile writes.
pub struct Outputs {
    /// The study's `minilm-NAME.jsonl` and `minilm-NAME.md`, one pair per data set.
    pub results: PathBuf,
    /// The speed table's `minilm-cpu-<class>.jsonl` and `.md`, one pair per CPU class.
    pub benchmarks: PathBuf,
    /// The profile's run folder (`summary.md`).
    pub runs: PathBuf,
    /// Finished runs, shared by both profiles (their keys differ).
    pub cache: PathBuf,
}

impl Outputs {
    /// The folders of `profile` under the workspace `root`: only the full profile writes into
    /// `docs/`.
    pub fn of(profile: Profile, root: &Path) -> Self {
        let runs = root.join("runs/reproduce").join(profile.name());
        let (results, benchmarks) = match profile {
            Profile::Full => (root.join("docs/results"), root.join("docs/benchmarks")),
            Profile::Quick => (runs.join("results"), runs.join("benchmarks")),
        };
        Self { results, benchmarks, runs, cache: root.join("runs/reproduce/cache") }
    }
}

/// The `pet` binary a run uses, and what the cache key records about it.
pub struct Pet {
    /// Path of the binary.
    pub binary: PathBuf,
    /// `release` or `debug`.
    pub build: &'static str,
}

/// What every run needs: the workspace, the binary, the code version and the cache.
pub struct RunContext<'a> {
    /// Workspace root.
    pub root: &'a Path,
    /// The `pet` binary.
    pub pet: &'a Pet,
    /// [`crate::cache::code_version`] of the working tree.
    pub code: &'a str,
    /// Finished runs.
    pub cache: &'a RunCache,
}

/// Builds `pet` for `profile` (a no-op when it is up to date), with Burn's `ndarray` backend
/// beside the default burn-flex for the speed table's ndarray rows.
fn build_pet(root: &Path, profile: Profile) -> Result<Pet> {
    let mut command = Command::new("cargo");
    command.args(["build", "--quiet", "-p", "pet-cli", "--features", "ndarray"]).current_dir(root);
    if profile == Profile::Full {
        command.arg("--release");
    }
    crate::run(&mut command)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let binary = root.join(target).join(profile.cargo_profile()).join("pet");
    if !binary.is_file() {
        bail!("cargo built pet-cli but {} is not there", binary.display());
    }
    Ok(Pet { binary, build: profile.cargo_profile() })
}

/// Writes `text` to `dir/name`, creating `dir`.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Runs `parts` under `profile`.
///
/// # Errors
/// When the build, a run or a write fails.
pub fn reproduce(options: &Options, parts: Parts) -> Result<()> {
    let profile = options.profile;
    let root = crate::workspace_root();
    let outputs = Outputs::of(profile, &root);
    if parts != Parts::Study {
        bench::preflight(profile)?;
    }
    let pet = build_pet(&root, profile)?;
    let code = crate::cache::code_version(&root).context("hashing the sources")?;
    let cache = RunCache::new(outputs.cache.clone());
    let with_study = parts != Parts::Bench;
    let with_bench = parts != Parts::Study;
    let tasks = if with_study { study::select_tasks(options.task.as_deref())? } else { Vec::new() };
    let trials: Vec<_> =
        tasks.iter().flat_map(|&task| study::planned_trials(profile, task)).collect();
    let estimate = trials.iter().map(|t| t.estimated_seconds(profile)).sum::<f64>()
        + if with_bench { bench::estimated_seconds(profile) } else { 0.0 };
    let total = trials.len() + usize::from(with_bench);
    eprintln!(
        "xtask: reproduce-benchmarks, {} profile: {total} runs, about {} on 2 cores; code \
         version {code}; finished runs are kept in {}",
        profile.name(),
        clock(estimate),
        outputs.cache.display()
    );
    let mut progress = Progress::new(total, estimate);
    let context = RunContext { root: &root, pet: &pet, code: &code, cache: &cache };
    let mut verdicts = Vec::new();
    for task in tasks {
        let records = study_run::run_study(&context, profile, task, &mut progress)?;
        let jsonl: String = records.iter().map(|r| format!("{r}\n")).collect();
        let stem = format!("minilm-{}", task.name);
        write(&outputs.results, &format!("{stem}.jsonl"), &jsonl)?;
        let study_claims = claims::study_claims(profile, task, &records);
        write(
            &outputs.results,
            &format!("{stem}.md"),
            &study_table::table(profile, task, &records, &study_claims),
        )?;
        verdicts.extend(study_claims);
    }
    if with_bench {
        let run = bench::run_bench(&context, profile, options.level.as_deref(), &mut progress)?;
        let bench_claims = claims::bench_claims(&run);
        let stem = run.table_stem();
        write(&outputs.benchmarks, &format!("{stem}.jsonl"), &run.jsonl())?;
        write(
            &outputs.benchmarks,
            &format!("{stem}.md"),
            &crate::bench_table::table(&run, &bench_claims),
        )?;
        verdicts.extend(bench_claims);
    }
    let summary = claims::summary(profile, &verdicts);
    println!("{summary}");
    write(&outputs.runs, "summary.md", &summary)?;
    eprintln!(
        "xtask: tables in {} and {}; summary in {}",
        outputs.results.display(),
        outputs.benchmarks.display(),
        outputs.runs.join("summary.md").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_full_profile_writes_into_docs() {
        let root = Path::new("/repo");
        let quick = Outputs::of(Profile::Quick, root);
        for dir in [&quick.results, &quick.benchmarks, &quick.runs, &quick.cache] {
            assert!(dir.starts_with("/repo/runs"), "{}", dir.display());
        }
        let full = Outputs::of(Profile::Full, root);
        assert_eq!(full.results, Path::new("/repo/docs/results"));
        assert_eq!(full.benchmarks, Path::new("/repo/docs/benchmarks"));
    }

    #[test]
    fn quick_a_level_and_a_data_set_are_the_only_flags() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let parse = |a: &[&str]| Options::from_args(&args(a));
        let none = Options { profile: Profile::Full, level: None, task: None };
        assert_eq!(parse(&[]).expect("none"), none);
        assert_eq!(parse(&["--quick"]).expect("quick").profile, Profile::Quick);
        let capped = parse(&["--level", "avx2", "--quick"]).expect("capped");
        assert_eq!(
            capped,
            Options { profile: Profile::Quick, level: Some("avx2".into()), ..none.clone() }
        );
        assert_eq!(parse(&["--task", "wnut16"]).expect("task").task.as_deref(), Some("wnut16"));
        assert!(parse(&["--fast"]).is_err());
        assert!(parse(&["--level"]).is_err());
        assert!(parse(&["--level", "sse2"]).is_err());
        assert!(parse(&["--task", "sst2"]).is_err());
    }
}
