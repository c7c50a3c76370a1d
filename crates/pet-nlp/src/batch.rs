//! Padding encoded inputs into a batch of tensors for the encoder, and the check every row
//! passes before it is batched ([`check_row`]): a row the model cannot embed is an error
//! naming its file and line, not an index panic in the backend.

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use pet_core::blocks::EncoderInput;
use pet_core::{InputLimits, InputViolation, PetError};

use crate::error::Result;
use crate::tokenize::Encoded;

/// Checks one row, as it will be batched, against the model's `limits` (when known): at
/// least one token, at most `max_tokens`, ids inside the vocabulary and types inside the type
/// vocabulary. Without limits only the empty row is refused.
///
/// # Errors
/// [`PetError::Input`] naming line `line` of `path` and the limit.
pub fn check_row(
    limits: Option<&InputLimits>,
    row: &Encoded,
    path: &Path,
    line: usize,
) -> Result<()> {
    let checked = match limits {
        Some(limits) => limits.check(&row.input_ids, Some(&row.token_type_ids)),
        None if row.input_ids.is_empty() => Err(InputViolation::Empty),
        None => Ok(()),
    };
    checked
        .map_err(|violation| PetError::Input { path: path.to_path_buf(), line, violation }.into())
}

/// Encoded inputs padded to the longest one.
#[derive(Clone, Debug, PartialEq)]
pub struct PaddedBatch {
    /// Rows.
    pub batch: usize,
    /// Length of the longest row.
    pub seq: usize,
    /// `[batch * seq]`, padded with the tokenizer's pad id.
    pub input_ids: Vec<i64>,
    /// `[batch * seq]`, 0 on padding.
    pub token_type_ids: Vec<i64>,
    /// `[batch * seq]`, 1.0 on tokens and 0.0 on padding.
    pub attention_mask: Vec<f32>,
}

impl PaddedBatch {
    /// Pads `rows` to the longest with `pad_id`.
    pub fn new(rows: &[&Encoded], pad_id: u32) -> Self {
        let batch = rows.len();
        let seq = rows.iter().map(|r| r.input_ids.len()).max().unwrap_or(0);
        let mut out = Self {
            batch,
            seq,
            input_ids: vec![pad_id as i64; batch * seq],
            token_type_ids: vec![0; batch * seq],
            attention_mask: vec![0.0; batch * seq],
        };
        for (row, encoded) in rows.iter().enumerate() {
            for (col, (&id, &ty)) in
                encoded.input_ids.iter().zip(&encoded.token_type_ids).enumerate()
            {
                let at = row * seq + col;
                out.input_ids[at] = id as i64;
                out.token_type_ids[at] = ty as i64;
                out.attention_mask[at] = 1.0;
            }
        }
        out
    }

    /// The batch as encoder input on `device`.
    pub fn to_input<B: Backend>(&self, device: &B::Device) -> EncoderInput<B> {
        let shape = [self.batch, self.seq];
        let ints = |v: &Vec<i64>| {
            Tensor::<B, 2, Int>::from_data(TensorData::new(v.clone(), shape), device)
        };
        EncoderInput {
            input_ids: ints(&self.input_ids),
            attention_mask: Tensor::from_data(
                TensorData::new(self.attention_mask.clone(), shape),
                device,
            ),
            token_type_ids: Some(ints(&self.token_type_ids)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_past_the_limits_name_file_line_and_limit() {
        let limits = InputLimits {
            vocab_size: 40,
            type_vocab_size: Some(2),
            max_tokens: Some(4),
            max_tokens_reason: "max_position_embeddings 4".into(),
        };
        let row = |ids: Vec<u32>| Encoded {
            token_type_ids: vec![0; ids.len()],
            offsets: vec![],
            word_ids: vec![],
            input_ids: ids,
        };
        let path = Path::new("in.jsonl");
        assert!(check_row(Some(&limits), &row(vec![2, 39, 3]), path, 7).is_ok());
        let err = check_row(Some(&limits), &row(vec![2, 40]), path, 7).expect_err("40");
        assert!(err.to_string().starts_with("in.jsonl:7: token id 40 at position 1"), "{err}");
        let err = check_row(Some(&limits), &row(vec![1; 5]), path, 7).expect_err("5 > 4");
        assert!(err.to_string().contains("5 tokens, more than the 4"), "{err}");
        let err = check_row(None, &row(vec![]), path, 7).expect_err("empty");
        assert!(err.to_string().ends_with("in.jsonl:7: the row holds no token"), "{err}");
    }

    #[test]
    fn rows_pad_to_the_longest_with_the_pad_id() {
        let a = Encoded {
            input_ids: vec![2, 5, 3],
            token_type_ids: vec![0, 0, 0],
            offsets: vec![],
            word_ids: vec![],
        };
        let b = Encoded {
            input_ids: vec![2, 3],
            token_type_ids: vec![0, 1],
            offsets: vec![],
            word_ids: vec![],
        };
        let batch = PaddedBatch::new(&[&a, &b], 0);
        assert_eq!((batch.batch, batch.seq), (2, 3));
        assert_eq!(batch.input_ids, vec![2, 5, 3, 2, 3, 0]);
        assert_eq!(batch.token_type_ids, vec![0, 0, 0, 0, 1, 0]);
        assert_eq!(batch.attention_mask, vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    }
}
