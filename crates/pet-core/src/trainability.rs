//! Trainability policies: which backbone parameters train beside the delta.
//!
//! - [`Trainability::Frozen`]: delta-only tuning (prompts, prefixes, LoRA, adapters).
//! - [`Trainability::BiasOnly`]: BitFit (Ben Zaken et al., 2022, "BitFit: Simple
//!   Parameter-efficient Fine-tuning for Transformer-based Masked Language-models"): every bias
//!   term trains, `sum of bias sizes` parameters (LayerNorm betas included, as in the paper's code).
//! - [`Trainability::LastLayers`]: partial tuning of the top `k` layers (Yosinski et al., 2014),
//!   `k * params per layer` parameters.
//! - [`Trainability::Full`]: full fine-tuning.
//!
//! Seam: parameters by path. Freezing switches `require_grad` off, so frozen tensors take no
//! part in the backward graph and get no optimizer state.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::backbone::Backbone;
use crate::params::set_trainable;

/// Which parameters of a backbone train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy", content = "layers")]
pub enum Trainability {
    /// No backbone parameter trains.
    Frozen,
    /// Bias terms only (BitFit).
    BiasOnly,
    /// The top `k` layers train (partial tuning).
    LastLayers(usize),
    /// Every parameter trains (full fine-tuning).
    Full,
}

impl Trainability {
    /// Whether the backbone parameter at `path` trains, for a backbone of `num_layers` layers
    /// whose layer `i` has path prefix `layer_path(i)`.
    pub fn is_trainable(
        &self,
        path: &str,
        num_layers: usize,
        layer_path: &dyn Fn(usize) -> String,
    ) -> bool {
        match self {
            Self::Frozen => false,
            Self::Full => true,
            Self::BiasOnly => path == "bias" || path.ends_with(".bias") || path.ends_with(".beta"),
            Self::LastLayers(k) => (num_layers.saturating_sub(*k)..num_layers)
                .any(|layer| path.starts_with(&layer_path(layer))),
        }
    }

    /// `backbone` with this policy applied.
    pub fn apply<B: Backend, M: Backbone<B>>(&self, backbone: M) -> M {
        let num_layers = backbone.shape().encoder_layers;
        let prefixes: Vec<String> = (0..num_layers).map(|i| backbone.layer_path(i)).collect();
        let layer_path = |i: usize| prefixes[i].clone();
        set_trainable(backbone, &|path| self.is_trainable(path, num_layers, &layer_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_path(i: usize) -> String {
        format!("layers.{i}.")
    }

    #[test]
    fn bias_only_selects_biases_and_layer_norm_shifts() {
        let policy = Trainability::BiasOnly;
        assert!(policy.is_trainable("layers.0.query.bias", 2, &layer_path));
        assert!(policy.is_trainable("layers.1.output_norm.beta", 2, &layer_path));
        assert!(!policy.is_trainable("layers.1.output_norm.gamma", 2, &layer_path));
        assert!(!policy.is_trainable("layers.0.query.weight", 2, &layer_path));
    }

    #[test]
    fn last_layers_selects_only_the_top_layers() {
        let policy = Trainability::LastLayers(1);
        assert!(policy.is_trainable("layers.1.query.weight", 2, &layer_path));
        assert!(!policy.is_trainable("layers.0.query.weight", 2, &layer_path));
        assert!(!policy.is_trainable("word_embeddings.weight", 2, &layer_path));
        assert!(Trainability::LastLayers(5).is_trainable("layers.0.key.bias", 2, &layer_path));
    }

    #[test]
    fn frozen_and_full_are_all_or_nothing() {
        assert!(!Trainability::Frozen.is_trainable("layers.0.query.bias", 2, &layer_path));
        assert!(Trainability::Full.is_trainable("word_embeddings.weight", 2, &layer_path));
    }
}
