//! What a backbone can take in: [`InputLimits`], reported by the backbone for the delta it runs
//! with ([`Backbone::input_limits`](crate::Backbone::input_limits)), and the check of one input
//! row against them ([`InputViolation`]).
//!
//! A text encoder looks its inputs up in tables: token ids in the word embeddings, token type
//! ids in the token-type embeddings, positions in the absolute position table. An index past a
//! table is a panic deep in the backend ("index 999 out of bounds"), and an empty row breaks
//! shape code, so the readers of input files check every row against the limits before it
//! becomes a tensor and name the file and the line of a row that does not fit
//! ([`PetError::Input`](crate::PetError::Input)). Options that size rows (`max_length`) are
//! checked against the same limits ([`InputLimits::check_max_length`]).

use crate::error::PetError;

/// The sizes of the lookup tables of a backbone run with one delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputLimits {
    /// Rows of the word-embedding table: token ids are `0..vocab_size`.
    pub vocab_size: usize,
    /// Rows of the token-type table, or `None` when the backbone embeds no token types (it
    /// does not read token type ids).
    pub type_vocab_size: Option<usize>,
    /// The most tokens one row may hold: the positions left to input tokens once the delta's
    /// prompt (and, where real tokens are numbered after it, prefix) positions are taken, less
    /// any offset of the numbering (RoBERTa's `padding_idx + 1`). `None` when nothing bounds it.
    pub max_tokens: Option<usize>,
    /// How `max_tokens` comes about, for messages: `max_position_embeddings 32 less 8 prompt
    /// positions`.
    pub max_tokens_reason: String,
}

/// Why one input row does not fit a backbone's [`InputLimits`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputViolation {
    /// The row holds no token.
    #[error("the row holds no token")]
    Empty,
    /// A token id past the word-embedding table.
    #[error(
        "token id {id} at position {position} is outside the vocabulary of {vocab_size} ids (0 to {})",
        vocab_size.saturating_sub(1)
    )]
    TokenId {
        /// Zero-based position of the token in the row.
        position: usize,
        /// The id.
        id: u64,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// A token type id past the token-type table.
    #[error(
        "token type id {id} at position {position} is outside type_vocab_size {type_vocab_size}"
    )]
    TokenType {
        /// Zero-based position of the token in the row.
        position: usize,
        /// The type id.
        id: u64,
        /// The number of token types.
        type_vocab_size: usize,
    },
    /// More tokens than the model has positions for.
    #[error("{len} tokens, more than the {max_tokens} the model takes ({reason})")]
    TooLong {
        /// Tokens in the row.
        len: usize,
        /// The most the model takes.
        max_tokens: usize,
        /// How that limit comes about.
        reason: String,
    },
}

