//! The asset cache: where assets live, and whether a cached one is complete.
//!
//! An asset lives in `cache_root()/NAME/VERSION/` ([`cache_root`]: `$PET_HOME`, else
//! `$XDG_CACHE_HOME/pet`, else `~/.cache/pet`). A `.complete` marker in that folder
//! ([`COMPLETE_MARKER`]) records the manifest values it was built from (name, version, the
//! archive's and the files' SHA-256, the prepared outputs); [`is_complete`] holds when the marker
//! matches the manifest and every extracted file is present with its SHA-256.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checksum::sha256_file;
use crate::error::{AssetError, Result};
use crate::manifest::{COMPLETE_MARKER, Manifest};
use crate::prepare::{Preparer, preparer_for};

/// The cache folder: `$PET_HOME`, else `$XDG_CACHE_HOME/pet`, else `~/.cache/pet`.
///
/// # Errors
/// [`AssetError::NoCacheFolder`] when none of `PET_HOME`, `XDG_CACHE_HOME` and `HOME` is set.
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
/// [`AssetError::NoCacheFolder`] when none of them gives a folder.
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
    set(home).map(|home| home.join(".cache").join("pet")).ok_or(AssetError::NoCacheFolder)
}

/// The folder of `manifest`'s asset under `cache_root`: `cache_root/NAME/VERSION`.
pub fn asset_dir(cache_root: &Path, manifest: &Manifest) -> PathBuf {
    cache_root.join(&manifest.name).join(&manifest.source.version)
}

/// What the `.complete` marker holds: the manifest values the folder was built from.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Marker {
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
    /// The marker of `manifest`'s asset, whose preparation writes `outputs`.
    pub(crate) fn of(manifest: &Manifest, outputs: &[&str]) -> Self {
        Self {
            name: manifest.name.clone(),
            version: manifest.source.version.clone(),
            archive_sha256: manifest.source.sha256.clone(),
            files: manifest
                .files
                .iter()
                .map(|f| MarkerFile { to: f.to.clone(), sha256: f.sha256.clone() })
                .collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Writes the marker into `dir`.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(COMPLETE_MARKER);
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| AssetError::io(&path, std::io::Error::other(e)))?;
        std::fs::write(&path, bytes).map_err(|e| AssetError::io(&path, e))
    }
}

/// The files `manifest`'s preparation writes (none for a model), from its registered preparer.
///
/// # Errors
/// [`AssetError::UnknownRecipe`] when its recipe is not among `preparers`.
pub fn prepared_outputs(
    manifest: &Manifest,
    preparers: &[&dyn Preparer],
) -> Result<&'static [&'static str]> {
    Ok(preparer_for(manifest, preparers)?.map_or(&[], |preparer| preparer.outputs()))
}

/// Whether `dir` holds `manifest`'s asset, complete: its marker matches the manifest, every
/// `to` is present (files with their SHA-256), and so is every output of its preparation.
///
/// # Errors
/// [`AssetError::UnknownRecipe`] when the manifest's recipe is not among `preparers`.
pub fn is_complete(dir: &Path, manifest: &Manifest, preparers: &[&dyn Preparer]) -> Result<bool> {
    let outputs = prepared_outputs(manifest, preparers)?;
    let found = std::fs::read(dir.join(COMPLETE_MARKER))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Marker>(&bytes).ok());
    if found.as_ref() != Some(&Marker::of(manifest, outputs)) {
        return Ok(false);
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
    Ok(files_ok && outputs.iter().all(|output| dir.join(output).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::tests::{CopyConfig, data_manifest};
    use crate::scratch::test_dir;

    #[test]
    fn cache_root_prefers_pet_home_then_xdg_then_home() {
        let s = |v: &str| Some(OsString::from(v));
        let root = |a, b, c| cache_root_from(a, b, c).expect("root");
        assert_eq!(root(s("/p"), s("/x"), s("/h")), PathBuf::from("/p"));
        assert_eq!(root(s(""), s("/x"), s("/h")), PathBuf::from("/x/pet"));
        assert_eq!(root(None, s("relative"), s("/h")), PathBuf::from("/h/.cache/pet"));
        assert_eq!(root(None, None, s("/h")), PathBuf::from("/h/.cache/pet"));
        assert!(matches!(cache_root_from(None, None, None), Err(AssetError::NoCacheFolder)));
    }

    #[test]
    fn marker_keeps_the_committed_layout() {
        let manifest = data_manifest("copy-config");
        let marker = serde_json::to_value(Marker::of(&manifest, &["copy.json"])).expect("json");
        assert_eq!(
            marker,
            serde_json::json!({
                "name": "demo",
                "version": "1.0",
                "archive_sha256": "0".repeat(64),
                "files": [{"to": "config.json", "sha256": null}],
                "outputs": ["copy.json"],
            })
        );
    }

    #[test]
    fn completeness_needs_marker_files_and_outputs() {
        let dir = test_dir("cache-complete");
        let manifest = data_manifest("copy-config");
        let preparers: [&dyn Preparer; 1] = [&CopyConfig::Copies];
        assert!(!is_complete(dir.path(), &manifest, &preparers).expect("no marker"));
        std::fs::write(dir.path().join("config.json"), b"{}").expect("write");
        Marker::of(&manifest, &["copy.json"]).write(dir.path()).expect("marker");
        assert!(!is_complete(dir.path(), &manifest, &preparers).expect("no output"));
        std::fs::write(dir.path().join("copy.json"), b"{}").expect("write");
        assert!(is_complete(dir.path(), &manifest, &preparers).expect("complete"));
        let other = data_manifest("nobody");
        assert!(matches!(
            is_complete(dir.path(), &other, &preparers),
            Err(AssetError::UnknownRecipe { .. })
        ));
    }
}
