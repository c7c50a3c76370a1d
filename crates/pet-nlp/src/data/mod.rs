//! Readers of the data files pet trains and evaluates on, each returning plain Rust values
//! (no tensors, no tokenization).
//!
//! - [`read_classification`]: sentence(-pair) classification from `.jsonl`, `.csv` or `.tsv`
//!   (`text`, optional `text_pair`, optional `label`), with [`LabelSet`] mapping label names to
//!   class indices.
//! - [`read_conll`]: token tagging (NER) in the CoNLL layout, one `token tag` line per token and
//!   a blank line between sentences, as WNUT-16's `ner.txt`.
//! - [`read_squad`]: extractive question answering in the SQuAD v1.1 / v2.0 JSON layout, with
//!   every answer checked against its context.
//! - [`recipes`]: the split recipes of the fetched data sets (`spamassassin`, `wnut16`), the
//!   `pet_assets::Preparer`s that write the files these readers take.
//!
//! Every bad input is refused with a [`PetError`] that names the file and the one-based line
//! ([`PetError::Data`]), or for SQuAD the question id ([`PetError::Format`]); an unreadable file
//! is a [`PetError::Io`]. A leading UTF-8 byte-order mark is ignored.

mod classification;
mod conll;
pub mod recipes;
mod squad;

pub use classification::{ClassificationExample, LabelSet, read_classification};
pub use conll::{TaggedSentence, read_conll};
pub use squad::{Answer, SquadExample, read_squad};

use std::path::Path;

use pet_core::PetError;

use crate::error::{NlpError, Result};

/// A [`PetError::Data`] for line `line` (one-based) of `path`.
fn data_error(path: &Path, line: usize, reason: impl Into<String>) -> NlpError {
    PetError::Data { path: path.to_path_buf(), line, reason: reason.into() }.into()
}

/// The whole of `path` as UTF-8 text, without a leading byte-order mark.
///
/// # Errors
///
/// [`PetError::Io`] if the file cannot be read, [`PetError::Data`] naming the line of the first
/// byte that is not UTF-8.
fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| PetError::io(path, source))?;
    let text = String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&byte| byte == b'\n').count();
        data_error(path, line, format!("invalid UTF-8: {}", err.utf8_error()))
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

/// A file in the temporary directory, removed when dropped.
#[cfg(test)]
struct TempFile(std::path::PathBuf);

#[cfg(test)]
impl TempFile {
    /// Writes `contents` to a file named after this process, `name` (unique per test) and
    /// `file_name`, so that the extension and the file name in error messages are `file_name`'s.
    fn new(name: &str, file_name: &str, contents: impl AsRef<[u8]>) -> Self {
        let dir = std::env::temp_dir().join(format!("pet-nlp-data-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let path = dir.join(file_name);
        std::fs::write(&path, contents).expect("write the test file");
        Self(path)
    }

    /// The file's path.
    fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_names_its_line() {
        let file = TempFile::new(
            "invalid_utf8",
            "data.jsonl",
            b"{\"text\": \"a\"}\n{\"text\": \"\xff\"}\n",
        );
        let err = read_text(file.path()).expect_err("invalid UTF-8 is refused");
        let message = err.to_string();
        assert!(message.contains("data.jsonl:2: invalid UTF-8"), "{message}");
    }

    #[test]
    fn byte_order_mark_is_dropped() {
        let file = TempFile::new("bom", "data.jsonl", "\u{feff}{\"text\": \"a\"}\n");
        let text = read_text(file.path()).expect("read");
        assert_eq!(text, "{\"text\": \"a\"}\n");
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let path =
            std::env::temp_dir().join(format!("pet-nlp-data-{}-absent.jsonl", std::process::id()));
        let err = read_text(&path).expect_err("a missing file is refused");
        assert!(matches!(err, NlpError::Core(PetError::Io { .. })), "{err:?}");
    }
}
