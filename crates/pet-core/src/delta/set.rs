//! Any combination of the delta methods, chosen at run time: a [`DeltaSpec`] (what a config
//! file or the command line asks for, and what a checkpoint records) builds a [`DeltaSet`]
//! (at most one of each method, composed in the order prompt, prefix, LoRA, adapters) and names
//! the [`Trainability`] of the backbone.

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::backbone::Backbone;
use crate::delta::Delta;
use crate::delta::adapter::{AdapterActivation, AdapterConfig, Adapters};
use crate::delta::lora::{Lora, LoraConfig};
use crate::delta::prefix::{PrefixTuning, PrefixTuningConfig};
use crate::delta::prompt::{PromptInit, PromptTuningConfig, SoftPrompt};
use crate::error::{PetError, Result};
use crate::seam::{AttentionPrefixes, LinearSite, SublayerSite};
use crate::trainability::Trainability;

fn default_virtual_tokens() -> usize {
    16
}

/// Soft prompt settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    /// Prompt length.
    #[serde(default = "default_virtual_tokens")]
    pub num_virtual_tokens: usize,
    /// Draw the initial prompt from the vocabulary (with this seed) instead of a normal.
    #[serde(default)]
    pub sample_vocab_seed: Option<u64>,
    /// Any other initialization ([`PromptInit`]: `Normal`, `Uniform`, `VptUniform`, ...);
    /// standard normal (PEFT's `RANDOM`) when neither this nor `sample_vocab_seed` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PromptInit>,
}

/// Deep prefix / P-Tuning v2 settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixSpec {
    /// Prefix length.
    #[serde(default = "default_virtual_tokens")]
    pub num_virtual_tokens: usize,
    /// Reparameterization MLP.
    #[serde(default)]
    pub prefix_projection: bool,
    /// Hidden size of the MLP.
    #[serde(default = "default_encoder_hidden")]
    pub encoder_hidden_size: usize,
    /// Dropout on the key/value table.
    #[serde(default)]
    pub prefix_dropout: f64,
}

fn default_encoder_hidden() -> usize {
    512
}

fn default_rank() -> usize {
    8
}

fn default_alpha() -> f64 {
    16.0
}

fn default_targets() -> Vec<String> {
    vec!["query".to_string(), "value".to_string()]
}

/// LoRA settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSpec {
    /// Rank.
    #[serde(default = "default_rank")]
    pub r: usize,
    /// Scaling numerator.
    #[serde(default = "default_alpha")]
    pub lora_alpha: f64,
    /// Dropout on the update's input.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Targeted modules.
    #[serde(default = "default_targets")]
    pub target_modules: Vec<String>,
}

fn default_reduction() -> usize {
    16
}

/// Bottleneck adapter settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterSpec {
    /// Hidden size / bottleneck size.
    #[serde(default = "default_reduction")]
    pub reduction_factor: usize,
    /// `houlsby`, `pfeiffer` or `parallel`.
    #[serde(default = "default_variant")]
    pub variant: String,
    /// Non-linearity.
    #[serde(default = "default_activation")]
    pub non_linearity: AdapterActivation,
}

fn default_variant() -> String {
    "houlsby".to_string()
}

fn default_activation() -> AdapterActivation {
    AdapterActivation::Relu
}

fn default_trainability() -> Trainability {
    Trainability::Frozen
}

/// Which deltas to build and which backbone parameters train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaSpec {
    /// Soft prompt.
    #[serde(default)]
    pub prompt: Option<PromptSpec>,
    /// Deep prefix.
    #[serde(default)]
    pub prefix: Option<PrefixSpec>,
    /// LoRA.
    #[serde(default)]
    pub lora: Option<LoraSpec>,
    /// Adapters.
    #[serde(default)]
    pub adapter: Option<AdapterSpec>,
    /// Backbone parameters that train.
    #[serde(default = "default_trainability")]
    pub trainability: Trainability,
}

