//! Soft prompt tuning.
//!
//! Paper: Lester, Al-Rfou and Constant, 2021, "The Power of Scale for Parameter-Efficient Prompt
//! Tuning". Reference: PEFT's `PromptEmbedding` (`PROMPT_TUNING`).
//!
//! `num_virtual_tokens` trainable embeddings are placed before the input embeddings; the backbone
//! extends the attention mask over them and numbers positions over the whole sequence, as PEFT
//! does by passing `inputs_embeds`.
//!
//! Seam: input prompt. Parameters: `num_virtual_tokens * token_dim`.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::delta::Delta;
use crate::error::{PetError, Result};

/// How the prompt embeddings start.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum PromptInit {
    /// Standard normal, as `torch.nn.Embedding` initializes (PEFT's `RANDOM`).
    Random,
    /// Rows of the backbone's word embeddings, drawn uniformly from the vocabulary with the given
    /// seed (Lester et al.'s sampled-vocabulary init, PEFT's `SAMPLE_VOCAB`).
    SampleVocab {
        /// Seed of the draw.
        seed: u64,
    },
}

/// Soft prompt configuration, with PEFT's field names.
#[derive(Config, Debug)]
pub struct PromptTuningConfig {
    /// Number of prompt embeddings.
    pub num_virtual_tokens: usize,
    /// Hidden size of the backbone.
    pub token_dim: usize,
    /// Initialization.
    #[config(default = "PromptInit::Random")]
    pub prompt_tuning_init: PromptInit,
}

/// Trainable input embeddings.
#[derive(Module, Debug)]
pub struct SoftPrompt<B: Backend> {
    /// `[num_virtual_tokens, token_dim]`
    pub embedding: Param<Tensor<B, 2>>,
}

impl PromptTuningConfig {
    /// Builds the prompt. `word_embeddings` (`[vocab, token_dim]`) is read for vocabulary init.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for zero tokens or a `token_dim` that differs from the
    /// word embeddings.
    pub fn init<B: Backend>(
        &self,
        word_embeddings: &Tensor<B, 2>,
        device: &B::Device,
    ) -> Result<SoftPrompt<B>> {
        if self.num_virtual_tokens == 0 {
            return Err(PetError::config("num_virtual_tokens", "must be at least 1"));
        }
        let [vocab, dim] = word_embeddings.dims();
        if dim != self.token_dim {
            return Err(PetError::config(
                "token_dim",
                format!("is {}, but the backbone's hidden size is {dim}", self.token_dim),
            ));
        }
        let shape = [self.num_virtual_tokens, self.token_dim];
        let embedding = match self.prompt_tuning_init {
            PromptInit::Random => Initializer::Normal { mean: 0.0, std: 1.0 }.init(shape, device),
            PromptInit::SampleVocab { seed } => {
                let ids = crate::rng::SplitMix64::new(seed).indices(vocab, self.num_virtual_tokens);
                let ids = Tensor::<B, 1, Int>::from_data(
                    TensorData::new(ids.into_iter().map(|i| i as i64).collect(), [shape[0]]),
                    device,
                );
                Param::from_tensor(word_embeddings.clone().detach().select(0, ids))
            }
        };
        Ok(SoftPrompt { embedding })
    }

    /// Trainable parameters: `num_virtual_tokens * token_dim`.
    pub fn num_params(&self) -> usize {
        self.num_virtual_tokens * self.token_dim
    }
}

impl<B: Backend> SoftPrompt<B> {
    /// Number of prompt positions.
    pub fn len(&self) -> usize {
        self.embedding.dims()[0]
    }

    /// Whether the prompt has no position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The config that rebuilds this prompt's shape.
    pub fn config(&self) -> PromptTuningConfig {
        let [n, d] = self.embedding.dims();
        PromptTuningConfig::new(n, d)
    }
}

impl<B: Backend> Delta<B> for SoftPrompt<B> {
    fn input_prompt(&self, batch: usize) -> Option<Tensor<B, 3>> {
        let [n, d] = self.embedding.dims();
        // [batch, n, hidden]
        Some(self.embedding.val().unsqueeze::<3>().expand([batch, n, d]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestInner as B;

    #[test]
    fn vocabulary_init_copies_rows_of_the_word_embeddings() {
        let device = Default::default();
        let words =
            Tensor::<B, 2>::from_data([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], &device);
        let prompt = PromptTuningConfig::new(5, 2)
            .with_prompt_tuning_init(PromptInit::SampleVocab { seed: 9 })
            .init(&words, &device)
            .expect("prompt");
        let rows = prompt.embedding.val().into_data().to_vec::<f32>().expect("floats");
        for row in rows.chunks(2) {
            assert_eq!(row[0], row[1]);
            assert!([0.0, 1.0, 2.0, 3.0].contains(&row[0]), "{row:?} is not a vocabulary row");
        }
    }

    #[test]
    fn the_prompt_is_repeated_for_every_batch_row() {
        let device = Default::default();
        let words = Tensor::<B, 2>::zeros([8, 4], &device);
        let prompt = PromptTuningConfig::new(3, 4).init(&words, &device).expect("prompt");
        let batch = prompt.input_prompt(2).expect("a prompt");
        assert_eq!(batch.dims(), [2, 3, 4]);
        let rows = batch.into_data().to_vec::<f32>().expect("floats");
        assert_eq!(rows[..12], rows[12..]);
    }

    #[test]
    fn a_token_dim_other_than_the_hidden_size_is_refused() {
        let words = Tensor::<B, 2>::zeros([8, 4], &Default::default());
        let err =
            PromptTuningConfig::new(3, 5).init(&words, &Default::default()).expect_err("dims");
        assert!(err.to_string().contains("token_dim"), "{err}");
    }
}
