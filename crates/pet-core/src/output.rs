//! The one writer of user-named outputs (`pet train`'s folder, `pet predict`'s lines, `pet
//! encode`'s tensors, `pet export`'s adapter folder): outputs never destroy inputs, and an
//! output appears whole or not at all.
//!
//! [`Output::checked`] refuses, before any work, an output path that
//! - is one of the command's inputs (same canonical path, or the same file by another name:
//!   same device and inode), holds one (a folder above an input), or is an existing entry
//!   inside an input folder;
//! - is a symbolic link, or a FIFO, socket or device;
//! - is a folder where a file is written, or a file where a folder is;
//! - exists, unless the caller passes `overwrite` (`--overwrite`, as transformers' Trainer
//!   `overwrite_output_dir`).
//!
//! [`Output::stage`] gives a fresh hidden sibling (same folder, so the same filesystem) to write
//! into; [`Staged::commit`] renames it into place: a file replaces the old one atomically; a
//! folder moves the old one aside, moves the new one in and deletes the old one. A [`Staged`]
//! dropped without commit (any error path) removes its temporary file or folder. A process
//! killed before the commit leaves the old output; one killed between the two renames of a
//! folder leaves the old folder aside, which the next [`Output::checked`] of that path puts back.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{PetError, Result};

/// What an output path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// One file.
    File,
    /// A folder of files.
    Folder,
}

impl OutputKind {
    fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Folder => "folder",
        }
    }
}

/// An output path that passed the checks of [`Output::checked`].
#[derive(Clone, Debug)]
pub struct Output {
    /// As the caller named it, for messages.
    path: PathBuf,
    /// Absolute, for the renames (`.` has no sibling).
    target: PathBuf,
    kind: OutputKind,
    overwrite: bool,
}

/// A temporary sibling of an output, being written; removed when dropped uncommitted.
#[derive(Debug)]
pub struct Staged {
    temp: TempPath,
    output: Output,
}

/// A temporary file or folder, removed when dropped unless kept.
#[derive(Debug)]
pub(crate) struct TempPath {
    path: PathBuf,
    armed: bool,
}

impl TempPath {
    /// A unique hidden sibling of `path`: `.NAME.pet-PID-N.TAG`.
    pub(crate) fn sibling(path: &Path, tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let temp = format!(".{name}.pet-{}-{n}.{tag}", std::process::id());
        Self { path: path.with_file_name(temp), armed: true }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the path: it has been renamed into place.
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.armed {
            match std::fs::symlink_metadata(&self.path) {
                Ok(meta) if meta.is_dir() => drop(std::fs::remove_dir_all(&self.path)),
                Ok(_) => drop(std::fs::remove_file(&self.path)),
                Err(_) => {}
            }
        }
    }
}

fn refuse(path: &Path, reason: impl Into<String>) -> PetError {
    PetError::OutputRefused { path: path.to_path_buf(), reason: reason.into() }
}

/// `path` made absolute with `.` and `..` resolved: canonical up to its longest existing
/// prefix, lexical after it.
fn absolute(path: &Path) -> Result<PathBuf> {
    if let Ok(canonical) = path.canonicalize() {
        return Ok(canonical);
    }
    let joined = match path.is_absolute() {
        true => path.to_path_buf(),
        false => std::env::current_dir().map_err(|e| PetError::io(path, e))?.join(path),
    };
    let mut rest = Vec::new();
    let mut base = joined.as_path();
    loop {
        if let Ok(canonical) = base.canonicalize() {
            let mut out = canonical;
            for component in rest.iter().rev() {
                match component {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return Ok(out);
        }
        match (base.parent(), base.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                base = parent;
            }
            _ => return Ok(joined),
        }
    }
}

/// As [`absolute`], without following a link at the last component: the output's own entry.
fn absolute_entry(path: &Path) -> Result<PathBuf> {
    match (path.components().next_back(), path.parent()) {
        (Some(Component::Normal(name)), Some(parent)) => {
            let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
            Ok(absolute(parent)?.join(name))
        }
        _ => absolute(path),
    }
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    false
}

/// Whether process `pid` still runs (unknown, and so alive, where `/proc` is absent).
fn alive(pid: &str) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid).exists()
}

