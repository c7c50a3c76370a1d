//! JSON-lines inputs of `pet predict`, `pet eval` and `pet encode`: one JSON object per line,
//! holding either text for the model's tokenizer (`text`, `text_pair`, `tokens`) or
//! pre-tokenized ids as transformers' tokenizers return them (`input_ids`, optional
//! `attention_mask`, `token_type_ids` and, for word-level tasks, `word_ids`: the word of each
//! token, `null` for special tokens), so that a model folder without `tokenizer.json` runs.
//!
//! The file is streamed ([`json_lines`]: one line at a time, at most
//! [`MAX_LINE_BYTES`](crate::data::MAX_LINE_BYTES) each). Id lists are parsed as they are read:
//! every id as a 64-bit integer that never wraps (an id past the model's vocabulary, or past
//! 32 bits, is an error naming the line), and at most [`MAX_IDS`] (or the model's
//! `max_tokens`, if larger) kept per list: a longer list is counted, not held, and refused as
//! longer than the model takes.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use pet_core::{InputLimits, InputViolation, PetError};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::data::Lines;
use crate::error::{NlpError, Result};
use crate::tokenize::Encoded;

/// The most ids of one list (`input_ids`, `attention_mask`, `token_type_ids`, `word_ids`) a
/// line keeps while it is parsed, unless the model takes more tokens: a longer list is counted
/// and refused.
pub const MAX_IDS: usize = 1 << 16;

/// The keys of the id lists, parsed as they are read.
const ID_KEYS: [&str; 4] = ["input_ids", "attention_mask", "token_type_ids", "word_ids"];

/// One non-blank line of a JSON-lines file.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonLine {
    /// One-based line number.
    pub line: usize,
    /// The line's object without its id lists (`input_ids`, `attention_mask`,
    /// `token_type_ids`, `word_ids`), which [`JsonLine::token_ids`] reads.
    pub value: Value,
    /// The id lists, as parsed.
    ids: [Option<IdList>; 4],
}

/// One id list as parsed: at most the cap of its values (`None` for `null`, which only
/// `word_ids` may hold), and the length of the whole list.
#[derive(Clone, Debug, PartialEq, Eq)]
struct IdList {
    kept: Vec<Option<u64>>,
    len: usize,
}

/// Pre-tokenized ids of one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenIds {
    /// Ids, types (all 0 when the line has no `token_type_ids`) and the line's `word_ids`
    /// (all `None` without them); no offsets.
    pub encoded: Encoded,
    /// The line's `attention_mask` (zeros and ones), when it has one.
    pub attention_mask: Option<Vec<u32>>,
}

/// The non-blank lines of the JSON-lines file at `path`, parsed one at a time; id lists are
/// kept up to [`MAX_IDS`] ids, or `limits.max_tokens` when larger.
///
/// # Errors
/// [`PetError::Io`] when the file cannot be opened; the iterator yields [`PetError::Data`]
/// naming the first line that is not a JSON object, not UTF-8 or too long, and then ends.
pub fn json_lines(path: &Path, limits: Option<&InputLimits>) -> Result<JsonLines> {
    let max_ids = MAX_IDS.max(limits.and_then(|l| l.max_tokens).unwrap_or(0));
    Ok(JsonLines { lines: Lines::open(path)?, path: path.to_path_buf(), max_ids, done: false })
}

/// The parsed lines of a JSON-lines file: see [`json_lines`].
#[derive(Debug)]
pub struct JsonLines {
    lines: Lines<BufReader<File>>,
    path: std::path::PathBuf,
    max_ids: usize,
    done: bool,
}

impl Iterator for JsonLines {
    type Item = Result<JsonLine>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        for line in self.lines.by_ref() {
            let parsed = match line {
                Ok((_, text)) if text.trim().is_empty() => continue,
                Ok((number, text)) => JsonLine::parse(&text, number, &self.path, self.max_ids),
                Err(err) => Err(err),
            };
            // The first error ends the lines.
            self.done = parsed.is_err();
            return Some(parsed);
        }
        None
    }
}

