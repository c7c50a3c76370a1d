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
//!
//! # Memory
//!
//! JSON-lines, CSV, TSV and CoNLL files are streamed: [`Lines`] reads one line at a time
//! through a buffered reader, the CSV reader one record at a time, and the `*_examples`
//! iterators ([`classification_examples`], [`conll_sentences`]) hand over one example at a
//! time, so a reader holds one line, not the file. A line (or CSV record) longer than
//! [`MAX_LINE_BYTES`] is refused, so that a file without line breaks is not read whole. Texts are
//! cut to the characters their `max_length` tokens can come from when they are tokenized
//! ([`crate::tokenize`]). A SQuAD file is one JSON document: it is read whole, as its
//! examples keep every context anyway (answers are cut from the contexts).

mod classification;
mod conll;
pub mod recipes;
mod squad;

pub use classification::{
    ClassificationExample, ClassificationExamples, LabelSet, classification_examples,
    read_classification,
};
pub use conll::{ConllSentences, TaggedSentence, conll_sentences, read_conll};
pub use squad::{Answer, SquadExample, read_squad};

use std::cell::Cell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use pet_core::PetError;

use crate::error::{NlpError, Result};

/// A [`PetError::Data`] for line `line` (one-based) of `path`.
fn data_error(path: &Path, line: usize, reason: impl Into<String>) -> NlpError {
    PetError::Data { path: path.to_path_buf(), line, reason: reason.into() }.into()
}

/// The longest line of a JSON-lines or CoNLL file, and the longest CSV or TSV record, that the
/// readers take: 64 MiB. Longer texts are welcome below it (they are cut when tokenized); a
/// longer line is refused with an error naming it rather than held in memory.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// The file at `path`, buffered, past a leading UTF-8 byte-order mark.
///
/// # Errors
/// [`PetError::Io`] if the file cannot be opened or read.
pub fn open_text(path: &Path) -> Result<BufReader<File>> {
    let file = File::open(path).map_err(|source| PetError::io(path, source))?;
    let mut reader = BufReader::new(file);
    let start = reader.fill_buf().map_err(|source| PetError::io(path, source))?;
    if start.starts_with(b"\xef\xbb\xbf") {
        reader.consume(3);
    }
    Ok(reader)
}

/// The lines of a text file, one at a time: one-based line number and text, without the line
/// break (`\n` or `\r\n`). A line that is not UTF-8 or is longer than the cap is an error
/// naming it, after which the iterator ends.
#[derive(Debug)]
pub struct Lines<R> {
    reader: R,
    path: PathBuf,
    line: usize,
    max_bytes: usize,
    buffer: Vec<u8>,
    done: bool,
}

impl Lines<BufReader<File>> {
    /// The lines of the file at `path` (past a byte-order mark), at most [`MAX_LINE_BYTES`]
    /// each.
    ///
    /// # Errors
    /// [`PetError::Io`] if the file cannot be opened.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self::new(open_text(path)?, path, MAX_LINE_BYTES))
    }
}

impl<R: BufRead> Lines<R> {
    /// The lines of `reader`, at most `max_bytes` each; `path` names the source in errors.
    pub fn new(reader: R, path: &Path, max_bytes: usize) -> Self {
        Self {
            reader,
            path: path.to_path_buf(),
            line: 0,
            max_bytes,
            buffer: Vec::new(),
            done: false,
        }
    }

    /// The next line, or `None` at the end.
    fn read(&mut self) -> Result<Option<(usize, String)>> {
        self.buffer.clear();
        let limit = u64::try_from(self.max_bytes).unwrap_or(u64::MAX).saturating_add(2);
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buffer)
            .map_err(|source| PetError::io(&self.path, source))?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        let ended = self.buffer.last() == Some(&b'\n');
        if ended {
            self.buffer.pop();
            if self.buffer.last() == Some(&b'\r') {
                self.buffer.pop();
            }
        }
        if self.buffer.len() > self.max_bytes {
            let reason = format!("the line is longer than {} bytes", self.max_bytes);
            return Err(data_error(&self.path, self.line, reason));
        }
        let text = String::from_utf8(std::mem::take(&mut self.buffer)).map_err(|err| {
            data_error(&self.path, self.line, format!("invalid UTF-8: {}", err.utf8_error()))
        })?;
        Ok(Some((self.line, text)))
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Result<(usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.read().transpose();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

/// A reader that fails once more than `max_bytes` are read since the last
/// [`RecordBudget::reset`]: it bounds what the CSV reader buffers for one record.
#[derive(Debug)]
struct Budgeted<R> {
    inner: R,
    budget: RecordBudget,
}

/// The bytes read since the start of the current record, shared with the reader.
#[derive(Clone, Debug)]
struct RecordBudget {
    used: Rc<Cell<usize>>,
    max_bytes: usize,
}

impl RecordBudget {
    /// Starts a new record.
    fn reset(&self) {
        self.used.set(0);
    }
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let used = self.budget.used.get() + n;
        self.budget.used.set(used);
        if used > self.budget.max_bytes {
            return Err(std::io::Error::other(format!(
                "a record is longer than {} bytes",
                self.budget.max_bytes
            )));
        }
        Ok(n)
    }
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

    fn lines(text: &[u8], max_bytes: usize) -> Vec<Result<(usize, String)>> {
        Lines::new(std::io::Cursor::new(text.to_vec()), Path::new("in.txt"), max_bytes).collect()
    }

    #[test]
    fn lines_strip_their_breaks_and_count_from_one() {
        let read: Vec<(usize, String)> =
            lines(b"a\r\n\nb\nc", 8).into_iter().map(|l| l.expect("line")).collect();
        let expected = [(1, "a"), (2, ""), (3, "b"), (4, "c")].map(|(n, s)| (n, s.to_owned()));
        assert_eq!(read, expected);
    }

    #[test]
    fn a_line_past_the_byte_cap_is_refused_and_ends_the_lines() {
        let read = lines(b"12345678\r\n123456789\nafter\n", 8);
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].as_ref().expect("8 bytes fit"), &(1, "12345678".to_owned()));
        let err = read[1].as_ref().expect_err("9 bytes do not");
        assert!(err.to_string().contains("in.txt:2: the line is longer than 8 bytes"), "{err}");
    }

    #[test]
    fn an_invalid_utf8_line_is_named_while_streaming() {
        let read = lines(b"ok\n\xff\n", 64);
        let err = read[1].as_ref().expect_err("invalid");
        assert!(err.to_string().contains("in.txt:2: invalid UTF-8"), "{err}");
    }

    #[test]
    fn open_text_skips_the_byte_order_mark() {
        let file = TempFile::new("bom_stream", "data.jsonl", "\u{feff}a\nb\n");
        let read: Vec<String> =
            Lines::open(file.path()).expect("open").map(|l| l.expect("line").1).collect();
        assert_eq!(read, ["a", "b"]);
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let path =
            std::env::temp_dir().join(format!("pet-nlp-data-{}-absent.jsonl", std::process::id()));
        let err = read_text(&path).expect_err("a missing file is refused");
        assert!(matches!(err, NlpError::Core(PetError::Io { .. })), "{err:?}");
    }
}
