//! Property-based fuzzing of the readers of input files and of the input-line parsers: for
//! arbitrary bytes and for structured but hostile values (ids past 32 and 64 bits, negative
//! and fractional ids, word indices of billions, answers past their context, stray quotes,
//! tabs, carriage returns, byte-order marks, invalid UTF-8), every reader returns `Ok` or a
//! typed error: it never panics, and what it accepts holds what was promised (ids inside the
//! vocabulary, rows inside the positions, lines under the byte cap).
//!
//! The number of cases per target is proptest's `PROPTEST_CASES` (256 by default, a few
//! seconds in a debug build); the long run is
//! `PROPTEST_CASES=1000000 cargo test --release -p pet-nlp --test main fuzz_readers`.
//! Inputs are bounded (a few KiB per case), so an allocation that grows with a number read
//! from the input rather than with the input (a word index sizing a vector) shows as an
//! allocation failure when the run is made under an address-space limit (`ulimit -v`).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pet_core::testing::TempDir;
use pet_core::{InputLimits, PetError};
use pet_nlp::NlpError;
use pet_nlp::batch::check_row;
use pet_nlp::data::{Lines, read_classification, read_conll, read_squad};
use pet_nlp::input::{JsonLine, MAX_IDS};
use pet_nlp::tokenize::TextTokenizer;
use proptest::prelude::*;
use serde_json::{Value, json};

/// A file of this test process, rewritten for every case of one target.
struct Scratch {
    _dir: TempDir,
    path: PathBuf,
}

impl Scratch {
    fn new(target: &str, file_name: &str) -> Self {
        let dir = TempDir::new(&format!("fuzz-{target}"));
        let path = dir.path().join(file_name);
        Self { _dir: dir, path }
    }

    fn write(&self, bytes: &[u8]) -> &Path {
        std::fs::write(&self.path, bytes).expect("write the case");
        &self.path
    }
}

/// An error every reader may return: pet-core's data, format, input, config and I/O errors,
/// and pet-nlp's tokenizer errors. Anything else (or a panic) fails the property.
fn typed(err: &NlpError) -> bool {
    matches!(
        err,
        NlpError::Core(
            PetError::Data { .. }
                | PetError::Format { .. }
                | PetError::Input { .. }
                | PetError::InvalidConfig { .. }
                | PetError::Io { .. }
        ) | NlpError::Tokenizer { .. }
    )
}

/// Bytes that look like a data file: lines of fields joined by separators and quotes, with
/// byte-order marks, carriage returns, stray quotes and invalid UTF-8 among them.
fn file_like(fields: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => proptest::sample::select(fields).prop_map(|s| s.as_bytes().to_vec()),
        2 => "[a-zé \\\\\"{}\\[\\]:,0-9.-]{0,12}".prop_map(String::into_bytes),
        1 => Just(b"\t".to_vec()),
        1 => Just(b",".to_vec()),
        1 => Just(b"\"".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        1 => Just(b"\n".to_vec()),
        1 => Just(b"\n\n".to_vec()),
        1 => Just(b"\xef\xbb\xbf".to_vec()),
        1 => Just(b"\xff\xfe".to_vec()),
        1 => Just(b"\xc3".to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..64).prop_map(|pieces| pieces.concat())
}

/// Arbitrary bytes, or bytes shaped like the file `fields` come from.
fn bytes_or(fields: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..2048), file_like(fields)]
}

/// A JSON value that an id list may hold: ordinary ids, edge integers, and values of every
/// other kind.
fn id_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (0u64..48).prop_map(Value::from),
        1 => proptest::sample::select(vec![
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::from(u32::MAX) + 2,
            u64::MAX,
            1 << 53,
        ])
        .prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => (-2i64..0).prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        1 => Just(Value::Null),
        1 => Just(json!("7")),
        1 => Just(json!([1])),
        1 => Just(json!({"id": 1})),
        1 => any::<bool>().prop_map(Value::from),
    ]
}

/// A pre-tokenized line: some of the id lists (mostly of one length, sometimes not), a label,
/// tags, text, and other fields.
fn ids_line() -> impl Strategy<Value = String> {
    // A list is clean (ordinary values below `below`) or hostile (any value) half the time.
    let list = |len: usize, below: u64| {
        prop_oneof![
            proptest::collection::vec((0..below).prop_map(Value::from), len..=len),
            proptest::collection::vec(id_value(), len..=len),
        ]
        .prop_map(Value::Array)
    };
    let mask = |len: usize| {
        prop_oneof![
            3 => (0..=len).prop_map(move |ones| Value::from((0..len).map(|i| u64::from(i < ones)).collect::<Vec<_>>())),
            1 => proptest::collection::vec(id_value(), len..=len).prop_map(Value::from),
        ]
    };
    let word = prop_oneof![
        4 => (0u64..48).prop_map(Value::from),
        1 => Just(Value::Null),
        1 => Just(Value::from(4_000_000_000u64)),
    ];
    (0usize..48, any::<[bool; 7]>(), 0usize..3)
        .prop_flat_map(move |(len, keys, skew)| {
            let other = if skew == 0 { len + 1 } else { len };
            (
                Just(keys),
                list(len, 48),
                mask(other),
                list(len, 3),
                proptest::collection::vec(word.clone(), len..=len),
                proptest::collection::vec("[A-Z]-?[a-z]{0,3}", 0..len + 2),
                ".{0,20}",
            )
        })
        .prop_map(|(keys, ids, mask, types, words, tags, text)| {
            let mut line = serde_json::Map::new();
            for (key, value, on) in [
                ("input_ids", ids, keys[0]),
                ("attention_mask", mask, keys[1]),
                ("token_type_ids", types, keys[2]),
                ("word_ids", Value::Array(words), keys[3]),
                ("tags", json!(tags), keys[4]),
                ("label", json!(text.clone()), keys[5]),
                ("text", json!(text), keys[6]),
            ] {
                if on || key == "input_ids" {
                    line.insert(key.to_string(), value);
                }
            }
            Value::Object(line).to_string()
        })
}

