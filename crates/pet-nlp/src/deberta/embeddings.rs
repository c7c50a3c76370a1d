//! DeBERTa-v2's embedding layer (transformers' `DebertaV2Embeddings`): word embeddings,
//! optional absolute positions (`position_biased_input`) and token types, layer norm, then the
//! hidden states of padding positions set to zero; with the input-prompt seam.

use burn::module::Module;
use burn::nn::{Dropout, Embedding};
use burn::tensor::{Int, Tensor, backend::Backend};
use pet_core::blocks::embeddings::{add_token_types, lookup};
use pet_core::limits::positions_left;
use pet_core::{InputLimits, PrefixPositions};
use pet_kernels::LayerNorm;
use pet_kernels::dropout;

/// The embedding layer (`embeddings.*`).
#[derive(Module, Debug)]
pub struct DebertaEmbeddings<B: Backend> {
    /// `[vocab, hidden]`
    pub word_embeddings: Embedding<B>,
    /// `[max_positions, hidden]`, present with `position_biased_input`.
    pub position_embeddings: Option<Embedding<B>>,
    /// `[type_vocab, hidden]`, present when `type_vocab_size > 0`.
    pub token_type_embeddings: Option<Embedding<B>>,
    /// Layer norm of the sum (`embeddings.LayerNorm`).
    pub layer_norm: LayerNorm<B>,
    /// Dropout after the mask.
    pub dropout: Dropout,
    /// The padding token, whose word-embedding row gets no gradient (PyTorch's `padding_idx`).
    #[module(skip)]
    pub pad_token_id: Option<usize>,
    /// Absolute position numbering under attention prefixes (with `position_biased_input`).
    #[module(skip)]
    pub prefix_positions: PrefixPositions,
}

impl<B: Backend> DebertaEmbeddings<B> {
    /// What one row may hold beside `prompt_len` prompt positions and `prefix_len` prefix keys.
    ///
    /// With `position_biased_input` the absolute table bounds the row as [`Self::forward`]
    /// numbers it (prompt first, after the prefix under [`PrefixPositions::Offset`]). Without
    /// it (DeBERTa-v3) no table is indexed by position: relative positions are log-bucketed
    /// and clamped to the relative span, so any length embeds. The row is then bounded by
    /// `max_position_embeddings` (`trained`), the range the checkpoint was trained on and
    /// transformers' tokenizers truncate to, less the prompt positions, which take relative
    /// positions too; prefix keys take none. Without that bound a pre-tokenized row could ask
    /// for attention scores quadratic in any length.
    pub fn input_limits(
        &self,
        prompt_len: usize,
        prefix_len: usize,
        trained: usize,
    ) -> InputLimits {
        let (max_tokens, reason) = match &self.position_embeddings {
            Some(table) => {
                let past = match self.prefix_positions {
                    PrefixPositions::Offset => prefix_len,
                    PrefixPositions::FromZero => 0,
                };
                positions_left(table.weight.dims()[0], 0, prompt_len, past)
            }
            None => {
                let (n, reason) = positions_left(trained, 0, prompt_len, 0);
                let reason = format!(
                    "{reason}; without position_biased_input the length is bounded by the \
                     range the model was trained on"
                );
                (n, reason)
            }
        };
        InputLimits {
            vocab_size: self.word_embeddings.weight.dims()[0],
            type_vocab_size: self.token_type_embeddings.as_ref().map(|t| t.weight.dims()[0]),
            max_tokens: Some(max_tokens),
            max_tokens_reason: reason,
        }
    }

    /// Embeds `input_ids` with `prompt` in front.
    ///
    /// Absolute positions count over prompt and tokens (transformers' `inputs_embeds` path,
    /// which PEFT's prompt tuning takes), from `prefix_len` under
    /// [`PrefixPositions::Offset`] (P-Tuning v2's DeBERTa-v2, which passes the past length to its
    /// embeddings) or from 0 under [`PrefixPositions::FromZero`]. Prompt positions take token
    /// type 0.
    ///
    /// # Shapes
    /// - `input_ids`, `token_type_ids`: `[batch, seq]`
    /// - `prompt`: `[batch, n_prompt, hidden]`
    /// - `mask`: `[batch, n_prompt + seq]`, 1.0 for positions to keep
    /// - output: `[batch, n_prompt + seq, hidden]`
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Option<Tensor<B, 2, Int>>,
        prompt: Option<Tensor<B, 3>>,
        mask: Tensor<B, 2>,
        prefix_len: usize,
    ) -> Tensor<B, 3> {
        let [batch, _] = input_ids.dims();
        let device = input_ids.device();
        let prompt_len = prompt.as_ref().map_or(0, |p| p.dims()[1]);
        // [batch, seq, hidden]
        let words = lookup(&self.word_embeddings, input_ids, self.pad_token_id);
        // [batch, n_prompt + seq, hidden]
        let mut x = match prompt {
            Some(prompt) => Tensor::cat(vec![prompt, words], 1),
            None => words,
        };
        let [_, total, hidden] = x.dims();
        if let Some(positions) = &self.position_embeddings {
            let past = match self.prefix_positions {
                PrefixPositions::Offset => prefix_len as i64,
                PrefixPositions::FromZero => 0,
            };
            let ids = Tensor::<B, 1, Int>::arange(past..past + total as i64, &device);
            let ids = ids.unsqueeze::<2>();
            x = x + positions.forward(ids);
        }
        if let Some(types) = &self.token_type_embeddings {
            x = add_token_types(x, types, token_type_ids, prompt_len);
        }
        // [batch, n_prompt + seq, hidden], padding positions zeroed
        let x =
            self.layer_norm.forward(x) * mask.unsqueeze_dim::<3>(2).expand([batch, total, hidden]);
        dropout(x, self.dropout.prob)
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{DropoutConfig, EmbeddingConfig};

    use super::*;

    type B = burn::backend::Flex;

    #[test]
    fn padding_positions_embed_to_zero_and_prompts_come_first() {
        let device = Default::default();
        let embeddings = DebertaEmbeddings::<B> {
            word_embeddings: EmbeddingConfig::new(10, 4).init(&device),
            position_embeddings: Some(EmbeddingConfig::new(8, 4).init(&device)),
            token_type_embeddings: None,
            layer_norm: LayerNorm::new(4, 1e-5, &device),
            dropout: DropoutConfig::new(0.0).init(),
            pad_token_id: Some(0),
            prefix_positions: PrefixPositions::Offset,
        };
        let ids = Tensor::<B, 2, Int>::from_data([[3, 4, 0]], &device);
        let prompt = Tensor::<B, 3>::ones([1, 2, 4], &device);
        let mask = Tensor::<B, 2>::from_data([[1.0, 1.0, 1.0, 1.0, 0.0]], &device);
        let out = embeddings.forward(ids, None, Some(prompt), mask, 0);
        assert_eq!(out.dims(), [1, 5, 4]);
        let last = out.clone().narrow(1, 4, 1).into_data().to_vec::<f32>().expect("floats");
        assert_eq!(last, [0.0; 4], "the padding position is zeroed");
        let first = out.narrow(1, 0, 1).abs().sum().into_scalar();
        assert!(first > 0.0, "prompt positions are kept");
    }
}
