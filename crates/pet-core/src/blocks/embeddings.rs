//! Token, position and token-type embeddings with their layer norm (Hugging Face's
//! `BertEmbeddings` and `RobertaEmbeddings`), and the input-prompt seam.

use burn::module::Module;
use burn::nn::{Dropout, Embedding};
use burn::tensor::{Int, Tensor, backend::Backend};
use pet_kernels::{LayerNorm, dropout};
use serde::{Deserialize, Serialize};

use crate::limits::{InputLimits, positions_left};
use crate::seam::PrefixPositions;

/// How absolute position ids are numbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PositionIds {
    /// `0, 1, 2, ...` (BERT).
    Absolute,
    /// RoBERTa's: real tokens count from `padding_idx + 1`, padding tokens take `padding_idx`.
    /// With an input prompt (Hugging Face's `inputs_embeds` path) every position counts from
    /// `padding_idx + 1`, padding included, as transformers does.
    PaddingOffset {
        /// Id of the padding token and of its position.
        padding_idx: usize,
    },
}

/// The embedding layer.
#[derive(Module, Debug)]
pub struct Embeddings<B: Backend> {
    /// `[vocab, hidden]`
    pub word_embeddings: Embedding<B>,
    /// `[max_positions, hidden]`
    pub position_embeddings: Embedding<B>,
    /// `[type_vocab, hidden]`, absent when the model has no token types.
    pub token_type_embeddings: Option<Embedding<B>>,
    /// Layer norm of the sum.
    pub layer_norm: LayerNorm<B>,
    /// Dropout after the norm.
    pub dropout: Dropout,
    /// Position numbering.
    #[module(skip)]
    pub position_ids: PositionIds,
    /// Position numbering under attention prefixes.
    #[module(skip)]
    pub prefix_positions: PrefixPositions,
    /// The padding token, whose word-embedding row gets no gradient (PyTorch's `padding_idx`).
    #[module(skip)]
    pub pad_token_id: Option<usize>,
}

/// `table[ids]`, with no gradient flowing into row `padding_idx`, as PyTorch's
/// `nn.Embedding(padding_idx=...)`: the row's value is used, never updated.
///
/// # Shapes
/// - `ids`: `[batch, seq]`; output: `[batch, seq, hidden]`
pub fn lookup<B: Backend>(
    table: &Embedding<B>,
    ids: Tensor<B, 2, Int>,
    padding_idx: Option<usize>,
) -> Tensor<B, 3> {
    let out = table.forward(ids.clone());
    match padding_idx {
        None => out,
        Some(pad) => {
            let [batch, seq, hidden] = out.dims();
            let is_pad =
                ids.equal_elem(pad as i64).unsqueeze_dim::<3>(2).expand([batch, seq, hidden]);
            out.clone().mask_where(is_pad, out.detach())
        }
    }
}

/// `x` plus the token-type embeddings of its positions: the first `prompt_len` (prompt
/// positions) take type 0, as PEFT pads `token_type_ids` with zeros, the tokens after them take
/// `token_type_ids`, or type 0 when it is absent.
///
/// # Shapes
/// - `x`: `[batch, n_prompt + seq, hidden]`; `token_type_ids`: `[batch, seq]`; output: as `x`
pub fn add_token_types<B: Backend>(
    x: Tensor<B, 3>,
    table: &Embedding<B>,
    token_type_ids: Option<Tensor<B, 2, Int>>,
    prompt_len: usize,
) -> Tensor<B, 3> {
    let [batch, total, _] = x.dims();
    let device = x.device();
    let ids = match token_type_ids {
        Some(ids) if prompt_len > 0 => {
            Tensor::cat(vec![Tensor::zeros([batch, prompt_len], &device), ids], 1)
        }
        Some(ids) => ids,
        None => Tensor::zeros([batch, total], &device),
    };
    x + table.forward(ids)
}

impl<B: Backend> Embeddings<B> {
    /// What one row may hold beside `prompt_len` prompt positions and `prefix_len` prefix keys:
    /// the rows of the word and token-type tables, and the positions left in the position
    /// table as [`Embeddings::forward`] numbers them (the prefix counts under
    /// [`PrefixPositions::Offset`], except for RoBERTa's numbering with a prompt, which starts
    /// at `padding_idx + 1` whatever the prefix; RoBERTa's real tokens start there too).
    pub fn input_limits(&self, prompt_len: usize, prefix_len: usize) -> InputLimits {
        let [rows, _] = self.position_embeddings.weight.dims();
        let past = match self.prefix_positions {
            PrefixPositions::Offset => prefix_len,
            PrefixPositions::FromZero => 0,
        };
        let (offset, past) = match self.position_ids {
            PositionIds::Absolute => (0, past),
            PositionIds::PaddingOffset { padding_idx } if prompt_len > 0 => (padding_idx + 1, 0),
            PositionIds::PaddingOffset { padding_idx } => (padding_idx + 1, past),
        };
        let (max_tokens, reason) = positions_left(rows, offset, prompt_len, past);
        InputLimits {
            vocab_size: self.word_embeddings.weight.dims()[0],
            type_vocab_size: self.token_type_embeddings.as_ref().map(|t| t.weight.dims()[0]),
            max_tokens: Some(max_tokens),
            max_tokens_reason: reason,
        }
    }