/// Removes the temporary siblings of `path` that dead `pet` processes left behind, putting back
/// an old folder moved aside by a commit that was killed before the new one moved in.
fn recover(path: &Path) {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    let prefix = format!(".{}.pet-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else { continue };
        let Some((pid, tail)) = rest.split_once('-') else { continue };
        if alive(pid) || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let temp = entry.path();
        if tail.ends_with(".old") && std::fs::symlink_metadata(path).is_err() {
            let _ = std::fs::rename(&temp, path);
        } else if tail.ends_with(".old") || tail.ends_with(".new") || tail.ends_with(".tmp") {
            drop(TempPath { path: temp, armed: true });
        }
    }
}

impl Output {
    /// Checks that `path` may receive a `kind` output of a command reading `inputs` (files or
    /// folders; missing ones are compared by path); see the module documentation.
    ///
    /// # Errors
    /// [`PetError::OutputRefused`] naming the path and why; [`PetError::Io`] when it cannot be
    /// examined.
    pub fn checked(
        path: &Path,
        kind: OutputKind,
        overwrite: bool,
        inputs: &[&Path],
    ) -> Result<Self> {
        let target = absolute_entry(path)?;
        if target.file_name().is_none() {
            return Err(refuse(path, "is the root folder"));
        }
        recover(&target);
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(PetError::io(path, e)),
        };
        if let Some(meta) = &meta {
            let kind_of = meta.file_type();
            if kind_of.is_symlink() {
                return Err(refuse(path, "is a symbolic link; pet does not write through links"));
            }
            if !kind_of.is_file() && !kind_of.is_dir() {
                return Err(refuse(
                    path,
                    "is not a regular file or folder (a FIFO, socket or device)",
                ));
            }
        }
        for input in inputs {
            let source = absolute(input)?;
            let same_inode = match (&meta, std::fs::metadata(input)) {
                (Some(out), Ok(inp)) => same_file(out, &inp),
                _ => false,
            };
            if source == target || same_inode {
                return Err(refuse(path, format!("is an input ({})", input.display())));
            }
            if source.starts_with(&target) {
                return Err(refuse(path, format!("holds the input {}", input.display())));
            }
            if meta.is_some() && input.is_dir() && target.starts_with(&source) {
                return Err(refuse(
                    path,
                    format!("is inside the input folder {}", input.display()),
                ));
            }
        }
        if let Some(meta) = &meta {
            let found = if meta.is_dir() { OutputKind::Folder } else { OutputKind::File };
            if found != kind {
                let (found, kind) = (found.name(), kind.name());
                return Err(refuse(path, format!("is a {found}; expected a {kind}")));
            }
            if !overwrite {
                return Err(refuse(
                    path,
                    format!(
                        "the {} exists; pass --overwrite (a job file: `overwrite = true`) to \
                         replace it",
                        kind.name()
                    ),
                ));
            }
        }
        Ok(Self { path: path.to_path_buf(), target, kind, overwrite })
    }

    /// The output path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh temporary sibling to write into (a file path to create, or an empty folder); the
    /// parent folders of the output are created.
    ///
    /// # Errors
    /// [`PetError::Io`] when the parent or the temporary folder cannot be created.
    pub fn stage(&self) -> Result<Staged> {
        if let Some(parent) = self.target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| PetError::io(parent, e))?;
        }
        let temp = TempPath::sibling(&self.target, "new");
        if self.kind == OutputKind::Folder {
            std::fs::create_dir(temp.path()).map_err(|e| PetError::io(temp.path(), e))?;
        }
        Ok(Staged { temp, output: self.clone() })
    }

    /// Writes `bytes` as this file output: staged, then committed.
    ///
    /// # Errors
    /// As [`Output::stage`] and [`Staged::commit`], or when the bytes cannot be written.
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        let staged = self.stage()?;
        std::fs::write(staged.path(), bytes).map_err(|e| PetError::io(staged.path(), e))?;
        staged.commit()
    }
}