/// Whether the JSON-lines file at `path` holds pre-tokenized lines: its first non-blank line
/// has `input_ids`. Other files (CSV, TSV, SQuAD JSON, CoNLL, text lines, unreadable files)
/// answer `false`; only the first line is read.
pub fn is_pretokenized(path: &Path) -> bool {
    let is_jsonl = path.extension().is_some_and(|e| e == "jsonl" || e == "json");
    let first = || json_lines(path, None).ok()?.next()?.ok();
    is_jsonl && first().is_some_and(|line| line.ids[0].is_some())
}

/// What a serde_json error says, its position given as a column of the line.
fn json_reason(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match text.strip_suffix(&suffix) {
        Some(reason) => format!("{reason} (column {})", err.column()),
        None => text,
    }
}

impl JsonLine {
    /// Parses the text of line `line` of `path`: a JSON object whose id lists keep at most
    /// `max_ids` values each (longer ones are counted).
    ///
    /// # Errors
    /// [`PetError::Data`] naming the line when it is not one JSON object, or an id list holds
    /// something else than non-negative integers (`word_ids`: or `null`), or repeats.
    pub fn parse(text: &str, line: usize, path: &Path, max_ids: usize) -> Result<Self> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let parsed = LineSeed { max_ids }
            .deserialize(&mut deserializer)
            .and_then(|parsed| deserializer.end().map(|()| parsed));
        let (value, ids) = parsed.map_err(|e| {
            Self::error_at(path, line, format!("not a JSON object: {}", json_reason(&e)))
        })?;
        Ok(Self { line, value: Value::Object(value), ids })
    }

    fn error_at(path: &Path, line: usize, reason: impl Into<String>) -> NlpError {
        PetError::Data { path: path.to_path_buf(), line, reason: reason.into() }.into()
    }

    /// A [`PetError::Data`] for this line of `path`.
    pub fn error(&self, path: &Path, reason: impl Into<String>) -> NlpError {
        Self::error_at(path, self.line, reason)
    }

    /// A [`PetError::Input`] for this line of `path`.
    fn violation(&self, path: &Path, violation: InputViolation) -> NlpError {
        PetError::Input { path: path.to_path_buf(), line: self.line, violation }.into()
    }

    /// The string field `key`, if the line has one.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.value.get(key).and_then(Value::as_str)
    }

    /// The id list `key` as 32-bit values, each checked by `check(position, value)` first;
    /// values past 32 bits are refused.
    fn list(
        &self,
        path: &Path,
        key: usize,
        mut check: impl FnMut(usize, u64) -> Result<()>,
    ) -> Result<Option<Vec<Option<u32>>>> {
        let Some(list) = &self.ids[key] else { return Ok(None) };
        let name = ID_KEYS[key];
        list.kept
            .iter()
            .enumerate()
            .map(|(position, value)| match *value {
                None => Ok(None),
                Some(value) => {
                    check(position, value)?;
                    u32::try_from(value).map(Some).map_err(|_| {
                        self.error(
                            path,
                            format!(
                                "`{name}` holds {value} at position {position}, past the largest \
                                 value pet reads ({})",
                                u32::MAX
                            ),
                        )
                    })
                }
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// The line's pre-tokenized ids, or `None` when it has no `input_ids`. With `limits`, every
    /// id is checked against the vocabulary and every type against the type vocabulary (the
    /// length is checked by [`check_row`](crate::batch::check_row) on the row as used).
    ///
    /// # Errors
    /// [`PetError::Data`] when a list holds something else than non-negative integers, a value
    /// past 32 bits, an `attention_mask` value other than 0 and 1, a word index that no token
    /// can start, or the lists differ in length; [`PetError::Input`] for an id or type past the
    /// model's tables, or a list longer than the parse kept.
    pub fn token_ids(&self, path: &Path, limits: Option<&InputLimits>) -> Result<Option<TokenIds>> {
        let Some(list) = &self.ids[0] else { return Ok(None) };
        let n = list.len;
        if list.kept.len() < n {
            let violation = match limits.and_then(|l| l.check_len(n).err()) {
                Some(violation) => violation,
                None => {
                    let reason =
                        format!("`input_ids` holds {n} ids, more than the {MAX_IDS} pet reads");
                    return Err(self.error(path, reason));
                }
            };
            return Err(self.violation(path, violation));
        }
        let lengths = self.ids.iter().flatten().map(|l| l.len);
        if lengths.into_iter().any(|len| len != n) {
            return Err(self.error(
                path,
                "`input_ids`, `attention_mask`, `token_type_ids` and `word_ids` must have one length",
            ));
        }
        let vocab = |position, id| match limits {
            Some(l) if id >= l.vocab_size as u64 => Err(self.violation(
                path,
                InputViolation::TokenId { position, id, vocab_size: l.vocab_size },
            )),
            _ => Ok(()),
        };
        let types =
            |position, id| match limits.and_then(|l| l.type_vocab_size) {
                Some(type_vocab_size) if id >= type_vocab_size as u64 => Err(self
                    .violation(path, InputViolation::TokenType { position, id, type_vocab_size })),
                _ => Ok(()),
            };
        let mask = |position, value| match value {
            0 | 1 => Ok(()),
            other => Err(self.error(
                path,
                format!("`attention_mask` must hold 0 and 1, found {other} at position {position}"),
            )),
        };
        let words = |position, word: u64| match word < n as u64 {
            true => Ok(()),
            false => Err(self.error(
                path,
                format!(
                    "`word_ids` holds {word} at position {position}: a row of {n} tokens has at \
                     most {n} words"
                ),
            )),
        };
        let flat = |v: Vec<Option<u32>>| v.into_iter().map(Option::unwrap_or_default).collect();
        let input_ids: Vec<u32> = self.list(path, 0, vocab)?.map(flat).unwrap_or_default();
        let mask = self.list(path, 1, mask)?.map(flat);
        let types = self.list(path, 2, types)?.map_or_else(|| vec![0; n], flat);
        let word_ids = self.list(path, 3, words)?.unwrap_or_else(|| vec![None; n]);
        let encoded =
            Encoded { input_ids, token_type_ids: types, offsets: vec![(0, 0); n], word_ids };
        Ok(Some(TokenIds { encoded, attention_mask: mask }))
    }
}

impl TokenIds {
    /// The tokens without the padding at the end: the positions where `attention_mask` is 0.
    /// Padded again in a batch, they give the model the same input. A mask that is not ones
    /// followed by zeros (right padding) is refused.
    ///
    /// # Errors
    /// [`PetError::Data`] naming line `line` of `path` for such a mask.
    pub fn unpadded(self, path: &Path, line: usize) -> Result<Encoded> {
        let Some(mask) = &self.attention_mask else { return Ok(self.encoded) };
        let len = mask.iter().take_while(|&&m| m == 1).count();
        if mask[len..].iter().any(|&m| m != 0) {
            return Err(JsonLine::error_at(
                path,
                line,
                "`attention_mask` must be ones followed by zeros (padding on the right)",
            ));
        }
        let mut encoded = self.encoded;
        encoded.input_ids.truncate(len);
        encoded.token_type_ids.truncate(len);
        encoded.offsets.truncate(len);
        encoded.word_ids.truncate(len);
        Ok(encoded)
    }
}

/// Parses one line: the object's id lists through [`ListSeed`], every other field as a
/// [`Value`].
struct LineSeed {
    max_ids: usize,
}

impl<'de> DeserializeSeed<'de> for LineSeed {
    type Value = (Map<String, Value>, [Option<IdList>; 4]);

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LineSeed {
    type Value = (Map<String, Value>, [Option<IdList>; 4]);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Map::new();
        let mut ids: [Option<IdList>; 4] = Default::default();
        while let Some(key) = map.next_key::<String>()? {
            match ID_KEYS.iter().position(|k| *k == key) {
                Some(index) => {
                    if ids[index].is_some() {
                        return Err(de::Error::custom(format!("`{key}` appears twice")));
                    }
                    let seed =
                        ListSeed { key: ID_KEYS[index], nullable: index == 3, max: self.max_ids };
                    ids[index] = Some(map.next_value_seed(seed)?);
                }
                None => {
                    fields.insert(key, map.next_value()?);
                }
            }
        }
        Ok((fields, ids))
    }
}

/// Parses one id list, keeping at most `max` values and counting the rest.
struct ListSeed {
    key: &'static str,
    nullable: bool,
    max: usize,
}

impl ListSeed {
    fn expected(&self) -> String {
        match self.nullable {
            true => format!("`{}` must be a list of word indices or null", self.key),
            false => format!("`{}` must be a list of non-negative integers", self.key),
        }
    }
}

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = IdList;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<IdList, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = IdList;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.expected())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IdList, A::Error> {
        let mut kept = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max).min(1024));
        let mut len = 0;
        loop {
            if len < self.max {
                let element = ElementSeed { list: &self, position: len };
                match seq.next_element_seed(element)? {
                    Some(value) => kept.push(value),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            len += 1;
        }
        Ok(IdList { kept, len })
    }
}