    /// Position ids of the tokens.
    ///
    /// # Shapes
    /// - `input_ids`: `[batch, seq]`; output: `[batch or 1, n_prompt + seq]`
    fn positions(
        &self,
        input_ids: &Tensor<B, 2, Int>,
        prompt_len: usize,
        prefix_len: usize,
    ) -> Tensor<B, 2, Int> {
        let [_, seq] = input_ids.dims();
        let device = input_ids.device();
        let past = match self.prefix_positions {
            PrefixPositions::Offset => prefix_len,
            PrefixPositions::FromZero => 0,
        } as i64;
        let total = (prompt_len + seq) as i64;
        match self.position_ids {
            PositionIds::Absolute => Tensor::arange(past..past + total, &device).unsqueeze::<2>(),
            PositionIds::PaddingOffset { padding_idx } if prompt_len > 0 => {
                let first = padding_idx as i64 + 1;
                Tensor::arange(first..first + total, &device).unsqueeze::<2>()
            }
            PositionIds::PaddingOffset { padding_idx } => {
                // (cumsum(mask) + past) * mask + padding_idx
                let mask = input_ids.clone().not_equal_elem(padding_idx as i64).int();
                (mask.clone().cumsum(1) + past) * mask + padding_idx as i64
            }
        }
    }

    /// Embeds `input_ids`, with `prompt` placed in front.
    ///
    /// # Shapes
    /// - `input_ids`, `token_type_ids`: `[batch, seq]`
    /// - `prompt`: `[batch, n_prompt, hidden]`
    /// - output: `[batch, n_prompt + seq, hidden]`
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Option<Tensor<B, 2, Int>>,
        prompt: Option<Tensor<B, 3>>,
        prefix_len: usize,
    ) -> Tensor<B, 3> {
        let prompt_len = prompt.as_ref().map_or(0, |p| p.dims()[1]);
        let positions = self.positions(&input_ids, prompt_len, prefix_len);
        // [batch, n_prompt + seq, hidden]
        let words = lookup(&self.word_embeddings, input_ids, self.pad_token_id);
        let mut x = match prompt {
            Some(prompt) => Tensor::cat(vec![prompt, words], 1),
            None => words,
        };
        let position_padding = match self.position_ids {
            PositionIds::PaddingOffset { padding_idx } => Some(padding_idx),
            PositionIds::Absolute => None,
        };
        x = x + lookup(&self.position_embeddings, positions, position_padding);
        if let Some(types) = &self.token_type_embeddings {
            x = add_token_types(x, types, token_type_ids, prompt_len);
        }
        dropout(self.layer_norm.forward(x), self.dropout.prob)
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{DropoutConfig, EmbeddingConfig};

    use super::*;
    use crate::testing::TestInner as B;

    fn embeddings(position_ids: PositionIds, prefix_positions: PrefixPositions) -> Embeddings<B> {
        let device = Default::default();
        Embeddings {
            word_embeddings: EmbeddingConfig::new(10, 4).init(&device),
            position_embeddings: EmbeddingConfig::new(12, 4).init(&device),
            token_type_embeddings: Some(EmbeddingConfig::new(2, 4).init(&device)),
            layer_norm: LayerNorm::new(4, 1e-12, &device),
            dropout: DropoutConfig::new(0.0).init(),
            position_ids,
            prefix_positions,
            pad_token_id: Some(1),
        }
    }

    /// The largest position id `forward` reads for a row of `seq` tokens (none of them padding).
    fn last_position(e: &Embeddings<B>, seq: usize, prompt: usize, prefix: usize) -> i64 {
        let ids = Tensor::<B, 2, Int>::full([1, seq], 3, &Default::default());
        e.positions(&ids, prompt, prefix).max().into_scalar().into()
    }

    #[test]
    fn input_limits_leave_exactly_the_last_position_row_to_the_last_token() {
        let roberta = PositionIds::PaddingOffset { padding_idx: 1 };
        for position_ids in [PositionIds::Absolute, roberta] {
            for policy in [PrefixPositions::Offset, PrefixPositions::FromZero] {
                let e = embeddings(position_ids, policy);
                for (prompt, prefix) in [(0, 0), (3, 0), (0, 4), (2, 3)] {
                    let limits = e.input_limits(prompt, prefix);
                    let max = limits.max_tokens.expect("a position table bounds the length");
                    let last = last_position(&e, max, prompt, prefix);
                    assert_eq!(
                        last, 11,
                        "{position_ids:?} {policy:?} prompt {prompt} prefix {prefix}"
                    );
                }
            }
        }
    }

    #[test]
    fn input_limits_report_the_tables_and_the_roberta_offset() {
        let bert = embeddings(PositionIds::Absolute, PrefixPositions::Offset).input_limits(0, 0);
        assert_eq!(
            (bert.vocab_size, bert.type_vocab_size, bert.max_tokens),
            (10, Some(2), Some(12))
        );
        let roberta = PositionIds::PaddingOffset { padding_idx: 1 };
        let limits = embeddings(roberta, PrefixPositions::Offset).input_limits(0, 4);
        assert_eq!(limits.max_tokens, Some(6));
        assert!(
            limits.max_tokens_reason.contains("padding_idx + 1) 2 less 4 prefix"),
            "{limits:?}"
        );
    }
}