impl Staged {
    /// Where to write: the temporary file path, or the temporary folder.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// The output this stage becomes.
    pub fn output(&self) -> &Path {
        &self.output.path
    }

    /// Renames the temporary file or folder into place (see the module documentation).
    ///
    /// # Errors
    /// [`PetError::OutputRefused`] when the output path became a link, a special file, or (without
    /// overwrite) an existing entry while the command ran; [`PetError::Io`] when a rename fails
    /// (the old output stays in place).
    pub fn commit(self) -> Result<()> {
        let Output { path: shown, target: path, kind, overwrite } = &self.output;
        let existing = match std::fs::symlink_metadata(path) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(PetError::io(path, e)),
        };
        if let Some(meta) = &existing {
            let kind_of = meta.file_type();
            let expected = match kind {
                OutputKind::File => kind_of.is_file(),
                OutputKind::Folder => kind_of.is_dir(),
            };
            if !expected || !overwrite {
                return Err(refuse(shown, "changed while pet ran (a new entry, link or file)"));
            }
        }
        match (kind, existing) {
            (OutputKind::Folder, Some(_)) => {
                let aside = TempPath::sibling(path, "old");
                std::fs::rename(path, aside.path()).map_err(|e| PetError::io(path, e))?;
                if let Err(e) = std::fs::rename(self.temp.path(), path) {
                    let _ = std::fs::rename(aside.path(), path);
                    aside.keep();
                    return Err(PetError::io(path, e));
                }
                drop(aside);
            }
            _ => std::fs::rename(self.temp.path(), path).map_err(|e| PetError::io(path, e))?,
        }
        self.temp.keep();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    fn reason(err: PetError) -> String {
        match err {
            PetError::OutputRefused { reason, .. } => reason,
            other => panic!("expected a refusal, got {other}"),
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn an_output_that_is_an_input_is_refused_by_any_name() {
        let dir = TempDir::new("output-is-input");
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "x").expect("input");
        std::fs::create_dir(dir.path().join("sub")).expect("sub");
        let other_name = dir.path().join("sub/../in.jsonl");
        let hard = dir.path().join("hard.jsonl");
        std::fs::hard_link(&input, &hard).expect("hard link");
        for out in [&input, &other_name, &hard] {
            let err = Output::checked(out, OutputKind::File, true, &[&input]).expect_err("input");
            assert!(reason(err).starts_with("is an input"), "{}", out.display());
        }
    }

    #[test]
    fn an_output_folder_above_an_input_or_an_entry_inside_an_input_folder_is_refused() {
        let dir = TempDir::new("output-holds-input");
        let model = dir.path().join("model");
        std::fs::create_dir(&model).expect("model");
        std::fs::write(model.join("config.json"), "{}").expect("config");
        let data = dir.path().join("data/train.jsonl");
        let holds = Output::checked(dir.path(), OutputKind::Folder, true, &[&model, &data]);
        assert!(reason(holds.expect_err("holds")).starts_with("holds the input"));
        let inside = Output::checked(&model.join("config.json"), OutputKind::File, true, &[&model]);
        assert!(reason(inside.expect_err("inside")).starts_with("is inside the input folder"));
        let new_file =
            Output::checked(&model.join("new.jsonl"), OutputKind::File, false, &[&model]);
        assert!(new_file.is_ok(), "a new file beside the model's is no input");
    }

    #[cfg(unix)]
    #[test]
    fn links_and_special_files_are_refused_even_with_overwrite() {
        let dir = TempDir::new("output-special");
        let target = dir.path().join("target.txt");
        std::fs::write(&target, "keep").expect("target");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let err = Output::checked(&link, OutputKind::File, true, &[]).expect_err("link");
        assert!(reason(err).contains("symbolic link"));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let err = Output::checked(&fifo, OutputKind::File, true, &[]).expect_err("fifo");
            assert!(reason(err).contains("not a regular file"));
        }
        assert_eq!(std::fs::read_to_string(&target).expect("target"), "keep");
    }

