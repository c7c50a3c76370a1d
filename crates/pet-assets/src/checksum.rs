//! SHA-256 digests of downloaded archives and extracted files, as the lower-case hex strings
//! manifests hold.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{AssetError, Result};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// Lower-case hex SHA-256 of the file at `path`, read in 1 MiB pieces.
///
/// # Errors
/// [`AssetError::Io`] when the file cannot be read.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| AssetError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut piece = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut piece).map_err(|e| AssetError::io(path, e))? {
            0 => return Ok(to_hex(&hasher.finalize())),
            n => hasher.update(&piece[..n]),
        }
    }
}

/// Checks that the file at `path` has SHA-256 `expected`.
///
/// # Errors
/// [`AssetError::Io`] when it cannot be read, [`AssetError::Checksum`] (naming the file and
/// both values) when its digest differs.
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let found = sha256_file(path)?;
    if found == expected {
        Ok(())
    } else {
        Err(AssetError::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            found,
        })
    }
}

fn to_hex(digest: &[u8]) -> String {
    use std::fmt::Write;
    digest.iter().fold(String::with_capacity(2 * digest.len()), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::test_dir;

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn file_digest_equals_the_digest_of_its_bytes() {
        let dir = test_dir("checksum-file");
        let path = dir.path().join("a.bin");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(sha256_file(&path).expect("digest"), sha256_hex(&bytes));
    }

    #[test]
    fn checksum_mismatch_names_the_file_and_both_values() {
        let dir = test_dir("checksum-mismatch");
        let path = dir.path().join("config.json");
        std::fs::write(&path, b"{}").expect("write");
        let err = verify_sha256(&path, &"ab".repeat(32)).expect_err("mismatch");
        assert!(matches!(&err, AssetError::Checksum { path: p, .. } if p == &path), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("config.json"), "{message}");
        assert!(message.contains(&"ab".repeat(32)) && message.contains(&sha256_hex(b"{}")));
        verify_sha256(&path, &sha256_hex(b"{}")).expect("match");
        let missing = verify_sha256(&dir.path().join("absent"), &"ab".repeat(32));
        assert!(matches!(missing, Err(AssetError::Io { .. })));
    }
}
