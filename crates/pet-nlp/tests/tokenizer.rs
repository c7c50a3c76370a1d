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

#[test]
fn max_length_below_one_or_the_special_tokens_is_refused() {
    let path = folder().join("tokenizer.json");
    let zero = TextTokenizer::from_file(&path, 0).expect_err("0 tokens");
    assert!(zero.to_string().contains("`max_length`: must be at least 1"), "{zero}");
    let one = TextTokenizer::from_file(&path, 1).expect_err("1 < [CLS] [SEP]");
    assert!(one.to_string().contains("1 is less than the 2 special tokens"), "{one}");
    let two = TextTokenizer::from_file(&path, 2).expect("[CLS] [SEP] fit");
    assert_eq!(two.encode("the cat", None).expect("single").input_ids.len(), 2);
    let pair = two.encode("the cat", Some("a dog")).expect_err("a pair takes 3");
    assert!(
        pair.to_string()
            .contains("less than the 3 special tokens the tokenizer adds to a text pair"),
        "{pair}"
    );
    let windows = two.encode_windows("the cat", "a dog", 2, 0).expect_err("a window takes 3");
    assert!(windows.to_string().contains("special tokens"), "{windows}");
}

#[test]
fn long_texts_are_cut_before_tokenizing_and_encode_as_uncut() {
    let tokenizer =
        TextTokenizer::from_file(&folder().join("tokenizer.json"), 16).expect("tokenizer");
    let long = "the cat sat on the mat . ".repeat(200_000);
    let short = &long[..400];
    assert_eq!(
        tokenizer.encode(&long, None).expect("long"),
        tokenizer.encode(short, None).expect("short")
    );
    assert_eq!(
        tokenizer.encode(&long, Some(&long)).expect("long pair"),
        tokenizer.encode(short, Some(short)).expect("short pair")
    );
    let words: Vec<String> = long.split_whitespace().map(str::to_string).collect();
    let first: Vec<String> = words[..100].to_vec();
    assert_eq!(
        tokenizer.encode_words(&words).expect("all words"),
        tokenizer.encode_words(&first).expect("first words")
    );
    assert_eq!(pet_nlp::tokenize::cut_chars("héllo", 2), "hé");
}

#[test]
fn a_doc_stride_that_does_not_advance_is_an_error_not_a_panic() {
    let tokenizer =
        TextTokenizer::from_file(&folder().join("tokenizer.json"), 16).expect("tokenizer");
    let question = "the big dog is running";
    let context = "the cat sat on the mat . ".repeat(10);
    // 12 tokens less [CLS] [SEP] [SEP] and 6 question tokens (run ##ning) leave 3 context
    // tokens a window.
    let err = tokenizer.encode_windows(question, &context, 12, 3).expect_err("stride 3 of 3");
    assert!(
        err.to_string().contains("doc_stride 3 must be less than the 3 context tokens"),
        "{err}"
    );
    assert!(tokenizer.encode_windows(question, &context, 12, 2).expect("stride 2").len() > 1);
    // A context that fits one window never reads the stride.
    assert_eq!(tokenizer.encode_windows(question, "the cat", 12, 8).expect("fits").len(), 1);
    let full = tokenizer.encode_windows(question, &context, 8, 0).expect_err("no room");
    assert!(full.to_string().contains("leave no room for the context"), "{full}");
}
