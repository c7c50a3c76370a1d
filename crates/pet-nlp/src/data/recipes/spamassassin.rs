//! The `spamassassin` recipe: the SpamAssassin public mail corpus as spam/ham classification
//! (seed 13, 80/10/10 in `datasets/spamassassin.toml`).
//!
//! Raw emails are extracted to `raw/<group>/*.txt`. In-distribution pool: every email of
//! `easy-ham-1`, `easy-ham-2` (label `ham`), `spam-1`, `spam-2` (label `spam`), groups in that
//! order and files sorted by name within a group; shuffled and split into `train.jsonl`,
//! `dev.jsonl`, `test.jsonl`. Shifted test set: every `hard-ham-1` email (ham that looks like
//! spam), in file-name order, in `test_hard_ham.jsonl`. Each line is
//! `{"text": ..., "label": "spam"|"ham"}` with the text made by [`email_text`].
//!
//! Measured rows (package 0.2.3): train 4638 (ham 3136, spam 1502), dev 579 (ham 390, spam
//! 189), test 579 (ham 374, spam 205), test_hard_ham 250. The corpus repeats itself: 131 texts of
//! the in-distribution pool repeat an earlier one (always with the same label), and 28 test
//! texts also occur in train. They are kept, as the corpus has them.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use pet_assets::{Prepared, SplitRecipe};
use pet_core::PetError;
use serde::Serialize;

use super::{Recipe, shuffled_split};
use crate::error::{NlpError, Result};

/// Email text is cut to this many characters (after whitespace is collapsed).
pub const MAX_EMAIL_CHARS: usize = 2000;

/// SpamAssassin groups of the in-distribution pool, in pool order, with their labels.
pub const SPAM_IN_DISTRIBUTION: [(&str, &str); 4] =
    [("easy-ham-1", "ham"), ("easy-ham-2", "ham"), ("spam-1", "spam"), ("spam-2", "spam")];

/// The SpamAssassin group of the shifted test set, and its label.
pub const SPAM_SHIFTED: (&str, &str) = ("hard-ham-1", "ham");

/// The files the recipe writes, in the order of its report.
const OUTPUTS: [&str; 4] = ["train.jsonl", "dev.jsonl", "test.jsonl", "test_hard_ham.jsonl"];

/// The `spamassassin` recipe: see the module documentation.
pub const SPAMASSASSIN: Recipe =
    Recipe { id: "spamassassin", outputs: &OUTPUTS, run: prepare_spamassassin };

fn prepare_spamassassin(dir: &Path, recipe: &SplitRecipe) -> Result<Vec<Prepared>> {
    let mut pool = Vec::new();
    for (group, label) in SPAM_IN_DISTRIBUTION {
        pool.extend(read_group(dir, group, label)?);
    }
    let shifted = read_group(dir, SPAM_SHIFTED.0, SPAM_SHIFTED.1)?;
    let [train, dev, test] = shuffled_split(pool, recipe);
    let mut report = Vec::new();
    for (file, rows) in OUTPUTS.into_iter().zip([&train, &dev, &test, &shifted]) {
        write_jsonl(&dir.join(file), rows)?;
        report.push(Prepared { file, rows: rows.len() });
    }
    Ok(report)
}

/// The text of a raw email: its Subject header's value (folded lines joined), then its body
/// (everything after the first empty line), decoded lossily as UTF-8, whitespace collapsed to
/// single spaces, cut to the first [`MAX_EMAIL_CHARS`] characters. Other headers are dropped;
/// MIME parts and encodings are kept as they are.
pub fn email_text(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.lines();
    let mut subject: Option<String> = None;
    let mut in_subject = false;
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        let continuation = line.starts_with([' ', '\t']);
        if continuation {
            if in_subject && let Some(s) = subject.as_mut() {
                s.push(' ');
                s.push_str(line);
            }
            continue;
        }
        in_subject = false;
        if subject.is_none()
            && let Some((field, value)) = line.split_once(':')
            && field.eq_ignore_ascii_case("subject")
        {
            subject = Some(value.to_string());
            in_subject = true;
        }
    }
    let words: Vec<&str> = subject
        .iter()
        .flat_map(|s| s.split_whitespace())
        .chain(lines.flat_map(str::split_whitespace))
        .collect();
    let collapsed = words.join(" ");
    let cut: String = collapsed.chars().take(MAX_EMAIL_CHARS).collect();
    cut.trim_end().to_string()
}

/// One line of a prepared classification file.
#[derive(Serialize)]
struct Example<'a> {
    text: String,
    label: &'a str,
}

