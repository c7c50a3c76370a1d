//! Any combination of the delta methods, chosen at run time: a [`DeltaSpec`] (what a config
//! file or the command line asks for, and what a checkpoint records) builds a [`DeltaSet`]
//! (at most one of each method, composed in the order prompt, prefix, LoRA, adapters) and names
//! the [`Trainability`] of the backbone.

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::backbone::Backbone;
use crate::config_check::HeaderCheck;
use crate::delta::Delta;
use crate::delta::adapter::{AdapterActivation, AdapterConfig, Adapters};
use crate::delta::lora::{Lora, LoraConfig};
use crate::delta::prefix::{PrefixTuning, PrefixTuningConfig};
use crate::delta::prompt::{PromptInit, PromptTuningConfig, SoftPrompt};
use crate::error::{PetError, Result};
use crate::seam::{AttentionPrefixes, BackboneShape, LinearSite, LinearSiteInfo, SublayerSite};
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

    /// The prompt's config for a backbone of `shape`.
    fn prompt_config(p: &PromptSpec, shape: BackboneShape) -> Result<PromptTuningConfig> {
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
        Ok(PromptTuningConfig::new(p.num_virtual_tokens, shape.hidden_size)
            .with_prompt_tuning_init(init))
    }

    fn prefix_config(p: &PrefixSpec, shape: BackboneShape) -> PrefixTuningConfig {
        PrefixTuningConfig::for_backbone(shape, p.num_virtual_tokens)
            .with_prefix_projection(p.prefix_projection)
            .with_encoder_hidden_size(p.encoder_hidden_size)
            .with_prefix_dropout(p.prefix_dropout)
    }

    fn lora_config(l: &LoraSpec) -> LoraConfig {
        LoraConfig::new(l.r)
            .with_lora_alpha(l.lora_alpha)
            .with_lora_dropout(l.lora_dropout)
            .with_target_modules(l.target_modules.clone())
    }

    fn adapter_config(a: &AdapterSpec) -> Result<AdapterConfig> {
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
        Ok(config.with_non_linearity(a.non_linearity))
    }

    /// Refuses values no delta can be built with, naming the field (`lora.r`, ...): lengths,
    /// ranks, reduction factors and projection sizes of 0, dropout outside `[0, 1)`, a
    /// `lora_alpha` that is not finite.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] naming the field.
    pub fn check(&self) -> Result<()> {
        use crate::config_check::{dropout, finite, positive};
        if let Some(p) = &self.prompt {
            positive("prompt.num_virtual_tokens", p.num_virtual_tokens)?;
        }
        if let Some(p) = &self.prefix {
            positive("prefix.num_virtual_tokens", p.num_virtual_tokens)?;
            dropout("prefix.prefix_dropout", p.prefix_dropout)?;
            if p.prefix_projection {
                positive("prefix.encoder_hidden_size", p.encoder_hidden_size)?;
            }
        }
        if let Some(l) = &self.lora {
            positive("lora.r", l.r)?;
            finite("lora.lora_alpha", l.lora_alpha)?;
            dropout("lora.lora_dropout", l.lora_dropout)?;
        }
        if let Some(a) = &self.adapter {
            positive("adapter.reduction_factor", a.reduction_factor)?;
        }
        Ok(())
    }

    /// Checks, before anything is allocated, that the tensors of a checkpoint (`check`, keyed by
    /// parameter path with the set under `base`, e.g. `delta.`) hold exactly the sizes this spec
    /// builds for a backbone of `shape` with linear sites `sites`: prompt and prefix lengths,
    /// the projection's size, LoRA's rank on every targeted site, the adapters' bottleneck.
    /// `field` prefixes the spec's field names in errors (`method.delta.` for a checkpoint's
    /// metadata).
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] naming the field (`method.delta.lora.r`, ...) and the file's
    /// key and shape, or a value no delta can be built with; [`PetError::MissingWeights`] for a
    /// tensor the file lacks.
    pub fn check_tensors(
        &self,
        shape: BackboneShape,
        sites: &[LinearSiteInfo],
        check: &HeaderCheck<'_>,
        base: &str,
        field: &str,
    ) -> Result<()> {
        self.check().map_err(|e| match e {
            PetError::InvalidConfig { field: f, reason } => {
                PetError::InvalidConfig { field: format!("{field}{f}"), reason }
            }
            other => other,
        })?;
        // (parameter path, field prefix) of each method; a field an inner check names without
        // the prefix (a value check) gets it, the backbone's sizes stay `backbone`.
        let at = |path: &str, method: &str| (format!("{base}{path}."), format!("{field}{method}."));
        let named = |prefix: String| {
            move |e: PetError| match e {
                PetError::InvalidConfig { field: f, reason }
                    if !f.starts_with(field) && f != "backbone" =>
                {
                    PetError::InvalidConfig { field: format!("{prefix}{f}"), reason }
                }
                other => other,
            }
        };
        if let Some(p) = &self.prompt {
            let (path, prefix) = at("prompt", "prompt");
            let config = Self::prompt_config(p, shape).map_err(named(field.to_string()))?;
            config.check_tensors(check, &path, &prefix)?;
        }
        if let Some(p) = &self.prefix {
            let (path, prefix) = at("prefix", "prefix");
            Self::prefix_config(p, shape).check_tensors(check, &path, &prefix)?;
        }
        if let Some(l) = &self.lora {
            let (path, prefix) = at("lora", "lora");
            Self::lora_config(l)
                .check_tensors(sites, check, &path, &prefix)
                .map_err(named(prefix.clone()))?;
        }
        if let Some(a) = &self.adapter {
            let (path, prefix) = at("adapters", "adapter");
            let config = Self::adapter_config(a).map_err(named(field.to_string()))?;
            config.check_tensors(shape, check, &path, &prefix).map_err(named(prefix.clone()))?;
        }
        Ok(())
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
        self.check()?;
        let shape = backbone.shape();
        let prompt = match &self.prompt {
            Some(p) => Some(
                Self::prompt_config(p, shape)?.init(backbone.word_embeddings().as_ref(), device)?,
            ),
            None => None,
        };
        let prefix = match &self.prefix {
            Some(p) => Some(Self::prefix_config(p, shape).init(device)?),
            None => None,
        };
        let lora = match &self.lora {
            Some(l) => Some(Self::lora_config(l).init(backbone, device)?),
            None => None,
        };
        let adapters = match &self.adapter {
            Some(a) => Some(Self::adapter_config(a)?.init(shape, device)?),
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