/// The model limits of the tiny fixtures, or a random other.
fn limits() -> impl Strategy<Value = Option<InputLimits>> {
    let some = (1usize..64, prop::option::of(1usize..4), prop::option::of(0usize..40)).prop_map(
        |(vocab_size, type_vocab_size, max_tokens)| InputLimits {
            vocab_size,
            type_vocab_size,
            max_tokens,
            max_tokens_reason: "fuzz".into(),
        },
    );
    prop::option::of(some)
}

/// The tiny BERT fixture's WordPiece tokenizer, truncating to `max_length`.
fn tokenizer(max_length: usize) -> TextTokenizer {
    static BASE: OnceLock<TextTokenizer> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let path = crate::fixtures::case("encoders", "bert").join("tokenizer.json");
        TextTokenizer::from_file(&path, 16).expect("tokenizer")
    });
    base.clone().with_max_length(max_length).expect("max_length")
}

/// A SQuAD file built from hostile parts: contexts with multi-byte characters, answers at
/// random, huge or mid-character offsets, repeated ids, missing fields.
fn squad_like() -> impl Strategy<Value = Vec<u8>> {
    let answer = (".{0,6}", prop_oneof![0usize..40, Just(usize::MAX), Just(1 << 40)])
        .prop_map(|(text, start)| json!({"text": text, "answer_start": start}));
    let question = (
        "q[0-3]",
        ".{0,12}",
        proptest::collection::vec(answer, 0..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(id, question, answers, impossible, drop_answers)| {
            let mut q = json!({"id": id, "question": question, "is_impossible": impossible});
            if !drop_answers {
                q["answers"] = json!(answers);
            }
            q
        });
    let paragraph = ("[a-zé→ ]{0,40}", proptest::collection::vec(question, 0..4))
        .prop_map(|(context, qas)| json!({"context": context, "qas": qas}));
    let article = proptest::collection::vec(paragraph, 0..3)
        .prop_map(|paragraphs| json!({"title": "t", "paragraphs": paragraphs}));
    proptest::collection::vec(article, 0..3)
        .prop_map(|data| json!({"version": "v2.0", "data": data}).to_string().into_bytes())
}

proptest! {
    #[test]
    fn jsonl_classification_reader_returns_examples_or_a_typed_error(
        bytes in bytes_or(&["{\"text\": ", "\"a b\"", ", \"label\": ", "1", "\"pos\"", "null", "}", "\"text_pair\": ", "0.5", "[]"]),
    ) {
        thread_local!(static FILE: Scratch = Scratch::new("jsonl", "data.jsonl"));
        FILE.with(|file| -> Result<(), TestCaseError> {
            match read_classification(file.write(&bytes)) {
                Ok(examples) => prop_assert!(examples.len() <= bytes.len()),
                Err(err) => prop_assert!(typed(&err), "{err:?}"),
            }
            Ok(())
        })?;
    }

    #[test]
    fn csv_and_tsv_classification_readers_return_examples_or_a_typed_error(
        bytes in bytes_or(&["text", "label", "text_pair", "id", "\"a, b\"", "\"\"", "pos"]),
        tsv in any::<bool>(),
    ) {
        thread_local!(static FILES: (Scratch, Scratch) =
            (Scratch::new("csv", "data.csv"), Scratch::new("tsv", "data.tsv")));
        FILES.with(|(csv, tsv_file)| -> Result<(), TestCaseError> {
            let file = if tsv { tsv_file } else { csv };
            match read_classification(file.write(&bytes)) {
                Ok(examples) => prop_assert!(examples.len() <= bytes.len()),
                Err(err) => prop_assert!(typed(&err), "{err:?}"),
            }
            Ok(())
        })?;
    }

    #[test]
    fn conll_reader_returns_sentences_or_a_typed_error(
        bytes in bytes_or(&["EU", "B-ORG", "O", "I-person", " ", "-DOCSTART-", "NNP"]),
        tag_column in 0usize..5,
    ) {
        thread_local!(static FILE: Scratch = Scratch::new("conll", "ner.txt"));
        FILE.with(|file| -> Result<(), TestCaseError> {
            match read_conll(file.write(&bytes), tag_column) {
                Ok(sentences) => {
                    for s in &sentences {
                        prop_assert!(!s.tokens.is_empty() && s.tokens.len() == s.tags.len());
                    }
                }
                Err(err) => prop_assert!(typed(&err), "{err:?}"),
            }
            Ok(())
        })?;
    }

    #[test]
    fn squad_reader_returns_checked_answers_or_a_typed_error(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..1024),
            squad_like(),
        ],
    ) {
        thread_local!(static FILE: Scratch = Scratch::new("squad", "dev.json"));
        FILE.with(|file| -> Result<(), TestCaseError> {
            match read_squad(file.write(&bytes)) {
                Ok(examples) => {
                    for e in &examples {
                        for a in &e.answers {
                            let chars = a.text.chars().count();
                            let span: String =
                                e.context.chars().skip(a.answer_start).take(chars).collect();
                            prop_assert_eq!(&span, &a.text);
                        }
                    }
                }
                Err(err) => prop_assert!(typed(&err), "{err:?}"),
            }
            Ok(())
        })?;
    }

    #[test]
    fn lines_stay_under_their_byte_cap(
        bytes in proptest::collection::vec(prop_oneof![any::<u8>(), Just(b'\n'), Just(b'\r')], 0..512),
        cap in 0usize..64,
    ) {
        let path = Path::new("in.txt");
        for line in Lines::new(Cursor::new(bytes), path, cap) {
            match line {
                Ok((_, text)) => prop_assert!(text.len() <= cap),
                Err(err) => prop_assert!(typed(&err), "{err:?}"),
            }
        }
    }

    #[test]
    fn pre_tokenized_lines_parse_to_rows_inside_the_limits_or_a_typed_error(
        text in prop_oneof![4 => ids_line(), 1 => ".{0,80}"],
        limits in limits(),
        max_ids in prop_oneof![Just(MAX_IDS), 0usize..50],
    ) {
        let path = Path::new("in.jsonl");
        let row = JsonLine::parse(&text, 7, path, max_ids).and_then(|line| {
            let Some(ids) = line.token_ids(path, limits.as_ref())? else { return Ok(None) };
            let row = ids.unpadded(path, line.line)?;
            check_row(limits.as_ref(), &row, path, line.line)?;
            Ok(Some(row))
        });
        match row {
            Ok(Some(row)) => {
                prop_assert!(!row.input_ids.is_empty());
                prop_assert_eq!(row.input_ids.len(), row.token_type_ids.len());
                prop_assert_eq!(row.input_ids.len(), row.word_ids.len());
                let n = row.input_ids.len();
                prop_assert!(row.word_ids.iter().flatten().all(|&w| w < 48), "word ids index the row");
                if let Some(limits) = &limits {
                    prop_assert!(row.input_ids.iter().all(|&id| (id as usize) < limits.vocab_size));
                    prop_assert!(limits.max_tokens.is_none_or(|m| n <= m));
                    if let Some(types) = limits.type_vocab_size {
                        prop_assert!(row.token_type_ids.iter().all(|&t| (t as usize) < types));
                    }
                }
            }
            Ok(None) => {}
            Err(err) => prop_assert!(typed(&err), "{err:?}"),
        }
    }

    #[test]
    fn text_lines_tokenize_to_rows_inside_the_limits_or_a_typed_error(
        text in prop_oneof![".{0,200}", "[ \t\n]{0,50}[a-z]{0,10}", "(the |cat |##s |\u{0}|\u{200b}|é|→)*"],
        pair in prop::option::of(".{0,60}"),
        words in proptest::collection::vec("\\PC{0,8}", 0..12),
        max_length in 0usize..40,
        limits in limits(),
    ) {
        let path = Path::new("in.jsonl");
        let line = json!({"text": text, "text_pair": pair}).to_string();
        let parsed = JsonLine::parse(&line, 1, path, MAX_IDS).expect("a JSON object");
        let tokenizer = match max_length {
            0 | 1 => {
                let base = crate::fixtures::case("encoders", "bert").join("tokenizer.json");
                let err = TextTokenizer::from_file(&base, max_length).expect_err("too short");
                prop_assert!(typed(&err), "{err:?}");
                return Ok(());
            }
            n => tokenizer(n),
        };
        let text = parsed.text("text").unwrap_or_default();
        for encoded in [
            tokenizer.encode(text, parsed.text("text_pair")),
            tokenizer.encode_words(&words),
        ] {
            let row = encoded.and_then(|row| check_row(limits.as_ref(), &row, path, 1).map(|()| row));
            match row {
                Ok(row) => {
                    prop_assert!(!row.input_ids.is_empty() && row.input_ids.len() <= max_length);
                    if let Some(limits) = &limits {
                        prop_assert!(limits.max_tokens.is_none_or(|m| row.input_ids.len() <= m));
                    }
                }
                Err(err) => prop_assert!(typed(&err), "{err:?}"),
            }
        }
    }
}
