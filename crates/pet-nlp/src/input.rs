//! JSON-lines inputs of `pet predict`, `pet eval` and `pet encode`: one JSON object per line,
//! holding either text for the model's tokenizer (`text`, `text_pair`, `tokens`) or
//! pre-tokenized ids as transformers' tokenizers return them (`input_ids`, optional
//! `attention_mask`, `token_type_ids` and, for word-level tasks, `word_ids`: the word of each
//! token, `null` for special tokens), so that a model folder without `tokenizer.json` runs.

use std::path::Path;

use pet_core::PetError;
use serde_json::Value;

use crate::error::{NlpError, Result};
use crate::tokenize::Encoded;

/// One non-blank line of a JSON-lines file.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonLine {
    /// One-based line number.
    pub line: usize,
    /// The line's value.
    pub value: Value,
}

/// Pre-tokenized ids of one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenIds {
    /// Ids, types (all 0 when the line has no `token_type_ids`) and the line's `word_ids`
    /// (all `None` without them); no offsets.
    pub encoded: Encoded,
    /// The line's `attention_mask`, when it has one.
    pub attention_mask: Option<Vec<u32>>,
}

/// Every non-blank line of the JSON-lines file at `path`.
///
/// # Errors
/// [`PetError::Io`] when the file cannot be read, [`PetError::Data`] naming the first line that
/// is not JSON.
pub fn read_json_lines(path: &Path) -> Result<Vec<JsonLine>> {
    let text = std::fs::read_to_string(path).map_err(|e| PetError::io(path, e))?;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(line)
            .map_err(|e| JsonLine::error_at(path, index + 1, format!("not a JSON object: {e}")))?;
        lines.push(JsonLine { line: index + 1, value });
    }
    Ok(lines)
}

/// Whether the JSON-lines file at `path` holds pre-tokenized lines: its first line has
/// `input_ids`. Other files (CSV, TSV, SQuAD JSON, CoNLL, text lines) answer `false`.
pub fn is_pretokenized(path: &Path) -> bool {
    let is_jsonl = path.extension().is_some_and(|e| e == "jsonl" || e == "json");
    let first = || read_json_lines(path).ok()?.into_iter().next();
    is_jsonl && first().is_some_and(|line| line.value.get("input_ids").is_some())
}

impl JsonLine {
    fn error_at(path: &Path, line: usize, reason: impl Into<String>) -> NlpError {
        PetError::Data { path: path.to_path_buf(), line, reason: reason.into() }.into()
    }

    /// A [`PetError::Data`] for this line of `path`.
    pub fn error(&self, path: &Path, reason: impl Into<String>) -> NlpError {
        Self::error_at(path, self.line, reason)
    }

    /// The string field `key`, if the line has one.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.value.get(key).and_then(Value::as_str)
    }

    /// The list of non-negative integers `key`, if the line has one.
    fn ids(&self, path: &Path, key: &str) -> Result<Option<Vec<u32>>> {
        let Some(items) = self.value.get(key) else { return Ok(None) };
        items
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_u64().map(|v| v as u32)).collect::<Option<_>>())
            .map(Some)
            .ok_or_else(|| {
                self.error(path, format!("`{key}` must be a list of non-negative integers"))
            })
    }

    /// The line's `word_ids` (non-negative integers or `null`), if it has them.
    fn word_ids(&self, path: &Path) -> Result<Option<Vec<Option<u32>>>> {
        let Some(items) = self.value.get("word_ids") else { return Ok(None) };
        let word = |v: &Value| match v {
            Value::Null => Some(None),
            other => other.as_u64().map(|w| Some(w as u32)),
        };
        items
            .as_array()
            .and_then(|a| a.iter().map(word).collect::<Option<Vec<_>>>())
            .map(Some)
            .ok_or_else(|| self.error(path, "`word_ids` must be a list of word indices or null"))
    }

    /// The line's pre-tokenized ids, or `None` when it has no `input_ids`.
    ///
    /// # Errors
    /// [`PetError::Data`] when a list holds something else than non-negative integers, or the
    /// lists differ in length.
    pub fn token_ids(&self, path: &Path) -> Result<Option<TokenIds>> {
        let Some(input_ids) = self.ids(path, "input_ids")? else { return Ok(None) };
        let n = input_ids.len();
        let types = self.ids(path, "token_type_ids")?.unwrap_or_else(|| vec![0; n]);
        let mask = self.ids(path, "attention_mask")?;
        let word_ids = self.word_ids(path)?.unwrap_or_else(|| vec![None; n]);
        if types.len() != n || mask.as_ref().is_some_and(|m| m.len() != n) || word_ids.len() != n {
            return Err(self.error(
                path,
                "`input_ids`, `attention_mask`, `token_type_ids` and `word_ids` must have one length",
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(value: Value) -> JsonLine {
        JsonLine { line: 3, value }
    }

    #[test]
    fn ids_lines_read_types_and_masks() {
        let path = Path::new("in.jsonl");
        let ids =
            line(serde_json::json!({"input_ids": [2, 7, 3, 0], "attention_mask": [1, 1, 1, 0]}))
                .token_ids(path)
                .expect("ids")
                .expect("some");
        assert_eq!(ids.encoded.token_type_ids, vec![0; 4]);
        assert_eq!(ids.clone().unpadded(path, 3).expect("unpadded").input_ids, vec![2, 7, 3]);
        let text = line(serde_json::json!({"text": "a"}));
        assert_eq!(text.token_ids(path).expect("no ids"), None);
    }

    #[test]
    fn bad_ids_lines_name_file_and_line() {
        let path = Path::new("in.jsonl");
        let err = line(serde_json::json!({"input_ids": [2, -1]})).token_ids(path).expect_err("neg");
        assert!(err.to_string().contains("in.jsonl:3"), "{err}");
        let short = line(serde_json::json!({"input_ids": [2, 3], "token_type_ids": [0]}));
        assert!(short.token_ids(path).is_err());
        let left = line(serde_json::json!({"input_ids": [0, 2], "attention_mask": [0, 1]}));
        let err = left.token_ids(path).expect("ids").expect("some").unpadded(path, 3);
        assert!(err.expect_err("left padding").to_string().contains("padding on the right"));
    }
}
