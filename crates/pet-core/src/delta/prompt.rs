//! Soft prompt tuning.
//!
//! Paper: Lester, Al-Rfou and Constant, 2021, "The Power of Scale for Parameter-Efficient Prompt
//! Tuning". Reference: PEFT's `PromptEmbedding` (`PROMPT_TUNING`).
//!
//! `num_virtual_tokens` trainable embeddings fill the prompt slots the backbone places among the
//! input embeddings (in front for BERT-style encoders, as PEFT does by passing
//! `inputs_embeds`); the backbone extends the attention mask over them. The initialization is
//! one of [`PromptInit`]: PEFT's random normal or sampled vocabulary rows, a normal of chosen
//! spread, a uniform, or VPT's uniform rule for backbones without a vocabulary.
//!
//! Seam: input prompt. Parameters: `num_virtual_tokens * token_dim`.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::config_check::HeaderCheck;
use crate::delta::Delta;
use crate::error::{PetError, Result};

/// How the prompt embeddings start.
#[derive(Config, Debug, Copy, PartialEq)]
pub enum PromptInit {
    /// Standard normal, as `torch.nn.Embedding` initializes (PEFT's `RANDOM`).
    Random,
    /// Rows of the backbone's word embeddings, drawn uniformly from the vocabulary with the given
    /// seed (Lester et al.'s sampled-vocabulary init, PEFT's `SAMPLE_VOCAB`). Needs a backbone
    /// with word embeddings.
    SampleVocab {
        /// Seed of the draw.
        seed: u64,
    },
    /// Normal with mean 0 and standard deviation `std`.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Uniform on `[-bound, bound]`.
    Uniform {
        /// Half-width of the interval.
        bound: f64,
    },
    /// VPT's rule (Jia et al., 2022, `vit.py` of the reference code): uniform on `[-v, v]` with
    /// `v = sqrt(6 / (3 * patch_area + token_dim))`, a Xavier-uniform bound for the patch
    /// projection's fan-in (`patch_area` = patch height x width, 3 colour channels).
    VptUniform {
        /// Patch height times patch width, in pixels.
        patch_area: usize,
    },
}