/// Parses one value of an id list.
struct ElementSeed<'a> {
    list: &'a ListSeed,
    position: usize,
}

impl ElementSeed<'_> {
    fn refuse<E: de::Error>(&self, found: impl std::fmt::Display) -> E {
        E::custom(format!("{}, found {found} at position {}", self.list.expected(), self.position))
    }
}

impl<'de> DeserializeSeed<'de> for ElementSeed<'_> {
    type Value = Option<u64>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ElementSeed<'_> {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.list.expected())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Option<u64>, E> {
        Ok(Some(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Option<u64>, E> {
        u64::try_from(value).map(Some).map_err(|_| self.refuse(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Option<u64>, E> {
        Err(self.refuse(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
        match self.list.nullable {
            true => Ok(None),
            false => Err(self.refuse("null")),
        }
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Option<u64>, E> {
        Err(self.refuse(value))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Option<u64>, E> {
        Err(self.refuse("a string"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Option<u64>, A::Error> {
        Err(self.refuse("a list"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Option<u64>, A::Error> {
        Err(self.refuse("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(value: Value) -> JsonLine {
        JsonLine::parse(&value.to_string(), 3, Path::new("in.jsonl"), MAX_IDS).expect("parsed")
    }

    fn limits() -> InputLimits {
        InputLimits {
            vocab_size: 40,
            type_vocab_size: Some(2),
            max_tokens: Some(32),
            max_tokens_reason: "max_position_embeddings 32".into(),
        }
    }

    #[test]
    fn ids_lines_read_types_and_masks() {
        let path = Path::new("in.jsonl");
        let ids =
            line(serde_json::json!({"input_ids": [2, 7, 3, 0], "attention_mask": [1, 1, 1, 0]}))
                .token_ids(path, None)
                .expect("ids")
                .expect("some");
        assert_eq!(ids.encoded.token_type_ids, vec![0; 4]);
        assert_eq!(ids.clone().unpadded(path, 3).expect("unpadded").input_ids, vec![2, 7, 3]);
        let text = line(serde_json::json!({"text": "a"}));
        assert_eq!(text.token_ids(path, None).expect("no ids"), None);
        assert_eq!(text.text("text"), Some("a"));
    }

    #[test]
    fn bad_ids_lines_name_file_and_line() {
        let path = Path::new("in.jsonl");
        let err = JsonLine::parse(r#"{"input_ids": [2, -1]}"#, 3, path, MAX_IDS).expect_err("neg");
        assert!(err.to_string().contains("in.jsonl:3"), "{err}");
        assert!(
            err.to_string().contains(
                "`input_ids` must be a list of non-negative integers, found -1 at position 1"
            ),
            "{err}"
        );
        let short = line(serde_json::json!({"input_ids": [2, 3], "token_type_ids": [0]}));
        assert!(short.token_ids(path, None).is_err());
        let left = line(serde_json::json!({"input_ids": [0, 2], "attention_mask": [0, 1]}));
        let err = left.token_ids(path, None).expect("ids").expect("some").unpadded(path, 3);
        assert!(err.expect_err("left padding").to_string().contains("padding on the right"));
    }

    #[test]
    fn ids_past_32_bits_are_refused_not_wrapped() {
        let path = Path::new("in.jsonl");
        let wrap = line(serde_json::json!({"input_ids": [4294967297_u64, 2]}));
        let err = wrap.token_ids(path, None).expect_err("no wrap to 1");
        assert!(
            err.to_string().contains("in.jsonl:3: `input_ids` holds 4294967297 at position 0"),
            "{err}"
        );
        let err = wrap.token_ids(path, Some(&limits())).expect_err("past the vocabulary");
        assert!(
            matches!(
                &err,
                NlpError::Core(PetError::Input {
                    line: 3,
                    violation: InputViolation::TokenId { id: 4294967297, .. },
                    ..
                })
            ),
            "{err:?}"
        );
        let mask =
            line(serde_json::json!({"input_ids": [2, 3], "attention_mask": [4294967297_u64, 1]}));
        let err = mask.token_ids(path, None).expect_err("a mask of 2^32 + 1 is no 1");
        assert!(
            err.to_string().contains("`attention_mask` must hold 0 and 1, found 4294967297"),
            "{err}"
        );
        let mask = line(serde_json::json!({"input_ids": [2, 3], "attention_mask": [1, 7]}));
        let err = mask.token_ids(path, None).expect_err("7");
        assert!(err.to_string().contains("`attention_mask` must hold 0 and 1, found 7"), "{err}");
        let huge = JsonLine::parse(r#"{"input_ids": [18446744073709551616]}"#, 3, path, MAX_IDS);
        assert!(huge.expect_err("past 64 bits").to_string().contains("non-negative integers"));
    }

    #[test]
    fn ids_and_types_past_the_tables_are_input_errors() {
        let path = Path::new("in.jsonl");
        let types = line(serde_json::json!({"input_ids": [2, 3, 4], "token_type_ids": [0, 5, 0]}));
        let err = types.token_ids(path, Some(&limits())).expect_err("type 5");
        assert!(
            err.to_string().ends_with(
                "in.jsonl:3: token type id 5 at position 1 is outside type_vocab_size 2"
            ),
            "{err}"
        );
        assert!(types.token_ids(path, None).is_ok(), "without limits only the parse is checked");
    }

    #[test]
    fn long_lists_are_counted_not_kept() {
        let path = Path::new("in.jsonl");
        let ids: Vec<u32> = (0..100).map(|i| i % 7).collect();
        let text = serde_json::json!({"input_ids": ids}).to_string();
        let parsed = JsonLine::parse(&text, 3, path, 10).expect("parsed");
        assert_eq!(parsed.ids[0].as_ref().map(|l| (l.kept.len(), l.len)), Some((10, 100)));
        let err = parsed.token_ids(path, Some(&limits())).expect_err("100 > 32");
        assert!(err.to_string().contains("100 tokens, more than the 32 the model takes"), "{err}");
    }

    #[test]
    fn word_ids_past_the_row_and_repeated_lists_are_refused() {
        let path = Path::new("in.jsonl");
        let words =
            line(serde_json::json!({"input_ids": [2, 3], "word_ids": [null, 4000000000_u64]}));
        let err = words.token_ids(path, None).expect_err("word past the row");
        assert!(err.to_string().contains("a row of 2 tokens has at most 2 words"), "{err}");
        let twice = JsonLine::parse(r#"{"input_ids": [2], "input_ids": [3]}"#, 3, path, MAX_IDS);
        assert!(twice.expect_err("twice").to_string().contains("`input_ids` appears twice"));
        let null = line(serde_json::json!({"input_ids": [2, 3], "word_ids": [null, 0]}));
        let ids = null.token_ids(path, None).expect("ids").expect("some");
        assert_eq!(ids.encoded.word_ids, [None, Some(0)]);
        let null_id = JsonLine::parse(r#"{"input_ids": [null]}"#, 3, path, MAX_IDS);
        assert!(null_id.expect_err("null id").to_string().contains("found null at position 0"));
    }

    #[test]
    fn a_line_that_is_not_an_object_names_its_column() {
        let err = JsonLine::parse("[1, 2]", 3, Path::new("in.jsonl"), MAX_IDS).expect_err("list");
        let message = err.to_string();
        assert!(message.starts_with("in.jsonl:3: not a JSON object: invalid type"), "{message}");
        assert!(!message.contains("line 1"), "{message}");
    }
}
