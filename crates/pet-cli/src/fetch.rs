//! `pet fetch NAME` and asset names wherever a folder or file is expected: the manifests of
//! `datasets/` (or pet-assets' built-in catalogue), fetched into the cache by pet-assets, data
//! sets prepared by pet-nlp's recipes.

use std::path::{Path, PathBuf};

use anyhow::Result;
use pet_assets::Catalogue;
use pet_nlp::data::recipes::PREPARERS;

/// Where `datasets/` manifests are read from: `$PET_DATASETS`, or the source tree's.
pub fn manifests_dir() -> PathBuf {
    std::env::var_os("PET_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets"))
}

/// The manifests `pet fetch` reads: the folder [`manifests_dir`] when `$PET_DATASETS` is set or
/// the source tree's `datasets/` exists, else the built-in catalogue (a `pet` binary run away
/// from its checkout).
pub fn catalogue() -> Catalogue {
    let dir = manifests_dir();
    if std::env::var_os("PET_DATASETS").is_some() || dir.is_dir() {
        Catalogue::Folder(dir)
    } else {
        Catalogue::Builtin
    }
}

/// Brings asset `name` of [`catalogue`] into the cache (preparing a data set with pet-nlp's
/// recipes) and returns its folder.
///
/// # Errors
/// When the manifest is missing or invalid, or the download, a checksum, the extraction or
/// the preparation fails (the message names the asset and the file or command at fault).
pub fn fetch(name: &str) -> Result<PathBuf> {
    Ok(pet_assets::fetch(name, &catalogue(), PREPARERS)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_reads_the_datasets_folder_whose_manifests_are_built_in() {
        let catalogue = catalogue();
        assert_eq!(catalogue, Catalogue::Folder(manifests_dir()));
        if std::env::var_os("PET_DATASETS").is_none() {
            for name in Catalogue::Builtin.names().expect("built-in names") {
                let builtin = Catalogue::Builtin.load(&name).expect("built-in manifest");
                assert_eq!(catalogue.load(&name).expect("manifest of datasets/"), builtin);
            }
        }
    }
}
