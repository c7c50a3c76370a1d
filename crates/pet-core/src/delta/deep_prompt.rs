//! Deep prompts (VPT-deep, Jia et al. 2022): a soft prompt for every encoder layer. Layer 0's
//! prompt goes in at the input slots the backbone places (after `[CLS]` on ViT); before each
//! later layer, that layer's own prompt replaces the previous layer's outputs at the slots.
//! VPT-shallow is a [`SoftPrompt`](super::prompt::SoftPrompt); both take VPT's initialization
//! (`PromptInit::VptUniform`) and VPT's dropout on the prompt embeddings.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Tensor, backend::Backend};
use pet_kernels::dropout;

use crate::delta::Delta;
use crate::delta::prompt::{PromptTuningConfig, SoftPrompt};
use crate::error::{PetError, Result};

/// Deep prompt configuration.
#[derive(Clone, Debug)]
pub struct DeepPromptConfig {
    /// The prompt of one layer (length, hidden size, initialization).
    pub prompt: PromptTuningConfig,
    /// Encoder layers: one prompt each.
    pub num_layers: usize,
    /// Dropout on the prompt embeddings (VPT: 0.1).
    pub prompt_dropout: f64,
}

/// A soft prompt per encoder layer.
#[derive(Module, Debug)]
pub struct DeepPrompt<B: Backend> {
    /// Layer `i`'s prompt, `[num_virtual_tokens, token_dim]` each.
    pub prompts: Vec<SoftPrompt<B>>,
    /// Dropout on the prompt embeddings.
    pub dropout: Dropout,
}

impl DeepPromptConfig {
    /// Builds the prompts, each drawn as [`PromptTuningConfig::init`] draws one (without a
    /// vocabulary: a ViT has none).
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for no layers, a dropout outside `[0, 1)`, or what
    /// [`PromptTuningConfig::init`] refuses.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<DeepPrompt<B>> {
        if self.num_layers == 0 {
            return Err(PetError::config("num_layers", "must be at least 1"));
        }
        crate::config_check::dropout("prompt_dropout", self.prompt_dropout)?;
        let prompts = (0..self.num_layers)
            .map(|_| self.prompt.init(None, device))
            .collect::<Result<Vec<_>>>()?;
        Ok(DeepPrompt { prompts, dropout: DropoutConfig::new(self.prompt_dropout).init() })
    }

    /// Trainable parameters: `num_layers * num_virtual_tokens * token_dim`.
    pub fn num_params(&self) -> usize {
        self.num_layers * self.prompt.num_virtual_tokens * self.prompt.token_dim
    }
}

impl<B: Backend> DeepPrompt<B> {
    /// Layer `layer`'s prompt for a batch, with dropout.
    ///
    /// # Shapes
    /// - output: `[batch, num_virtual_tokens, token_dim]`
    fn layer_embeddings(&self, layer: usize, batch: usize) -> Option<Tensor<B, 3>> {
        let prompt = self.prompts.get(layer)?.input_prompt(batch)?;
        Some(dropout(prompt, self.dropout.prob))
    }
}

impl<B: Backend> Delta<B> for DeepPrompt<B> {
    fn prompt_len(&self) -> usize {
        self.prompts.first().map_or(0, SoftPrompt::len)
    }

    fn input_prompt(&self, batch: usize) -> Option<Tensor<B, 3>> {
        self.layer_embeddings(0, batch)
    }

    fn layer_prompt(&self, layer: usize, slots: Tensor<B, 3>) -> Option<Tensor<B, 3>> {
        let batch = slots.dims()[0];
        (layer > 0).then(|| self.layer_embeddings(layer, batch)).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::prompt::PromptInit;
    use crate::testing::TestInner as B;

    fn config(layers: usize) -> DeepPromptConfig {
        DeepPromptConfig {
            prompt: PromptTuningConfig::new(3, 4)
                .with_prompt_tuning_init(PromptInit::VptUniform { patch_area: 16 }),
            num_layers: layers,
            prompt_dropout: 0.0,
        }
    }

    #[test]
    fn every_layer_after_the_first_replaces_the_slots_with_its_own_prompt() {
        let device = Default::default();
        let deep = config(2).init::<B>(&device).expect("deep");
        assert_eq!(deep.prompt_len(), 3);
        let input = deep.input_prompt(2).expect("layer 0 at the input");
        assert_eq!(input.dims(), [2, 3, 4]);
        let slots = Tensor::<B, 3>::zeros([2, 3, 4], &device);
        assert!(deep.layer_prompt(0, slots.clone()).is_none(), "layer 0's went in at the input");
        let layer1 = deep.layer_prompt(1, slots.clone()).expect("layer 1's own");
        let own = deep.prompts[1].embedding.val().unsqueeze::<3>().expand([2, 3, 4]);
        assert_eq!(layer1.into_data(), own.into_data());
        assert!(deep.layer_prompt(2, slots).is_none(), "no layer 2");
    }

    #[test]
    fn vpts_initialization_and_the_parameter_count_hold() {
        let deep = config(3).init::<B>(&Default::default()).expect("deep");
        let bound = PromptInit::vpt_bound(16, 4);
        for prompt in &deep.prompts {
            let values = prompt.embedding.val().into_data().to_vec::<f32>().expect("floats");
            assert!(values.iter().all(|v| f64::from(v.abs()) <= bound), "{values:?}");
        }
        assert_eq!(config(3).num_params(), 3 * 3 * 4);
        assert!(config(0).init::<B>(&Default::default()).is_err());
        let bad = DeepPromptConfig { prompt_dropout: 1.0, ..config(1) };
        assert!(bad.init::<B>(&Default::default()).is_err());
    }
}