impl DeltaSpec {
    /// The preset of a method name: `ptuning-v2` (deep prefix of 16, no projection; add
    /// `prefix_projection` in a config for the reparameterized variant), `prefix` (deep prefix
    /// with the MLP), `prompt`, `lora`, `adapter`, `bitfit`, `full`, or several joined by `+`
    /// (`prefix+lora`).
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for an unknown name.
    pub fn preset(name: &str) -> Result<Self> {
        let mut spec = Self::none();
        for part in name.split('+') {
            match part.trim() {
                "ptuning-v2" => spec.prefix = Some(PrefixSpec::default()),
                "prefix" => {
                    spec.prefix =
                        Some(PrefixSpec { prefix_projection: true, ..PrefixSpec::default() })
                }
                "prompt" => {
                    spec.prompt = Some(PromptSpec {
                        num_virtual_tokens: 16,
                        sample_vocab_seed: None,
                        init: None,
                    })
                }
                "lora" => spec.lora = Some(LoraSpec::default()),
                "adapter" => spec.adapter = Some(AdapterSpec::default()),
                "bitfit" => spec.trainability = Trainability::BiasOnly,
                "full" => spec.trainability = Trainability::Full,
                other => {
                    return Err(PetError::config(
                        "method",
                        format!(
                            "unknown method `{other}`: expected ptuning-v2, prefix, prompt, lora, adapter, bitfit, full, or several joined by `+`"
                        ),
                    ));
                }
            }
        }
        Ok(spec)
    }

    /// No delta, frozen backbone.
    pub fn none() -> Self {
        Self {
            prompt: None,
            prefix: None,
            lora: None,
            adapter: None,
            trainability: Trainability::Frozen,
        }
    }

    /// Builds the deltas for `backbone`.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] when a setting does not fit the backbone.
    pub fn build<B: Backend, M: Backbone<B>>(
        &self,
        backbone: &M,
        device: &B::Device,
    ) -> Result<DeltaSet<B>> {
        let shape = backbone.shape();
        let prompt = match &self.prompt {
            Some(p) => {
                let init = match (p.sample_vocab_seed, p.init) {
                    (Some(_), Some(_)) => {
                        return Err(PetError::config(
                            "prompt.init",
                            "set either `init` or `sample_vocab_seed`, not both",
                        ));
                    }
                    (Some(seed), None) => PromptInit::SampleVocab { seed },
                    (None, Some(init)) => init,
                    (None, None) => PromptInit::Random,
                };
                let config = PromptTuningConfig::new(p.num_virtual_tokens, shape.hidden_size)
                    .with_prompt_tuning_init(init);
                Some(config.init(backbone.word_embeddings().as_ref(), device)?)
            }
            None => None,
        };
        let prefix = match &self.prefix {
            Some(p) => Some(
                PrefixTuningConfig::for_backbone(shape, p.num_virtual_tokens)
                    .with_prefix_projection(p.prefix_projection)
                    .with_encoder_hidden_size(p.encoder_hidden_size)
                    .with_prefix_dropout(p.prefix_dropout)
                    .init(device)?,
            ),
            None => None,
        };
        let lora = match &self.lora {
            Some(l) => Some(
                LoraConfig::new(l.r)
                    .with_lora_alpha(l.lora_alpha)
                    .with_lora_dropout(l.lora_dropout)
                    .with_target_modules(l.target_modules.clone())
                    .init(backbone, device)?,
            ),
            None => None,
        };
        let adapters = match &self.adapter {
            Some(a) => {
                let config = match a.variant.as_str() {
                    "houlsby" => AdapterConfig::houlsby(a.reduction_factor),
                    "pfeiffer" => AdapterConfig::pfeiffer(a.reduction_factor),
                    "parallel" => AdapterConfig::parallel(a.reduction_factor),
                    other => {
                        return Err(PetError::config(
                            "adapter.variant",
                            format!("`{other}` is not houlsby, pfeiffer or parallel"),
                        ));
                    }
                };
                Some(config.with_non_linearity(a.non_linearity).init(shape, device)?)
            }
            None => None,
        };
        Ok(DeltaSet { prompt, prefix, lora, adapters })
    }