impl PromptInit {
    /// VPT's bound `sqrt(6 / (3 * patch_area + token_dim))`.
    pub fn vpt_bound(patch_area: usize, token_dim: usize) -> f64 {
        // In f64: a hostile `patch_area` must not overflow an integer sum.
        (6.0 / (3.0 * patch_area as f64 + token_dim as f64)).sqrt()
    }
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
    /// Builds the prompt. `word_embeddings` (`[vocab, token_dim]`, `None` for a backbone without
    /// a vocabulary) is read for vocabulary init and to check `token_dim`.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for zero tokens, a `token_dim` that differs from the
    /// word embeddings, or vocabulary init without word embeddings.
    pub fn init<B: Backend>(
        &self,
        word_embeddings: Option<&Tensor<B, 2>>,
        device: &B::Device,
    ) -> Result<SoftPrompt<B>> {
        if self.num_virtual_tokens == 0 {
            return Err(PetError::config("num_virtual_tokens", "must be at least 1"));
        }
        if let Some(dim) = word_embeddings.map(|w| w.dims()[1])
            && dim != self.token_dim
        {
            return Err(PetError::config(
                "token_dim",
                format!("is {}, but the backbone's hidden size is {dim}", self.token_dim),
            ));
        }
        // The spread of a random init: the sampler (in f32) needs it above 0 and its interval's
        // width finite.
        let spread = match self.prompt_tuning_init {
            PromptInit::Normal { std } => Some(std),
            PromptInit::Uniform { bound } => Some(bound),
            PromptInit::VptUniform { patch_area } => {
                Some(PromptInit::vpt_bound(patch_area, self.token_dim))
            }
            PromptInit::Random | PromptInit::SampleVocab { .. } => None,
        };
        let largest = f64::from(f32::MAX) / 4.0;
        if let Some(value) = spread
            && !((value as f32) > 0.0 && value <= largest)
        {
            return Err(PetError::config(
                "prompt_tuning_init",
                format!("needs a spread above 0 and at most {largest:e}, found {value}"),
            ));
        }
        let shape = [self.num_virtual_tokens, self.token_dim];
        let embedding = match self.prompt_tuning_init {
            PromptInit::Random => Initializer::Normal { mean: 0.0, std: 1.0 }.init(shape, device),
            PromptInit::Normal { std } => {
                Initializer::Normal { mean: 0.0, std }.init(shape, device)
            }
            PromptInit::Uniform { bound } => {
                Initializer::Uniform { min: -bound, max: bound }.init(shape, device)
            }
            PromptInit::VptUniform { patch_area } => {
                let bound = PromptInit::vpt_bound(patch_area, self.token_dim);
                Initializer::Uniform { min: -bound, max: bound }.init(shape, device)
            }
            PromptInit::SampleVocab { seed } => {
                let Some(word_embeddings) = word_embeddings else {
                    return Err(PetError::config(
                        "prompt_tuning_init",
                        "sampled-vocabulary init needs a backbone with word embeddings",
                    ));
                };
                let vocab = word_embeddings.dims()[0];
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

    /// Checks that the tensor `{base}embedding` (`delta.prompt.embedding`) holds the prompt this
    /// config builds, `[num_virtual_tokens, token_dim]`, before it is allocated. `field`
    /// prefixes the config's field names in errors (`delta.prompt.`).
    ///
    /// # Errors
    /// As [`HeaderCheck::tensor`].
    pub fn check_tensors(&self, check: &HeaderCheck<'_>, base: &str, field: &str) -> Result<()> {
        let tokens = format!("{field}num_virtual_tokens");
        let dim = format!("{field}token_dim");
        let dims = [(self.num_virtual_tokens, tokens.as_str()), (self.token_dim, dim.as_str())];
        check.tensor(&format!("{base}embedding"), "", &dims)
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
    fn prompt_len(&self) -> usize {
        self.len()
    }

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
            .init(Some(&words), &device)
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
        let prompt = PromptTuningConfig::new(3, 4).init(Some(&words), &device).expect("prompt");
        let batch = prompt.input_prompt(2).expect("a prompt");
        assert_eq!(batch.dims(), [2, 3, 4]);
        let rows = batch.into_data().to_vec::<f32>().expect("floats");
        assert_eq!(rows[..12], rows[12..]);
    }

    #[test]
    fn a_token_dim_other_than_the_hidden_size_is_refused() {
        let words = Tensor::<B, 2>::zeros([8, 4], &Default::default());
        let err = PromptTuningConfig::new(3, 5)
            .init(Some(&words), &Default::default())
            .expect_err("dims");
        assert!(err.to_string().contains("token_dim"), "{err}");
    }

    #[test]
    fn without_word_embeddings_vocabulary_init_is_refused_and_the_others_work() {
        let device = Default::default();
        let vocab = PromptTuningConfig::new(3, 4)
            .with_prompt_tuning_init(PromptInit::SampleVocab { seed: 1 })
            .init::<B>(None, &device)
            .expect_err("no vocabulary");
        assert!(vocab.to_string().contains("prompt_tuning_init"), "{vocab}");
        let prompt = PromptTuningConfig::new(3, 4).init::<B>(None, &device).expect("random");
        assert_eq!(prompt.len(), 3);
    }

    #[test]
    fn uniform_inits_stay_within_their_bound() {
        let device = Default::default();
        // VPT with 16 x 16 patches and d = 768: sqrt(6 / (3 * 256 + 768)) = 0.0625.
        assert!((PromptInit::vpt_bound(256, 768) - 0.0625).abs() < 1e-12);
        let vpt = PromptTuningConfig::new(50, 768)
            .with_prompt_tuning_init(PromptInit::VptUniform { patch_area: 256 })
            .init::<B>(None, &device)
            .expect("vpt");
        let values = vpt.embedding.val().into_data().to_vec::<f32>().expect("floats");
        assert!(values.iter().all(|v| v.abs() <= 0.0625), "outside VPT's bound");
        assert!(values.iter().any(|v| v.abs() > 0.05), "a uniform draw reaches near its bound");
        let small = PromptTuningConfig::new(50, 8)
            .with_prompt_tuning_init(PromptInit::Normal { std: 0.02 })
            .init::<B>(None, &device)
            .expect("normal");
        let values = small.embedding.val().into_data().to_vec::<f32>().expect("floats");
        let std = (values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32).sqrt();
        assert!((0.015..0.025).contains(&std), "std {std} of a normal(0, 0.02) draw");
    }

    #[test]
    fn a_degenerate_init_spread_is_refused_not_a_panic() {
        let device = Default::default();
        for init in [
            PromptInit::Normal { std: 0.0 },
            PromptInit::Normal { std: f64::NAN },
            PromptInit::Uniform { bound: 0.0 },
            PromptInit::Uniform { bound: 1e-300 },
            PromptInit::Uniform { bound: 1e308 },
            PromptInit::Uniform { bound: -1.0 },
        ] {
            let config = PromptTuningConfig::new(2, 4).with_prompt_tuning_init(init);
            match config.init::<B>(None, &device) {
                Err(PetError::InvalidConfig { field, .. }) => {
                    assert_eq!(field, "prompt_tuning_init", "{init:?}")
                }
                other => panic!("{init:?}: expected an invalid config, got {other:?}"),
            }
        }
        // A huge patch area is a tiny bound, not an integer overflow.
        let huge = PromptTuningConfig::new(2, 4)
            .with_prompt_tuning_init(PromptInit::VptUniform { patch_area: usize::MAX });
        assert!(huge.init::<B>(None, &device).is_ok());
    }
}
