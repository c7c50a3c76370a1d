//! ViT's pre-layer-norm transformer layer (transformers' `ViTLayer`): layer norm, attention,
//! residual; layer norm, feed-forward, residual; with the linear-site and sub-layer seams.
//! Module names follow the Hugging Face state dict (`attention.attention.query`,
//! `attention.output.dense`, `intermediate.dense`, `output.dense`, `layernorm_before`,
//! `layernorm_after`).

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};
use pet_core::blocks::attention::{SelfAttention, project};
use pet_core::blocks::layer::{Intermediate, LinearSiteLayer};
use pet_core::delta::Delta;
use pet_core::seam::{AttentionPrefix, LinearKind, SublayerKind, SublayerSite};
use pet_kernels::{LayerNorm, dropout};

use crate::vit::config::ViTConfig;

/// An output projection and its dropout (`ViTSelfOutput`, `ViTOutput`); the residual sum is the
/// layer's.
#[derive(Module, Debug)]
pub struct Projection<B: Backend> {
    /// The projection.
    pub dense: Linear<B>,
    /// Dropout on its output.
    pub dropout: Dropout,
}

/// Self-attention and its output projection (`ViTAttention`).
#[derive(Module, Debug)]
pub struct ViTAttention<B: Backend> {
    /// Query, key, value (`attention.attention`).
    pub attention: SelfAttention<B>,
    /// Output projection (`attention.output`).
    pub output: Projection<B>,
}

/// One ViT layer.
#[derive(Module, Debug)]
pub struct ViTLayer<B: Backend> {
    /// Layer norm before attention.
    pub layernorm_before: LayerNorm<B>,
    /// Attention.
    pub attention: ViTAttention<B>,
    /// Layer norm before the feed-forward block.
    pub layernorm_after: LayerNorm<B>,
    /// First feed-forward projection and activation.
    pub intermediate: Intermediate<B>,
    /// Second feed-forward projection.
    pub output: Projection<B>,
}

impl<B: Backend> Projection<B> {
    /// `sublayer(dropout(dense(x)))` at site `(layer, linear)`, the sub-layer seam seeing the
    /// sub-layer's `input`; the residual is left to the caller.
    fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        input: Tensor<B, 3>,
        layer: usize,
        (linear, sublayer): (LinearKind, SublayerKind),
        delta: &D,
    ) -> Tensor<B, 3> {
        let out = dropout(project(&self.dense, layer, linear, x, delta), self.dropout.prob);
        delta.sublayer(SublayerSite::encoder(layer, sublayer), input, out)
    }
}

impl<B: Backend> ViTLayer<B> {
    /// A layer with random weights.
    pub fn new(config: &ViTConfig, device: &B::Device) -> Self {
        let (h, inner) = (config.hidden_size, config.intermediate_size);
        let norm = || LayerNorm::new(h, config.layer_norm_eps, device);
        let qkv = || LinearConfig::new(h, h).with_bias(config.qkv_bias).init(device);
        let projection = |d_in| Projection {
            dense: LinearConfig::new(d_in, h).init(device),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
        };
        Self {
            layernorm_before: norm(),
            attention: ViTAttention {
                attention: SelfAttention {
                    query: qkv(),
                    key: qkv(),
                    value: qkv(),
                    dropout: DropoutConfig::new(config.attention_probs_dropout_prob).init(),
                    num_heads: config.num_attention_heads,
                },
                output: projection(h),
            },
            layernorm_after: norm(),
            intermediate: Intermediate {
                dense: LinearConfig::new(h, inner).init(device),
                activation: config.hidden_act,
            },
            output: projection(inner),
        }
    }

    /// # Shapes
    /// - `x` and output: `[batch, seq, hidden]`; `mask_bias`: `[batch, n_prefix + seq]`
    pub fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        mask_bias: &Tensor<B, 2>,
        prefix: Option<&AttentionPrefix<B>>,
        layer: usize,
        delta: &D,
    ) -> Tensor<B, 3> {
        let normed = self.layernorm_before.forward(x.clone());
        let attended = self.attention.attention.forward(
            normed.clone(),
            mask_bias.clone(),
            prefix,
            layer,
            delta,
        );
        let sites = (LinearKind::AttentionOutput, SublayerKind::Attention);
        let x = self.attention.output.forward(attended, normed, layer, sites, delta) + x;
        let normed = self.layernorm_after.forward(x.clone());
        let inner = self.intermediate.forward(normed.clone(), layer, delta);
        let sites = (LinearKind::Output, SublayerKind::FeedForward);
        self.output.forward(inner, normed, layer, sites, delta) + x
    }
}

impl<B: Backend> LinearSiteLayer<B> for ViTLayer<B> {
    fn site_path(kind: LinearKind) -> String {
        match kind {
            LinearKind::Query => "attention.attention.query",
            LinearKind::Key => "attention.attention.key",
            LinearKind::Value => "attention.attention.value",
            LinearKind::AttentionOutput => "attention.output.dense",
            LinearKind::Intermediate => "intermediate.dense",
            LinearKind::Output => "output.dense",
            other => panic!("expected a site of an encoder layer, got {other:?}"),
        }
        .to_string()
    }

    fn linear(&self, kind: LinearKind) -> &Linear<B> {
        let attention = &self.attention.attention;
        match kind {
            LinearKind::Query => &attention.query,
            LinearKind::Key => &attention.key,
            LinearKind::Value => &attention.value,
            LinearKind::AttentionOutput => &self.attention.output.dense,
            LinearKind::Intermediate => &self.intermediate.dense,
            LinearKind::Output => &self.output.dense,
            other => panic!("expected a site of an encoder layer, got {other:?}"),
        }
    }

    fn linear_mut(&mut self, kind: LinearKind) -> &mut Linear<B> {
        let attention = &mut self.attention.attention;
        match kind {
            LinearKind::Query => &mut attention.query,
            LinearKind::Key => &mut attention.key,
            LinearKind::Value => &mut attention.value,
            LinearKind::AttentionOutput => &mut self.attention.output.dense,
            LinearKind::Intermediate => &mut self.intermediate.dense,
            LinearKind::Output => &mut self.output.dense,
            other => panic!("expected a site of an encoder layer, got {other:?}"),
        }
    }
}