fn write_jsonl(path: &Path, examples: &[Example<'_>]) -> Result<()> {
    let io = |e: std::io::Error| NlpError::from(PetError::io(path, e));
    let mut out = BufWriter::new(File::create(path).map_err(io)?);
    for example in examples {
        serde_json::to_writer(&mut out, example).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Every email of `dir/raw/<group>/`, in file-name order, as examples labelled `label`.
fn read_group<'a>(dir: &Path, group: &str, label: &'a str) -> Result<Vec<Example<'a>>> {
    let folder = dir.join("raw").join(group);
    let listing = |e: std::io::Error| NlpError::from(PetError::io(&folder, e));
    let mut paths = Vec::new();
    for entry in fs::read_dir(&folder).map_err(listing)? {
        let path = entry.map_err(listing)?.path();
        if path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(NlpError::Dataset { path: folder, reason: "holds no emails".into() });
    }
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let raw = fs::read(path).map_err(|e| PetError::io(path, e))?;
            Ok(Example { text: email_text(&raw), label })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::recipes::tests::recipe;
    use pet_assets::Preparer;

    use pet_core::testing::TempDir as TestDir;

    const EMAIL: &[u8] = b"From someone@example.com  Thu Aug 22 12:36:23 2002\r\n\
Return-Path: <someone@example.com>\r\n\
Subject: Re: cheap\r\n\
 \tpills   now\r\n\
X-Mailer: Nothing\r\n\
Received: from x\r\n\
\tby y\r\n\
\r\n\
Hello   there,\r\n\
\r\n\
caf\xe9 \xc3\xa9t\xc3\xa9\tprices.\r\n\
Subject: not a header\r\n";

    #[test]
    fn email_text_keeps_subject_and_body_and_drops_headers() {
        assert_eq!(
            email_text(EMAIL),
            "Re: cheap pills now Hello there, caf\u{fffd} \u{e9}t\u{e9} prices. Subject: not a header"
        );
    }

    #[test]
    fn email_text_without_subject_or_body() {
        assert_eq!(email_text(b"From: a\nTo: b\n\nJust  the\n body\n"), "Just the body");
        assert_eq!(email_text(b"From: a\nSubject: only\n"), "only");
        assert_eq!(email_text(b""), "");
    }

    #[test]
    fn email_text_is_cut_to_2000_characters() {
        let mut raw = b"Subject: s\n\n".to_vec();
        for _ in 0..1500 {
            raw.extend_from_slice("\u{e9}\u{e9}\u{e9} ".as_bytes());
        }
        let text = email_text(&raw);
        assert_eq!(text.chars().count(), MAX_EMAIL_CHARS);
        assert!(text.starts_with("s \u{e9}\u{e9}\u{e9} \u{e9}"));
        assert!(text.ends_with(" \u{e9}\u{e9}"), "cut inside a word");
    }

    #[test]
    fn spamassassin_writes_labelled_jsonl_splits_and_the_shifted_set() {
        let dir = TestDir::new("spam");
        for (group, n) in
            [("easy-ham-1", 4), ("easy-ham-2", 3), ("spam-1", 2), ("spam-2", 1), ("hard-ham-1", 2)]
        {
            let folder = dir.0.join("raw").join(group);
            fs::create_dir_all(&folder).expect("mkdir");
            for i in 0..n {
                let email = format!("From: x\nSubject: {group} {i}\n\nbody {i}\n");
                fs::write(folder.join(format!("{i:05}.txt")), email).expect("write");
            }
        }
        let report = SPAMASSASSIN.prepare(&dir.0, &recipe("spamassassin", 13)).expect("prepare");
        let rows: Vec<(&str, usize)> = report.iter().map(|p| (p.file, p.rows)).collect();
        assert_eq!(
            rows,
            [("train.jsonl", 8), ("dev.jsonl", 1), ("test.jsonl", 1), ("test_hard_ham.jsonl", 2)]
        );
        let mut texts = Vec::new();
        for file in &SPAMASSASSIN.outputs[..3] {
            for line in fs::read_to_string(dir.0.join(file)).expect("read").lines() {
                let value: serde_json::Value = serde_json::from_str(line).expect("json");
                let text = value["text"].as_str().expect("text").to_string();
                let label = value["label"].as_str().expect("label");
                assert_eq!(label, if text.starts_with("spam") { "spam" } else { "ham" }, "{text}");
                texts.push(text);
            }
        }
        assert_eq!(texts.len(), 10);
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), 10, "a partition");
        let hard = fs::read_to_string(dir.0.join("test_hard_ham.jsonl")).expect("read");
        assert_eq!(
            hard,
            "{\"text\":\"hard-ham-1 0 body 0\",\"label\":\"ham\"}\n{\"text\":\"hard-ham-1 1 body 1\",\"label\":\"ham\"}\n"
        );
    }

    #[test]
    fn an_empty_group_is_an_error_naming_its_folder() {
        let dir = TestDir::new("spam-empty");
        for (group, _) in SPAM_IN_DISTRIBUTION {
            fs::create_dir_all(dir.0.join("raw").join(group)).expect("mkdir");
        }
        let err = SPAMASSASSIN.prepare(&dir.0, &recipe("spamassassin", 13)).expect_err("empty");
        let message = err.to_string();
        assert!(message.contains("easy-ham-1") && message.contains("holds no emails"), "{message}");
    }
}
