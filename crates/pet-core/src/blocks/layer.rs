//! The post-layer-norm transformer layer (Hugging Face's `BertLayer`): attention, residual and
//! layer norm, feed-forward, residual and layer norm; with the linear-site and sub-layer seams.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};
use pet_kernels::{LayerNorm, dropout};

use crate::blocks::activation::Activation;
use crate::blocks::attention::{SelfAttention, project};
use crate::config_check::HeaderCheck;
use crate::delta::Delta;
use crate::error::Result;
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
            SublayerKind::CrossAttention => LinearKind::CrossAttentionOutput,
        };
        let out = dropout(project(&self.dense, layer, linear, x, delta), self.dropout.prob);
        let out = delta.sublayer(SublayerSite::encoder(layer, kind), residual.clone(), out);
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

/// The self-attention of a [`PostNormLayer`]: BERT's [`SelfAttention`], DeBERTa's disentangled
/// attention, or any other whose projections are the query, key and value linear sites.
pub trait LayerAttention<B: Backend>: Module<B> {
    /// What every layer's attention reads besides its input, computed once per forward pass
    /// (BERT: the additive mask; DeBERTa: the pairwise mask and relative positions).
    type Context;

    /// The attention context before the output projection.
    ///
    /// # Shapes
    /// - `x` and output: `[batch, seq, hidden]`; `prefix`: `[batch, heads, n_prefix, head_dim]`
    fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        context: &Self::Context,
        prefix: Option<&AttentionPrefix<B>>,
        layer: usize,
        delta: &D,
    ) -> Tensor<B, 3>;

    /// The projection of `kind` (`Query`, `Key` or `Value`).
    fn projection(&self, kind: LinearKind) -> &Linear<B>;

    /// The projection of `kind`, mutably.
    fn projection_mut(&mut self, kind: LinearKind) -> &mut Linear<B>;

    /// Hugging Face's module name of the projection of `kind` inside `attention.self`
    /// (`query`, or DeBERTa's `query_proj`).
    fn projection_name(kind: LinearKind) -> &'static str;
}

impl<B: Backend> LayerAttention<B> for SelfAttention<B> {
    /// `[batch, n_prefix + seq]`: 0 where attended, the lowest float elsewhere.
    type Context = Tensor<B, 2>;

    fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        mask_bias: &Tensor<B, 2>,
        prefix: Option<&AttentionPrefix<B>>,
        layer: usize,
        delta: &D,
    ) -> Tensor<B, 3> {
        SelfAttention::forward(self, x, mask_bias.clone(), prefix, layer, delta)
    }

    fn projection(&self, kind: LinearKind) -> &Linear<B> {
        match kind {
            LinearKind::Query => &self.query,
            LinearKind::Key => &self.key,
            LinearKind::Value => &self.value,
            other => panic!("expected a query, key or value projection, got {other:?}"),
        }
    }

    fn projection_mut(&mut self, kind: LinearKind) -> &mut Linear<B> {
        match kind {
            LinearKind::Query => &mut self.query,
            LinearKind::Key => &mut self.key,
            LinearKind::Value => &mut self.value,
            other => panic!("expected a query, key or value projection, got {other:?}"),
        }
    }

    fn projection_name(kind: LinearKind) -> &'static str {
        match kind {
            LinearKind::Query => "query",
            LinearKind::Key => "key",
            LinearKind::Value => "value",
            other => panic!("expected a query, key or value projection, got {other:?}"),
        }
    }
}

/// Self-attention and its output block (Hugging Face's `BertAttention`).
#[derive(Module, Debug)]
pub struct AttentionBlock<B: Backend, A: Module<B>> {
    /// Query, key, value (`attention.self`).
    pub self_attention: A,
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

/// One post-layer-norm transformer layer (BERT's `BertLayer`, DeBERTa's `DebertaV2Layer`):
/// attention `A`, then BERT's output block, feed-forward and output block.
#[derive(Module, Debug)]
pub struct PostNormLayer<B: Backend, A: Module<B>> {
    /// Attention sub-layer.
    pub attention: AttentionBlock<B, A>,
    /// First feed-forward projection.
    pub intermediate: Intermediate<B>,
    /// Second feed-forward projection, residual and norm.
    pub output: AddNorm<B>,
}

/// The sizes and options of a [`PostNormLayer`] around its attention.
#[derive(Clone, Copy, Debug)]
pub struct PostNormLayerConfig {
    /// Hidden size.
    pub hidden_size: usize,
    /// Feed-forward size.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    pub hidden_act: Activation,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
    /// Dropout on the attention and feed-forward outputs.
    pub hidden_dropout_prob: f64,
}

impl PostNormLayerConfig {
    /// The options of Hugging Face's config fields of the same names.
    pub fn new(
        hidden_size: usize,
        intermediate_size: usize,
        hidden_act: Activation,
        layer_norm_eps: f64,
        hidden_dropout_prob: f64,
    ) -> Self {
        Self { hidden_size, intermediate_size, hidden_act, layer_norm_eps, hidden_dropout_prob }
    }

