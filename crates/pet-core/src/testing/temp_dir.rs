//! A fresh folder under the system temp dir for one test, removed when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A temporary folder named after the test, the process and the call (tests on parallel
/// threads that ask for the same name get different folders); emptied on creation, removed on
/// drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `temp_dir()/pet-<pid>-<call>-<name>`, created empty.
    ///
    /// # Panics
    /// When the folder cannot be created (a test environment failure).
    pub fn new(name: &str) -> Self {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("pet-{}-{call}-{name}", std::process::id()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_folders_of_one_name_are_two_folders() {
        let (a, b) = (TempDir::new("twice"), TempDir::new("twice"));
        assert_ne!(a.path(), b.path());
        drop(a);
        assert!(b.path().is_dir(), "dropping one leaves the other");
    }
}
