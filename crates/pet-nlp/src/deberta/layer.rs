//! The DeBERTa-v2 layer (transformers' `DebertaV2Layer`): disentangled attention, then BERT's
//! output block, feed-forward and output block (pet-core's [`AddNorm`] and [`Intermediate`],
//! with their linear-site and sub-layer seams); and the convolution beside layer 0
//! (`ConvLayer`).

use burn::module::Module;
use burn::nn::conv::Conv1d;
use burn::nn::{Dropout, Linear};
use burn::tensor::{Bool, Tensor, backend::Backend};
use pet_core::blocks::Activation;
use pet_core::blocks::layer::{AddNorm, Intermediate, LinearSiteLayer};
use pet_core::{AttentionPrefix, Delta, LinearKind, SublayerKind};
use pet_kernels::LayerNorm;

use crate::deberta::attention::{DisentangledSelfAttention, RelativePositions};
use pet_kernels::dropout;

/// Disentangled self-attention and its output block (`attention`).
#[derive(Module, Debug)]
pub struct DebertaAttention<B: Backend> {
    /// Projections (`attention.self`).
    pub self_attention: DisentangledSelfAttention<B>,
    /// Output projection, residual and norm (`attention.output`).
    pub output: AddNorm<B>,
}

/// One DeBERTa-v2 layer (`encoder.layer.N`).
#[derive(Module, Debug)]
pub struct DebertaLayer<B: Backend> {
    /// Attention sub-layer.
    pub attention: DebertaAttention<B>,
    /// First feed-forward projection.
    pub intermediate: Intermediate<B>,
    /// Second feed-forward projection, residual and norm.
    pub output: AddNorm<B>,
}

impl<B: Backend> DebertaLayer<B> {
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`, `masked`: `[batch, 1, seq, n_prefix + seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        masked: Tensor<B, 4, Bool>,
        relative: Option<&RelativePositions<B>>,
        prefix: Option<&AttentionPrefix<B>>,
        layer: usize,
        delta: &D,
    ) -> Tensor<B, 3> {
        let context = self.attention.self_attention.forward(
            x.clone(),
            masked,
            relative,
            prefix,
            layer,
            delta,
        );
        let x = self.attention.output.forward(context, x, layer, SublayerKind::Attention, delta);
        let inner = self.intermediate.forward(x.clone(), layer, delta);
        self.output.forward(inner, x, layer, SublayerKind::FeedForward, delta)
    }
}

impl<B: Backend> LinearSiteLayer<B> for DebertaLayer<B> {
    fn site_path(kind: LinearKind) -> &'static str {
        hf_site_path(kind)
    }

    fn linear(&self, kind: LinearKind) -> &Linear<B> {
        let attention = &self.attention.self_attention;
        match kind {
            LinearKind::Query => &attention.query_proj,
            LinearKind::Key => &attention.key_proj,
            LinearKind::Value => &attention.value_proj,
            LinearKind::AttentionOutput => &self.attention.output.dense,
            LinearKind::Intermediate => &self.intermediate.dense,
            LinearKind::Output => &self.output.dense,
        }
    }

    fn linear_mut(&mut self, kind: LinearKind) -> &mut Linear<B> {
        let attention = &mut self.attention.self_attention;
        match kind {
            LinearKind::Query => &mut attention.query_proj,
            LinearKind::Key => &mut attention.key_proj,
            LinearKind::Value => &mut attention.value_proj,
            LinearKind::AttentionOutput => &mut self.attention.output.dense,
            LinearKind::Intermediate => &mut self.intermediate.dense,
            LinearKind::Output => &mut self.output.dense,
        }
    }
}

/// Hugging Face's module path of site `kind` inside a DeBERTa-v2 layer.
pub fn hf_site_path(kind: LinearKind) -> &'static str {
    match kind {
        LinearKind::Query => "attention.self.query_proj",
        LinearKind::Key => "attention.self.key_proj",
        LinearKind::Value => "attention.self.value_proj",
        LinearKind::AttentionOutput => "attention.output.dense",
        LinearKind::Intermediate => "intermediate.dense",
        LinearKind::Output => "output.dense",
    }
}

/// The convolution over the embeddings whose output joins layer 0's (`encoder.conv`):
/// `mask * layer_norm(layer0 + act(dropout(conv(embeddings) with padding zeroed)))`.
#[derive(Module, Debug)]
pub struct ConvLayer<B: Backend> {
    /// `[hidden, hidden / groups, kernel]`, padding `(kernel - 1) / 2` on both sides.
    pub conv: Conv1d<B>,
    /// Layer norm of the sum (`encoder.conv.LayerNorm`).
    pub layer_norm: LayerNorm<B>,
    /// Dropout on the convolution's output.
    pub dropout: Dropout,
    /// `conv_act`.
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> ConvLayer<B> {
    /// # Shapes
    /// - `embeddings`, `residual`: `[batch, seq, hidden]`; `mask`: `[batch, seq]`, 1.0 to keep
    /// - output: `[batch, seq, hidden]`
    pub fn forward(
        &self,
        embeddings: Tensor<B, 3>,
        residual: Tensor<B, 3>,
        mask: Tensor<B, 2>,
    ) -> Tensor<B, 3> {
        let [batch, seq, hidden] = embeddings.dims();
        // [batch, seq, 1] -> [batch, seq, hidden]
        let keep = mask.unsqueeze_dim::<3>(2).expand([batch, seq, hidden]);
        // [batch, seq, hidden]
        let out = self.conv.forward(embeddings.swap_dims(1, 2)).swap_dims(1, 2);
        let out = out.mask_fill(keep.clone().lower_elem(0.5), 0.0);
        let out = self.activation.forward(dropout(out, self.dropout.prob));
        self.layer_norm.forward(residual + out) * keep
    }
}
