//! The seams: the places inside a backbone where a delta may act.
//!
//! | seam | trait method | used by |
//! |---|---|---|
//! | input prompt | [`Delta::input_prompt`](crate::Delta::input_prompt) | prompt tuning, VPT-shallow |
//! | per-layer prompt | [`Delta::layer_prompt`](crate::Delta::layer_prompt) | VPT-deep |
//! | attention prefix | [`Delta::attention_prefixes`](crate::Delta::attention_prefixes) | prefix tuning, P-Tuning v2 |
//! | linear sites | [`Delta::linear`](crate::Delta::linear) | LoRA |
//! | sub-layer outputs | [`Delta::sublayer`](crate::Delta::sublayer) | adapters |
//! | parameters by path | [`Trainability`](crate::Trainability) | BitFit, partial tuning |

use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// The role of a linear projection inside a transformer layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinearKind {
    /// Attention query projection.
    Query,
    /// Attention key projection.
    Key,
    /// Attention value projection.
    Value,
    /// Attention output projection.
    AttentionOutput,
    /// First feed-forward projection (hidden -> intermediate).
    Intermediate,
    /// Second feed-forward projection (intermediate -> hidden).
    Output,
}

/// One linear projection of one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinearSite {
    /// Zero-based layer index.
    pub layer: usize,
    /// Which projection of the layer.
    pub kind: LinearKind,
}

/// A linear site as a backbone describes it: where it is, its Hugging Face module path and its
/// dimensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearSiteInfo {
    /// The site.
    pub site: LinearSite,
    /// The module path in the Hugging Face state dict, e.g. `encoder.layer.0.attention.self.query`.
    pub path: String,
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
}

impl LinearSiteInfo {
    /// Whether a PEFT `target_modules` entry selects this site: the entry equals the module path
    /// or is its last dotted component(s), as PEFT matches names.
    pub fn matches_target(&self, target: &str) -> bool {
        self.path == target || self.path.ends_with(&format!(".{target}"))
    }
}

/// The sub-layer whose output an adapter sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SublayerKind {
    /// Multi-head attention, after its output projection and dropout, before the residual sum.
    Attention,
    /// Feed-forward block, after its output projection and dropout, before the residual sum.
    FeedForward,
}

/// One sub-layer of one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SublayerSite {
    /// Zero-based layer index.
    pub layer: usize,
    /// Which sub-layer.
    pub kind: SublayerKind,
}

/// Key and value prefixes for one attention layer.
///
/// # Shapes
/// - `key`, `value`: `[batch, heads, n_prefix, head_dim]`
#[derive(Clone, Debug)]
pub struct AttentionPrefix<B: Backend> {
    /// Prefix keys.
    pub key: Tensor<B, 4>,
    /// Prefix values.
    pub value: Tensor<B, 4>,
}

impl<B: Backend> AttentionPrefix<B> {
    /// Number of prefix positions.
    pub fn len(&self) -> usize {
        self.key.dims()[2]
    }

    /// Whether the prefix has no position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Both prefixes, `self` first, along the prefix axis.
    pub fn concat(self, other: Self) -> Self {
        Self {
            key: Tensor::cat(vec![self.key, other.key], 2),
            value: Tensor::cat(vec![self.value, other.value], 2),
        }
    }
}

/// How a backbone numbers the positions of real tokens when attention prefixes are present.
///
/// Prefix keys have no position of their own. Hugging Face encoders take the prefix as
/// `past_key_values` and start the absolute position ids of the real tokens at the prefix
/// length, so PEFT's prefix tuning and the P-Tuning v2 reference both run with
/// [`PrefixPositions::Offset`]. It is the default, because it reproduces their logits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrefixPositions {
    /// Real tokens take positions `n_prefix..n_prefix + seq` (PEFT, P-Tuning v2).
    #[default]
    Offset,
    /// Real tokens take positions `0..seq`, as they do without a prefix.
    FromZero,
}

/// The sizes of a backbone that deltas are built against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackboneShape {
    /// Number of transformer layers.
    pub num_layers: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Attention heads per layer.
    pub num_heads: usize,
    /// Size of one head's keys and values.
    pub head_dim: usize,
    /// Vocabulary size (0 for a backbone without one).
    pub vocab_size: usize,
}