impl InputLimits {
    /// Limits that bound nothing but the vocabulary (a backbone without position or type
    /// tables).
    pub fn vocabulary(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            type_vocab_size: None,
            max_tokens: None,
            max_tokens_reason: String::new(),
        }
    }

    /// Checks one row: at least one token, at most [`InputLimits::max_tokens`], every id below
    /// `vocab_size` and, when the backbone reads them, every type below `type_vocab_size`.
    ///
    /// # Errors
    /// The first violation, in that order.
    pub fn check(
        &self,
        input_ids: &[u32],
        token_type_ids: Option<&[u32]>,
    ) -> Result<(), InputViolation> {
        if input_ids.is_empty() {
            return Err(InputViolation::Empty);
        }
        self.check_len(input_ids.len())?;
        if let Some((position, &id)) =
            input_ids.iter().enumerate().find(|(_, id)| **id as usize >= self.vocab_size)
        {
            let vocab_size = self.vocab_size;
            return Err(InputViolation::TokenId { position, id: id.into(), vocab_size });
        }
        if let (Some(types), Some(type_vocab_size)) = (token_type_ids, self.type_vocab_size)
            && let Some((position, &id)) =
                types.iter().enumerate().find(|(_, ty)| **ty as usize >= type_vocab_size)
        {
            return Err(InputViolation::TokenType { position, id: id.into(), type_vocab_size });
        }
        Ok(())
    }

    /// Checks that a row of `len` tokens fits the positions.
    ///
    /// # Errors
    /// [`InputViolation::TooLong`] past [`InputLimits::max_tokens`].
    pub fn check_len(&self, len: usize) -> Result<(), InputViolation> {
        match self.max_tokens {
            Some(max_tokens) if len > max_tokens => Err(InputViolation::TooLong {
                len,
                max_tokens,
                reason: self.max_tokens_reason.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Checks a task's `max_length` (tokens per input, special tokens included): at least 1,
    /// and no more than [`InputLimits::max_tokens`].
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for field `max_length`, naming the limit.
    pub fn check_max_length(&self, max_length: usize) -> Result<(), PetError> {
        check_max_length_at_least_one(max_length)?;
        match self.max_tokens {
            Some(max_tokens) if max_length > max_tokens => Err(PetError::config(
                "max_length",
                format!(
                    "{max_length} is more than the {max_tokens} tokens the model takes ({})",
                    self.max_tokens_reason
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Checks that `max_length` is at least 1: a row of no token cannot be encoded.
///
/// # Errors
/// [`PetError::InvalidConfig`] for field `max_length`.
pub fn check_max_length_at_least_one(max_length: usize) -> Result<(), PetError> {
    match max_length {
        0 => Err(PetError::config("max_length", "must be at least 1 token")),
        _ => Ok(()),
    }
}

/// The positions left to input tokens of a table of `rows` absolute positions: `rows` less
/// `offset` (positions the numbering skips, such as RoBERTa's `padding_idx + 1`), `prompt`
/// positions and `prefix` positions, with the reason spelled out.
pub fn positions_left(rows: usize, offset: usize, prompt: usize, prefix: usize) -> (usize, String) {
    let mut reason = format!("max_position_embeddings {rows}");
    for (n, what) in [
        (offset, "the position offset (padding_idx + 1)"),
        (prompt, "prompt positions"),
        (prefix, "prefix positions, which real tokens are numbered after"),
    ] {
        if n > 0 {
            let what = match what.starts_with("the") {
                true => format!(" less {what} {n}"),
                false => format!(" less {n} {what}"),
            };
            reason.push_str(&what);
        }
    }
    (rows.saturating_sub(offset + prompt + prefix), reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bert_like() -> InputLimits {
        let (max_tokens, reason) = positions_left(32, 0, 4, 0);
        InputLimits {
            vocab_size: 40,
            type_vocab_size: Some(2),
            max_tokens: Some(max_tokens),
            max_tokens_reason: reason,
        }
    }

    #[test]
    fn ids_types_and_lengths_inside_the_tables_pass() {
        let limits = bert_like();
        assert_eq!(limits.check(&[2, 39, 3], Some(&[0, 1, 1])), Ok(()));
        assert_eq!(limits.check(&[1; 28], None), Ok(()));
    }

    #[test]
    fn the_first_violation_names_position_value_and_limit() {
        let limits = bert_like();
        assert_eq!(limits.check(&[], None), Err(InputViolation::Empty));
        let err = limits.check(&[1, 2, 999], None).expect_err("999 is past 40 ids");
        assert_eq!(err, InputViolation::TokenId { position: 2, id: 999, vocab_size: 40 });
        assert!(err.to_string().contains("vocabulary of 40 ids (0 to 39)"), "{err}");
        let err = limits.check(&[1, 2, 3], Some(&[0, 5, 0])).expect_err("type 5");
        assert_eq!(err, InputViolation::TokenType { position: 1, id: 5, type_vocab_size: 2 });
        let err = limits.check(&[1; 29], None).expect_err("29 > 32 - 4");
        assert!(
            err.to_string()
                .contains("29 tokens, more than the 28 the model takes (max_position_embeddings 32 less 4 prompt positions)"),
            "{err}"
        );
    }

    #[test]
    fn types_are_not_checked_without_a_type_table() {
        let limits = InputLimits { type_vocab_size: None, ..bert_like() };
        assert_eq!(limits.check(&[1], Some(&[7])), Ok(()));
    }

    #[test]
    fn max_length_is_at_least_one_and_within_the_positions() {
        let limits = bert_like();
        assert!(limits.check_max_length(28).is_ok());
        let zero = limits.check_max_length(0).expect_err("0");
        assert!(zero.to_string().contains("`max_length`: must be at least 1"), "{zero}");
        let long = limits.check_max_length(29).expect_err("29");
        assert!(long.to_string().contains("29 is more than the 28 tokens"), "{long}");
        assert!(InputLimits::vocabulary(5).check_max_length(100_000).is_ok());
    }

    #[test]
    fn positions_left_subtracts_offset_prompt_and_prefix() {
        let (n, reason) = positions_left(514, 2, 0, 16);
        assert_eq!(n, 496);
        assert_eq!(
            reason,
            "max_position_embeddings 514 less the position offset (padding_idx + 1) 2 less 16 \
             prefix positions, which real tokens are numbered after"
        );
        assert_eq!(positions_left(8, 2, 10, 0).0, 0);
    }
}
