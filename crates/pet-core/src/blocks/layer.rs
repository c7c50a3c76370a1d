//! The post-layer-norm transformer layer (Hugging Face's `BertLayer`): attention, residual and
//! layer norm, feed-forward, residual and layer norm; with the linear-site and sub-layer seams.

use burn::module::Module;
use burn::nn::{Dropout, LayerNorm, Linear};
use burn::tensor::{Tensor, backend::Backend};

use crate::blocks::activation::Activation;
use crate::blocks::attention::{SelfAttention, project};
use crate::delta::Delta;
use crate::seam::{AttentionPrefix, LinearKind, SublayerKind, SublayerSite};

/// `layer_norm(dropout(dense(x)) + residual)`, with a sub-layer seam before the sum
/// (Hugging Face's `BertSelfOutput` and `BertOutput`).
#[derive(Module, Debug)]
pub struct AddNorm<B: Backend> {
    /// Output projection.
    pub dense: Linear<B>,
    /// Layer norm after the residual sum.
    pub layer_norm: LayerNorm<B>,
    /// Dropout on the projection's output.
    pub dropout: Dropout,
}

/// Self-attention and its output block (Hugging Face's `BertAttention`).
#[derive(Module, Debug)]
pub struct AttentionBlock<B: Backend> {
    /// Query, key, value (`attention.self`).
    pub self_attention: SelfAttention<B>,
    /// Output projection, residual and norm (`attention.output`).
    pub output: AddNorm<B>,
}

/// The first feed-forward projection and its activation (Hugging Face's `BertIntermediate`).
#[derive(Module, Debug)]
pub struct Intermediate<B: Backend> {
    /// `hidden -> intermediate`
    pub dense: Linear<B>,
    /// Activation.
    #[module(skip)]
    pub activation: Activation,
}

/// One post-layer-norm transformer layer.
#[derive(Module, Debug)]
pub struct PostNormLayer<B: Backend> {
    /// Attention sub-layer.
    pub attention: AttentionBlock<B>,
    /// First feed-forward projection.
    pub intermediate: Intermediate<B>,
    /// Second feed-forward projection, residual and norm.
    pub output: AddNorm<B>,
}

impl<B: Backend> PostNormLayer<B> {
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`, `mask_bias`: `[batch, 1, 1, n_prefix + seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        mask_bias: Tensor<B, 4>,
        prefix: Option<&AttentionPrefix<B>>,
        layer: usize,
        delta: &D,
    ) -> Tensor<B, 3> {
        let context =
            self.attention.self_attention.forward(x.clone(), mask_bias, prefix, layer, delta);
        let out = &self.attention.output;
        let attended = out.dropout.forward(project(
            &out.dense,
            layer,
            LinearKind::AttentionOutput,
            context,
            delta,
        ));
        let site = SublayerSite { layer, kind: SublayerKind::Attention };
        let attended = delta.sublayer(site, x.clone(), attended);
        let x = out.layer_norm.forward(attended + x);
        let inner =
            project(&self.intermediate.dense, layer, LinearKind::Intermediate, x.clone(), delta);
        let inner = self.intermediate.activation.forward(inner);
        let out = &self.output;
        let fed = out.dropout.forward(project(&out.dense, layer, LinearKind::Output, inner, delta));
        let site = SublayerSite { layer, kind: SublayerKind::FeedForward };
        let fed = delta.sublayer(site, x.clone(), fed);
        out.layer_norm.forward(fed + x)
    }

    /// The linear of site `kind`.
    pub fn linear(&self, kind: LinearKind) -> &Linear<B> {
        match kind {
            LinearKind::Query => &self.attention.self_attention.query,
            LinearKind::Key => &self.attention.self_attention.key,
            LinearKind::Value => &self.attention.self_attention.value,
            LinearKind::AttentionOutput => &self.attention.output.dense,
            LinearKind::Intermediate => &self.intermediate.dense,
            LinearKind::Output => &self.output.dense,
        }
    }

    /// The linear of site `kind`, mutably.
    pub fn linear_mut(&mut self, kind: LinearKind) -> &mut Linear<B> {
        match kind {
            LinearKind::Query => &mut self.attention.self_attention.query,
            LinearKind::Key => &mut self.attention.self_attention.key,
            LinearKind::Value => &mut self.attention.self_attention.value,
            LinearKind::AttentionOutput => &mut self.attention.output.dense,
            LinearKind::Intermediate => &mut self.intermediate.dense,
            LinearKind::Output => &mut self.output.dense,
        }
    }
}

/// Hugging Face's module path of site `kind` inside a layer.
pub fn hf_site_path(kind: LinearKind) -> &'static str {
    match kind {
        LinearKind::Query => "attention.self.query",
        LinearKind::Key => "attention.self.key",
        LinearKind::Value => "attention.self.value",
        LinearKind::AttentionOutput => "attention.output.dense",
        LinearKind::Intermediate => "intermediate.dense",
        LinearKind::Output => "output.dense",
    }
}
