//! A fresh folder under the system temp dir for one test, removed when dropped.

use std::path::{Path, PathBuf};

/// A temporary folder named after the test and the process; emptied on creation, removed on
/// drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `temp_dir()/pet-<pid>-<name>`, created empty.
    ///
    /// # Panics
    /// When the folder cannot be created (a test environment failure).
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("pet-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("expected to create {}: {e}", path.display()));
        Self(path)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
