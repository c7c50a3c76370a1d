//! The [`Backbone`] trait: a pretrained network that runs with a delta and exposes its seams.

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::delta::Delta;
use crate::limits::InputLimits;
use crate::seam::{BackboneShape, LinearSite, LinearSiteInfo, PromptSlots};

/// What a backbone is, precisely enough to refuse a delta trained on another one.
///
/// Two identities are equal when the architecture name and the config digest agree and, when
/// both know it, the weights digest agrees too.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackboneIdentity {
    /// Architecture, e.g. `bert`.
    pub architecture: String,
    /// SHA-256 of the canonical JSON of the config.
    pub config_sha256: String,
    /// SHA-256 of the weights file, when loaded from one.
    pub weights_sha256: Option<String>,
}

impl BackboneIdentity {
    /// Whether a delta made for `self` fits `other`.
    pub fn is_compatible(&self, other: &Self) -> bool {
        self.architecture == other.architecture
            && self.config_sha256 == other.config_sha256
            && match (&self.weights_sha256, &other.weights_sha256) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// The identity of an architecture with the given serializable config.
    pub fn from_config<C: Serialize>(architecture: &str, config: &C) -> Self {
        let json = serde_json::to_string(config).unwrap_or_default();
        Self {
            architecture: architecture.to_string(),
            config_sha256: crate::digest::sha256_hex(json.as_bytes()),
            weights_sha256: None,
        }
    }
}

impl std::fmt::Display for BackboneIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (config {}",
            self.architecture,
            &self.config_sha256[..12.min(self.config_sha256.len())]
        )?;
        if let Some(w) = &self.weights_sha256 {
            write!(f, ", weights {}", &w[..12.min(w.len())])?;
        }
        write!(f, ")")
    }
}

/// A pretrained network that exposes seams and runs with a [`Delta`].
pub trait Backbone<B: Backend>: Module<B> {
    /// What one forward pass consumes.
    type Input;
    /// What one forward pass produces.
    type Output;

    /// Runs the network with `delta` filling its seams.
    fn forward_with<D: Delta<B>>(&self, input: Self::Input, delta: &D) -> Self::Output;

    /// Layer count and sizes.
    fn shape(&self) -> BackboneShape;

    /// Every linear site, with its Hugging Face module path and dimensions.
    fn linear_sites(&self) -> Vec<LinearSiteInfo>;

    /// The weight of one linear site.
    ///
    /// # Shapes
    /// - output: `[d_input, d_output]`
    fn linear_weight(&self, site: LinearSite) -> Tensor<B, 2>;

    /// The backbone with the weight of one linear site replaced (used to merge LoRA).
    fn with_linear_weight(self, site: LinearSite, weight: Tensor<B, 2>) -> Self;

    /// The word embedding matrix, for vocabulary initialization of prompts, or `None` for a
    /// backbone without a vocabulary (ViT).
    ///
    /// # Shapes
    /// - output: `[vocab, hidden]`
    fn word_embeddings(&self) -> Option<Tensor<B, 2>>;

    /// The parameter-path prefix of encoder layer `layer`: by default `encoder.layer.{layer}.`,
    /// the layout of BERT, RoBERTa, DeBERTa and ViT; T5-style stacks override it.
    fn layer_path(&self, layer: usize) -> String {
        format!("encoder.layer.{layer}.")
    }

    /// The identity recorded in delta checkpoints.
    fn identity(&self) -> BackboneIdentity;

    /// What one input row may hold when the backbone runs with `delta`: the sizes of its
    /// lookup tables, and the positions left to input tokens beside the delta's prompt
    /// ([`Delta::prompt_len`]) and prefix ([`Delta::prefix_len`]) positions. Readers check
    /// every row against them before it becomes a tensor, so that an id past a table is an
    /// error naming the row, not an index panic in the backend.
    fn input_limits<D: Delta<B>>(&self, delta: &D) -> InputLimits;
}

/// What an encoder backbone returns.
#[derive(Clone, Debug)]
pub struct EncoderOutput<B: Backend> {
    /// `[batch, n_prompt + seq, hidden]`: the input positions with the prompt slots placed
    /// where `prompt` says.
    pub hidden: Tensor<B, 3>,
    /// `[batch, n_prompt + seq]`: 1.0 for positions to attend to, 0.0 for padding.
    pub mask: Tensor<B, 2>,
    /// Where the prompt positions the delta added sit and how many there are; heads that label
    /// tokens read the input positions through it.
    pub prompt: PromptSlots,
    /// `[batch, hidden]`: the pooler's output, when the backbone has a pooler.
    pub pooled: Option<Tensor<B, 2>>,
}