    #[test]
    fn an_existing_output_needs_overwrite_and_its_kind() {
        let dir = TempDir::new("output-exists");
        let file = dir.path().join("out.jsonl");
        std::fs::write(&file, "old").expect("old");
        let err = Output::checked(&file, OutputKind::File, false, &[]).expect_err("exists");
        assert!(reason(err).contains("--overwrite"));
        let err = Output::checked(&file, OutputKind::Folder, true, &[]).expect_err("kind");
        assert_eq!(reason(err), "is a file; expected a folder");
        let err = Output::checked(dir.path(), OutputKind::File, true, &[]).expect_err("kind");
        assert_eq!(reason(err), "is a folder; expected a file");
        let output = Output::checked(&file, OutputKind::File, true, &[]).expect("overwrite");
        output.write(b"new").expect("write");
        assert_eq!(std::fs::read_to_string(&file).expect("new"), "new");
        assert_eq!(listing(dir.path()), vec!["out.jsonl"]);
    }

    #[test]
    fn a_folder_is_replaced_whole_and_an_uncommitted_stage_leaves_the_old_one() {
        let dir = TempDir::new("output-folder");
        let out = dir.path().join("run");
        std::fs::create_dir(&out).expect("old run");
        std::fs::write(out.join("stale.txt"), "old").expect("stale");
        std::fs::write(out.join("delta.safetensors"), "old").expect("old delta");
        let output = Output::checked(&out, OutputKind::Folder, true, &[]).expect("overwrite");
        {
            let staged = output.stage().expect("stage");
            std::fs::write(staged.path().join("delta.safetensors"), "half").expect("half");
            // Dropped: a failed run.
        }
        assert_eq!(listing(dir.path()), vec!["run"]);
        assert_eq!(std::fs::read_to_string(out.join("delta.safetensors")).expect("old"), "old");
        let staged = output.stage().expect("stage");
        std::fs::write(staged.path().join("delta.safetensors"), "new").expect("new");
        staged.commit().expect("commit");
        assert_eq!(listing(dir.path()), vec!["run"]);
        assert_eq!(listing(&out), vec!["delta.safetensors"]);
        assert_eq!(std::fs::read_to_string(out.join("delta.safetensors")).expect("new"), "new");
    }

    #[test]
    fn a_commit_refuses_an_output_that_appeared_while_running() {
        let dir = TempDir::new("output-race");
        let out = dir.path().join("out.jsonl");
        let output = Output::checked(&out, OutputKind::File, false, &[]).expect("fresh");
        let staged = output.stage().expect("stage");
        std::fs::write(staged.path(), "new").expect("new");
        std::fs::write(&out, "someone else's").expect("race");
        assert!(reason(staged.commit().expect_err("appeared")).contains("changed"));
        assert_eq!(std::fs::read_to_string(&out).expect("kept"), "someone else's");
        assert_eq!(listing(dir.path()), vec!["out.jsonl"]);
    }

    #[test]
    fn a_folder_left_aside_by_a_dead_process_is_put_back() {
        let dir = TempDir::new("output-recover");
        let out = dir.path().join("run");
        // No process has pid 0 under /proc.
        let aside = dir.path().join(".run.pet-0-3.old");
        std::fs::create_dir(&aside).expect("aside");
        std::fs::write(aside.join("delta.safetensors"), "old").expect("old");
        std::fs::create_dir(dir.path().join(".run.pet-0-4.new")).expect("half-written");
        let err = Output::checked(&out, OutputKind::Folder, false, &[]).expect_err("put back");
        assert!(reason(err).contains("--overwrite"));
        assert_eq!(listing(dir.path()), vec!["run"]);
        assert_eq!(std::fs::read_to_string(out.join("delta.safetensors")).expect("old"), "old");
    }
}
