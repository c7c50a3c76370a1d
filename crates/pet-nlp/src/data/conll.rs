//! Token tagging data (NER) in the CoNLL layout: one token per line with its columns, and a
//! separator line between sentences.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use pet_core::PetError;

use super::{Lines, data_error};
use crate::error::Result;

/// One sentence of a CoNLL file: its tokens and one tag per token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedSentence {
    /// The tokens, in order.
    pub tokens: Vec<String>,
    /// The tag of each token (BIO tags such as `B-person`, `I-person`, `O`); as long as
    /// `tokens`.
    pub tags: Vec<String>,
}

/// Reads a CoNLL file: one token per line, the token in column 0 and its tag in column
/// `tag_column` (1 for `token<TAB>tag` files such as WNUT-16's `ner.txt`, 3 for CoNLL-2003's
/// `token POS chunk tag`).
///
/// A line that holds a tab is split at every tab, so a token may hold spaces; another line is
/// split at runs of spaces. Sentences are separated by a line that is empty or holds only
/// whitespace (WNUT-16 uses a lone tab); `-DOCSTART-` lines are skipped and no sentence is
/// empty. Line endings may be `\n` or `\r\n`. This collects [`conll_sentences`], which streams
/// the file one sentence at a time.
///
/// # Errors
///
/// [`PetError::InvalidConfig`] if `tag_column` is 0 (the token column), [`PetError::Io`] if the
/// file cannot be read, and [`PetError::Data`] naming the file and the one-based line of a line
/// with too few columns, or an empty token or tag, or a line that is not UTF-8 or longer than
/// [`MAX_LINE_BYTES`](super::MAX_LINE_BYTES).
pub fn read_conll(path: &Path, tag_column: usize) -> Result<Vec<TaggedSentence>> {
    conll_sentences(path, tag_column)?.map(|s| s.map(|(_, sentence)| sentence)).collect()
}

/// The sentences of a CoNLL file (the layout of [`read_conll`]), read one at a time, each with
/// the one-based line of its first token; the first error ends them.
///
/// # Errors
///
/// [`PetError::InvalidConfig`] if `tag_column` is 0, [`PetError::Io`] if the file cannot be
/// opened; the iterator yields the errors of [`read_conll`].
pub fn conll_sentences(path: &Path, tag_column: usize) -> Result<ConllSentences> {
    if tag_column == 0 {
        return Err(PetError::config("tag_column", "column 0 holds the token, not the tag").into());
    }
    let lines = Lines::open(path)?;
    Ok(ConllSentences { lines, path: path.to_path_buf(), tag_column, done: false })
}

/// The sentences of a CoNLL file, one at a time: see [`conll_sentences`].
#[derive(Debug)]
pub struct ConllSentences {
    lines: Lines<BufReader<File>>,
    path: PathBuf,
    tag_column: usize,
    done: bool,
}

impl ConllSentences {
    /// The next sentence, or `None` at the end of the file.
    fn read(&mut self) -> Result<Option<(usize, TaggedSentence)>> {
        let mut sentence = TaggedSentence { tokens: Vec::new(), tags: Vec::new() };
        let mut first = 0;
        for line in self.lines.by_ref() {
            let (line_number, line) = line?;
            if line.trim().is_empty() {
                if !sentence.tokens.is_empty() {
                    return Ok(Some((first, sentence)));
                }
                continue;
            }
            let columns: Vec<&str> = if line.contains('\t') {
                line.split('\t').collect()
            } else {
                line.split(' ').filter(|column| !column.is_empty()).collect()
            };
            if columns.first() == Some(&"-DOCSTART-") {
                continue;
            }
            let tag_column = self.tag_column;
            if columns.len() <= tag_column {
                let reason = format!(
                    "expected at least {} columns, found {}",
                    tag_column + 1,
                    columns.len()
                );
                return Err(data_error(&self.path, line_number, reason));
            }
            let (token, tag) = (columns[0], columns[tag_column]);
            if token.trim().is_empty() {
                return Err(data_error(&self.path, line_number, "empty token in column 0"));
            }
            if tag.trim().is_empty() {
                let reason = format!("empty tag in column {tag_column}");
                return Err(data_error(&self.path, line_number, reason));
            }
            if sentence.tokens.is_empty() {
                first = line_number;
            }
            sentence.tokens.push(token.to_owned());
            sentence.tags.push(tag.trim().to_owned());
        }
        Ok((!sentence.tokens.is_empty()).then_some((first, sentence)))
    }
}

