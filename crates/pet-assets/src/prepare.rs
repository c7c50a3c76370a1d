//! The seam between the fetcher and the domain crates: a [`Preparer`] turns an extracted data
//! set into the files a trainer reads, following the manifest's [`SplitRecipe`].
//!
//! pet-assets knows no data set. A manifest's `split.prepare` names a recipe id; the caller of
//! [`crate::fetch()`] passes the preparers it knows (pet-nlp's `data::recipes::PREPARERS`), and
//! the fetcher runs the one whose [`Preparer::id`] is that id. A manifest naming a recipe that
//! nobody registered is an [`AssetError::UnknownRecipe`], found before anything is downloaded.

use std::path::Path;

use crate::error::{AssetError, PrepareError, Result};
use crate::manifest::{Manifest, SplitRecipe};

/// One prepared file and how many rows (examples or sentences) it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// File name, relative to the asset folder.
    pub file: &'static str,
    /// Examples or sentences written.
    pub rows: usize,
}

/// A data set's preparation: reads the extracted files of an asset folder and writes its splits
/// beside them.
pub trait Preparer: Sync {
    /// The id a manifest's `split.prepare` names.
    fn id(&self) -> &'static str;

    /// The files [`Preparer::prepare`] writes, relative to the asset folder; a cached asset is
    /// complete only when all of them are there.
    fn outputs(&self) -> &'static [&'static str];

    /// Writes the splits of the data set extracted in `dir`, following `recipe`.
    ///
    /// # Errors
    /// The domain crate's error when a raw file is missing or malformed or a split cannot be
    /// written; it should name the file (and line).
    fn prepare(&self, dir: &Path, recipe: &SplitRecipe) -> Result<Vec<Prepared>, PrepareError>;
}

/// The preparer of `manifest`'s data set among `preparers`: `None` for an asset without a
/// `[split]` table (a model).
///
/// # Errors
/// [`AssetError::UnknownRecipe`] when no preparer has the id its `split.prepare` names.
pub fn preparer_for<'a>(
    manifest: &Manifest,
    preparers: &[&'a dyn Preparer],
) -> Result<Option<&'a dyn Preparer>> {
    let Some(split) = &manifest.split else {
        return Ok(None);
    };
    match preparers.iter().find(|p| p.id() == split.prepare) {
        Some(preparer) => Ok(Some(*preparer)),
        None => {
            let ids: Vec<&str> = preparers.iter().map(|p| p.id()).collect();
            Err(AssetError::UnknownRecipe {
                asset: manifest.name.clone(),
                recipe: split.prepare.clone(),
                registered: if ids.is_empty() { "none".into() } else { ids.join(", ") },
            })
        }
    }
}

/// Prepares `manifest`'s data set inside `dir` with its registered preparer and checks that
/// every declared output was written; a model is left as extracted.
///
/// # Errors
/// As [`preparer_for`]; [`AssetError::Prepare`] wrapping the preparer's error;
/// [`AssetError::MissingOutput`] when a declared output is absent afterwards.
pub fn prepare(
    manifest: &Manifest,
    dir: &Path,
    preparers: &[&dyn Preparer],
) -> Result<Vec<Prepared>> {
    let (Some(preparer), Some(split)) = (preparer_for(manifest, preparers)?, &manifest.split)
    else {
        return Ok(Vec::new());
    };
    let report = preparer.prepare(dir, split).map_err(|source| AssetError::Prepare {
        asset: manifest.name.clone(),
        recipe: split.prepare.clone(),
        source,
    })?;
    if let Some(file) = preparer.outputs().iter().find(|file| !dir.join(file).is_file()) {
        return Err(AssetError::MissingOutput {
            asset: manifest.name.clone(),
            recipe: split.prepare.clone(),
            file: file.to_string(),
        });
    }
    Ok(report)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifest::tests::{MINIMAL, split_table};
    use crate::scratch::test_dir;

    /// The test recipe `copy-config`: copies `config.json` to its output `copy.json`, fails, or
    /// returns without writing it.
    pub(crate) enum CopyConfig {
        Copies,
        Fails,
        Forgets,
    }

    impl Preparer for CopyConfig {
        fn id(&self) -> &'static str {
            "copy-config"
        }

        fn outputs(&self) -> &'static [&'static str] {
            &["copy.json"]
        }

        fn prepare(&self, dir: &Path, recipe: &SplitRecipe) -> Result<Vec<Prepared>, PrepareError> {
            match self {
                Self::Copies => {
                    std::fs::copy(dir.join("config.json"), dir.join("copy.json"))?;
                    Ok(vec![Prepared { file: "copy.json", rows: 1 }])
                }
                Self::Fails => Err(format!("refusing seed {}", recipe.seed).into()),
                Self::Forgets => Ok(Vec::new()),
            }
        }
    }

    /// [`MINIMAL`] as a data set whose `[split]` names `prepare`.
    pub(crate) fn data_manifest(prepare: &str) -> Manifest {
        let text = format!("{}{}", MINIMAL.replace("\"model\"", "\"data\""), split_table(prepare));
        Manifest::parse(&text, Path::new("demo.toml")).expect("parse")
    }

    #[test]
    fn unknown_recipe_is_an_error_naming_it_and_the_registered_ones() {
        let manifest = data_manifest("nobody");
        let err = preparer_for(&manifest, &[&CopyConfig::Copies])
            .map(|found| found.map(Preparer::id))
            .expect_err("unknown");
        assert!(
            matches!(&err, AssetError::UnknownRecipe { recipe, .. } if recipe == "nobody"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("asset `demo`")
                && message.contains("`nobody`")
                && message.contains("registered: copy-config"),
            "{message}"
        );
        let none = preparer_for(&manifest, &[]).map(|found| found.map(Preparer::id));
        let none = none.expect_err("nothing registered").to_string();
        assert!(none.contains("registered: none"), "{none}");
    }

    #[test]
    fn models_need_no_preparer_and_data_sets_run_theirs() {
        let model = Manifest::parse(MINIMAL, Path::new("demo.toml")).expect("parse");
        assert!(preparer_for(&model, &[]).expect("model").is_none());
        assert!(prepare(&model, Path::new("/nonexistent"), &[]).expect("nothing").is_empty());

        let dir = test_dir("prepare-runs");
        std::fs::write(dir.path().join("config.json"), b"{}").expect("write");
        let manifest = data_manifest("copy-config");
        let report = prepare(&manifest, dir.path(), &[&CopyConfig::Copies]).expect("run");
        assert_eq!(report, [Prepared { file: "copy.json", rows: 1 }]);
        assert_eq!(std::fs::read(dir.path().join("copy.json")).expect("read"), b"{}");
    }

    #[test]
    fn preparer_errors_name_the_asset_and_the_recipe() {
        let dir = test_dir("prepare-fails");
        let manifest = data_manifest("copy-config");
        let err = prepare(&manifest, dir.path(), &[&CopyConfig::Fails]).expect_err("fails");
        assert!(matches!(err, AssetError::Prepare { .. }), "{err:?}");
        assert!(
            err.to_string().contains("asset `demo`") && err.to_string().contains("copy-config")
        );
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("refusing seed 1"));
    }

    #[test]
    fn a_declared_output_left_unwritten_is_an_error() {
        let dir = test_dir("prepare-forgetful");
        let manifest = data_manifest("copy-config");
        let err = prepare(&manifest, dir.path(), &[&CopyConfig::Forgets]).expect_err("gap");
        assert!(
            matches!(&err, AssetError::MissingOutput { file, .. } if file == "copy.json"),
            "{err:?}"
        );
    }
}
