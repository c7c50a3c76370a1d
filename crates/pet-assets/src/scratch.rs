//! A folder that removes itself when dropped unless kept: the staging and download folders of a
//! fetch, so that a failed fetch leaves nothing behind.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{AssetError, Result};

/// A folder removed when dropped, unless [`Scratch::keep`] was called.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    /// Creates `path` afresh, removing what a killed earlier run (with the same process id) left
    /// there.
    ///
    /// # Errors
    /// [`AssetError::Io`] when the old folder cannot be removed or the new one created.
    pub fn create(path: PathBuf) -> Result<Self> {
        if path.exists() {
            fs::remove_dir_all(&path).map_err(|e| AssetError::io(&path, e))?;
        }
        fs::create_dir_all(&path).map_err(|e| AssetError::io(&path, e))?;
        Ok(Self { path, keep: false })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the folder in place (it was renamed into its final place).
    pub fn keep(mut self) {
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

/// A fresh folder for one test, `temp_dir()/pet-assets-<pid>-<name>`, removed when dropped.
///
/// # Panics
/// When the folder cannot be created (a test environment failure).
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> Scratch {
    let path = std::env::temp_dir().join(format!("pet-assets-{}-{name}", std::process::id()));
    Scratch::create(path).unwrap_or_else(|e| panic!("expected a test folder: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_is_removed_unless_kept() {
        let removed = test_dir("scratch-removed");
        let path = removed.path().to_path_buf();
        fs::write(path.join("f"), b"x").expect("write");
        drop(removed);
        assert!(!path.exists());

        let kept = test_dir("scratch-kept");
        let path = kept.path().to_path_buf();
        kept.keep();
        assert!(path.is_dir());
        let again = Scratch::create(path.clone()).expect("recreate");
        assert_eq!(fs::read_dir(again.path()).expect("list").count(), 0, "created afresh");
    }
}
