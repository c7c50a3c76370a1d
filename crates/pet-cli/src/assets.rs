//! `pet fetch NAME`: real models and data sets brought from package registries into a local
//! cache, checked against the SHA-256 values committed in `datasets/`.
//!
//! # Manifests
//!
//! Each asset has one TOML manifest, `datasets/NAME.toml` ([`Manifest`]): its `name`, `kind`
//! (`"model"` or `"data"`), `description`, `license`, the `[source]` package (`registry` =
//! `"pypi"` or `"npm"`, `package`, `version`, and the `sha256` of the downloaded archive), the
//! `[[files]]` to extract (`from` a path inside the archive, `to` a path in the asset's folder,
//! optional `sha256`; a `from` ending with `/` is a directory prefix that takes every file under
//! it, optionally only those whose name ends with `suffix`), and for data sets the `[split]`
//! recipe ([`SplitRecipe`]) that [`crate::prepare`] follows.
//!
//! # Cache
//!
//! An asset lives in `cache_root()/NAME/VERSION/` ([`cache_root`]: `$PET_HOME`, else
//! `$XDG_CACHE_HOME/pet`, else `~/.cache/pet`). A `.complete` marker in that folder records the
//! manifest's SHA-256 values; [`fetch`] does nothing when the marker matches the manifest and
//! every extracted file is present with its SHA-256.
//!
//! # Fetching
//!
//! The archive is downloaded by the registry's ordinary client, run as a subprocess
//! ([`download_command`]): `python3 -m pip download --no-deps --only-binary=:all: PACKAGE==VERSION
//! -d DIR` for PyPI wheels, `npm pack PACKAGE@VERSION --pack-destination DIR` for npm tarballs.
//! Its SHA-256 is checked, the listed files are extracted (wheels are zip files, npm tarballs
//! gzipped tar files) and checked, data sets are prepared ([`crate::prepare::prepare`]), all into
//! a hidden sibling folder `NAME/.VERSION.partial-PID` that is renamed into place only at the
//! end: an interrupted fetch never leaves a half-written asset folder behind.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use pet_core::digest::sha256_file;
use serde::{Deserialize, Serialize};

/// Name of the marker file that a finished fetch leaves in the asset's folder.
pub const COMPLETE_MARKER: &str = ".complete";

/// What an asset is: pretrained weights or a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssetKind {
    /// A pretrained model folder (`config.json`, `model.safetensors`, tokenizer files).
    Model,
    /// A data set, prepared into train/dev/test files after extraction.
    Data,
}

/// The package registry an asset comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    /// The Python Package Index; the archive is a wheel (a zip file).
    Pypi,
    /// The npm registry; the archive is a gzipped tarball.
    Npm,
}

/// The `[source]` table: which registry package holds the asset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Registry whose ordinary client downloads the package.
    pub registry: Registry,
    /// Package name as the registry spells it (npm scopes included, e.g. `@scope/name`).
    pub package: String,
    /// Exact package version.
    pub version: String,
    /// Lower-case hex SHA-256 of the downloaded archive.
    pub sha256: String,
}

/// One `[[files]]` entry: what to take out of the archive and where to put it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path inside the archive; ending with `/`, a directory prefix meaning every file under it.
    pub from: String,
    /// Path in the asset's folder; ends with `/` exactly when `from` does.
    pub to: String,
    /// Lower-case hex SHA-256 of the extracted file (single files only).
    #[serde(default)]
    pub sha256: Option<String>,
    /// With a directory `from`: keep only the files whose name ends with this.
    #[serde(default)]
    pub suffix: Option<String>,
}

impl FileEntry {
    /// Whether `from` names a directory prefix rather than one file.
    pub fn is_dir(&self) -> bool {
        self.from.ends_with('/')
    }
}

/// The `[split]` table of a data set: the seeded shuffle and the train/dev/test fractions that
/// [`crate::prepare`] applies, with the recipe in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitRecipe {
    /// Seed of the [`pet_core::rng::SplitMix64`] shuffle.
    pub seed: u64,
    /// Fraction of the shuffled examples that go to the training split.
    pub train: f64,
    /// Fraction that goes to the development split.
    pub dev: f64,
    /// Fraction that goes to the test split.
    pub test: f64,
    /// The whole recipe in words: which examples, in which order, how sizes are rounded.
    pub recipe: String,
}