impl Iterator for ConllSentences {
    type Item = Result<(usize, TaggedSentence)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.read().transpose();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TempFile;
    use crate::error::NlpError;

    fn sentence(pairs: &[(&str, &str)]) -> TaggedSentence {
        TaggedSentence {
            tokens: pairs.iter().map(|(token, _)| (*token).to_owned()).collect(),
            tags: pairs.iter().map(|(_, tag)| (*tag).to_owned()).collect(),
        }
    }

    #[test]
    fn conll_lone_tab_separates_sentences() {
        let file = TempFile::new(
            "conll_lone_tab",
            "ner.txt",
            "@paul\tO\nin\tO\nLondon\tB-geo-loc\n\t\nhi\tO\n\t\n",
        );
        let sentences = read_conll(file.path(), 1).expect("read");
        assert_eq!(
            sentences,
            [
                sentence(&[("@paul", "O"), ("in", "O"), ("London", "B-geo-loc")]),
                sentence(&[("hi", "O")]),
            ]
        );
    }

    #[test]
    fn conll_blank_and_whitespace_lines_separate_sentences() {
        let file = TempFile::new(
            "conll_blank",
            "ner.txt",
            "a\tO\r\n\r\n\r\nb\tO\n   \nc\tB-person\nd\tI-person",
        );
        let sentences = read_conll(file.path(), 1).expect("read");
        assert_eq!(
            sentences,
            [
                sentence(&[("a", "O")]),
                sentence(&[("b", "O")]),
                sentence(&[("c", "B-person"), ("d", "I-person")]),
            ]
        );
    }

    #[test]
    fn conll_space_separated_columns_and_docstart() {
        let file = TempFile::new(
            "conll_spaces",
            "train.txt",
            "-DOCSTART- -X- -X- O\n\nEU NNP B-NP  B-ORG\nrejects VBZ B-VP O\n",
        );
        let sentences = read_conll(file.path(), 3).expect("read");
        assert_eq!(sentences, [sentence(&[("EU", "B-ORG"), ("rejects", "O")])]);
    }

    #[test]
    fn conll_tab_separated_token_keeps_its_spaces() {
        let file = TempFile::new("conll_tab_token", "ner.txt", "New York\tB-geo-loc\n");
        let sentences = read_conll(file.path(), 1).expect("read");
        assert_eq!(sentences, [sentence(&[("New York", "B-geo-loc")])]);
    }

    #[test]
    fn conll_short_line_names_its_line_number() {
        let mut contents = String::new();
        for _ in 0..5 {
            contents.push_str("a\tO\nb\tO\n\t\n");
        }
        contents.push_str("lonely\n");
        let file = TempFile::new("conll_short", "ner.txt", contents);
        let message = read_conll(file.path(), 1).expect_err("refused").to_string();
        assert!(message.ends_with("ner.txt:16: expected at least 2 columns, found 1"), "{message}");
    }

    #[test]
    fn conll_empty_tag_is_refused() {
        let file = TempFile::new("conll_empty_tag", "ner.txt", "a\tO\nb\t\n");
        let message = read_conll(file.path(), 1).expect_err("refused").to_string();
        assert!(message.ends_with("ner.txt:2: empty tag in column 1"), "{message}");
    }

    #[test]
    fn conll_tag_column_zero_is_refused() {
        let file = TempFile::new("conll_column_zero", "ner.txt", "a\tO\n");
        let err = read_conll(file.path(), 0).expect_err("refused");
        assert!(matches!(err, NlpError::Core(PetError::InvalidConfig { .. })), "{err:?}");
    }
}