    /// The spec of the exported deltas: a reparameterized prefix is materialized on export, so
    /// its projection is off.
    pub fn exported(&self) -> Self {
        let mut spec = self.clone();
        if let Some(p) = &mut spec.prefix {
            p.prefix_projection = false;
        }
        spec
    }
}

impl Default for PrefixSpec {
    fn default() -> Self {
        Self {
            num_virtual_tokens: 16,
            prefix_projection: false,
            encoder_hidden_size: 512,
            prefix_dropout: 0.0,
        }
    }
}

impl Default for LoraSpec {
    fn default() -> Self {
        Self { r: 8, lora_alpha: 16.0, lora_dropout: 0.0, target_modules: default_targets() }
    }
}

impl Default for AdapterSpec {
    fn default() -> Self {
        Self {
            reduction_factor: 16,
            variant: default_variant(),
            non_linearity: AdapterActivation::Relu,
        }
    }
}

/// At most one delta of each method, composed in the order prompt, prefix, LoRA, adapters.
#[derive(Module, Debug)]
pub struct DeltaSet<B: Backend> {
    /// Soft prompt.
    pub prompt: Option<SoftPrompt<B>>,
    /// Deep prefix.
    pub prefix: Option<PrefixTuning<B>>,
    /// LoRA.
    pub lora: Option<Lora<B>>,
    /// Adapters.
    pub adapters: Option<Adapters<B>>,
}

impl<B: Backend> DeltaSet<B> {
    /// The set with a reparameterized prefix materialized (what checkpoints hold).
    pub fn export(self) -> Self {
        Self { prefix: self.prefix.map(PrefixTuning::export), ..self }
    }
}

impl<B: Backend> Delta<B> for DeltaSet<B> {
    fn prompt_len(&self) -> usize {
        self.prompt.prompt_len()
    }

    fn input_prompt(&self, batch: usize) -> Option<Tensor<B, 3>> {
        self.prompt.input_prompt(batch)
    }

    fn layer_prompt(&self, layer: usize, slots: Tensor<B, 3>) -> Option<Tensor<B, 3>> {
        self.prompt.layer_prompt(layer, slots)
    }

    fn prefix_len(&self) -> usize {
        self.prefix.prefix_len()
    }

    fn attention_prefixes(&self, batch: usize) -> Option<AttentionPrefixes<B>> {
        self.prefix.attention_prefixes(batch)
    }

    fn linear(&self, site: LinearSite, input: Tensor<B, 3>, output: Tensor<B, 3>) -> Tensor<B, 3> {
        self.lora.linear(site, input, output)
    }

    fn sublayer(
        &self,
        site: SublayerSite,
        input: Tensor<B, 3>,
        output: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        self.adapters.sublayer(site, input, output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_combine_with_plus() {
        let spec = DeltaSpec::preset("prefix+lora+bitfit").expect("preset");
        assert!(spec.prefix.as_ref().is_some_and(|p| p.prefix_projection));
        assert!(spec.lora.is_some() && spec.prompt.is_none() && spec.adapter.is_none());
        assert_eq!(spec.trainability, Trainability::BiasOnly);
        let err = DeltaSpec::preset("ptuning-v3").expect_err("unknown").to_string();
        assert!(err.contains("ptuning-v3") && err.contains("method"), "{err}");
    }

    #[test]
    fn spec_round_trips_through_json_and_refuses_unknown_fields() {
        let spec = DeltaSpec::preset("ptuning-v2").expect("preset");
        let json = serde_json::to_value(&spec).expect("json");
        assert_eq!(serde_json::from_value::<DeltaSpec>(json).expect("back"), spec);
        let err = serde_json::from_str::<DeltaSpec>(r#"{"prefix": {"num_virtual_token": 4}}"#)
            .expect_err("typo");
        assert!(err.to_string().contains("num_virtual_token"), "{err}");
    }
}