/// A parsed and validated `datasets/NAME.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Asset name, the manifest's file stem and the first folder of its cache path.
    pub name: String,
    /// Model or data set.
    pub kind: AssetKind,
    /// One or two sentences on what the asset is.
    pub description: String,
    /// License of the asset's contents, as the package states it.
    pub license: String,
    /// The registry package that holds it.
    pub source: Source,
    /// What to extract.
    pub files: Vec<FileEntry>,
    /// How a data set is split (data sets only).
    #[serde(default)]
    pub split: Option<SplitRecipe>,
}

impl Manifest {
    /// Parses and validates a manifest's text; `origin` names it in errors.
    ///
    /// # Errors
    /// When the text is not TOML of the manifest's shape, or a field is invalid (unsafe path,
    /// malformed SHA-256, bad split fractions); the message names `origin`.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let manifest: Manifest = toml::from_str(text)
            .with_context(|| format!("parsing manifest {}", origin.display()))?;
        manifest.validate().with_context(|| format!("invalid manifest {}", origin.display()))?;
        Ok(manifest)
    }

    /// Reads, parses and validates the manifest at `path`.
    ///
    /// # Errors
    /// When the file cannot be read, or as [`Manifest::parse`].
    pub fn read(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Checks every field that the fetcher relies on.
    ///
    /// # Errors
    /// Names the first invalid field.
    pub fn validate(&self) -> Result<()> {
        check_name(&self.name)?;
        let source = &self.source;
        ensure!(
            !source.package.is_empty()
                && !source.package.starts_with('-')
                && !source.package.contains(char::is_whitespace),
            "source.package `{}` is not a package name",
            source.package
        );
        ensure!(
            !source.version.is_empty()
                && !source.version.starts_with(['.', '-'])
                && source.version.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c)),
            "source.version `{}` is not a version",
            source.version
        );
        check_sha256("source.sha256", &source.sha256)?;
        ensure!(!self.files.is_empty(), "no [[files]] to extract");
        let mut seen = std::collections::BTreeSet::new();
        for (i, file) in self.files.iter().enumerate() {
            let what = format!("files[{i}] (from `{}`)", file.from);
            ensure!(
                !file.from.is_empty() && !file.from.starts_with('/'),
                "{what}: empty or absolute `from`"
            );
            ensure!(
                file.to.ends_with('/') == file.is_dir(),
                "{what}: `to` = `{}` must end with `/` exactly when `from` does",
                file.to
            );
            let to = file.to.trim_end_matches('/');
            safe_relative(to).with_context(|| format!("{what}: `to` = `{}`", file.to))?;
            ensure!(to != COMPLETE_MARKER, "{what}: `to` may not be the marker {COMPLETE_MARKER}");
            ensure!(seen.insert(to.to_string()), "{what}: `to` = `{}` appears twice", file.to);
            if file.is_dir() {
                ensure!(file.sha256.is_none(), "{what}: a directory entry cannot have a sha256");
            } else {
                ensure!(file.suffix.is_none(), "{what}: `suffix` needs a directory `from`");
            }
            if let Some(sha) = &file.sha256 {
                check_sha256(&format!("{what}: sha256"), sha)?;
            }
        }
        if let Some(split) = &self.split {
            for (field, value) in [("train", split.train), ("dev", split.dev), ("test", split.test)]
            {
                ensure!(
                    (0.0..=1.0).contains(&value),
                    "split.{field} = {value} is not a fraction in [0, 1]"
                );
            }
            let sum = split.train + split.dev + split.test;
            ensure!((sum - 1.0).abs() < 1e-9, "split fractions sum to {sum}, not 1");
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<()> {
    ensure!(
        !name.is_empty()
            && !name.starts_with(['.', '-'])
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)),
        "`{name}` is not an asset name (lower-case letters, digits, `.`, `_`, `-`)"
    );
    Ok(())
}

fn check_sha256(field: &str, value: &str) -> Result<()> {
    ensure!(
        value.len() == 64 && value.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{field} `{value}` is not 64 lower-case hex digits"
    );
    Ok(())
}

/// `path` as a relative path of plain components (no `..`, no root, no `.`), or an error.
fn safe_relative(path: &str) -> Result<PathBuf> {
    ensure!(!path.is_empty(), "empty path");
    let p = Path::new(path);
    ensure!(
        p.components().all(|c| matches!(c, Component::Normal(_))),
        "`{path}` is not a plain relative path"
    );
    Ok(p.to_path_buf())
}

