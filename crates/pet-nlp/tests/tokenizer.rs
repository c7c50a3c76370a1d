//! Tokenization parity with transformers' `BertTokenizerFast` on a small WordPiece vocabulary
//! (fixture: `tests/parity/encoders/generate.py`, `bert/tokenizer_expected.json`) and with
//! `DebertaV2TokenizerFast` on a DeBERTa-v3-style SentencePiece Unigram tokenizer (Metaspace,
//! `[CLS]` / `[SEP]` / `[PAD]` from the file; `tests/parity/deberta/generate.py`,
//! `v3/tokenizer_expected.json`).

use std::path::Path;

use pet_nlp::NlpError;
use pet_nlp::tokenize::{Encoded, TextTokenizer};
use serde_json::Value;

fn folder() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/encoders/bert")
}

fn deberta_folder() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/deberta/v3")
}

fn ints(case: &Value, key: &str) -> Vec<i64> {
    case[key].as_array().expect(key).iter().map(|v| v.as_i64().expect("integer")).collect()
}

fn check(case: &Value, ours: &Encoded) {
    let what = case.to_string();
    let ids: Vec<i64> = ours.input_ids.iter().map(|&i| i as i64).collect();
    assert_eq!(ids, ints(case, "input_ids"), "ids of {what}");
    let types: Vec<i64> = ours.token_type_ids.iter().map(|&i| i as i64).collect();
    assert_eq!(types, ints(case, "token_type_ids"), "types of {what}");
    let words: Vec<i64> = ours.word_ids.iter().map(|w| w.map_or(-1, i64::from)).collect();
    assert_eq!(words, ints(case, "word_ids"), "word ids of {what}");
    let offsets: Vec<i64> = ours.offsets.iter().flat_map(|&(a, b)| [a as i64, b as i64]).collect();
    let expected: Vec<i64> = case["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .flat_map(|o| ints(&serde_json::json!({"o": o}), "o"))
        .collect();
    assert_eq!(offsets, expected, "offsets of {what}");
}

/// Every case of `folder`'s `tokenizer_expected.json` (`cases` of them) against its
/// `tokenizer.json`.
fn check_fixture(folder: &Path, cases: usize) {
    let text = std::fs::read_to_string(folder.join("tokenizer_expected.json")).expect("fixture");
    let expected: Vec<Value> = serde_json::from_str(&text).expect("json");
    assert_eq!(expected.len(), cases);
    for case in &expected {
        let max_length = case["max_length"].as_u64().unwrap_or(512) as usize;
        let tokenizer = TextTokenizer::from_file(&folder.join("tokenizer.json"), max_length)
            .expect("tokenizer");
        if let Some(question) = case.get("question").and_then(Value::as_str) {
            let context = case["context"].as_str().expect("context");
            let stride = case["stride"].as_u64().expect("stride") as usize;
            let windows =
                tokenizer.encode_windows(question, context, max_length, stride).expect("windows");
            let window = &windows[case["window"].as_u64().expect("window") as usize];
            check(case, &window.encoded);
            let ids: Vec<i64> =
                window.sequence_ids.iter().map(|s| s.map_or(-1, |s| s as i64)).collect();
            assert_eq!(ids, ints(case, "sequence_ids"), "sequence ids of {case}");
            assert_eq!(windows.len(), 8, "windows of the QA case");
            continue;
        }
        let ours = match (case.get("text"), case.get("words")) {
            (Some(text), _) => tokenizer
                .encode(text.as_str().expect("text"), case.get("text_pair").and_then(Value::as_str))
                .expect("encode"),
            (None, Some(words)) => {
                let words: Vec<String> = words
                    .as_array()
                    .expect("words")
                    .iter()
                    .map(|w| w.as_str().expect("word").to_string())
                    .collect();
                tokenizer.encode_words(&words).expect("encode words")
            }
            _ => panic!("case without input: {case}"),
        };
        check(case, &ours);
    }
}

#[test]
fn texts_pairs_and_words_tokenize_as_transformers_does() {
    check_fixture(&folder(), 14);
}

#[test]
fn a_deberta_v3_sentencepiece_tokenizer_matches_deberta_v2_tokenizer_fast() {
    check_fixture(&deberta_folder(), 6);
    let tokenizer =
        TextTokenizer::from_file(&deberta_folder().join("tokenizer.json"), 32).expect("tokenizer");
    assert_eq!(tokenizer.pad_id(), 0, "[PAD] of the file");
}

#[test]
fn a_broken_tokenizer_file_is_named() {
    let path = std::env::temp_dir().join(format!("pet-bad-tokenizer-{}.json", std::process::id()));
    std::fs::write(&path, "{\"model\": 3}").expect("write");
    match TextTokenizer::from_file(&path, 16) {
        Err(NlpError::Tokenizer { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected a tokenizer error, got {other:?}"),
    }
}