    /// The tensors of layer `base` (`encoder.layer.N`) around its attention, checked against a
    /// weights file's header: `attention.output.dense`, `attention.output.LayerNorm`,
    /// `intermediate.dense`, `output.dense`, `output.LayerNorm`; `origin` names the field that
    /// makes the layer exist (`num_hidden_layers`).
    ///
    /// # Errors
    /// As [`HeaderCheck::tensor`].
    pub fn check_header(&self, check: &HeaderCheck<'_>, base: &str, origin: &str) -> Result<()> {
        let h = (self.hidden_size, "hidden_size");
        let inner = (self.intermediate_size, "intermediate_size");
        check.linear(&format!("{base}.attention.output.dense"), origin, h, h)?;
        check.norm(&format!("{base}.attention.output.LayerNorm"), origin, h)?;
        check.linear(&format!("{base}.intermediate.dense"), origin, h, inner)?;
        check.linear(&format!("{base}.output.dense"), origin, inner, h)?;
        check.norm(&format!("{base}.output.LayerNorm"), origin, h)
    }

    /// `count` layers with random weights, each around the attention `attention()` builds.
    pub fn stack<B: Backend, A: Module<B>>(
        &self,
        count: usize,
        attention: impl Fn() -> A,
        device: &B::Device,
    ) -> Vec<PostNormLayer<B, A>> {
        (0..count).map(|_| self.init(attention(), device)).collect()
    }

    /// A layer around `self_attention`, with random weights.
    pub fn init<B: Backend, A: Module<B>>(
        &self,
        self_attention: A,
        device: &B::Device,
    ) -> PostNormLayer<B, A> {
        let (h, inner) = (self.hidden_size, self.intermediate_size);
        let add_norm = |d_in| AddNorm {
            dense: LinearConfig::new(d_in, h).init(device),
            layer_norm: LayerNorm::new(h, self.layer_norm_eps, device),
            dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
        };
        PostNormLayer {
            attention: AttentionBlock { self_attention, output: add_norm(h) },
            intermediate: Intermediate {
                dense: LinearConfig::new(h, inner).init(device),
                activation: self.hidden_act,
            },
            output: add_norm(inner),
        }
    }
}

impl<B: Backend, A: LayerAttention<B>> PostNormLayer<B, A> {
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`; output: `[batch, seq, hidden]`
    pub fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        context: &A::Context,
        prefix: Option<&AttentionPrefix<B>>,
        layer: usize,
        delta: &D,
    ) -> Tensor<B, 3> {
        let attended =
            self.attention.self_attention.forward(x.clone(), context, prefix, layer, delta);
        let x = self.attention.output.forward(attended, x, layer, SublayerKind::Attention, delta);
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
    fn site_path(kind: LinearKind) -> String;

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
                LinearSiteInfo { site: LinearSite::encoder(index, kind), path, d_input, d_output }
            })
        })
        .collect()
}

impl<B: Backend, A: LayerAttention<B>> LinearSiteLayer<B> for PostNormLayer<B, A> {
    fn site_path(kind: LinearKind) -> String {
        match kind {
            LinearKind::Query | LinearKind::Key | LinearKind::Value => {
                format!("attention.self.{}", A::projection_name(kind))
            }
            LinearKind::AttentionOutput => "attention.output.dense".to_string(),
            LinearKind::Intermediate => "intermediate.dense".to_string(),
            LinearKind::Output => "output.dense".to_string(),
            other => panic!("expected a site of an encoder layer, got {other:?}"),
        }
    }

    fn linear(&self, kind: LinearKind) -> &Linear<B> {
        match kind {
            LinearKind::AttentionOutput => &self.attention.output.dense,
            LinearKind::Intermediate => &self.intermediate.dense,
            LinearKind::Output => &self.output.dense,
            other => self.attention.self_attention.projection(other),
        }
    }

    fn linear_mut(&mut self, kind: LinearKind) -> &mut Linear<B> {
        match kind {
            LinearKind::AttentionOutput => &mut self.attention.output.dense,
            LinearKind::Intermediate => &mut self.intermediate.dense,
            LinearKind::Output => &mut self.output.dense,
            other => self.attention.self_attention.projection_mut(other),
        }
    }
}