/// The manifest of asset `name`: `manifests_dir/NAME.toml`, whose `name` must be `name`.
///
/// # Errors
/// When `name` is not an asset name, no such manifest exists (the message lists those that do),
/// or it does not parse.
pub fn load(name: &str, manifests_dir: &Path) -> Result<Manifest> {
    check_name(name)?;
    let path = manifests_dir.join(format!("{name}.toml"));
    if !path.is_file() {
        let known = available(manifests_dir).unwrap_or_default();
        bail!(
            "no manifest for asset `{name}` in {} (available: {})",
            manifests_dir.display(),
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        );
    }
    let manifest = Manifest::read(&path)?;
    ensure!(
        manifest.name == name,
        "manifest {} names the asset `{}`, not `{name}`",
        path.display(),
        manifest.name
    );
    Ok(manifest)
}

/// Names of the assets that have a manifest in `manifests_dir`, sorted.
///
/// # Errors
/// When the folder cannot be read.
pub fn available(manifests_dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(manifests_dir)
        .with_context(|| format!("listing manifests in {}", manifests_dir.display()))?
    {
        let path = entry.with_context(|| format!("listing {}", manifests_dir.display()))?.path();
        if path.extension().is_some_and(|e| e == "toml")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.push(stem.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// The cache folder: `$PET_HOME`, else `$XDG_CACHE_HOME/pet`, else `~/.cache/pet`.
///
/// # Errors
/// When none of `PET_HOME`, `XDG_CACHE_HOME` and `HOME` is set.
pub fn cache_root() -> Result<PathBuf> {
    cache_root_from(
        std::env::var_os("PET_HOME"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// [`cache_root`] from given values of `PET_HOME`, `XDG_CACHE_HOME` and `HOME`. Empty values
/// count as unset, and so does a relative `XDG_CACHE_HOME` (as the XDG specification says).
///
/// # Errors
/// When none of them gives a folder.
pub fn cache_root_from(
    pet_home: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(pet_home) {
        return Ok(dir);
    }
    if let Some(dir) = set(xdg_cache_home).filter(|d| d.is_absolute()) {
        return Ok(dir.join("pet"));
    }
    match set(home) {
        Some(home) => Ok(home.join(".cache").join("pet")),
        None => bail!("cannot find a cache folder: set PET_HOME (or XDG_CACHE_HOME or HOME)"),
    }
}

/// The folder of `manifest`'s asset under `cache_root`: `cache_root/NAME/VERSION`.
pub fn asset_dir(cache_root: &Path, manifest: &Manifest) -> PathBuf {
    cache_root.join(&manifest.name).join(&manifest.source.version)
}

/// What the `.complete` marker holds: the manifest values the folder was built from.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Marker {
    name: String,
    version: String,
    archive_sha256: String,
    files: Vec<MarkerFile>,
    outputs: Vec<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct MarkerFile {
    to: String,
    sha256: Option<String>,
}

impl Marker {
    fn of(manifest: &Manifest) -> Self {
        Self {
            name: manifest.name.clone(),
            version: manifest.source.version.clone(),
            archive_sha256: manifest.source.sha256.clone(),
            files: manifest
                .files
                .iter()
                .map(|f| MarkerFile { to: f.to.clone(), sha256: f.sha256.clone() })
                .collect(),
            outputs: crate::prepare::outputs(&manifest.name)
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// Whether `dir` holds `manifest`'s asset, complete: its marker matches the manifest, every
/// `to` is present (files with their SHA-256), and so is every prepared output.
pub fn is_complete(dir: &Path, manifest: &Manifest) -> bool {
    let expected = Marker::of(manifest);
    let found = fs::read(dir.join(COMPLETE_MARKER))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Marker>(&bytes).ok());
    if found.as_ref() != Some(&expected) {
        return false;
    }
    let files_ok = manifest.files.iter().all(|file| {
        let path = dir.join(file.to.trim_end_matches('/'));
        if file.is_dir() {
            return path.is_dir();
        }
        match &file.sha256 {
            Some(sha) => sha256_file(&path).is_ok_and(|actual| &actual == sha),
            None => path.is_file(),
        }
    });
    files_ok && expected.outputs.iter().all(|output| dir.join(output).is_file())
}

/// Brings asset `name` (manifest `manifests_dir/NAME.toml`) into [`cache_root`] and returns its
/// folder, `cache_root()/NAME/VERSION/`; does nothing when it is already there and complete.
///
/// # Errors
/// When the manifest is missing or invalid, the registry client fails or is missing, a SHA-256
/// differs, the archive lacks a listed file, or preparation fails; every message names the
/// asset, and the file or command at fault.
pub fn fetch(name: &str, manifests_dir: &Path) -> Result<PathBuf> {
    let manifest = load(name, manifests_dir)?;
    let root = cache_root()?;
    let dest = asset_dir(&root, &manifest);
    if is_complete(&dest, &manifest) {
        return Ok(dest);
    }
    let parent = dest.parent().unwrap_or(&root).to_path_buf();
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let downloads = Scratch::create(parent.join(format!(
        ".{}.download-{}",
        manifest.source.version,
        std::process::id()
    )))?;
    let archive = download(&manifest.source, downloads.path())
        .with_context(|| format!("fetching asset `{name}`"))?;
    install(&manifest, &archive, &root)
}

/// Installs `manifest`'s asset from an already downloaded `archive` into `cache_root`: checks
/// the archive's SHA-256, extracts and checks the files, prepares a data set, writes the marker
/// and renames the finished folder into place. Returns the asset's folder.
///
/// # Errors
/// As [`fetch`], less the download.
pub fn install(manifest: &Manifest, archive: &Path, cache_root: &Path) -> Result<PathBuf> {
    let name = &manifest.name;
    let dest = asset_dir(cache_root, manifest);
    if is_complete(&dest, manifest) {
        return Ok(dest);
    }
    let parent = dest.parent().unwrap_or(cache_root).to_path_buf();
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    verify_sha256(archive, &manifest.source.sha256)
        .with_context(|| format!("asset `{name}`: checking the downloaded archive"))?;
    let staging = Scratch::create(parent.join(format!(
        ".{}.partial-{}",
        manifest.source.version,
        std::process::id()
    )))?;
    extract(archive, &manifest.files, staging.path())
        .with_context(|| format!("asset `{name}`: extracting {}", archive.display()))?;
    crate::prepare::prepare(manifest, staging.path())
        .with_context(|| format!("asset `{name}`: preparing the data set"))?;
    let marker = serde_json::to_vec_pretty(&Marker::of(manifest))?;
    let marker_path = staging.path().join(COMPLETE_MARKER);
    fs::write(&marker_path, marker)
        .with_context(|| format!("writing {}", marker_path.display()))?;
    if dest.exists() {
        fs::remove_dir_all(&dest)
            .with_context(|| format!("asset `{name}`: removing the stale {}", dest.display()))?;
    }
    fs::rename(staging.path(), &dest).with_context(|| {
        format!("asset `{name}`: moving {} to {}", staging.path().display(), dest.display())
    })?;
    staging.keep();
    Ok(dest)
}

/// The registry client command that downloads `source`'s archive into `dest`.
pub fn download_command(source: &Source, dest: &Path) -> Command {
    match source.registry {
        Registry::Pypi => {
            let mut cmd = Command::new("python3");
            cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
                .arg(format!("{}=={}", source.package, source.version))
                .arg("-d")
                .arg(dest);
            cmd
        }
        Registry::Npm => {
            let mut cmd = Command::new("npm");
            cmd.arg("pack")
                .arg(format!("{}@{}", source.package, source.version))
                .arg("--pack-destination")
                .arg(dest)
                .current_dir(dest);
            cmd
        }
    }
}

fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs [`download_command`] and returns the one archive it left in the empty folder `dest`.
///
/// # Errors
/// When the client cannot be started or fails (the message quotes the command and the end of
/// its output), or `dest` then holds anything but one file.
pub fn download(source: &Source, dest: &Path) -> Result<PathBuf> {
    let mut cmd = download_command(source, dest);
    let shown = show(&cmd);
    let spinner = indicatif::ProgressBar::new_spinner().with_message(format!("running `{shown}`"));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let output = cmd.output();
    spinner.finish_and_clear();
    let output = output.with_context(|| {
        format!("cannot run `{shown}`: is `{}` installed?", cmd.get_program().to_string_lossy())
    })?;
    if !output.status.success() {
        let mut log = String::from_utf8_lossy(&output.stderr).into_owned();
        log.push_str(&String::from_utf8_lossy(&output.stdout));
        let tail: String = {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        bail!("`{shown}` failed ({}):\n{tail}", output.status);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(dest).with_context(|| format!("listing {}", dest.display()))? {
        let path = entry.with_context(|| format!("listing {}", dest.display()))?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    match files.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "`{shown}` left {} files in {}, expected one archive: {:?}",
            files.len(),
            dest.display(),
            files.iter().filter_map(|p| p.file_name()).collect::<Vec<_>>()
        ),
    }
}

/// Checks that the file at `path` has SHA-256 `expected`.
///
/// # Errors
/// When it cannot be read, or its digest differs (the message names the file and both values).
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path).with_context(|| format!("hashing {}", path.display()))?;
    ensure!(
        actual == expected,
        "sha256 mismatch for {}: expected {expected}, got {actual}",
        path.display()
    );
    Ok(())
}

/// Extracts `files` from `archive` (a zip or wheel by the extension `.zip`/`.whl`, a gzipped
/// tarball by `.tgz`/`.tar.gz`) into `dest`, and checks every file that has a SHA-256. Only
/// regular files are extracted; archive members are matched by their full path (a leading `./`
/// ignored). Returns the extracted paths, relative to `dest`.
///
/// # Errors
/// When the archive cannot be read, an entry matches no member, a member would land outside
/// `dest`, a file cannot be written, or a SHA-256 differs.
pub fn extract(archive: &Path, files: &[FileEntry], dest: &Path) -> Result<Vec<PathBuf>> {
    let file_name = archive.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let open = || {
        File::open(archive)
            .map(BufReader::new)
            .with_context(|| format!("opening {}", archive.display()))
    };
    let mut plan = Plan { files, matched: vec![0; files.len()], written: Vec::new() };
    if file_name.ends_with(".whl") || file_name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(open()?)
            .with_context(|| format!("reading zip {}", archive.display()))?;
        for i in 0..zip.len() {
            let mut member = zip
                .by_index(i)
                .with_context(|| format!("reading entry {i} of {}", archive.display()))?;
            if !member.is_file() {
                continue;
            }
            let name = member
                .name()
                .with_context(|| format!("reading entry {i} of {}", archive.display()))?
                .into_owned();
            plan.take(&name, &mut member, dest)
                .with_context(|| format!("extracting `{name}` from {}", archive.display()))?;
        }
    } else if file_name.ends_with(".tgz") || file_name.ends_with(".tar.gz") {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(open()?));
        let entries =
            tar.entries().with_context(|| format!("reading tarball {}", archive.display()))?;
        for member in entries {
            let mut member =
                member.with_context(|| format!("reading tarball {}", archive.display()))?;
            if !member.header().entry_type().is_file() {
                continue;
            }
            let name = member
                .path()
                .with_context(|| format!("reading tarball {}", archive.display()))?
                .to_string_lossy()
                .into_owned();
            plan.take(&name, &mut member, dest)
                .with_context(|| format!("extracting `{name}` from {}", archive.display()))?;
        }
    } else {
        bail!("{}: unknown archive type (expected .whl, .zip, .tgz or .tar.gz)", archive.display());
    }
    for (file, &count) in files.iter().zip(&plan.matched) {
        ensure!(
            count > 0,
            "{} has no {} `{}`",
            archive.display(),
            if file.is_dir() { "files under" } else { "file" },
            file.from
        );
        if let Some(sha) = &file.sha256 {
            verify_sha256(&dest.join(&file.to), sha)?;
        }
    }
    Ok(plan.written)
}

/// Where each archive member goes.
struct Plan<'a> {
    files: &'a [FileEntry],
    matched: Vec<usize>,
    written: Vec<PathBuf>,
}

impl Plan<'_> {
    /// The destination of member `name` relative to the asset folder, and its entry's index.
    fn destination(&self, name: &str) -> Option<(usize, String)> {
        let name = name.strip_prefix("./").unwrap_or(name);
        self.files.iter().enumerate().find_map(|(i, file)| {
            if file.is_dir() {
                let rest = name.strip_prefix(file.from.as_str())?;
                let keep = !rest.is_empty()
                    && file.suffix.as_deref().is_none_or(|suffix| rest.ends_with(suffix));
                keep.then(|| (i, format!("{}{rest}", file.to)))
            } else {
                (name == file.from).then(|| (i, file.to.clone()))
            }
        })
    }

    /// Copies member `name` from `reader` into `dest` when the plan wants it.
    fn take(&mut self, name: &str, reader: &mut impl Read, dest: &Path) -> Result<()> {
        let Some((index, to)) = self.destination(name) else {
            return Ok(());
        };
        let relative =
            safe_relative(&to).context("the member would land outside the asset folder")?;
        let path = dest.join(&relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut out =
            File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        io::copy(reader, &mut out).with_context(|| format!("writing {}", path.display()))?;
        self.matched[index] += 1;
        self.written.push(relative);
        Ok(())
    }
}

/// A folder removed when dropped, unless kept.
struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    /// Creates `path` afresh (removing what a killed earlier run of this process id left there).
    fn create(path: PathBuf) -> Result<Self> {
        if path.exists() {
            fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path, keep: false })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    use pet_core::testing::TempDir as TestDir;

    fn datasets_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
    }

    fn sha(bytes: &[u8]) -> String {
        pet_core::digest::sha256_hex(bytes)
    }

    fn entry(from: &str, to: &str, sha256: Option<String>) -> FileEntry {
        FileEntry { from: from.into(), to: to.into(), sha256, suffix: None }
    }

    const MINIMAL: &str = r#"
name = "demo"
kind = "model"
description = "d"
license = "MIT"

[source]
registry = "pypi"
package = "demo-pkg"
version = "1.0"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[[files]]
from = "pkg/model/config.json"
to = "config.json"
"#;

    fn parse_err(text: &str) -> String {
        let err = Manifest::parse(text, Path::new("datasets/demo.toml")).expect_err("must fail");
        format!("{err:#}")
    }

    #[test]
    fn committed_manifests_parse_and_record_their_recipes() {
        let dir = datasets_dir();
        assert_eq!(available(&dir).expect("list"), ["all-minilm-l6-v2", "spamassassin", "wnut16"]);
        let model = load("all-minilm-l6-v2", &dir).expect("model manifest");
        assert_eq!(model.kind, AssetKind::Model);
        assert_eq!(model.source.registry, Registry::Pypi);
        assert!(model.files.iter().any(|f| f.to == "model.safetensors"
            && f.sha256.as_deref()
                == Some("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db")));
        let spam = load("spamassassin", &dir).expect("spam manifest");
        assert_eq!(spam.source.registry, Registry::Npm);
        assert_eq!(
            spam.split.as_ref().map(|s| (s.seed, s.train, s.dev, s.test)),
            Some((13, 0.8, 0.1, 0.1))
        );
        let wnut = load("wnut16", &dir).expect("wnut manifest");
        assert_eq!(wnut.split.as_ref().map(|s| s.seed), Some(16));
        assert!(wnut.files.iter().any(|f| f.to == "ner.txt"
            && f.sha256.as_deref()
                == Some("8573ac2f0b9bd533488332954a3db9958da4789bc4f8c26de10bb346e96e5390")));
    }

    #[test]
    fn minimal_manifest_parses() {
        let m = Manifest::parse(MINIMAL, Path::new("demo.toml")).expect("parse");
        assert_eq!(m.name, "demo");
        assert_eq!(m.source.version, "1.0");
        assert_eq!(m.files, [entry("pkg/model/config.json", "config.json", None)]);
        assert!(m.split.is_none());
    }

    #[test]
    fn manifest_errors_name_the_file_and_the_field() {
        let missing = parse_err(&MINIMAL.replace("license = \"MIT\"\n", ""));
        assert!(missing.contains("datasets/demo.toml") && missing.contains("license"), "{missing}");
        let unknown =
            parse_err(&MINIMAL.replace("license = \"MIT\"", "license = \"MIT\"\nlicence = \"x\""));
        assert!(unknown.contains("datasets/demo.toml") && unknown.contains("licence"), "{unknown}");
        let bad_sha = parse_err(&MINIMAL.replace("sha256 = \"0000", "sha256 = \"ABCD"));
        assert!(
            bad_sha.contains("datasets/demo.toml") && bad_sha.contains("source.sha256"),
            "{bad_sha}"
        );
        let escape = parse_err(&MINIMAL.replace("to = \"config.json\"", "to = \"../config.json\""));
        assert!(escape.contains("not a plain relative path"), "{escape}");
        let dir = parse_err(
            &MINIMAL.replace("from = \"pkg/model/config.json\"", "from = \"pkg/model/\""),
        );
        assert!(dir.contains("must end with `/`"), "{dir}");
        let option =
            parse_err(&MINIMAL.replace("package = \"demo-pkg\"", "package = \"--index-url\""));
        assert!(option.contains("not a package name"), "{option}");
        let split = parse_err(&format!(
            "{MINIMAL}\n[split]\nseed = 1\ntrain = 0.8\ndev = 0.1\ntest = 0.2\nrecipe = \"r\"\n"
        ));
        assert!(split.contains("sum to"), "{split}");
    }

    #[test]
    fn load_refuses_unknown_and_mismatched_names() {
        let dir = TestDir::new("load");
        fs::write(dir.0.join("demo.toml"), MINIMAL.replace("name = \"demo\"", "name = \"other\""))
            .expect("write");
        let unknown = format!("{:#}", load("nope", &dir.0).expect_err("unknown"));
        assert!(unknown.contains("`nope`") && unknown.contains("available: demo"), "{unknown}");
        let mismatch = format!("{:#}", load("demo", &dir.0).expect_err("mismatch"));
        assert!(mismatch.contains("`other`"), "{mismatch}");
        assert!(load("../demo", &dir.0).is_err());
    }

    #[test]
    fn cache_root_prefers_pet_home_then_xdg_then_home() {
        let s = |v: &str| Some(OsString::from(v));
        let root = |a, b, c| cache_root_from(a, b, c).expect("root");
        assert_eq!(root(s("/p"), s("/x"), s("/h")), PathBuf::from("/p"));
        assert_eq!(root(s(""), s("/x"), s("/h")), PathBuf::from("/x/pet"));
        assert_eq!(root(None, s("relative"), s("/h")), PathBuf::from("/h/.cache/pet"));
        assert_eq!(root(None, None, s("/h")), PathBuf::from("/h/.cache/pet"));
        assert!(cache_root_from(None, None, None).is_err());
    }

    #[test]
    fn download_commands_use_the_registry_clients() {
        let mut source = Source {
            registry: Registry::Pypi,
            package: "demo-pkg".into(),
            version: "1.0".into(),
            sha256: String::new(),
        };
        let dest = Path::new("/tmp/d");
        assert_eq!(
            show(&download_command(&source, dest)),
            "python3 -m pip download --no-deps --only-binary=:all: demo-pkg==1.0 -d /tmp/d"
        );
        source.registry = Registry::Npm;
        source.package = "@scope/demo".into();
        assert_eq!(
            show(&download_command(&source, dest)),
            "npm pack @scope/demo@1.0 --pack-destination /tmp/d"
        );
    }

    fn build_zip(path: &Path, members: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(File::create(path).expect("create zip"));
        for (name, bytes) in members {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).expect("start");
            zip.write_all(bytes).expect("write member");
        }
        zip.finish().expect("finish zip");
    }

    fn build_tgz(path: &Path, members: &[(&str, &[u8])]) {
        let gz = flate2::write::GzEncoder::new(
            File::create(path).expect("create tgz"),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        for (name, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, *bytes).expect("append");
        }
        tar.into_inner().expect("tar").finish().expect("gzip");
    }

    const MEMBERS: [(&str, &[u8]); 5] = [
        ("pkg/model/config.json", b"{\"hidden_size\": 4}"),
        ("pkg/data/a.txt", b"alpha"),
        ("pkg/data/a.json", b"{}"),
        ("pkg/data/sub/b.txt", b"beta"),
        ("pkg/other.txt", b"no"),
    ];

    fn plan_files() -> Vec<FileEntry> {
        vec![
            entry("pkg/model/config.json", "config.json", Some(sha(MEMBERS[0].1))),
            FileEntry {
                from: "pkg/data/".into(),
                to: "raw/".into(),
                sha256: None,
                suffix: Some(".txt".into()),
            },
        ]
    }

    fn check_extracted(dest: &Path, written: Vec<PathBuf>) {
        let mut written: Vec<String> =
            written.iter().map(|p| p.to_string_lossy().replace('\\', "/")).collect();
        written.sort();
        assert_eq!(written, ["config.json", "raw/a.txt", "raw/sub/b.txt"]);
        assert_eq!(fs::read(dest.join("config.json")).expect("read"), MEMBERS[0].1);
        assert_eq!(fs::read(dest.join("raw/sub/b.txt")).expect("read"), b"beta");
        assert!(!dest.join("raw/a.json").exists() && !dest.join("other.txt").exists());
    }

    #[test]
    fn extracts_files_and_directory_prefixes_from_a_zip() {
        let dir = TestDir::new("zip");
        let archive = dir.0.join("demo-1.0-py3-none-any.whl");
        build_zip(&archive, &MEMBERS);
        let dest = dir.0.join("out");
        let written = extract(&archive, &plan_files(), &dest).expect("extract");
        check_extracted(&dest, written);
    }

    #[test]
    fn extracts_files_and_directory_prefixes_from_a_tgz() {
        let dir = TestDir::new("tgz");
        let archive = dir.0.join("demo-1.0.tgz");
        build_tgz(&archive, &MEMBERS);
        let dest = dir.0.join("out");
        let written = extract(&archive, &plan_files(), &dest).expect("extract");
        check_extracted(&dest, written);
    }

    #[test]
    fn extracted_sha256_mismatch_names_the_file() {
        let dir = TestDir::new("sha");
        let archive = dir.0.join("demo.zip");
        build_zip(&archive, &MEMBERS);
        let files = [entry("pkg/model/config.json", "config.json", Some("ab".repeat(32)))];
        let err =
            format!("{:#}", extract(&archive, &files, &dir.0.join("out")).expect_err("mismatch"));
        assert!(err.contains("sha256 mismatch") && err.contains("config.json"), "{err}");
        assert!(err.contains(&"ab".repeat(32)) && err.contains(&sha(MEMBERS[0].1)), "{err}");
    }

    #[test]
    fn missing_member_and_escaping_member_are_errors() {
        let dir = TestDir::new("missing");
        let archive = dir.0.join("demo.zip");
        build_zip(&archive, &[("pkg/data/../../evil.txt", b"x"), ("pkg/a", b"a")]);
        let missing = [entry("pkg/absent.json", "absent.json", None)];
        let err =
            format!("{:#}", extract(&archive, &missing, &dir.0.join("out")).expect_err("missing"));
        assert!(err.contains("pkg/absent.json") && err.contains("demo.zip"), "{err}");
        let escaping =
            [FileEntry { from: "pkg/data/".into(), to: "raw/".into(), sha256: None, suffix: None }];
        let err =
            format!("{:#}", extract(&archive, &escaping, &dir.0.join("out")).expect_err("escape"));
        assert!(err.contains("outside the asset folder"), "{err}");
        assert!(!dir.0.join("evil.txt").exists());
    }

    #[test]
    fn install_checks_renames_into_place_and_is_then_a_no_op() {
        let dir = TestDir::new("install");
        let archive = dir.0.join("demo-1.0-py3-none-any.whl");
        build_zip(&archive, &MEMBERS);
        let bytes = fs::read(&archive).expect("read archive");
        let mut manifest = Manifest::parse(MINIMAL, Path::new("demo.toml")).expect("parse");
        manifest.files = plan_files();
        let root = dir.0.join("cache");

        manifest.source.sha256 = "cd".repeat(32);
        let err = format!("{:#}", install(&manifest, &archive, &root).expect_err("bad archive"));
        assert!(err.contains("asset `demo`") && err.contains("demo-1.0-py3-none-any.whl"), "{err}");
        assert!(!root.join("demo/1.0").exists());
        assert_eq!(fs::read_dir(root.join("demo")).expect("list").count(), 0, "no leftovers");

        manifest.source.sha256 = sha(&bytes);
        let dest = install(&manifest, &archive, &root).expect("install");
        assert_eq!(dest, root.join("demo").join("1.0"));
        assert!(is_complete(&dest, &manifest));
        assert_eq!(fs::read_dir(root.join("demo")).expect("list").count(), 1, "no leftovers");

        // A complete folder is left alone, even if the archive is gone.
        let marker =
            fs::metadata(dest.join(COMPLETE_MARKER)).and_then(|m| m.modified()).expect("mtime");
        assert_eq!(install(&manifest, &dir.0.join("absent.whl"), &root).expect("no-op"), dest);
        assert_eq!(
            fs::metadata(dest.join(COMPLETE_MARKER)).and_then(|m| m.modified()).expect("mtime"),
            marker
        );

        // A tampered file makes the folder incomplete, and a new install replaces it.
        fs::write(dest.join("config.json"), b"tampered").expect("tamper");
        assert!(!is_complete(&dest, &manifest));
        install(&manifest, &archive, &root).expect("reinstall");
        assert_eq!(fs::read(dest.join("config.json")).expect("read"), MEMBERS[0].1);
    }
}
