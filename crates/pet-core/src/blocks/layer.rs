//! The post-layer-norm transformer layer (Hugging Face's `BertLayer`): attention, residual and
//! layer norm, feed-forward, residual and layer norm; with the linear-site and sub-layer seams.

use burn::module::Module;
use burn::nn::{Dropout, Linear};
use burn::tensor::{Tensor, backend::Backend};
use pet_kernels::{LayerNorm, dropout};

use crate::blocks::activation::Activation;
use crate::blocks::attention::{SelfAttention, project};
use crate::delta::Delta;
use crate::params::replace_value;
use crate::seam::{
    AttentionPrefix, LinearKind, LinearSite, LinearSiteInfo, SublayerKind, SublayerSite,
};

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

impl<B: Backend> AddNorm<B> {
    /// `layer_norm(sublayer(dropout(dense(x))) + residual)`, with the linear site of `dense`
    /// (`AttentionOutput` after attention, `Output` after the feed-forward block) and the
    /// sub-layer seam (which sees `residual`, the sub-layer's input) hooked in.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d_in]`, `residual` and output: `[batch, seq, hidden]`
    pub fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        residual: Tensor<B, 3>,
        layer: usize,
        kind: SublayerKind,
        delta: &D,
    ) -> Tensor<B, 3> {
        let linear = match kind {
            SublayerKind::Attention => LinearKind::AttentionOutput,
            SublayerKind::FeedForward => LinearKind::Output,
        };
        let out = dropout(project(&self.dense, layer, linear, x, delta), self.dropout.prob);
        let out = delta.sublayer(SublayerSite { layer, kind }, residual.clone(), out);
        self.layer_norm.forward(out + residual)
    }
}

impl<B: Backend> Intermediate<B> {
    /// `activation(dense(x))`, with the `Intermediate` linear site hooked in.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`, output: `[batch, seq, intermediate]`
    pub fn forward<D: Delta<B>>(&self, x: Tensor<B, 3>, layer: usize, delta: &D) -> Tensor<B, 3> {
        self.activation.forward(project(&self.dense, layer, LinearKind::Intermediate, x, delta))
    }
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
    /// - `x`: `[batch, seq, hidden]`, `mask_bias`: `[batch, n_prefix + seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        mask_bias: Tensor<B, 2>,
        prefix: Option<&AttentionPrefix<B>>,
        layer: usize,
        delta: &D,
    ) -> Tensor<B, 3> {
        let context =
            self.attention.self_attention.forward(x.clone(), mask_bias, prefix, layer, delta);
        let x = self.attention.output.forward(context, x, layer, SublayerKind::Attention, delta);
        let inner = self.intermediate.forward(x.clone(), layer, delta);
        self.output.forward(inner, x, layer, SublayerKind::FeedForward, delta)
    }
}

/// A transformer layer holding one [`Linear`] for each of the six sites of [`LinearKind`]: what a
/// [`Backbone`](crate::Backbone) needs to list its linear sites ([`stack_linear_sites`]) and to
/// read and replace their weights ([`Backbone::linear_weight`](crate::Backbone::linear_weight),
/// [`Backbone::with_linear_weight`](crate::Backbone::with_linear_weight)).
pub trait LinearSiteLayer<B: Backend> {
    /// Hugging Face's module path of site `kind` inside the layer, e.g. `attention.self.query`.
    fn site_path(kind: LinearKind) -> &'static str;

    /// The linear of site `kind`.
    fn linear(&self, kind: LinearKind) -> &Linear<B>;

    /// The linear of site `kind`, mutably.
    fn linear_mut(&mut self, kind: LinearKind) -> &mut Linear<B>;

    /// The weight of site `kind`.
    ///
    /// # Shapes
    /// - output: `[d_input, d_output]`
    fn linear_weight(&self, kind: LinearKind) -> Tensor<B, 2> {
        self.linear(kind).weight.val()
    }

    /// Replaces the weight of site `kind`, keeping the parameter's id and trainability.
    ///
    /// # Shapes
    /// - `weight`: `[d_input, d_output]`
    fn set_linear_weight(&mut self, kind: LinearKind, weight: Tensor<B, 2>) {
        let linear = self.linear_mut(kind);
        linear.weight = replace_value(linear.weight.clone(), weight);
    }
}

/// The order of the sites within a layer.
const SITE_KINDS: [LinearKind; 6] = [
    LinearKind::Query,
    LinearKind::Key,
    LinearKind::Value,
    LinearKind::AttentionOutput,
    LinearKind::Intermediate,
    LinearKind::Output,
];

/// Every linear site of a stack of `layers`, layer by layer in [`LinearKind`] order, at module
/// path `layer_path(layer)` + [`LinearSiteLayer::site_path`] (e.g. `encoder.layer.0.` +
/// `attention.self.query`), with the dimensions of its weight.
pub fn stack_linear_sites<B: Backend, L: LinearSiteLayer<B>>(
    layers: &[L],
    layer_path: impl Fn(usize) -> String,
) -> Vec<LinearSiteInfo> {
    layers
        .iter()
        .enumerate()
        .flat_map(|(index, layer)| {
            let prefix = layer_path(index);
            SITE_KINDS.map(|kind| {
                let [d_input, d_output] = layer.linear_weight(kind).dims();
                let path = format!("{prefix}{}", L::site_path(kind));
                LinearSiteInfo { site: LinearSite { layer: index, kind }, path, d_input, d_output }
            })
        })
        .collect()
}

impl<B: Backend> LinearSiteLayer<B> for PostNormLayer<B> {
    fn site_path(kind: LinearKind) -> &'static str {
        hf_site_path(kind)
    }

    fn linear(&self, kind: LinearKind) -> &Linear<B> {
        match kind {
            LinearKind::Query => &self.attention.self_attention.query,
            LinearKind::Key => &self.attention.self_attention.key,
            LinearKind::Value => &self.attention.self_attention.value,
            LinearKind::AttentionOutput => &self.attention.output.dense,
            LinearKind::Intermediate => &self.intermediate.dense,
            LinearKind::Output => &self.output.dense,
        }
    }

    fn linear_mut(&mut self, kind: LinearKind) -> &mut Linear<B> {
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
